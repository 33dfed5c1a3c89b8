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

	"github.com/steadfast-go/steadfast/internal/redistest"
)

var discard = slog.New(slog.DiscardHandler)

// fixedNow is the time an injected clock reports.
var fixedNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func TestRedisOperations(t *testing.T) {
	mr := miniredis.RunT(t)
	clock := newFakeClock(fixedNow)
	r := newTestRedis(t, Config{Addr: mr.Addr()}, Options{Logger: discard, Now: clock.Now})
	ctx := ctxFor(t, waitLimit)
	if err := r.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}

	if err := r.Set(ctx, "k", []byte("v1"), time.Minute); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if got, _ := mr.Get("k"); got != "v1" {
		t.Errorf("after Set, Redis holds %q, want v1", got)
	}
	if ttl := mr.TTL("k"); ttl != time.Minute {
		t.Errorf("after Set with ttl 1m, TTL = %v", ttl)
	}
	if err := r.Set(ctx, "forever", []byte("x"), 0); err != nil {
		t.Fatalf("Set without ttl: %v", err)
	}
	if ttl := mr.TTL("forever"); ttl != 0 {
		t.Errorf("after Set with ttl 0, TTL = %v, want none", ttl)
	}

	if ls := r.Stats().LastSuccess; !ls.Equal(fixedNow) {
		t.Errorf("Stats().LastSuccess = %v, want the injected now %v", ls, fixedNow)
	}
	clock.advance(time.Minute)
	got, err := r.Get(ctx, "k")
	if err != nil || string(got) != "v1" {
		t.Errorf("Get = %q, %v; want v1", got, err)
	}

	if err := r.Del(ctx, "k", "forever", "absent"); err != nil {
		t.Fatalf("Del: %v", err)
	}
	if mr.Exists("k") || mr.Exists("forever") {
		t.Error("keys still exist after Del")
	}

	rtt, err := r.Ping(ctx)
	if err != nil || rtt <= 0 {
		t.Errorf("Ping = %v, %v; want a positive round trip", rtt, err)
	}

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
	if err != nil || n != 2 {
		t.Errorf("Do pipeline = %d, %v; want 2", n, err)
	}

	var v string
	err = r.DoIdempotent(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		var err error
		v, err = c.Get(ctx, "counter").Result()
		return err
	})
	if err != nil || v != "2" {
		t.Errorf("DoIdempotent = %q, %v; want 2", v, err)
	}

	st := r.Stats()
	if st.Ops != 7 {
		t.Errorf("Stats().Ops = %d, want 7 (2 Set, Get, Del, Ping, Do, DoIdempotent)", st.Ops)
	}
	if st.Failures != 0 || st.Rejected != 0 || st.Retries != 0 {
		t.Errorf("Stats() failures/rejected/retries = %d/%d/%d, want 0/0/0", st.Failures, st.Rejected, st.Retries)
	}
	if want := fixedNow.Add(time.Minute); !st.LastSuccess.Equal(want) {
		t.Errorf("Stats().LastSuccess = %v, want it moved with the clock to %v", st.LastSuccess, want)
	}
	if !st.Since.Equal(fixedNow) {
		t.Errorf("Stats().Since = %v, want the injected now %v", st.Since, fixedNow)
	}
	if st.State != StateClosed || st.LastError != "" {
		t.Errorf("Stats() state %v, last error %q; want closed and none", st.State, st.LastError)
	}
	if want := "redis://" + mr.Addr() + "/0"; st.Addr != want || r.String() != want {
		t.Errorf("Stats().Addr = %q, String() = %q, want %q", st.Addr, r.String(), want)
	}
	if st.Pool.TotalConns == 0 || st.Pool.Hits+st.Pool.Misses == 0 {
		t.Errorf("Stats().Pool = %+v, want connections and pool use", st.Pool)
	}
	if st.MeanLatency <= 0 || st.MaxLatency < st.MeanLatency {
		t.Errorf("Stats() latency mean %v max %v, want 0 < mean <= max", st.MeanLatency, st.MaxLatency)
	}
	if r.Client() == nil {
		t.Error("Client() = nil")
	}
}

