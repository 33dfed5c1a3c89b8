package resilience

import (
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/steadfast-go/steadfast/internal/redistest"
)

// These tests break a real redis-server (started on a free port by
// redistest) in the ways production Redis breaks. Timing bounds are upper
// limits with generous margins: the machine may be loaded.

// margin is added to every bound on how long an operation may take.
const margin = 500 * time.Millisecond

// timed runs op and returns how long it took and its error.
func timed(op func() error) (time.Duration, error) {
	start := time.Now()
	err := op()
	return time.Since(start), err
}

func TestFaultKilled(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	dials := new(dialCounter)
	ev := newEvents()
	r := newTestRedis(t, Config{Addr: srv.Addr()}, Options{Logger: discard, Dialer: dials.dial,
		FailureThreshold: 3, MaxAttempts: 1, ProbeInterval: hour, ProbeMaxInterval: hour, OnStateChange: ev.record})
	ctx := ctxFor(t, waitLimit)
	if err := r.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}

	srv.Kill()
	for i := 1; i <= 3; i++ {
		d, err := timed(func() error { _, err := r.Get(ctx, "k"); return err })
		if err == nil || errors.Is(err, ErrUnavailable) || !IsFailure(err) {
			t.Fatalf("Get %d with Redis killed = %v, want a failure from Redis itself", i, err)
		}
		if d > margin {
			t.Errorf("Get %d took %v, want it to fail fast (connection refused)", i, d)
		}
		if want := map[bool]State{true: StateOpen, false: StateClosed}[i == 3]; r.State() != want {
			t.Errorf("after %d failures (threshold 3): state %v, want %v", i, r.State(), want)
		}
	}
	c := ev.waitFor(t, StateOpen, waitLimit)
	if c.From != StateClosed || !strings.Contains(c.LastError, "refused") && !strings.Contains(c.LastError, "EOF") &&
		!strings.Contains(c.LastError, "reset") {
		t.Errorf("open event %+v, want from closed with the connection error", c)
	}

	before, dialed := r.Stats(), dials.n.Load()
	for i := range 50 {
		d, err := timed(func() error { _, err := r.Get(ctx, "k"); return err })
		if err != ErrUnavailable {
			t.Fatalf("Get %d with the breaker open = %v, want ErrUnavailable", i, err)
		}
		if d > margin {
			t.Errorf("Get with the breaker open took %v", d)
		}
	}
	if err := r.Set(ctx, "k", nil, 0); err != ErrUnavailable {
		t.Errorf("Set with the breaker open = %v, want ErrUnavailable", err)
	}
	after := r.Stats()
	if n := dials.n.Load(); n != dialed {
		t.Errorf("%d dials with the breaker open, want none", n-dialed)
	}
	if got := after.Rejected - before.Rejected; got != 51 {
		t.Errorf("Stats().Rejected grew by %d, want 51", got)
	}
	if after.Ops != before.Ops || after.Failures != 3 {
		t.Errorf("Stats() ops %d→%d, failures %d; want ops unchanged (no call made) and 3 failures", before.Ops, after.Ops, after.Failures)
	}
}

