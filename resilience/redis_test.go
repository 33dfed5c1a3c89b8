package resilience

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/internal/testlog"
)

var discard = slog.New(slog.DiscardHandler)

// fixedNow is the time an injected clock reports.
var fixedNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func TestRedisOperations(t *testing.T) {
	mr := miniredis.RunT(t)
	clock := newFakeClock(fixedNow)
	r := newTestRedis(t, Config{Addr: mr.Addr()}, Options{Logger: discard, Now: clock.Now})
	ctx := ctxFor(t, waitLimit)
	require.NoError(t, r.WaitReady(ctx), "WaitReady")

	require.NoError(t, r.Set(ctx, "k", []byte("v1"), time.Minute), "Set")
	inRedis, _ := mr.Get("k")
	assert.Equal(t, "v1", inRedis, "after Set, Redis holds %q, want v1", inRedis)
	assert.Equal(t, time.Minute, mr.TTL("k"), "after Set with ttl 1m")
	require.NoError(t, r.Set(ctx, "forever", []byte("x"), 0), "Set without ttl")
	assert.Zero(t, mr.TTL("forever"), "after Set with ttl 0, want no TTL")

	assert.True(t, r.Stats().LastSuccess.Equal(fixedNow), "Stats().LastSuccess = %v, want the injected now %v", r.Stats().LastSuccess, fixedNow)
	clock.advance(time.Minute)
	got, err := r.Get(ctx, "k")
	if assert.NoError(t, err, "Get") {
		assert.Equal(t, "v1", string(got), "Get")
	}

	require.NoError(t, r.Del(ctx, "k", "forever", "absent"), "Del")
	assert.False(t, mr.Exists("k") || mr.Exists("forever"), "keys still exist after Del")

	rtt, err := r.Ping(ctx)
	assert.NoError(t, err, "Ping")
	assert.Positive(t, rtt, "Ping = %v, want a positive round trip", rtt)

	var n int64
	err = r.Do(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Incr(ctx, "counter")
			p.Incr(ctx, "counter")
			return nil
		})
		if err == nil {
			n = cmds[1].(*redis.IntCmd).Val()
		}
		return err
	})
	assert.NoError(t, err, "Do pipeline")
	assert.EqualValues(t, 2, n, "Do pipeline")

	var v string
	err = r.DoIdempotent(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		var err error
		v, err = c.Get(ctx, "counter").Result()
		return err
	})
	assert.NoError(t, err, "DoIdempotent")
	assert.Equal(t, "2", v, "DoIdempotent")

	st := r.Stats()
	assert.EqualValues(t, 7, st.Ops, "Stats().Ops = %d, want 7 (2 Set, Get, Del, Ping, Do, DoIdempotent)", st.Ops)
	assert.Zero(t, st.Failures, "Stats().Failures")
	assert.Zero(t, st.Rejected, "Stats().Rejected")
	assert.Zero(t, st.Retries, "Stats().Retries")
	assert.True(t, st.LastSuccess.Equal(fixedNow.Add(time.Minute)), "Stats().LastSuccess = %v, want it moved with the clock to %v", st.LastSuccess, fixedNow.Add(time.Minute))
	assert.True(t, st.Since.Equal(fixedNow), "Stats().Since = %v, want the injected now %v", st.Since, fixedNow)
	assert.Equal(t, StateClosed, st.State, "Stats().State")
	assert.Empty(t, st.LastError, "Stats().LastError")
	wantAddr := "redis://" + mr.Addr() + "/0"
	assert.Equal(t, wantAddr, st.Addr, "Stats().Addr")
	assert.Equal(t, wantAddr, r.String(), "String()")
	assert.NotZero(t, st.Pool.TotalConns, "Stats().Pool = %+v, want connections and pool use", st.Pool)
	assert.NotZero(t, st.Pool.Hits+st.Pool.Misses, "Stats().Pool = %+v, want connections and pool use", st.Pool)
	assert.Positive(t, st.MeanLatency, "Stats().MeanLatency")
	assert.GreaterOrEqual(t, st.MaxLatency, st.MeanLatency, "Stats() latency mean %v max %v, want 0 < mean <= max", st.MeanLatency, st.MaxLatency)
	assert.NotNil(t, r.Client(), "Client() = nil")
}

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

