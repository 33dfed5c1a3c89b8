package resilience

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/internal/testlog"
)

func TestRedisMissIsNotAFailure(t *testing.T) {
	mr := miniredis.RunT(t)
	ev := newEvents()
	r := newTestRedis(t, Config{Addr: mr.Addr()}, Options{Logger: discard, FailureThreshold: 1, OnStateChange: ev.record})
	ctx := ctxFor(t, waitLimit)
	for range 20 {
		_, err := r.Get(ctx, "absent")
		require.ErrorIs(t, err, ErrNotFound, "Get of a missing key = %v, want ErrNotFound", err)
		require.Equal(t, ErrNotFound, err, "Get of a missing key = %q, want ErrNotFound itself", err)
	}
	st := r.Stats()
	assert.Zero(t, st.Failures, "failures after 20 misses")
	assert.Equal(t, StateClosed, st.State, "Stats().State after 20 misses")
	assert.Equal(t, StateClosed, r.State(), "State() after 20 misses")
	assert.EqualValues(t, 20, st.Ops, "ops after 20 misses")
	assert.False(t, st.LastSuccess.IsZero(), "after 20 misses: last success not set")
	select {
	case c := <-ev.ch:
		assert.Failf(t, "state change after misses", "%+v, want none", c)
	default:
	}
}

func TestRedisCommandErrorIsNotAFailure(t *testing.T) {
	mr := miniredis.RunT(t)
	_, err := mr.Lpush("list", "x")
	require.NoError(t, err)
	r := newTestRedis(t, Config{Addr: mr.Addr()}, Options{Logger: discard, FailureThreshold: 1})
	ctx := ctxFor(t, waitLimit)
	for range 5 {
		_, err := r.Get(ctx, "list")
		require.Error(t, err, "Get of a list, want a wrapped WRONGTYPE error")
		require.Contains(t, err.Error(), "WRONGTYPE", "Get of a list, want a wrapped WRONGTYPE error")
		require.True(t, strings.HasPrefix(err.Error(), "redis get: "), "Get of a list = %v, want a wrapped WRONGTYPE error", err)
		require.False(t, IsFailure(err), "IsFailure(%v) = true", err)
	}
	st := r.Stats()
	assert.Zero(t, st.Failures, "failures after WRONGTYPE replies")
	assert.Equal(t, StateClosed, st.State, "state after WRONGTYPE replies")
	assert.Zero(t, st.Retries, "retries after WRONGTYPE replies")
}

// TestRedisCallerCancel: a caller that cancels gets its own reason back,
// which is no failure, while the breaker judges Redis by what Redis did:
// here Redis hangs, so the operation's timeout counts against it.
func TestRedisCallerCancel(t *testing.T) {
	addr, accepted := hungListener(t)
	r := newTestRedis(t, Config{Addr: addr}, Options{Logger: discard, FailureThreshold: 1,
		OpTimeout: 200 * time.Millisecond, DialTimeout: hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := r.Get(ctx, "k")
		errc <- err
	}()
	// Two connections: the prober's and the Get's.
	for range 2 {
		select {
		case <-accepted:
		case <-time.After(waitLimit):
			require.FailNow(t, "the Get never connected")
		}
	}
	cancel()
	var err error
	select {
	case err = <-errc:
	case <-time.After(waitLimit):
		require.FailNow(t, "Get did not return after its context was cancelled")
	}
	assert.ErrorIs(t, err, context.Canceled, "Get = %v, want context.Canceled", err)
	assert.False(t, IsFailure(err), "IsFailure(%v) = true for the caller's own cancel", err)
	st := r.Stats()
	assert.EqualValues(t, 1, st.Failures, "failures after a cancelled Get on a hung Redis")
	assert.Equal(t, StateOpen, st.State, "state after a cancelled Get on a hung Redis")
	_, err = r.Get(ctx, "k")
	assert.True(t, errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable),
		"Get with a done context = %v, want context.Canceled or ErrUnavailable", err)
}