func TestRedisMissIsNotAFailure(t *testing.T) {
	mr := miniredis.RunT(t)
	ev := newEvents()
	r := newTestRedis(t, Config{Addr: mr.Addr()}, Options{Logger: discard, FailureThreshold: 1, OnStateChange: ev.record})
	ctx := ctxFor(t, waitLimit)
	for range 20 {
		_, err := r.Get(ctx, "absent")
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get of a missing key = %v, want ErrNotFound", err)
		}
		if err != ErrNotFound {
			t.Fatalf("Get of a missing key = %q, want ErrNotFound itself", err)
		}
	}
	st := r.Stats()
	if st.Failures != 0 || st.State != StateClosed || r.State() != StateClosed {
		t.Errorf("after 20 misses: failures %d, state %v; want 0 and closed", st.Failures, st.State)
	}
	if st.Ops != 20 || st.LastSuccess.IsZero() {
		t.Errorf("after 20 misses: ops %d, last success %v; want 20 and set", st.Ops, st.LastSuccess)
	}
	select {
	case c := <-ev.ch:
		t.Errorf("state change %+v after misses, want none", c)
	default:
	}
}

func TestRedisCommandErrorIsNotAFailure(t *testing.T) {
	mr := miniredis.RunT(t)
	if _, err := mr.Lpush("list", "x"); err != nil {
		t.Fatal(err)
	}
	r := newTestRedis(t, Config{Addr: mr.Addr()}, Options{Logger: discard, FailureThreshold: 1})
	ctx := ctxFor(t, waitLimit)
	for range 5 {
		_, err := r.Get(ctx, "list")
		if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") || !strings.HasPrefix(err.Error(), "redis get: ") {
			t.Fatalf("Get of a list = %v, want a wrapped WRONGTYPE error", err)
		}
		if IsFailure(err) {
			t.Fatalf("IsFailure(%v) = true", err)
		}
	}
	if st := r.Stats(); st.Failures != 0 || st.State != StateClosed || st.Retries != 0 {
		t.Errorf("after WRONGTYPE replies: failures %d, retries %d, state %v; want 0, 0, closed", st.Failures, st.Retries, st.State)
	}
}

func TestRedisDoIsNotRetried(t *testing.T) {
	mr := miniredis.RunT(t)
	r := newTestRedis(t, Config{Addr: mr.Addr()}, Options{Logger: discard, MaxAttempts: 3, FailureThreshold: 100})
	ctx := ctxFor(t, waitLimit)
	if err := r.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	var calls, idemCalls atomic.Int32
	transient := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	err := r.Do(ctx, func(context.Context, redis.UniversalClient) error { calls.Add(1); return transient })
	if !errors.Is(err, transient) || calls.Load() != 1 {
		t.Errorf("Do with a transient error: %v after %d calls, want the error after 1 call", err, calls.Load())
	}
	err = r.DoIdempotent(ctx, func(context.Context, redis.UniversalClient) error { idemCalls.Add(1); return transient })
	if !errors.Is(err, transient) || idemCalls.Load() != 3 {
		t.Errorf("DoIdempotent with a transient error: %v after %d calls, want the error after 3 (MaxAttempts)", err, idemCalls.Load())
	}
	if st := r.Stats(); st.Retries != 2 || st.Failures != 2 {
		t.Errorf("Stats() retries %d failures %d, want 2 and 2", st.Retries, st.Failures)
	}
}