func TestRedisDoIsNotRetried(t *testing.T) {
	mr := miniredis.RunT(t)
	r := newTestRedis(t, Config{Addr: mr.Addr()}, Options{Logger: discard, MaxAttempts: 3, FailureThreshold: 100})
	ctx := ctxFor(t, waitLimit)
	require.NoError(t, r.WaitReady(ctx))
	var calls, idemCalls atomic.Int32
	transient := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	err := r.Do(ctx, func(context.Context, redis.UniversalClient) error { calls.Add(1); return transient })
	assert.ErrorIs(t, err, transient, "Do with a transient error")
	assert.EqualValues(t, 1, calls.Load(), "Do with a transient error: calls")
	err = r.DoIdempotent(ctx, func(context.Context, redis.UniversalClient) error { idemCalls.Add(1); return transient })
	assert.ErrorIs(t, err, transient, "DoIdempotent with a transient error")
	assert.EqualValues(t, 3, idemCalls.Load(), "DoIdempotent with a transient error: calls, want MaxAttempts")
	st := r.Stats()
	assert.EqualValues(t, 2, st.Retries, "Stats().Retries")
	assert.EqualValues(t, 2, st.Failures, "Stats().Failures")
}

// hungListener accepts connections and never answers: a Redis that hangs
// without a redis-server. accepted gets one value per connection.
func hungListener(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ch := make(chan struct{}, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String(), ch
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

func TestRedisStrictStartupDeadAddress(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(redistest.FreePort(t)))
	pw := "s3cret@:/#%Pa55"
	r := newTestRedis(t, Config{Addr: addr, Username: "app", Password: pw}, Options{Logger: discard})
	start := time.Now()
	err := r.WaitReady(ctxFor(t, 200*time.Millisecond))
	require.Error(t, err, "WaitReady on a dead address: nil")
	assert.LessOrEqual(t, time.Since(start), 200*time.Millisecond+5*time.Second, "WaitReady took that long with a 200 ms context")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "WaitReady = %v, want context.DeadlineExceeded", err)
	want := "redis://app:***@" + addr + "/0"
	assert.Contains(t, err.Error(), want, "WaitReady = %q, want it to name %s", err, want)
	assert.Contains(t, err.Error(), "refused", "WaitReady = %q, want the last failure (connection refused)", err)
	assertNoSecret(t, "WaitReady error", err.Error(), pw)
	// Failed probes say why in LastError, but are not failed operations.
	st := r.Stats()
	assert.Zero(t, st.Failures, "Stats().Failures after failed probes")
	assert.NotZero(t, st.Probes, "Stats().Probes")
	assert.Contains(t, st.LastError, "refused", "Stats().LastError")
	assert.Equal(t, StateOpen, st.State, "Stats().State")
}

func TestRedisClose(t *testing.T) {
	mr := miniredis.RunT(t)
	r, err := NewRedis(Config{Addr: mr.Addr()}, withTestTimeouts(Options{Logger: discard}))
	require.NoError(t, err)
	ctx := ctxFor(t, waitLimit)
	require.NoError(t, r.Set(ctx, "k", []byte("v"), 0))
	require.NoError(t, r.Close(), "Close")
	require.NoError(t, r.Close(), "second Close")
	_, err = r.Get(ctx, "k")
	assert.Equal(t, ErrClosed, err, "Get after Close")
	assert.Equal(t, ErrClosed, r.Set(ctx, "k", nil, 0), "Set after Close")
	assert.Equal(t, ErrClosed, r.Del(ctx, "k"), "Del after Close")
	_, err = r.Ping(ctx)
	assert.Equal(t, ErrClosed, err, "Ping after Close")
	assert.Equal(t, ErrClosed, r.Do(ctx, func(context.Context, redis.UniversalClient) error { return nil }), "Do after Close")
	assert.Equal(t, ErrClosed, r.DoIdempotent(ctx, func(context.Context, redis.UniversalClient) error { return nil }), "DoIdempotent after Close")
	assert.ErrorIs(t, r.Client().Ping(ctx).Err(), redis.ErrClosed, "the owned client after Close")
}