// TestRedisCancelledTrialKeepsBreakerOpen: a caller cancelling during the
// half-open trial does not close the breaker while Redis is still down.
func TestRedisCancelledTrialKeepsBreakerOpen(t *testing.T) {
	addr, accepted := hungListener(t)
	r := newTestRedis(t, Config{Addr: addr}, Options{Logger: discard, FailureThreshold: 1,
		OpTimeout: 200 * time.Millisecond, DialTimeout: hour, BreakerDelay: time.Millisecond})
	r.cb.Open()
	for deadline := time.Now().Add(waitLimit); r.cb.RemainingDelay() > 0; {
		require.False(t, time.Now().After(deadline), "breaker delay never ended")
		runtime.Gosched()
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := r.Get(ctx, "k") // the half-open trial
		errc <- err
	}()
	for range 2 { // the prober's connection and the trial's
		select {
		case <-accepted:
		case <-time.After(waitLimit):
			require.FailNow(t, "the trial never connected")
		}
	}
	cancel()
	select {
	case <-errc:
	case <-time.After(waitLimit):
		require.FailNow(t, "the trial did not return")
	}
	assert.NotEqual(t, StateClosed, r.State(), "breaker after a cancelled trial on a hung Redis, want not closed")
}

func TestRedisOpenEventCarriesCause(t *testing.T) {
	mr := miniredis.RunT(t)
	ev := newEvents()
	r := newTestRedis(t, Config{Addr: mr.Addr()}, Options{Logger: discard, FailureThreshold: 1, MaxAttempts: 1,
		ProbeInterval: hour, OnStateChange: ev.record})
	ctx := ctxFor(t, waitLimit)
	require.NoError(t, r.WaitReady(ctx))
	mr.Close()
	_, err := r.Get(ctx, "k")
	require.Error(t, err, "Get from a closed Redis")
	c := ev.waitFor(t, StateOpen, waitLimit)
	assert.Equal(t, StateClosed, c.From, "open event %+v, want from closed", c)
	assert.NotEmpty(t, c.LastError, "open event %+v, want the error that opened it (%q)", c, err)
	assert.Contains(t, err.Error(), c.LastError, "open event %+v, want the error that opened it", c)
	st := r.Stats()
	assert.Equal(t, c.LastError, st.LastError, "Stats().LastError, want the open event's")
	assert.False(t, st.LastErrorAt.IsZero(), "Stats().LastErrorAt not set")
	assert.EqualValues(t, 1, st.Failures, "Stats().Failures")
}

func TestRedisLogsOncePerTransition(t *testing.T) {
	mr := miniredis.RunT(t)
	log, logs := newLogger(slog.LevelInfo)
	ev := newEvents()
	mr.RequireAuth(testPassword)
	r := newTestRedis(t, Config{Addr: mr.Addr(), Password: testPassword}, Options{Logger: log, FailureThreshold: 3,
		MaxAttempts: 1, BreakerDelay: time.Millisecond, OnStateChange: ev.record})
	ctx := ctxFor(t, waitLimit)
	require.NoError(t, r.WaitReady(ctx))
	addr := mr.Addr()
	mr.Close()
	failed := 0
	for range 100 {
		if _, err := r.Get(ctx, "k"); err != nil {
			failed++
		}
	}
	require.Equal(t, 100, failed, "Gets failed with Redis down, want all 100")
	ev.waitFor(t, StateOpen, waitLimit)
	assert.Len(t, logs.Lines("unavailable"), 1, "'unavailable' lines after 100 failed operations, log:\n%s", logs)
	assert.Len(t, logs.Lines(), 1, "log lines while down, log:\n%s", logs)
	if warn := logs.Lines(`"level":"WARN"`); assert.Len(t, warn, 1, "warnings, want one with the redacted address and the error") {
		assert.Contains(t, warn[0], `"redis":"redis://:***@`+addr, "warning, want the redacted address")
		assert.Contains(t, warn[0], `"error":"`, "warning, want the error")
	}

	require.NoError(t, mr.Restart())
	ev.waitFor(t, StateClosed, waitLimit)
	if back := logs.Lines("available again"); assert.Len(t, back, 1, "recovery lines, want exactly one info line with down_for") {
		assert.Contains(t, back[0], `"level":"INFO"`, "recovery line, want an info line")
		assert.Contains(t, back[0], `"down_for"`, "recovery line, want down_for")
	}
	assert.Len(t, logs.Lines(), 2, "log lines for one outage, log:\n%s", logs)
	assertNoSecret(t, "log", logs.String(), testPassword)
}

