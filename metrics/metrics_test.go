package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/metrics"
	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

var quiet = slog.New(slog.DiscardHandler)

// collected is one collection of a ManualReader, searchable by name and
// attributes.
type collected struct {
	t  *testing.T
	rm metricdata.ResourceMetrics
}

func collect(t *testing.T, r *sdkmetric.ManualReader) collected {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	return collected{t: t, rm: rm}
}

func (c collected) metric(name string) (metricdata.Metrics, bool) {
	for _, sm := range c.rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

// matches reports whether set holds exactly the attributes kv (pairs of
// key and value).
func matches(set attribute.Set, kv []string) bool {
	if set.Len() != len(kv)/2 {
		return false
	}
	for i := 0; i+1 < len(kv); i += 2 {
		v, ok := set.Value(attribute.Key(kv[i]))
		if !ok || v.String() != kv[i+1] {
			return false
		}
	}
	return true
}

// value returns the value of name's point with exactly the attributes kv,
// and whether there is one; for a histogram, its count.
func (c collected) value(name string, kv ...string) (float64, bool) {
	m, ok := c.metric(name)
	if !ok {
		return 0, false
	}
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes, kv) {
				return float64(p.Value), true
			}
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes, kv) {
				return float64(p.Value), true
			}
		}
	case metricdata.Gauge[float64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes, kv) {
				return p.Value, true
			}
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes, kv) {
				return float64(p.Count), true
			}
		}
	}
	return 0, false
}

func (c collected) want(want float64, name string, kv ...string) {
	c.t.Helper()
	got, ok := c.value(name, kv...)
	if assert.True(c.t, ok, "%s %v: no point", name, kv) {
		assert.Equal(c.t, want, got, "%s %v", name, kv)
	}
}

// stack is every source on miniredis, instrumented on a ManualReader.
type stack struct {
	mr      *miniredis.Miniredis
	rdb     *resilience.Redis
	cache   *middleware.Cache
	breaker *middleware.Breaker
	retry   *middleware.Retry
	health  *healthhandler.Handler
	reader  *sdkmetric.ManualReader
	m       *metrics.Metrics
	mux     *http.ServeMux
}

func newStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{mr: miniredis.RunT(t)}
	var err error
	s.rdb, err = resilience.NewRedis(resilience.Config{Addr: s.mr.Addr()}, resilience.Options{
		Logger: quiet, OpTimeout: time.Second, FailureThreshold: 1, ProbeInterval: time.Hour, ProbeMaxInterval: time.Hour,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, s.rdb.WaitReady(ctx))
	s.cache, err = middleware.NewCache(s.rdb, middleware.CacheOptions{Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.cache.Close() })
	s.breaker, err = middleware.NewBreaker(middleware.BreakerOptions{Name: "upstream", FailureThreshold: 1, Delay: time.Hour, Logger: quiet})
	require.NoError(t, err)
	s.retry, err = middleware.NewRetry(middleware.RetryOptions{Name: "upstream", MaxAttempts: 2, InitialDelay: time.Millisecond, Logger: quiet})
	require.NoError(t, err)
	s.health, err = healthhandler.New(healthhandler.Options{Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.health.Close() })
	require.NoError(t, s.health.Add(healthhandler.Check{
		Name: "pool", WorkersMeasurement: "workers", Interval: time.Hour,
		Run: func(context.Context) ([]healthhandler.Observation, error) {
			return []healthhandler.Observation{{Measurement: "workers", Value: 3}}, nil
		},
	}))
	require.NoError(t, s.health.Add(healthhandler.Check{
		Name: "broken", Interval: time.Hour,
		Run: func(context.Context) ([]healthhandler.Observation, error) { return nil, errors.New("down") },
	}))
	require.NoError(t, s.health.WaitChecked(ctx))

	s.reader = sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(s.reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	s.m, err = metrics.Instrument(mp, metrics.Sources{
		Redis: s.rdb, Cache: s.cache, Health: s.health,
		Breakers: []*middleware.Breaker{s.breaker}, Retries: []*middleware.Retry{s.retry},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.m.Close() })

	s.mux = http.NewServeMux()
	s.mux.Handle("GET /items/{id}", s.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("item " + r.PathValue("id"))) })))
	s.mux.Handle("GET /upstream", s.breaker.Handler(s.retry.Handler(http.HandlerFunc(
		func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))))
	return s
}

