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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	// The clock stands still, so that no request runs as a trial (one
	// may every TrialInterval) until the test moves it on.
	clock := newFakeClock(fixedNow)
	r := newTestRedis(t, Config{Addr: srv.Addr()}, Options{Logger: discard, Dialer: dials.dial, Now: clock.Now,
		FailureThreshold: 3, MaxAttempts: 1, ProbeInterval: hour, ProbeMaxInterval: hour, OnStateChange: ev.record})
	ctx := ctxFor(t, waitLimit)
	require.NoError(t, r.WaitReady(ctx))
	require.NoError(t, r.Set(ctx, "k", []byte("v"), 0))

	srv.Kill()
	for i := 1; i <= 3; i++ {
		d, err := timed(func() error { _, err := r.Get(ctx, "k"); return err })
		require.Error(t, err, "Get %d with Redis killed, want a failure from Redis itself", i)
		require.NotErrorIs(t, err, ErrUnavailable, "Get %d with Redis killed, want a failure from Redis itself", i)
		require.True(t, IsFailure(err), "Get %d with Redis killed = %v, want a failure from Redis itself", i, err)
		assert.LessOrEqual(t, d, margin, "Get %d took %v, want it to fail fast (connection refused)", i, d)
		want := map[bool]State{true: StateOpen, false: StateClosed}[i == 3]
		assert.Equal(t, want, r.State(), "state after %d failures (threshold 3)", i)
	}
	c := ev.waitFor(t, StateOpen, waitLimit)
	assert.Equal(t, StateClosed, c.From, "open event %+v, want from closed", c)
	assert.True(t, strings.Contains(c.LastError, "refused") || strings.Contains(c.LastError, "EOF") ||
		strings.Contains(c.LastError, "reset"), "open event %+v, want the connection error", c)

	before, dialed := r.Stats(), dials.n.Load()
	for i := range 50 {
		d, err := timed(func() error { _, err := r.Get(ctx, "k"); return err })
		require.Equal(t, ErrUnavailable, err, "Get %d with the breaker open", i)
		assert.LessOrEqual(t, d, margin, "Get with the breaker open took %v", d)
	}
	assert.Equal(t, ErrUnavailable, r.Set(ctx, "k", nil, 0), "Set with the breaker open")
	after := r.Stats()
	assert.Equal(t, dialed, dials.n.Load(), "dials with the breaker open, want none")
	assert.EqualValues(t, 51, after.Rejected-before.Rejected, "growth of Stats().Rejected")
	assert.Equal(t, before.Ops, after.Ops, "Stats().Ops, want it unchanged (no call made)")
	assert.EqualValues(t, 3, after.Failures, "Stats().Failures")

	// A TrialInterval later, one request (and only one) runs as a trial:
	// Redis is still down, so it fails from Redis and the breaker stays
	// open.
	clock.advance(TrialInterval)
	_, err := r.Get(ctx, "k")
	require.True(t, IsFailure(err), "the trial's Get with Redis killed = %v, want a failure from Redis itself", err)
	_, err = r.Get(ctx, "k")
	require.Equal(t, ErrUnavailable, err, "a Get right after the trial")
	assert.EqualValues(t, 1, r.Stats().Trials-after.Trials, "trials after one TrialInterval")
	assert.Equal(t, StateOpen, r.State())
}

func TestFaultHung(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	const opTimeout = 50 * time.Millisecond
	r := newTestRedis(t, Config{Addr: srv.Addr()}, Options{Logger: discard, OpTimeout: opTimeout, PoolSize: 2,
		FailureThreshold: 1000})
	ctx := ctxFor(t, waitLimit)
	require.NoError(t, r.WaitReady(ctx))
	// Set up through the client itself: the 50 ms guard may be too short
	// for a loaded machine, and setting up is not what is tested.
	require.NoError(t, r.Client().Set(ctx, "k", "v", 0).Err())

	srv.Pause()
	// A pooled connection, then new ones (the hung server still accepts):
	// each operation costs at most its deadline.
	for i := range 3 {
		d, err := timed(func() error { _, err := r.Get(ctx, "k"); return err })
		assert.True(t, err != nil && IsFailure(err), "Get %d from a hung Redis = %v, want a failure", i, err)
		assert.LessOrEqual(t, d, opTimeout+margin, "Get %d from a hung Redis took %v, want at most OpTimeout %v (+%v margin)", i, d, opTimeout, margin)
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
			assert.Failf(t, "concurrent Set on a hung Redis", "%v, want a failure or a pool timeout within the deadline", err)
		}
	}
	st := r.Stats()
	assert.Equal(t, uint64(11-poolWaits), st.Failures, "Stats().Failures (%d pool waits are not failures)", poolWaits)
	assert.Zero(t, st.Retries, "Stats().Retries, want none: a timeout is not retried")

	srv.Resume()
	assert.NoError(t, eventually(func() error { _, err := r.Get(ctx, "k"); return err }), "Get after the server resumed")
}