// hungListener accepts connections and never answers: a Redis that hangs
// without a redis-server. accepted gets one value per connection.
func hungListener(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
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
			t.Fatal("the Get never connected")
		}
	}
	cancel()
	var err error
	select {
	case err = <-errc:
	case <-time.After(waitLimit):
		t.Fatal("Get did not return after its context was cancelled")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Get = %v, want context.Canceled", err)
	}
	if IsFailure(err) {
		t.Errorf("IsFailure(%v) = true for the caller's own cancel", err)
	}
	if st := r.Stats(); st.Failures != 1 || st.State != StateOpen {
		t.Errorf("after a cancelled Get on a hung Redis: failures %d, state %v; want 1, open", st.Failures, st.State)
	}
	if _, err := r.Get(ctx, "k"); !errors.Is(err, context.Canceled) && !errors.Is(err, ErrUnavailable) {
		t.Errorf("Get with a done context = %v, want context.Canceled or ErrUnavailable", err)
	}
}

// TestRedisCancelledTrialKeepsBreakerOpen: a caller cancelling during the
// half-open trial does not close the breaker while Redis is still down.
func TestRedisCancelledTrialKeepsBreakerOpen(t *testing.T) {
	addr, accepted := hungListener(t)
	r := newTestRedis(t, Config{Addr: addr}, Options{Logger: discard, FailureThreshold: 1,
		OpTimeout: 200 * time.Millisecond, DialTimeout: hour, BreakerDelay: time.Millisecond})
	r.cb.Open()
	for deadline := time.Now().Add(waitLimit); r.cb.RemainingDelay() > 0; {
		if time.Now().After(deadline) {
			t.Fatal("breaker delay never ended")
		}
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
			t.Fatal("the trial never connected")
		}
	}
	cancel()
	select {
	case <-errc:
	case <-time.After(waitLimit):
		t.Fatal("the trial did not return")
	}
	if st := r.State(); st == StateClosed {
		t.Errorf("breaker %v after a cancelled trial on a hung Redis, want not closed", st)
	}
}

func TestRedisOpenEventCarriesCause(t *testing.T) {
	mr := miniredis.RunT(t)
	ev := newEvents()
	r := newTestRedis(t, Config{Addr: mr.Addr()}, Options{Logger: discard, FailureThreshold: 1, MaxAttempts: 1,
		ProbeInterval: hour, OnStateChange: ev.record})
	ctx := ctxFor(t, waitLimit)
	if err := r.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	mr.Close()
	_, err := r.Get(ctx, "k")
	if err == nil {
		t.Fatal("Get from a closed Redis: no error")
	}
	c := ev.waitFor(t, StateOpen, waitLimit)
	if c.From != StateClosed || c.LastError == "" || !strings.Contains(err.Error(), c.LastError) {
		t.Errorf("open event %+v, want from closed, with the error that opened it (%q)", c, err)
	}
	if st := r.Stats(); st.LastError != c.LastError || st.LastErrorAt.IsZero() || st.Failures != 1 {
		t.Errorf("Stats() last error %q at %v, failures %d; want %q, a time, 1", st.LastError, st.LastErrorAt, st.Failures, c.LastError)
	}
}

func TestRedisLogsOncePerTransition(t *testing.T) {
	mr := miniredis.RunT(t)
	log, logs := newLogger(slog.LevelInfo)
	ev := newEvents()
	mr.RequireAuth(testPassword)
	r := newTestRedis(t, Config{Addr: mr.Addr(), Password: testPassword}, Options{Logger: log, FailureThreshold: 3,
		MaxAttempts: 1, BreakerDelay: time.Millisecond, OnStateChange: ev.record})
	ctx := ctxFor(t, waitLimit)
	if err := r.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	addr := mr.Addr()
	mr.Close()
	failed := 0
	for range 100 {
		if _, err := r.Get(ctx, "k"); err != nil {
			failed++
		}
	}
	if failed != 100 {
		t.Fatalf("%d of 100 Gets failed with Redis down, want all", failed)
	}
	ev.waitFor(t, StateOpen, waitLimit)
	if n := len(logs.lines("unavailable")); n != 1 {
		t.Errorf("%d 'unavailable' lines after 100 failed operations, want 1:\n%s", n, logs)
	}
	if n := len(logs.lines()); n != 1 {
		t.Errorf("%d log lines while down, want 1:\n%s", n, logs)
	}
	warn := logs.lines(`"level":"WARN"`)
	if len(warn) != 1 || !strings.Contains(warn[0], `"redis":"redis://:***@`+addr) || !strings.Contains(warn[0], `"error":"`) {
		t.Errorf("warning %q, want the redacted address and the error", warn)
	}

	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, StateClosed, waitLimit)
	back := logs.lines("available again")
	if len(back) != 1 || !strings.Contains(back[0], `"level":"INFO"`) || !strings.Contains(back[0], `"down_for"`) {
		t.Errorf("recovery lines %q, want exactly one info line with down_for", back)
	}
	if n := len(logs.lines()); n != 2 {
		t.Errorf("%d log lines for one outage, want 2:\n%s", n, logs)
	}
	assertNoSecret(t, "log", logs.String(), testPassword)
}