func TestFaultHung(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	const opTimeout = 50 * time.Millisecond
	r := newTestRedis(t, Config{Addr: srv.Addr()}, Options{Logger: discard, OpTimeout: opTimeout, PoolSize: 2,
		FailureThreshold: 1000})
	ctx := ctxFor(t, waitLimit)
	if err := r.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// Set up through the client itself: the 50 ms guard may be too short
	// for a loaded machine, and setting up is not what is tested.
	if err := r.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	srv.Pause()
	// A pooled connection, then new ones (the hung server still accepts):
	// each operation costs at most its deadline.
	for i := range 3 {
		d, err := timed(func() error { _, err := r.Get(ctx, "k"); return err })
		if err == nil || !IsFailure(err) {
			t.Errorf("Get %d from a hung Redis = %v, want a failure", i, err)
		}
		if d > opTimeout+margin {
			t.Errorf("Get %d from a hung Redis took %v, want at most OpTimeout %v (+%v margin)", i, d, opTimeout, margin)
		}
	}
	// More callers than connections: waiting for the pool is bounded too.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			d, err := timed(func() error { return r.Set(ctx, "k", []byte("w"), 0) })
			if d > opTimeout+margin {
				err = errors.New("took " + d.String())
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	// Callers that found the pool busy get ErrPoolTimeout, which is not
	// held against Redis; the others time out on the hung socket.
	poolWaits := 0
	for err := range errs {
		switch {
		case errors.Is(err, redis.ErrPoolTimeout):
			poolWaits++
		case err == nil || !IsFailure(err):
			t.Errorf("concurrent Set on a hung Redis: %v, want a failure or a pool timeout within the deadline", err)
		}
	}
	if st := r.Stats(); st.Failures != uint64(11-poolWaits) || st.Retries != 0 {
		t.Errorf("Stats() failures %d, retries %d; want %d and none (a timeout is not retried; %d pool waits are not failures)",
			st.Failures, st.Retries, 11-poolWaits, poolWaits)
	}

	srv.Resume()
	if err := eventually(func() error { _, err := r.Get(ctx, "k"); return err }); err != nil {
		t.Errorf("Get after the server resumed: %v", err)
	}
}

func TestFaultRestartClosesBreakerWithoutTraffic(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ev := newEvents()
	log, logs := newLogger(slog.LevelInfo)
	r := newTestRedis(t, Config{Addr: srv.Addr()}, Options{Logger: log, FailureThreshold: 2, MaxAttempts: 1,
		OnStateChange: ev.record})
	ctx := ctxFor(t, waitLimit)
	if err := r.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	oldClient := r.Client()

	srv.Kill()
	for range 2 {
		if _, err := r.Get(ctx, "k"); err == nil {
			t.Fatal("Get with Redis killed: no error")
		}
	}
	ev.waitFor(t, StateOpen, waitLimit)
	opsWhileDown := r.Stats().Ops

	srv.Restart()
	restarted := time.Now()
	c := ev.waitFor(t, StateClosed, waitLimit)
	took := time.Since(restarted)
	t.Logf("breaker closed %v after Redis answered again", took)
	if took > time.Second {
		t.Errorf("breaker closed %v after Redis was back, want within 1 s", took)
	}
	if c.From != StateOpen || c.LastError != "" {
		t.Errorf("close event %+v, want from open, without an error", c)
	}
	st := r.Stats()
	if st.Ops != opsWhileDown {
		t.Errorf("%d operations ran while down; the prober alone must close the breaker", st.Ops-opsWhileDown)
	}
	if st.Probes == 0 || st.State != StateClosed {
		t.Errorf("Stats() probes %d, state %v; want probes and closed", st.Probes, st.State)
	}
	if r.Client() == oldClient {
		t.Error("the client that saw the outage is still in use, want a fresh one")
	}

	// The restarted server is empty (no persistence): a miss, then a hit.
	if _, err := r.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("first Get after the restart = %v, want ErrNotFound", err)
	}
	if err := r.Set(ctx, "k", []byte("v2"), 0); err != nil {
		t.Fatalf("Set after the restart: %v", err)
	}
	if v, err := r.Get(ctx, "k"); err != nil || string(v) != "v2" {
		t.Errorf("Get after the restart = %q, %v; want v2", v, err)
	}
	if n := len(logs.lines("available again")); n != 1 {
		t.Errorf("%d recovery lines, want 1:\n%s", n, logs)
	}
}

