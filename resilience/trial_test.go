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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	require.NoError(t, r.WaitReady(ctx))
	mr.Close()
	_, err := r.Get(ctx, "k")
	require.Error(t, err, "Get with Redis down")
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
	assert.LessOrEqual(t, trials, uint64(elapsed/TrialInterval)+1, "trials in %v, want at most one per %v", elapsed, TrialInterval)
	assert.GreaterOrEqual(t, unavailable, 200-int(trials), "of 200 rejected at once, with %d trials", trials)
	require.Equal(t, StateOpen, r.State(), "state after failed trials")

	require.NoError(t, mr.Restart())
	// No probe will come for an hour: only traffic can close it.
	deadline := time.Now().Add(waitLimit)
	for {
		_, err := r.Get(ctx, "k")
		if errors.Is(err, ErrNotFound) {
			break // a real Redis answer: the trial (or an operation after it)
		}
		require.False(t, time.Now().After(deadline), "no cache operation within %v of Redis answering; last error %v", waitLimit, err)
		time.Sleep(time.Millisecond)
	}
	ev.waitFor(t, StateClosed, waitLimit)
	st := r.Stats()
	assert.NotEqual(t, trials, st.Trials, "trials, want a new trial")
	assert.LessOrEqual(t, st.Probes, uint64(1), "probes, want none but the first")
	assert.NoError(t, r.Set(ctx, "k", []byte("v"), 0), "Set after the trial closed the breaker")
}

// TestTrialOneAtATime: concurrent requests never run two trials at once.
func TestTrialOneAtATime(t *testing.T) {
	r := &Redis{opts: Options{Now: time.Now}}
	g := &guard{r: r}
	require.True(t, g.claimTrial(), "first claim refused")
	g.trialAt.Store(0) // as if the interval had passed
	require.False(t, g.claimTrial(), "second claim granted while a trial runs")
	g.trialing.Store(false)
	require.True(t, g.claimTrial(), "claim refused after the trial ended and the interval passed")
	g.trialing.Store(false)
	require.False(t, g.claimTrial(), "claim granted within TrialInterval of the last")
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
	// Trials come when the test moves this clock on, one TrialInterval at
	// a time: never on their own, however slow the machine.
	clock := newFakeClock(fixedNow)
	r, err := Wrap(client, Options{Logger: discard, FailureThreshold: 1, MaxAttempts: 1, Now: clock.Now,
		OpTimeout: 200 * time.Millisecond, DialTimeout: 200 * time.Millisecond,
		ProbeInterval: hour, ProbeMaxInterval: hour, BreakerDelay: hour, OnStateChange: ev.record})
	require.NoError(t, err)
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
		require.FailNow(t, "the pool never dialed")
	}

	ctx := ctxFor(t, waitLimit)
	deadline := time.Now().Add(waitLimit)
	for r.Stats().Trials == 0 {
		require.False(t, time.Now().After(deadline), "no trial ran")
		_, err = r.Get(ctx, "k")
		if !errors.Is(err, ErrUnavailable) {
			break // the trial's own answer
		}
		clock.advance(TrialInterval)
	}
	require.ErrorIs(t, err, redis.ErrPoolTimeout, "trial Get = %v, want the pool timeout", err)
	st := r.Stats()
	assert.Equal(t, StateOpen, st.State, "state after a trial that reached no Redis")
	assert.True(t, st.LastSuccess.IsZero(), "after a trial that reached no Redis: last success %v, want never", st.LastSuccess)
	_, err = r.Get(ctx, "k")
	assert.ErrorIs(t, err, ErrUnavailable, "Get right after the trial, want ErrUnavailable (breaker open)")
}
