package resilience

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/internal/redistest"
)

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