func TestFaultSlow(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	const opTimeout = 50 * time.Millisecond
	r := newTestRedis(t, Config{Addr: srv.Addr()}, Options{Logger: discard, OpTimeout: opTimeout, FailureThreshold: 1000})
	ctx := ctxFor(t, waitLimit)
	if err := r.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	slept := make(chan error, 1)
	go func() {
		_, err := srv.Command("DEBUG", "SLEEP", "0.2")
		slept <- err
	}()
	// Operations until one meets the sleeping server; each one, fast or
	// not, must end within its deadline.
	for ops := 1; ; ops++ {
		d, err := timed(func() error { _, err := r.Get(ctx, "k"); return err })
		if d > opTimeout+margin {
			t.Fatalf("Get %d took %v, want at most OpTimeout %v (+%v margin)", ops, d, opTimeout, margin)
		}
		if err != nil {
			if !IsFailure(err) {
				t.Errorf("Get from a slow Redis = %v, want a failure", err)
			}
			t.Logf("Get %d met the slow server after %v: %v", ops, d, err)
			break
		}
		select {
		case err := <-slept:
			t.Fatalf("DEBUG SLEEP ended (%v) and no Get ever waited for it", err)
		default:
		}
	}
	select {
	case err := <-slept:
		if err != nil {
			t.Fatalf("DEBUG SLEEP: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("DEBUG SLEEP 0.2 never returned")
	}
	var v []byte
	err := eventually(func() error {
		var err error
		v, err = r.Get(ctx, "k")
		return err
	})
	if err != nil || string(v) != "v" {
		t.Errorf("Get after the slow spell = %q, %v; want v", v, err)
	}
}

func TestFaultReadOnly(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ev := newEvents()
	r := newTestRedis(t, Config{Addr: srv.Addr()}, Options{Logger: discard, FailureThreshold: 3, MaxAttempts: 2,
		ProbeInterval: hour, ProbeMaxInterval: hour, OnStateChange: ev.record})
	ctx := ctxFor(t, waitLimit)
	if err := r.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	// A replica of a master that is not there: it keeps its data, serves
	// stale reads (replica-serve-stale-data yes, the default) and refuses
	// writes.
	if _, err := srv.Command("REPLICAOF", "127.0.0.1", strconv.Itoa(redistest.FreePort(t))); err != nil {
		t.Fatalf("REPLICAOF: %v", err)
	}
	t.Cleanup(func() { _, _ = srv.Command("REPLICAOF", "NO", "ONE") })

	for i := 1; i <= 3; i++ {
		if v, err := r.Get(ctx, "k"); err != nil || string(v) != "v" {
			t.Fatalf("read %d from the read-only replica = %q, %v; want v", i, v, err)
		}
		err := r.Set(ctx, "k", []byte("w"), 0)
		if !redis.IsReadOnlyError(err) || !IsFailure(err) {
			t.Fatalf("write %d to a read-only replica = %v, want a READONLY failure", i, err)
		}
	}
	if st := r.Stats(); st.State != StateClosed || st.Failures != 3 || st.Retries != 0 {
		t.Errorf("reads between the writes: state %v, failures %d, retries %d; want closed, 3, 0 (READONLY is not retried)",
			st.State, st.Failures, st.Retries)
	}
	// Writes alone, in a row, open the breaker.
	for range 3 {
		_ = r.Set(ctx, "k", []byte("w"), 0)
	}
	c := ev.waitFor(t, StateOpen, waitLimit)
	if !strings.Contains(c.LastError, "READONLY") {
		t.Errorf("open event %+v, want READONLY as the cause", c)
	}
}

func TestFaultOutOfMemory(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ev := newEvents()
	r := newTestRedis(t, Config{Addr: srv.Addr()}, Options{Logger: discard, FailureThreshold: 2,
		ProbeInterval: hour, ProbeMaxInterval: hour, OnStateChange: ev.record})
	ctx := ctxFor(t, waitLimit)
	if err := r.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"maxmemory-policy", "noeviction"}, {"maxmemory", "1"}} {
		if _, err := srv.Command("CONFIG", "SET", kv[0], kv[1]); err != nil {
			t.Fatalf("CONFIG SET %s: %v", kv[0], err)
		}
	}

	err := r.Set(ctx, "k2", []byte("v"), 0)
	if !redis.IsOOMError(err) || !IsFailure(err) {
		t.Fatalf("Set on a full Redis = %v, want an OOM failure", err)
	}
	if st := r.Stats(); st.Failures != 1 || st.Retries != 0 || st.State != StateClosed {
		t.Errorf("after one OOM: failures %d, retries %d, state %v; want 1, 0 (not retried), closed", st.Failures, st.Retries, st.State)
	}
	_ = r.Set(ctx, "k2", []byte("v"), 0)
	c := ev.waitFor(t, StateOpen, waitLimit)
	if !strings.HasPrefix(c.LastError, "OOM") {
		t.Errorf("open event %+v, want OOM as the cause", c)
	}
}

