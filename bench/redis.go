//go:build unix

package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/steadfast-go/steadfast/internal/redisproc"
)

// redisProc is the redis-server process that the program starts, kills,
// stops (SIGSTOP), continues and restarts on the same port. Its methods are
// safe for concurrent use.
type redisProc struct {
	srv *redisproc.Server
}

// startRedis starts redis-server from bin on a free 127.0.0.1 port, with
// no persistence, and waits until it answers PING.
func startRedis(ctx context.Context, bin string) (*redisProc, error) {
	srv, err := redisproc.Start(ctx, redisproc.Options{Binary: bin, Args: []string{"--maxclients", "4000"}})
	if err != nil {
		return nil, err
	}
	return &redisProc{srv: srv}, nil
}

// addr is the server's host:port.
func (p *redisProc) addr() string { return p.srv.Addr() }

// restart kills a running server, then starts a new one on the same port
// (empty: nothing is persisted) and waits until it answers.
func (p *redisProc) restart(ctx context.Context) error { return p.srv.Restart(ctx) }

// launch kills a running server and starts a new process without waiting
// for it to answer.
func (p *redisProc) launch() error { return p.srv.Launch() }

// kill sends SIGKILL and waits for the process to be gone.
func (p *redisProc) kill() { p.srv.Kill() }

// stop freezes the server with SIGSTOP: connections are still accepted by
// the kernel, nothing is answered. cont undoes it.
func (p *redisProc) stop() error { return p.srv.Pause() }

func (p *redisProc) cont() error { return p.srv.Resume() }

// close kills the server and removes its directory.
func (p *redisProc) close() { _ = p.srv.Close() }

// command sends one command on a new connection and returns the reply as
// text.
func (p *redisProc) command(args ...string) (string, error) { return p.srv.Command(args...) }

// waitAccepting dials the port every half millisecond until a connection
// is accepted, and returns when.
func (p *redisProc) waitAccepting(ctx context.Context) (time.Time, error) {
	return p.srv.WaitAccepting(ctx)
}

// stats returns the calls per command and the CPU time redis-server used
// so far (INFO commandstats and cpu, in one round trip).
func (p *redisProc) stats() (map[string]int64, time.Duration, error) {
	info, err := p.command("INFO", "commandstats", "cpu")
	if err != nil {
		return nil, 0, fmt.Errorf("info: %w", err)
	}
	return parseCommandStats(info), parseCPU(info), nil
}

// parseCPU adds used_cpu_user and used_cpu_sys (seconds) from INFO cpu.
func parseCPU(info string) time.Duration {
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				total += f
			}
		}
	}
	return time.Duration(total * float64(time.Second))
}

// parseCommandStats reads lines such as
// "cmdstat_get:calls=12,usec=34,usec_per_call=2.83,..." .
func parseCommandStats(info string) map[string]int64 {
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			if k == "calls" {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					out[strings.TrimPrefix(name, "cmdstat_")] = n
				}
			}
		}
	}
	return out
}

// version returns redis_version from INFO server.
func (p *redisProc) version() string {
	info, err := p.command("INFO", "server")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return "unknown"
}

// commandDelta is the change in calls per command between two snapshots,
// without the INFO calls the program itself made.
func commandDelta(before, after map[string]int64) map[string]int64 {
	d := map[string]int64{}
	for name, n := range after {
		if name == "info" {
			continue
		}
		if diff := n - before[name]; diff > 0 {
			d[name] = diff
		}
	}
	return d
}

func sumCalls(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
