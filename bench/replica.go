//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The coherence scenario runs its two near-cached servers as processes of
// their own, as two replicas of a service run: each with its own Go
// runtime, Redis client and near cache, over one Redis that also holds
// their shared data. The program starts itself with -near-replica for
// each.

// replicaStatsPath is the path, outside the cache, where a replica reports
// its counters.
const replicaStatsPath = "/replica-stats"

// replicaStats are a replica's counters, read by the coherence scenario.
type replicaStats struct {
	NearHits    uint64 `json:"near_hits"`
	StoreErrors uint64 `json:"store_errors"`
}

// dbVersioned is the replicas' origin: GET shows a version per id, PUT
// makes a new one. The versions live in Redis, read with a plain client
// of their own (no near cache): the database both replicas serve.
type dbVersioned struct {
	db *redis.Client
}

func (v *dbVersioned) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := "coherence:version:" + r.PathValue("id")
	var n int64
	var err error
	if r.Method == http.MethodPut {
		n, err = v.db.Incr(r.Context(), key).Result()
	} else if n, err = v.db.Get(r.Context(), key).Int64(); errors.Is(err, redis.Nil) {
		n, err = 0, nil
	}
	if err != nil {
		http.Error(w, "database unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = fmt.Fprintf(w, "%s v%d\n", r.PathValue("id"), n)
}

// runReplica is the program started with -near-replica: it serves a
// near-cached server over dbVersioned, on a port of its own, prints its
// URL as the first line of stdout, and stops when stdin closes (the
// parent's end of the pipe: the replica never outlives the program).
func runReplica(redisAddr string, stdin io.Reader, stdout io.Writer) error {
	redis.SetLogger(quietLogger{})
	logger := slog.New(slog.DiscardHandler)
	db := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer func() { _ = db.Close() }()
	ns, err := newNearServer("replica", redisAddr, &dbVersioned{db: db}, logger)
	if err != nil {
		return err
	}
	defer func() { _ = ns.srv.close() }()
	if _, err := fmt.Fprintln(stdout, ns.srv.url); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, stdin)
	return nil
}

// replica is a -near-replica process started by the coherence scenario.
type replica struct {
	url   string
	cmd   *exec.Cmd
	stdin io.Closer
}

// startReplica starts a replica process over the Redis at redisAddr and
// waits until it serves, with its near cache on.
func startReplica(ctx context.Context, redisAddr string) (*replica, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-near-replica", redisAddr)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start replica: %w", err)
	}
	rp := &replica{cmd: cmd, stdin: stdin}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(s)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case rp.url = <-line:
	case <-time.After(10 * time.Second):
	case <-ctx.Done():
	}
	if !strings.HasPrefix(rp.url, "http://") {
		return nil, errors.Join(fmt.Errorf("replica did not start (said %q)", rp.url), rp.close())
	}
	return rp, nil
}

// stats reads the replica's counters.
func (rp *replica) stats(ctx context.Context, client *http.Client) (replicaStats, error) {
	var s replicaStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rp.url+replicaStatsPath, nil)
	if err != nil {
		return s, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return s, err
	}
	defer func() { _ = resp.Body.Close() }()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// close ends the replica (it stops when its stdin closes) and waits for
// it, killing it after 5 s.
func (rp *replica) close() error {
	_ = rp.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- rp.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		_ = rp.cmd.Process.Kill()
		return errors.Join(errors.New("replica did not stop within 5 s: killed"), <-done)
	}
}