func TestFaultRestartClosesBreakerWithoutTraffic(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ev := newEvents()
	log, logs := newLogger(slog.LevelInfo)
	r := newTestRedis(t, Config{Addr: srv.Addr()}, Options{Logger: log, FailureThreshold: 2, MaxAttempts: 1,
		OnStateChange: ev.record})
	ctx := ctxFor(t, waitLimit)
	require.NoError(t, r.WaitReady(ctx))
	require.NoError(t, r.Set(ctx, "k", []byte("v"), 0))
	oldClient := r.Client()

	srv.Kill()
	for range 2 {
		_, err := r.Get(ctx, "k")
		require.Error(t, err, "Get with Redis killed")
	}
	ev.waitFor(t, StateOpen, waitLimit)
	opsWhileDown := r.Stats().Ops

	srv.Restart()
	restarted := time.Now()
	c := ev.waitFor(t, StateClosed, waitLimit)
	took := time.Since(restarted)
	t.Logf("breaker closed %v after Redis answered again", took)
	assert.LessOrEqual(t, took, time.Second, "breaker closed %v after Redis was back, want within 1 s", took)
	assert.Equal(t, StateOpen, c.From, "close event %+v, want from open", c)
	assert.Empty(t, c.LastError, "close event %+v, want no error", c)
	st := r.Stats()
	assert.Equal(t, opsWhileDown, st.Ops, "%d operations ran while down; the prober alone must close the breaker", st.Ops-opsWhileDown)
	assert.NotZero(t, st.Probes, "Stats().Probes")
	assert.Equal(t, StateClosed, st.State, "Stats().State")
	assert.NotSame(t, oldClient, r.Client(), "the client that saw the outage is still in use, want a fresh one")

	// The restarted server is empty (no persistence): a miss, then a hit.
	_, err := r.Get(ctx, "k")
	assert.ErrorIs(t, err, ErrNotFound, "first Get after the restart")
	require.NoError(t, r.Set(ctx, "k", []byte("v2"), 0), "Set after the restart")
	v, err := r.Get(ctx, "k")
	assert.NoError(t, err, "Get after the restart")
	assert.Equal(t, "v2", string(v), "Get after the restart")
	assert.Len(t, logs.Lines("available again"), 1, "recovery lines, log:\n%s", logs)
}

func TestFaultSlow(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	const opTimeout = 50 * time.Millisecond
	r := newTestRedis(t, Config{Addr: srv.Addr()}, Options{Logger: discard, OpTimeout: opTimeout, FailureThreshold: 1000})
	ctx := ctxFor(t, waitLimit)
	require.NoError(t, r.Client().Set(ctx, "k", "v", 0).Err())

	slept := make(chan error, 1)
	go func() {
		_, err := srv.Command("DEBUG", "SLEEP", "0.2")
		slept <- err
	}()
	// Operations until one meets the sleeping server; each one, fast or
	// not, must end within its deadline.
	for ops := 1; ; ops++ {
		d, err := timed(func() error { _, err := r.Get(ctx, "k"); return err })
		require.LessOrEqual(t, d, opTimeout+margin, "Get %d took %v, want at most OpTimeout %v (+%v margin)", ops, d, opTimeout, margin)
		if err != nil {
			assert.True(t, IsFailure(err), "Get from a slow Redis = %v, want a failure", err)
			t.Logf("Get %d met the slow server after %v: %v", ops, d, err)
			break
		}
		select {
		case err := <-slept:
			require.FailNowf(t, "no Get waited", "DEBUG SLEEP ended (%v) and no Get ever waited for it", err)
		default:
		}
	}
	select {
	case err := <-slept:
		require.NoError(t, err, "DEBUG SLEEP")
	case <-time.After(waitLimit):
		require.FailNow(t, "DEBUG SLEEP 0.2 never returned")
	}
	var v []byte
	err := eventually(func() error {
		var err error
		v, err = r.Get(ctx, "k")
		return err
	})
	assert.NoError(t, err, "Get after the slow spell")
	assert.Equal(t, "v", string(v), "Get after the slow spell")
}

func TestFaultReadOnly(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ev := newEvents()
	r := newTestRedis(t, Config{Addr: srv.Addr()}, Options{Logger: discard, FailureThreshold: 3, MaxAttempts: 2,
		ProbeInterval: hour, ProbeMaxInterval: hour, OnStateChange: ev.record})
	ctx := ctxFor(t, waitLimit)
	require.NoError(t, r.Set(ctx, "k", []byte("v"), 0))
	// A replica of a master that is not there: it keeps its data, serves
	// stale reads (replica-serve-stale-data yes, the default) and refuses
	// writes.
	_, err := srv.Command("REPLICAOF", "127.0.0.1", strconv.Itoa(redistest.FreePort(t)))
	require.NoError(t, err, "REPLICAOF")
	t.Cleanup(func() { _, _ = srv.Command("REPLICAOF", "NO", "ONE") })

	for i := 1; i <= 3; i++ {
		v, err := r.Get(ctx, "k")
		require.NoError(t, err, "read %d from the read-only replica", i)
		require.Equal(t, "v", string(v), "read %d from the read-only replica", i)
		err = r.Set(ctx, "k", []byte("w"), 0)
		require.True(t, redis.IsReadOnlyError(err), "write %d to a read-only replica = %v, want a READONLY failure", i, err)
		require.True(t, IsFailure(err), "write %d to a read-only replica = %v, want a READONLY failure", i, err)
	}
	st := r.Stats()
	assert.Equal(t, StateClosed, st.State, "state with reads between the writes")
	assert.EqualValues(t, 3, st.Failures, "failures with reads between the writes")
	assert.Zero(t, st.Retries, "retries, want none: READONLY is not retried")
	// Writes alone, in a row, open the breaker.
	for range 3 {
		_ = r.Set(ctx, "k", []byte("w"), 0)
	}
	c := ev.waitFor(t, StateOpen, waitLimit)
	assert.Contains(t, c.LastError, "READONLY", "open event %+v, want READONLY as the cause", c)
}