func TestRedisStrictStartupDeadAddress(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(redistest.FreePort(t)))
	pw := "s3cret@:/#%Pa55"
	r := newTestRedis(t, Config{Addr: addr, Username: "app", Password: pw}, Options{Logger: discard})
	start := time.Now()
	err := r.WaitReady(ctxFor(t, 200*time.Millisecond))
	if err == nil {
		t.Fatal("WaitReady on a dead address: nil")
	}
	if d := time.Since(start); d > 200*time.Millisecond+5*time.Second {
		t.Errorf("WaitReady took %v with a 200 ms context", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitReady = %v, want context.DeadlineExceeded", err)
	}
	if want := "redis://app:***@" + addr + "/0"; !strings.Contains(err.Error(), want) {
		t.Errorf("WaitReady = %q, want it to name %s", err, want)
	}
	if !strings.Contains(err.Error(), "refused") {
		t.Errorf("WaitReady = %q, want the last failure (connection refused)", err)
	}
	assertNoSecret(t, "WaitReady error", err.Error(), pw)
	// Failed probes say why in LastError, but are not failed operations.
	if st := r.Stats(); st.Failures != 0 || st.Probes == 0 || !strings.Contains(st.LastError, "refused") || st.State != StateOpen {
		t.Errorf("Stats() failures %d, probes %d, last error %q, state %v; want 0, some, refused, open",
			st.Failures, st.Probes, st.LastError, st.State)
	}
}

func TestRedisClose(t *testing.T) {
	mr := miniredis.RunT(t)
	r, err := NewRedis(Config{Addr: mr.Addr()}, withTestTimeouts(Options{Logger: discard}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, waitLimit)
	if err := r.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := r.Get(ctx, "k"); err != ErrClosed {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}
	if err := r.Set(ctx, "k", nil, 0); err != ErrClosed {
		t.Errorf("Set after Close = %v, want ErrClosed", err)
	}
	if err := r.Del(ctx, "k"); err != ErrClosed {
		t.Errorf("Del after Close = %v, want ErrClosed", err)
	}
	if _, err := r.Ping(ctx); err != ErrClosed {
		t.Errorf("Ping after Close = %v, want ErrClosed", err)
	}
	if err := r.Do(ctx, func(context.Context, redis.UniversalClient) error { return nil }); err != ErrClosed {
		t.Errorf("Do after Close = %v, want ErrClosed", err)
	}
	if err := r.DoIdempotent(ctx, func(context.Context, redis.UniversalClient) error { return nil }); err != ErrClosed {
		t.Errorf("DoIdempotent after Close = %v, want ErrClosed", err)
	}
	if err := r.Client().Ping(ctx).Err(); !errors.Is(err, redis.ErrClosed) {
		t.Errorf("the owned client after Close: %v, want redis.ErrClosed", err)
	}
}

func TestRedisCloseWhileProbing(t *testing.T) {
	// Redis down and a probe under way (it would hang for an hour): Close
	// must still return at once and leave no goroutine (goleak checks).
	addr, accepted := hungListener(t)
	r, err := NewRedis(Config{Addr: addr}, Options{Logger: discard, DialTimeout: hour})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-accepted:
	case <-time.After(waitLimit):
		t.Fatal("the prober never connected")
	}
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Close hung on a probe in progress")
	}
	if err := r.WaitReady(context.Background()); err != ErrClosed {
		t.Errorf("WaitReady after Close of a never-ready Redis = %v, want ErrClosed", err)
	}
}