func TestRedisCloseWhileProbing(t *testing.T) {
	// Redis down and a probe under way (it would hang for an hour): Close
	// must still return at once and leave no goroutine (goleak checks).
	addr, accepted := hungListener(t)
	r, err := NewRedis(Config{Addr: addr}, Options{Logger: discard, DialTimeout: hour})
	require.NoError(t, err)
	select {
	case <-accepted:
	case <-time.After(waitLimit):
		require.FailNow(t, "the prober never connected")
	}
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	select {
	case err := <-closed:
		assert.NoError(t, err, "Close")
	case <-time.After(waitLimit):
		require.FailNow(t, "Close hung on a probe in progress")
	}
	assert.Equal(t, ErrClosed, r.WaitReady(context.Background()), "WaitReady after Close of a never-ready Redis")
}

func TestWrap(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.RequireUserAuth("app", testPassword)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr(), Username: "app", Password: testPassword, DB: 0,
		MaxRetries: -1, ContextTimeoutEnabled: true})
	defer c.Close()
	r, err := Wrap(c, withTestTimeouts(Options{Logger: discard}))
	require.NoError(t, err, "Wrap")
	ctx := ctxFor(t, waitLimit)
	require.NoError(t, r.WaitReady(ctx), "WaitReady")
	require.NoError(t, r.Set(ctx, "k", []byte("v"), 0), "Set")
	assert.Equal(t, "redis://app:***@"+mr.Addr()+"/0", r.String(), "String()")
	assert.Same(t, redis.UniversalClient(c), r.Client(), "Client() is not the wrapped client")
	require.NoError(t, r.Close())
	// The caller still owns the client.
	v, err := c.Get(ctx, "k").Result()
	assert.NoError(t, err, "wrapped client after Close, want it still usable")
	assert.Equal(t, "v", v, "wrapped client after Close, want it still usable")
}

func TestWrapUniversal(t *testing.T) {
	mr := miniredis.RunT(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": mr.Addr()}, MaxRetries: -1})
	defer ring.Close()
	r, err := Wrap(ring, withTestTimeouts(Options{Logger: discard}))
	require.NoError(t, err, "Wrap")
	defer r.Close()
	ctx := ctxFor(t, waitLimit)
	require.NoError(t, r.WaitReady(ctx), "WaitReady")
	require.NoError(t, r.Set(ctx, "k", []byte("v"), 0), "Set through a ring")
	assert.Equal(t, "redis", r.String(), "String() of a wrapped ring = %q, want the neutral name", r.String())
}

func TestNewRedisInvalid(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		opts  Options
		field string
	}{
		{"empty address", Config{}, Options{}, "Addr"},
		{"negative op timeout", Config{Addr: "x:1"}, Options{OpTimeout: -1}, "OpTimeout"},
		{"negative dial timeout", Config{Addr: "x:1"}, Options{DialTimeout: -1}, "DialTimeout"},
		{"negative probe interval", Config{Addr: "x:1"}, Options{ProbeInterval: -time.Second}, "ProbeInterval"},
		{"negative breaker delay", Config{Addr: "x:1"}, Options{BreakerDelay: -time.Second}, "BreakerDelay"},
		{"negative attempts", Config{Addr: "x:1"}, Options{MaxAttempts: -1}, "MaxAttempts"},
		{"negative threshold", Config{Addr: "x:1"}, Options{FailureThreshold: -1}, "FailureThreshold"},
		{"negative pool", Config{Addr: "x:1"}, Options{PoolSize: -1}, "PoolSize"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewRedis(tc.cfg, tc.opts)
			if err == nil {
				r.Close()
			}
			require.Error(t, err, "NewRedis")
			assert.Contains(t, err.Error(), tc.field, "NewRedis, want an error naming %s", tc.field)
		})
	}
	_, err := Wrap(nil, Options{})
	assert.Error(t, err, "Wrap(nil)")
	c := redis.NewClient(&redis.Options{Addr: "x:1"})
	defer c.Close()
	_, err = Wrap(c, Options{OpTimeout: -1})
	assert.Error(t, err, "Wrap with a negative option")
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{}.withDefaults()
	require.NoError(t, err)
	assert.Equal(t, DefaultOpTimeout, o.OpTimeout, "OpTimeout")
	assert.Equal(t, DefaultDialTimeout, o.DialTimeout, "DialTimeout")
	assert.Equal(t, DefaultMaxAttempts, o.MaxAttempts, "MaxAttempts")
	assert.Equal(t, DefaultRetryBackoff, o.RetryBackoff, "RetryBackoff")
	assert.Equal(t, DefaultRetryMaxBackoff, o.RetryMaxBackoff, "RetryMaxBackoff")
	assert.Equal(t, DefaultFailureThreshold, o.FailureThreshold, "FailureThreshold")
	assert.Equal(t, DefaultBreakerDelay, o.BreakerDelay, "BreakerDelay")
	assert.Equal(t, DefaultProbeInterval, o.ProbeInterval, "ProbeInterval")
	assert.Equal(t, DefaultProbeMaxInterval, o.ProbeMaxInterval, "ProbeMaxInterval")
	assert.NotNil(t, o.Logger, "Logger")
	assert.NotNil(t, o.Now, "Now")
	o, _ = Options{ProbeInterval: time.Second, ProbeMaxInterval: time.Millisecond,
		RetryBackoff: time.Second, RetryMaxBackoff: time.Millisecond}.withDefaults()
	assert.Equal(t, time.Second, o.ProbeMaxInterval, "ProbeMaxInterval below its start, want raised to the start")
	assert.Equal(t, time.Second, o.RetryMaxBackoff, "RetryMaxBackoff below its start, want raised to the start")
}