// TestRedisDownForSpansHalfOpen: the recovery line says how long Redis was
// down from the moment the breaker opened, not from its last trial.
func TestRedisDownForSpansHalfOpen(t *testing.T) {
	mr := miniredis.RunT(t)
	clock := newFakeClock(fixedNow)
	logs := new(testlog.Buffer)
	log := logs.Text(slog.LevelInfo)
	ev := newEvents()
	r := newTestRedis(t, Config{Addr: mr.Addr()}, Options{Logger: log, Now: clock.Now, FailureThreshold: 1,
		MaxAttempts: 1, BreakerDelay: time.Nanosecond, OnStateChange: ev.record})
	ctx := ctxFor(t, waitLimit)
	require.NoError(t, r.WaitReady(ctx))
	mr.Close()
	_, err := r.Get(ctx, "k")
	require.Error(t, err, "Get from a closed Redis")
	c := ev.waitFor(t, StateOpen, waitLimit)
	assert.True(t, c.At.Equal(fixedNow), "open event at %v, want the injected now %v", c.At, fixedNow)
	clock.advance(time.Minute)
	_, err = r.Get(ctx, "k") // a trial, half-open then open again
	require.Error(t, err, "trial Get from a closed Redis")
	ev.waitFor(t, StateHalfOpen, waitLimit)
	clock.advance(4 * time.Minute)
	require.NoError(t, mr.Restart())
	ev.waitFor(t, StateClosed, waitLimit)
	if back := logs.Lines("available again"); assert.Len(t, back, 1, "recovery lines") {
		assert.Contains(t, back[0], "down_for=5m0s", "recovery line, want down_for=5m0s (from the first opening)")
	}
}

// TestBreakerOpenDoesNotAllocate: with the breaker open an operation costs
// no network call and no allocation (the budget in reject's comment).
func TestBreakerOpenDoesNotAllocate(t *testing.T) {
	// The clock stands still: no operation runs as a trial (one may
	// every TrialInterval), however long the runs take.
	clock := newFakeClock(fixedNow)
	r := newTestRedis(t, Config{Addr: "127.0.0.1:1"}, Options{Logger: discard, Now: clock.Now, ProbeInterval: hour, ProbeMaxInterval: hour})
	r.cb.Open()
	ctx := context.Background()
	val := []byte("v")
	allocs := testing.AllocsPerRun(100, func() {
		// Checked by hand: an assertion's arguments would allocate.
		if _, err := r.Get(ctx, "k"); err != ErrUnavailable {
			require.FailNowf(t, "breaker open", "Get with the breaker open = %v, want ErrUnavailable", err)
		}
		_ = r.Set(ctx, "k", val, 0)
		_ = r.Del(ctx, "k")
		_, _ = r.Ping(ctx)
	})
	assert.Zero(t, allocs, "%v allocations per Get+Set+Del+Ping with the breaker open, want 0", allocs)
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{StateClosed: "closed", StateOpen: "open", StateHalfOpen: "half-open", State(9): "unknown"} {
		assert.Equal(t, want, s.String(), "State(%d).String()", int(s))
	}
}