func TestFaultOutOfMemory(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ev := newEvents()
	r := newTestRedis(t, Config{Addr: srv.Addr()}, Options{Logger: discard, FailureThreshold: 2,
		ProbeInterval: hour, ProbeMaxInterval: hour, OnStateChange: ev.record})
	ctx := ctxFor(t, waitLimit)
	require.NoError(t, r.Set(ctx, "k", []byte("v"), 0))
	for _, kv := range [][2]string{{"maxmemory-policy", "noeviction"}, {"maxmemory", "1"}} {
		_, err := srv.Command("CONFIG", "SET", kv[0], kv[1])
		require.NoError(t, err, "CONFIG SET %s", kv[0])
	}

	err := r.Set(ctx, "k2", []byte("v"), 0)
	require.True(t, redis.IsOOMError(err), "Set on a full Redis = %v, want an OOM failure", err)
	require.True(t, IsFailure(err), "Set on a full Redis = %v, want an OOM failure", err)
	st := r.Stats()
	assert.EqualValues(t, 1, st.Failures, "failures after one OOM")
	assert.Zero(t, st.Retries, "retries after one OOM, want none")
	assert.Equal(t, StateClosed, st.State, "state after one OOM")
	_ = r.Set(ctx, "k2", []byte("v"), 0)
	c := ev.waitFor(t, StateOpen, waitLimit)
	assert.True(t, strings.HasPrefix(c.LastError, "OOM"), "open event %+v, want OOM as the cause", c)
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
	assert.Contains(t, c.LastError, "WRONGPASS", "open event %+v, want the authentication error as the cause", c)
	// With a breaker delay of a nanosecond every operation is a trial that
	// reaches Redis and is refused.
	for range 5 {
		_, err := r.Get(ctx, "k")
		require.True(t, redis.IsAuthError(err), "Get with a wrong password = %v, want an authentication failure", err)
		require.True(t, IsFailure(err), "Get with a wrong password = %v, want an authentication failure", err)
		assertNoSecret(t, "Get error", err.Error(), wrong, testPassword)
	}
	assert.NotEqual(t, StateClosed, r.State(), "breaker closed with every operation refused")
	st := r.Stats()
	assert.Zero(t, st.Retries, "Stats().Retries = %d, want 0: an auth error is not retried", st.Retries)
	err := r.WaitReady(ctxFor(t, 50*time.Millisecond))
	require.Error(t, err, "WaitReady, want an error naming the redacted address")
	assert.Contains(t, err.Error(), "redis://default:***@"+srv.Addr(), "WaitReady, want an error naming the redacted address")
	direct := r.Client().Ping(ctx).Err()
	assert.True(t, redis.IsAuthError(direct), "unguarded Ping = %v, want an authentication failure", direct)
	assert.True(t, IsFailure(direct), "unguarded Ping = %v, want an authentication failure", direct)

	if warns := logs.Lines(`"level":"WARN"`); assert.Len(t, warns, 1, "warnings, want one, with the cause") {
		assert.Contains(t, warns[0], "WRONGPASS", "warning, want the cause")
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
	assert.LessOrEqual(t, d, margin, "NewRedis took %v with Redis down, want it not to wait", d)
	ev.waitFor(t, StateOpen, waitLimit)
	assert.Len(t, logs.Lines(`"level":"WARN"`), 1, "warnings at a start without Redis, log:\n%s", logs)
	ctx := ctxFor(t, waitLimit)
	d, err := timed(func() error { _, err := r.Get(ctx, "k"); return err })
	assert.True(t, err != nil && IsFailure(err), "Get with Redis down = %v, want a failure", err)
	assert.LessOrEqual(t, d, margin, "Get with Redis down took that long, want it to fail fast")

	srv.Restart()
	require.NoError(t, r.WaitReady(ctx), "WaitReady once Redis is up")
	ev.waitFor(t, StateClosed, waitLimit)
	require.NoError(t, r.Set(ctx, "k", []byte("v"), 0), "Set once Redis is up")
	v, err := r.Get(ctx, "k")
	assert.NoError(t, err, "Get once Redis is up")
	assert.Equal(t, "v", string(v), "Get once Redis is up")
	assert.Len(t, logs.Lines(`"level":"WARN"`), 1, "warnings in all, log:\n%s", logs)
	assert.Len(t, logs.Lines("available again"), 1, "recovery lines, log:\n%s", logs)
}