func TestClientOptions(t *testing.T) {
	o, _ := Options{OpTimeout: 70 * time.Millisecond, PoolSize: 3}.withDefaults()
	ro := clientOptions(Config{Addr: "cache:6380", Username: "app", Password: testPassword, DB: 2, TLS: true}, o)
	assert.Equal(t, -1, ro.MaxRetries, "go-redis MaxRetries")
	assert.True(t, ro.ContextTimeoutEnabled, "go-redis ContextTimeoutEnabled")
	assert.Equal(t, 56*time.Millisecond, ro.PoolTimeout, "go-redis PoolTimeout")
	assert.Equal(t, 3, ro.PoolSize, "go-redis PoolSize")
	assert.Equal(t, DefaultDialTimeout, ro.DialTimeout, "go-redis DialTimeout")
	assert.Equal(t, "tcp", ro.Network, "go-redis Network")
	assert.Equal(t, 2, ro.DB, "go-redis DB")
	if assert.NotNil(t, ro.TLSConfig, "TLS config, want one for server name cache") {
		assert.Equal(t, "cache", ro.TLSConfig.ServerName, "TLS config's server name")
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{StateClosed: "closed", StateOpen: "open", StateHalfOpen: "half-open", State(9): "unknown"} {
		assert.Equal(t, want, s.String(), "State(%d).String()", int(s))
	}
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

// TestWrapRecovers: a wrapped client is probed on connections of its own
// (many times here, which must not leak: goleak checks) and resumes after
// an outage without being replaced.
func TestWrapRecovers(t *testing.T) {
	mr := miniredis.RunT(t)
	dialed := make(chan struct{}, 1)
	var d net.Dialer
	c := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			select {
			case dialed <- struct{}{}:
			default:
			}
			return d.DialContext(ctx, network, addr)
		}})
	defer c.Close()
	ev := newEvents()
	r, err := Wrap(c, withTestTimeouts(Options{Logger: discard, FailureThreshold: 1, MaxAttempts: 1,
		ProbeInterval: time.Millisecond, ProbeMaxInterval: 2 * time.Millisecond, OnStateChange: ev.record}))
	require.NoError(t, err)
	defer r.Close()
	ctx := ctxFor(t, waitLimit)
	require.NoError(t, r.WaitReady(ctx))
	mr.Close()
	_, err = r.Get(ctx, "k")
	require.Error(t, err, "Get from a closed Redis")
	ev.waitFor(t, StateOpen, waitLimit)
	// Let some probes fail: they dial through the client's dialer.
	timeout := time.After(waitLimit)
	for range 10 {
		select {
		case <-dialed:
		case <-timeout:
			require.FailNow(t, "the prober stopped dialing")
		}
	}
	require.NoError(t, mr.Restart())
	ev.waitFor(t, StateClosed, waitLimit)
	assert.Same(t, redis.UniversalClient(c), r.Client(), "the wrapped client was replaced; it belongs to the caller")
	assert.NoError(t, r.Set(ctx, "k", []byte("v"), 0), "Set after recovery")
}

// TestBreakerOpenDoesNotAllocate: with the breaker open an operation costs
// no network call and no allocation (the budget in reject's comment).
func TestBreakerOpenDoesNotAllocate(t *testing.T) {
	r := newTestRedis(t, Config{Addr: "127.0.0.1:1"}, Options{Logger: discard, ProbeInterval: hour, ProbeMaxInterval: hour})
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
