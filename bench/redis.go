//go:build unix

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// redisProc is one redis-server process that the program starts, kills,
// stops (SIGSTOP), continues and restarts on the same port. Its methods are
// safe for concurrent use.
type redisProc struct {
	bin  string
	dir  string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// startRedis starts redis-server from bin on a free 127.0.0.1 port, with
// no persistence, and waits until it answers PING.
func startRedis(ctx context.Context, bin string) (*redisProc, error) {
	dir, err := os.MkdirTemp("", "steadfast-bench-redis-")
	if err != nil {
		return nil, fmt.Errorf("redis dir: %w", err)
	}
	port, err := freePort()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	p := &redisProc{bin: bin, dir: dir, port: port}
	if err := p.restart(ctx); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// addr is the server's host:port.
func (p *redisProc) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

// restart kills a running server, then starts a new one on the same port
// (empty: nothing is persisted) and waits until it answers.
func (p *redisProc) restart(ctx context.Context) error {
	if err := p.launch(); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		if _, err := p.command("PING"); err == nil {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("redis-server on %s did not answer: %w", p.addr(), wctx.Err())
		case <-p.exited():
			return fmt.Errorf("redis-server on %s exited at start (log in %s)", p.addr(), p.dir)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// launch kills a running server and starts a new process without waiting
// for it to answer.
func (p *redisProc) launch() error {
	p.kill()
	cmd := exec.Command(p.bin,
		"--port", strconv.Itoa(p.port),
		"--bind", "127.0.0.1",
		"--dir", p.dir,
		"--save", "",
		"--appendonly", "no",
		"--protected-mode", "no",
		"--maxclients", "4000",
	)
	cmd.Dir = p.dir
	logf, err := os.OpenFile(filepath.Join(p.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("redis log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return nil
}

func (p *redisProc) exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return p.done
}

// kill sends SIGKILL and waits for the process to be gone. Killing a
// stopped or absent server is fine.
func (p *redisProc) kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd, p.done = nil, nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// stop freezes the server with SIGSTOP: connections are still accepted by
// the kernel, nothing is answered. cont undoes it.
func (p *redisProc) stop() error { return p.signal(syscall.SIGSTOP) }

func (p *redisProc) cont() error { return p.signal(syscall.SIGCONT) }

func (p *redisProc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return errors.New("redis-server is not running")
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal redis-server: %w", err)
	}
	return nil
}

// close kills the server and removes its directory.
func (p *redisProc) close() {
	p.kill()
	_ = os.RemoveAll(p.dir)
}

// command sends one command on a new connection and returns the reply: a
// simple string, an integer or a bulk string as text.
func (p *redisProc) command(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", p.addr(), time.Second)
	if err != nil {
		return "", err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(c))
}

// readReply reads one RESP2 reply that is not an array.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("bulk length %q: %w", line, err)
		}
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
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

// waitAccepting dials the port every half millisecond until a connection
// is accepted, and returns when.
func (p *redisProc) waitAccepting(ctx context.Context) (time.Time, error) {
	d := net.Dialer{Timeout: 100 * time.Millisecond}
	for {
		c, err := d.DialContext(ctx, "tcp", p.addr())
		if err == nil {
			at := time.Now()
			_ = c.Close()
			return at, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(500 * time.Microsecond):
		}
	}
}