func TestFaultWrongPassword(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Password: testPassword})
	const wrong = "wr0ng@:/#%Pa55"
	log, logs := newLogger(slog.LevelDebug)
	ev := newEvents()
	r := newTestRedis(t, Config{Addr: srv.Addr(), Username: "default", Password: wrong}, Options{Logger: log,
		FailureThreshold: 2, MaxAttempts: 2, BreakerDelay: time.Nanosecond, OnStateChange: ev.record})
	ctx := ctxFor(t, waitLimit)

	// The start-up probe is refused: the breaker opens, one warning.
	c := ev.waitFor(t, StateOpen, waitLimit)
	if !strings.Contains(c.LastError, "WRONGPASS") {
		t.Errorf("open event %+v, want the authentication error as the cause", c)
	}
	// With a breaker delay of a nanosecond every operation is a trial that
	// reaches Redis and is refused.
	for range 5 {
		_, err := r.Get(ctx, "k")
		if !redis.IsAuthError(err) || !IsFailure(err) {
			t.Fatalf("Get with a wrong password = %v, want an authentication failure", err)
		}
		assertNoSecret(t, "Get error", err.Error(), wrong, testPassword)
	}
	if r.State() == StateClosed {
		t.Error("breaker closed with every operation refused")
	}
	if st := r.Stats(); st.Retries != 0 {
		t.Errorf("Stats().Retries = %d, want 0: an auth error is not retried", st.Retries)
	}
	err := r.WaitReady(ctxFor(t, 50*time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "redis://default:***@"+srv.Addr()) {
		t.Errorf("WaitReady = %v, want an error naming the redacted address", err)
	}
	direct := r.Client().Ping(ctx).Err()
	if !redis.IsAuthError(direct) || !IsFailure(direct) {
		t.Errorf("unguarded Ping = %v, want an authentication failure", direct)
	}

	warns := logs.lines(`"level":"WARN"`)
	if len(warns) != 1 || !strings.Contains(warns[0], "WRONGPASS") {
		t.Errorf("warnings %q, want one, with the cause", warns)
	}
	for what, text := range map[string]string{
		"log": logs.String(), "WaitReady error": err.Error(), "unguarded error": direct.Error(),
		"Stats": r.Stats().LastError + r.Stats().Addr, "String()": r.String(),
	} {
		assertNoSecret(t, what, text, wrong, testPassword)
	}
}

func TestFaultStartupWithRedisDown(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	addr := srv.Addr()
	srv.Kill()

	log, logs := newLogger(slog.LevelInfo)
	ev := newEvents()
	var r *Redis
	d, _ := timed(func() error {
		r = newTestRedis(t, Config{Addr: addr}, Options{Logger: log, OnStateChange: ev.record})
		return nil
	})
	if d > margin {
		t.Errorf("NewRedis took %v with Redis down, want it not to wait", d)
	}
	ev.waitFor(t, StateOpen, waitLimit)
	if n := len(logs.lines(`"level":"WARN"`)); n != 1 {
		t.Errorf("%d warnings at a start without Redis, want 1:\n%s", n, logs)
	}
	ctx := ctxFor(t, waitLimit)
	d, err := timed(func() error { _, err := r.Get(ctx, "k"); return err })
	if err == nil || !IsFailure(err) || d > margin {
		t.Errorf("Get with Redis down = %v after %v, want a failure, fast", err, d)
	}

	srv.Restart()
	if err := r.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady once Redis is up: %v", err)
	}
	ev.waitFor(t, StateClosed, waitLimit)
	if err := r.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatalf("Set once Redis is up: %v", err)
	}
	if v, err := r.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Errorf("Get once Redis is up = %q, %v; want v", v, err)
	}
	if n := len(logs.lines(`"level":"WARN"`)); n != 1 {
		t.Errorf("%d warnings in all, want 1:\n%s", n, logs)
	}
	if n := len(logs.lines("available again")); n != 1 {
		t.Errorf("%d recovery lines, want 1:\n%s", n, logs)
	}
}
