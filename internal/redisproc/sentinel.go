//go:build unix

package redisproc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SentinelOptions configure a Sentinel deployment. The zero value runs one
// master, one replica and three sentinels with quorum 2, which fail a
// master after 300 ms without an answer.
type SentinelOptions struct {
	// Binary and SentinelBinary are the paths of redis-server and
	// redis-sentinel. Empty means looked up on PATH.
	Binary, SentinelBinary string
	// MasterName is the name the sentinels monitor; empty means
	// "mymaster".
	MasterName string
	// DownAfter is down-after-milliseconds; zero means 300 ms.
	DownAfter time.Duration
	// FailoverTimeout is failover-timeout; zero means 2 s.
	FailoverTimeout time.Duration
	// Password, if set, is the data servers' password: they require it,
	// a replica gives it to its master (masterauth), and the sentinels
	// give it to both (sentinel auth-pass). Empty means none.
	Password string
	// SentinelPassword, if set, is the sentinels' own password: they
	// require it and give it to each other (sentinel sentinel-pass).
	// Empty means none.
	SentinelPassword string
}

// Sentinel is a master, a replica and three sentinels on 127.0.0.1. The
// data servers are [Server] values: kill one and Sentinel promotes the
// other. Close stops them all.
type Sentinel struct {
	// Name is the master's name.
	Name string
	// Data are the master (first, as started) and the replica.
	Data []*Server
	// Sentinels are the three redis-sentinel processes.
	Sentinels []*Server
}

// StartSentinel starts the servers and the sentinels and waits until every
// sentinel knows the replica and the other sentinels. On error nothing is
// left running.
func StartSentinel(ctx context.Context, opts SentinelOptions) (*Sentinel, error) {
	if opts.MasterName == "" {
		opts.MasterName = "mymaster"
	}
	if opts.DownAfter == 0 {
		opts.DownAfter = 300 * time.Millisecond
	}
	if opts.FailoverTimeout == 0 {
		opts.FailoverTimeout = 2 * time.Second
	}
	sbin, err := program(opts.SentinelBinary, "redis-sentinel")
	if err != nil {
		return nil, err
	}
	st := &Sentinel{Name: opts.MasterName}
	// Replicas sync at once, not after the default 5 s wait.
	dataArgs := []string{"--repl-diskless-sync-delay", "0"}
	if opts.Password != "" {
		// Every data server may become a replica after a failover.
		dataArgs = append(dataArgs, "--masterauth", opts.Password)
	}
	master, err := Start(ctx, Options{Binary: opts.Binary, Args: dataArgs, Password: opts.Password})
	if err != nil {
		return nil, err
	}
	st.Data = append(st.Data, master)
	replica, err := Start(ctx, Options{Binary: opts.Binary, Args: append(dataArgs, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port())), Password: opts.Password})
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	st.Data = append(st.Data, replica)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := waitInfo(wctx, replica, "replication", "master_link_status:up"); err != nil {
		return nil, errors.Join(err, st.Close())
	}
	conf := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2\n"+
		"sentinel down-after-milliseconds %[1]s %[3]d\n"+
		"sentinel failover-timeout %[1]s %[4]d\n"+
		"sentinel parallel-syncs %[1]s 1\n",
		opts.MasterName, master.Port(), opts.DownAfter.Milliseconds(), opts.FailoverTimeout.Milliseconds())
	if opts.Password != "" {
		conf += fmt.Sprintf("sentinel auth-pass %s %s\n", opts.MasterName, opts.Password)
	}
	if opts.SentinelPassword != "" {
		conf += fmt.Sprintf("sentinel sentinel-pass %s\n", opts.SentinelPassword)
	}
	for range 3 {
		s, err := Start(ctx, Options{Binary: sbin, Config: conf, Password: opts.SentinelPassword})
		if err != nil {
			return nil, errors.Join(err, st.Close())
		}
		st.Sentinels = append(st.Sentinels, s)
	}
	for _, s := range st.Sentinels {
		if err := st.waitKnown(wctx, s); err != nil {
			return nil, errors.Join(err, st.Close())
		}
	}
	return st, nil
}

// waitKnown waits until sentinel s knows one replica and two other
// sentinels.
func (st *Sentinel) waitKnown(ctx context.Context, s *Server) error {
	for {
		out, err := s.command(ctx, "SENTINEL", "MASTER", st.Name)
		if err == nil && field(out, "num-slaves") == "1" && field(out, "num-other-sentinels") == "2" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sentinel on %s does not know the deployment: %w (last: %v)", s.Addr(), ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// field reads name's value from a flat name\nvalue\n... reply.
func field(reply, name string) string {
	f := strings.Split(reply, "\n")
	for i := 0; i+1 < len(f); i += 2 {
		if f[i] == name {
			return f[i+1]
		}
	}
	return ""
}

func waitInfo(ctx context.Context, s *Server, section, want string) error {
	for {
		out, err := s.command(ctx, "INFO", section)
		if err == nil && strings.Contains(out, want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis-server on %s: no %q in INFO %s: %w", s.Addr(), want, section, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// SentinelAddrs returns the sentinels' host:port.
func (st *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(st.Sentinels))
	for i, s := range st.Sentinels {
		addrs[i] = s.Addr()
	}
	return addrs
}

// MasterAddr asks the sentinels, in turn, for the master's address.
func (st *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	lastErr := ErrNotRunning
	for _, s := range st.Sentinels {
		if s.PID() == 0 {
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		out, err := s.command(qctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", st.Name)
		cancel()
		if err != nil {
			lastErr = err
			continue
		}
		host, port, ok := strings.Cut(out, "\n")
		if !ok {
			lastErr = fmt.Errorf("sentinel: reply %q", out)
			continue
		}
		return host + ":" + port, nil
	}
	return "", lastErr
}

// Node returns the data server at addr, or nil.
func (st *Sentinel) Node(addr string) *Server {
	return serverAt(st.Data, addr)
}

// Failover asks a sentinel for a failover (SENTINEL FAILOVER).
func (st *Sentinel) Failover(ctx context.Context) error {
	lastErr := ErrNotRunning
	for _, s := range st.Sentinels {
		if _, err := s.command(ctx, "SENTINEL", "FAILOVER", st.Name); err != nil {
			lastErr = err
			continue
		}
		return nil
	}
	return lastErr
}

// WaitNewMaster waits until a sentinel reports a master other than old,
// and returns it and when that was first seen (polling every 2 ms).
func (st *Sentinel) WaitNewMaster(ctx context.Context, old string) (string, time.Time, error) {
	for {
		if m, err := st.MasterAddr(ctx); err == nil && m != old {
			return m, time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return "", time.Time{}, fmt.Errorf("sentinel: no master other than %s: %w", old, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Close stops every process and removes their directories.
func (st *Sentinel) Close() error {
	var errs []error
	for _, s := range append(append([]*Server(nil), st.Sentinels...), st.Data...) {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