func TestWrap(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.RequireUserAuth("app", testPassword)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr(), Username: "app", Password: testPassword, DB: 0,
		MaxRetries: -1, ContextTimeoutEnabled: true})
	defer c.Close()
	r, err := Wrap(c, withTestTimeouts(Options{Logger: discard}))
	if err != nil {
		t.Fatalf("Wrap: %v", err)
	}
	ctx := ctxFor(t, waitLimit)
	if err := r.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if err := r.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if want := "redis://app:***@" + mr.Addr() + "/0"; r.String() != want {
		t.Errorf("String() = %q, want %q", r.String(), want)
	}
	if r.Client() != redis.UniversalClient(c) {
		t.Error("Client() is not the wrapped client")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// The caller still owns the client.
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Errorf("wrapped client after Close: %q, %v; want it still usable", v, err)
	}
}

func TestWrapUniversal(t *testing.T) {
	mr := miniredis.RunT(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": mr.Addr()}, MaxRetries: -1})
	defer ring.Close()
	r, err := Wrap(ring, withTestTimeouts(Options{Logger: discard}))
	if err != nil {
		t.Fatalf("Wrap: %v", err)
	}
	defer r.Close()
	ctx := ctxFor(t, waitLimit)
	if err := r.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if err := r.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatalf("Set through a ring: %v", err)
	}
	if r.String() != "redis" {
		t.Errorf("String() of a wrapped ring = %q, want the neutral name", r.String())
	}
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
				t.Fatal("NewRedis: no error")
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("NewRedis = %q, want it to name %s", err, tc.field)
			}
		})
	}
	if _, err := Wrap(nil, Options{}); err == nil {
		t.Error("Wrap(nil): no error")
	}
	c := redis.NewClient(&redis.Options{Addr: "x:1"})
	defer c.Close()
	if _, err := Wrap(c, Options{OpTimeout: -1}); err == nil {
		t.Error("Wrap with a negative option: no error")
	}
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.OpTimeout != DefaultOpTimeout || o.DialTimeout != DefaultDialTimeout || o.MaxAttempts != DefaultMaxAttempts ||
		o.RetryBackoff != DefaultRetryBackoff || o.RetryMaxBackoff != DefaultRetryMaxBackoff ||
		o.FailureThreshold != DefaultFailureThreshold || o.BreakerDelay != DefaultBreakerDelay ||
		o.ProbeInterval != DefaultProbeInterval || o.ProbeMaxInterval != DefaultProbeMaxInterval ||
		o.Logger == nil || o.Now == nil {
		t.Errorf("zero Options with defaults = %+v", o)
	}
	o, _ = Options{ProbeInterval: time.Second, ProbeMaxInterval: time.Millisecond,
		RetryBackoff: time.Second, RetryMaxBackoff: time.Millisecond}.withDefaults()
	if o.ProbeMaxInterval != time.Second || o.RetryMaxBackoff != time.Second {
		t.Errorf("a cap below its start = %v, %v; want raised to the start (1s)", o.ProbeMaxInterval, o.RetryMaxBackoff)
	}
}

