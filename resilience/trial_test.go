package resilience

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// TestTrafficTrialClosesBreaker: with the prober backed off (an hour
// between probes), traffic finds Redis back by itself: one request every
// TrialInterval at most runs as a trial, and the first one after Redis
// answers is a cache operation again.
func TestTrafficTrialClosesBreaker(t *testing.T) {
	mr := miniredis.RunT(t)
	ev := newEvents()
	r := newTestRedis(t, Config{Addr: mr.Addr()}, Options{FailureThreshold: 1, MaxAttempts: 1,
		ProbeInterval: hour, ProbeMaxInterval: hour, BreakerDelay: hour, OnStateChange: ev.record})
	ctx := ctxFor(t, waitLimit)
	if err := r.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	mr.Close()
	if _, err := r.Get(ctx, "k"); err == nil {
		t.Fatal("Get with Redis down succeeded")
	}
	ev.waitFor(t, StateOpen, waitLimit)

	// While down: requests are rejected at once, bar at most one trial
	// per TrialInterval.
	start := time.Now()
	unavailable := 0
	for range 200 {
		if _, err := r.Get(ctx, "k"); errors.Is(err, ErrUnavailable) {
			unavailable++
		}
	}
	elapsed := time.Since(start)
	trials := r.Stats().Trials
	if maxTrials := uint64(elapsed/TrialInterval) + 1; trials > maxTrials {
		t.Errorf("%d trials in %v, want at most %d (one per %v)", trials, elapsed, maxTrials, TrialInterval)
	}
	if unavailable < 200-int(trials) {
		t.Errorf("%d of 200 rejected at once, with %d trials", unavailable, trials)
	}
	if r.State() != StateOpen {
		t.Fatalf("state %v after failed trials, want open", r.State())
	}

	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	// No probe will come for an hour: only traffic can close it.
	deadline := time.Now().Add(waitLimit)
	for {
		_, err := r.Get(ctx, "k")
		if errors.Is(err, ErrNotFound) {
			break // a real Redis answer: the trial (or an operation after it)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cache operation within %v of Redis answering; last error %v", waitLimit, err)
		}
		time.Sleep(time.Millisecond)
	}
	ev.waitFor(t, StateClosed, waitLimit)
	if st := r.Stats(); st.Trials == trials || st.Probes > 1 {
		t.Errorf("trials %d (before %d), probes %d: want a new trial and no probe but the first", st.Trials, trials, st.Probes)
	}
	if err := r.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Errorf("Set after the trial closed the breaker: %v", err)
	}
}

// TestTrialOneAtATime: concurrent requests never run two trials at once.
func TestTrialOneAtATime(t *testing.T) {
	r := &Redis{opts: Options{Now: time.Now}}
	g := &guard{r: r}
	if !g.claimTrial() {
		t.Fatal("first claim refused")
	}
	g.trialAt.Store(0) // as if the interval had passed
	if g.claimTrial() {
		t.Fatal("second claim granted while a trial runs")
	}
	g.trialing.Store(false)
	if !g.claimTrial() {
		t.Fatal("claim refused after the trial ended and the interval passed")
	}
	g.trialing.Store(false)
	if g.claimTrial() {
		t.Fatal("claim granted within TrialInterval of the last")
	}
}

// TestTrialPoolTimeoutKeepsBreakerOpen: a trial that gets no connection
// from the pool (every one taken by a dial to a Redis that is down) heard
// nothing from Redis: the breaker stays open and no success is recorded.
// It once closed the breaker, sending all traffic to a dead Redis.
func TestTrialPoolTimeoutKeepsBreakerOpen(t *testing.T) {
	release := make(chan struct{})
	dialing := make(chan struct{}, 1)
	var hang atomic.Bool
	dial := func(context.Context, string, string) (net.Conn, error) {
		if hang.Load() {
			// A dial that holds the pool's only turn, whatever the
			// caller's deadline says, until the test ends.
			select {
			case dialing <- struct{}{}:
			default:
			}
			<-release
		}
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", Dialer: dial, PoolSize: 1,
		PoolTimeout: 20 * time.Millisecond, DialTimeout: time.Minute, MaxRetries: -1, DialerRetries: 1,
		ContextTimeoutEnabled: true, DisableIdentity: true})
	t.Cleanup(func() { _ = client.Close() })
	t.Cleanup(func() { close(release) }) // before the client closes
	ev := newEvents()
	r, err := Wrap(client, Options{Logger: discard, FailureThreshold: 1, MaxAttempts: 1,
		OpTimeout: 200 * time.Millisecond, DialTimeout: 200 * time.Millisecond,
		ProbeInterval: hour, ProbeMaxInterval: hour, BreakerDelay: hour, OnStateChange: ev.record})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	ev.waitFor(t, StateOpen, waitLimit) // the first probe was refused

	hang.Store(true)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_ = client.Ping(ctx).Err() // leaves its dial running, holding the turn
	}()
	select {
	case <-dialing:
	case <-time.After(waitLimit):
		t.Fatal("the pool never dialed")
	}

	ctx := ctxFor(t, waitLimit)
	deadline := time.Now().Add(waitLimit)
	for r.Stats().Trials == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no trial ran")
		}
		_, err = r.Get(ctx, "k")
		if !errors.Is(err, ErrUnavailable) {
			break // the trial's own answer
		}
		time.Sleep(TrialInterval / 5)
	}
	if !errors.Is(err, redis.ErrPoolTimeout) {
		t.Fatalf("trial Get = %v, want the pool timeout", err)
	}
	if st := r.Stats(); st.State != StateOpen || !st.LastSuccess.IsZero() {
		t.Errorf("after a trial that reached no Redis: state %v, last success %v; want open, never", st.State, st.LastSuccess)
	}
	if _, err := r.Get(ctx, "k"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Get right after the trial = %v, want ErrUnavailable (breaker open)", err)
	}
}