func (s *stack) get(target string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	s.mux.ServeHTTP(w, r)
	return w
}

// waitStored waits until the cache has stored n entries.
func (s *stack) waitStored(t *testing.T, n uint64) {
	t.Helper()
	require.Eventually(t, func() bool { return s.cache.Stats().Stored >= n }, 10*time.Second, time.Millisecond)
}

func TestInstrument(t *testing.T) {
	s := newStack(t)
	const route = "GET /items/{id}"

	s.get("/items/1")
	s.waitStored(t, 1)
	s.get("/items/1")
	s.get("/items/1")
	s.get("/items/2", "Authorization", "Bearer x")
	s.get("/upstream") // 502 twice: the retry is exhausted, the breaker opens
	s.get("/upstream") // turned away

	c := collect(t, s.reader)
	c.want(2, "steadfast.cache.lookups", "http.route", route, "result", "hit")
	c.want(1, "steadfast.cache.lookups", "http.route", route, "result", "miss")
	c.want(1, "steadfast.cache.lookups", "http.route", route, "result", "bypass", "reason", "authorization")
	c.want(1, "steadfast.cache.stores", "outcome", "stored")
	c.want(0, "steadfast.cache.stores", "outcome", "dropped")
	c.want(0, "steadfast.cache.coalesced")
	// A miss (GET), a store (SET), two hits (GET), and the health check's
	// nothing: three GETs and a SET, all fine.
	c.want(3, "db.client.operation.duration", "db.system.name", "redis", "db.operation.name", "GET")
	c.want(1, "db.client.operation.duration", "db.system.name", "redis", "db.operation.name", "SET")
	c.want(0, "steadfast.breaker.state", "breaker", "redis")
	c.want(1, "steadfast.breaker.state", "breaker", "upstream")
	c.want(1, "steadfast.breaker.transitions", "breaker", "upstream", "to", "open")
	c.want(1, "steadfast.breaker.rejected", "breaker", "upstream")
	c.want(1, "steadfast.retry.requests", "retry", "upstream", "outcome", "exhausted")
	c.want(1, "steadfast.retry.attempts", "retry", "upstream", "attempt", "retry")
	c.want(1, "steadfast.health.status")
	c.want(0, "steadfast.health.check.status", "check", "pool")
	c.want(2, "steadfast.health.check.status", "check", "broken")
	c.want(3, "steadfast.health.workers", "check", "pool")
	_, ok := c.value("steadfast.health.workers", "check", "broken")
	assert.False(t, ok, "a check that counts no workers reports workers")
	_, ok = c.value("steadfast.health.check.duration", "check", "pool")
	assert.True(t, ok, "no duration for the pool check")
	v, ok := c.value("db.client.connection.count", "db.client.connection.pool.name", "redis", "db.client.connection.state", "idle")
	assert.True(t, ok && v >= 1, "idle connections %v (%v), want at least one", v, ok)
	_, ok = c.value("db.client.connection.timeouts", "db.client.connection.pool.name", "redis")
	assert.True(t, ok, "no pool timeouts point")

	// Redis goes away: the failing GET is a timeout or an error, the
	// breaker opens, and requests bypass the cache.
	s.mr.Close()
	s.get("/items/1")
	s.get("/items/1")
	c = collect(t, s.reader)
	c.want(2, "steadfast.cache.lookups", "http.route", route, "result", "bypass", "reason", "redis-unavailable")
	c.want(1, "steadfast.breaker.state", "breaker", "redis")
	c.want(1, "steadfast.breaker.transitions", "breaker", "redis", "to", "open")
	rejected, _ := c.value("steadfast.breaker.rejected", "breaker", "redis")
	assert.GreaterOrEqual(t, rejected, 1.0, "redis breaker rejected %v, want the GET after it opened", rejected)
	// The GET that failed: its retry, if any, met the open breaker.
	var failed float64
	for _, o := range []string{"error", "timeout", "rejected"} {
		v, _ := c.value("db.client.operation.duration", "db.system.name", "redis", "db.operation.name", "GET", "error.type", o)
		failed += v
	}
	assert.Equal(t, float64(1), failed, "one failed GET reached Redis")

	// Close removes the hooks: lookups are no longer counted.
	require.NoError(t, s.m.Close())
	s.get("/items/1")
	c = collect(t, s.reader)
	if v, ok := c.value("steadfast.cache.lookups", "http.route", route, "result", "bypass", "reason", "redis-unavailable"); ok {
		assert.Equal(t, 2.0, v, "lookups counted after Close")
	}
	require.NoError(t, s.m.Close(), "a second Close")
}