func TestClientOptions(t *testing.T) {
	o, _ := Options{OpTimeout: 70 * time.Millisecond, PoolSize: 3}.withDefaults()
	ro := clientOptions(Config{Addr: "cache:6380", Username: "app", Password: testPassword, DB: 2, TLS: true}, o)
	if ro.MaxRetries != -1 || !ro.ContextTimeoutEnabled || ro.PoolTimeout != 56*time.Millisecond ||
		ro.PoolSize != 3 || ro.DialTimeout != DefaultDialTimeout || ro.Network != "tcp" || ro.DB != 2 {
		t.Errorf("go-redis options: MaxRetries %d, ContextTimeoutEnabled %v, PoolTimeout %v, PoolSize %d, DialTimeout %v, Network %q, DB %d",
			ro.MaxRetries, ro.ContextTimeoutEnabled, ro.PoolTimeout, ro.PoolSize, ro.DialTimeout, ro.Network, ro.DB)
	}
	if ro.TLSConfig == nil || ro.TLSConfig.ServerName != "cache" {
		t.Errorf("TLS config %+v, want one for server name cache", ro.TLSConfig)
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{StateClosed: "closed", StateOpen: "open", StateHalfOpen: "half-open", State(9): "unknown"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

// TestRedisDownForSpansHalfOpen: the recovery line says how long Redis was
// down from the moment the breaker opened, not from its last trial.
func TestRedisDownForSpansHalfOpen(t *testing.T) {
	mr := miniredis.RunT(t)
	clock := newFakeClock(fixedNow)
	logs := new(logBuffer)
	log := slog.New(slog.NewTextHandler(logs, nil))
	ev := newEvents()
	r := newTestRedis(t, Config{Addr: mr.Addr()}, Options{Logger: log, Now: clock.Now, FailureThreshold: 1,
		MaxAttempts: 1, BreakerDelay: time.Nanosecond, OnStateChange: ev.record})
	ctx := ctxFor(t, waitLimit)
	if err := r.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	mr.Close()
	if _, err := r.Get(ctx, "k"); err == nil {
		t.Fatal("Get from a closed Redis: no error")
	}
	if c := ev.waitFor(t, StateOpen, waitLimit); !c.At.Equal(fixedNow) {
		t.Errorf("open event at %v, want the injected now %v", c.At, fixedNow)
	}
	clock.advance(time.Minute)
	if _, err := r.Get(ctx, "k"); err == nil { // a trial, half-open then open again
		t.Fatal("trial Get from a closed Redis: no error")
	}
	ev.waitFor(t, StateHalfOpen, waitLimit)
	clock.advance(4 * time.Minute)
	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, StateClosed, waitLimit)
	if back := logs.lines("available again"); len(back) != 1 || !strings.Contains(back[0], "down_for=5m0s") {
		t.Errorf("recovery line %q, want down_for=5m0s (from the first opening)", back)
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
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := ctxFor(t, waitLimit)
	if err := r.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	mr.Close()
	if _, err := r.Get(ctx, "k"); err == nil {
		t.Fatal("Get from a closed Redis: no error")
	}
	ev.waitFor(t, StateOpen, waitLimit)
	// Let some probes fail: they dial through the client's dialer.
	timeout := time.After(waitLimit)
	for range 10 {
		select {
		case <-dialed:
		case <-timeout:
			t.Fatal("the prober stopped dialing")
		}
	}
	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, StateClosed, waitLimit)
	if r.Client() != redis.UniversalClient(c) {
		t.Error("the wrapped client was replaced; it belongs to the caller")
	}
	if err := r.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Errorf("Set after recovery: %v", err)
	}
}

// TestBreakerOpenDoesNotAllocate: with the breaker open an operation costs
// no network call and no allocation (the budget in reject's comment).
func TestBreakerOpenDoesNotAllocate(t *testing.T) {
	r := newTestRedis(t, Config{Addr: "127.0.0.1:1"}, Options{Logger: discard, ProbeInterval: hour, ProbeMaxInterval: hour})
	r.cb.Open()
	ctx := context.Background()
	val := []byte("v")
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := r.Get(ctx, "k"); err != ErrUnavailable {
			t.Fatalf("Get with the breaker open = %v, want ErrUnavailable", err)
		}
		_ = r.Set(ctx, "k", val, 0)
		_ = r.Del(ctx, "k")
		_, _ = r.Ping(ctx)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per Get+Set+Del+Ping with the breaker open, want 0", allocs)
	}
}