// TestInstrumentLabelsBounded: no URL, id or key ever becomes a label
// value, whatever the requests.
func TestInstrumentLabelsBounded(t *testing.T) {
	s := newStack(t)
	for _, target := range []string{"/items/secret-id-1", "/items/2?token=abc", "/nope/x"} {
		s.get(target)
	}
	c := collect(t, s.reader)
	for _, sm := range c.rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			for _, set := range attributeSets(m) {
				for _, kv := range set.ToSlice() {
					v := kv.Value.String()
					for _, bad := range []string{"secret", "token", "/items/2", "steadfast:"} {
						assert.NotContains(t, v, bad, "%s label %s", m.Name, kv.Key)
					}
				}
			}
		}
	}
}

func attributeSets(m metricdata.Metrics) []attribute.Set {
	var sets []attribute.Set
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			sets = append(sets, p.Attributes)
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			sets = append(sets, p.Attributes)
		}
	case metricdata.Gauge[float64]:
		for _, p := range d.DataPoints {
			sets = append(sets, p.Attributes)
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			sets = append(sets, p.Attributes)
		}
	}
	return sets
}

func TestInstrumentInvalidSources(t *testing.T) {
	mp := sdkmetric.NewMeterProvider()
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	b1, err := middleware.NewBreaker(middleware.BreakerOptions{Name: "a"})
	require.NoError(t, err)
	b2, err := middleware.NewBreaker(middleware.BreakerOptions{Name: "a"})
	require.NoError(t, err)
	redisNamed, err := middleware.NewBreaker(middleware.BreakerOptions{Name: metrics.RedisBreakerName})
	require.NoError(t, err)
	mr := miniredis.RunT(t)
	rdb, err := resilience.NewRedis(resilience.Config{Addr: mr.Addr()}, resilience.Options{Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })

	for _, tc := range []struct {
		name string
		src  metrics.Sources
	}{
		{name: "same breaker name", src: metrics.Sources{Breakers: []*middleware.Breaker{b1, b2}}},
		{name: "breaker named redis", src: metrics.Sources{Redis: rdb, Breakers: []*middleware.Breaker{redisNamed}}},
		{name: "nil breaker", src: metrics.Sources{Breakers: []*middleware.Breaker{nil}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := metrics.Instrument(mp, tc.src)
			assert.ErrorIs(t, err, metrics.ErrInvalidOption)
		})
	}
	_, err = metrics.Instrument(nil, metrics.Sources{})
	assert.ErrorIs(t, err, metrics.ErrInvalidOption)
	m, err := metrics.Instrument(mp, metrics.Sources{})
	require.NoError(t, err, "no sources: nothing to measure, no error")
	require.NoError(t, m.Close())
}

// TestInstrumentNearCache: the near cache's figures are reported when it
// is on, and absent when it is off.
func TestInstrumentNearCache(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint("near cache ", on), func(t *testing.T) {
			mr := miniredis.RunT(t)
			opts := resilience.Options{Logger: quiet}
			if on {
				opts.NearCache = &resilience.NearCacheOptions{}
			}
			rdb, err := resilience.NewRedis(resilience.Config{Addr: mr.Addr()}, opts)
			require.NoError(t, err)
			t.Cleanup(func() { _ = rdb.Close() })
			reader := sdkmetric.NewManualReader()
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
			t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
			m, err := metrics.Instrument(mp, metrics.Sources{Redis: rdb})
			require.NoError(t, err)
			t.Cleanup(func() { _ = m.Close() })
			c := collect(t, reader)
			_, serving := c.value("steadfast.redis.near_cache.serving")
			_, entries := c.value("steadfast.redis.near_cache.entries")
			assert.Equal(t, on, serving, "serving gauge")
			assert.Equal(t, on, entries, "entries")
		})
	}
}
