package middleware_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

// benchWriter is a ResponseWriter that keeps nothing, so that benchmarks
// measure the middleware, not a recorder.
type benchWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(status int)      { w.status = status }
func (w *benchWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

func (w *benchWriter) reset() {
	clear(w.h)
	w.status, w.n = 0, 0
}

var benchBody = bytes.Repeat([]byte("0123456789abcdef"), 64) // 1 KiB

// benchOrigin is the handler behind the cache: 1 KiB and two fields.
func benchOrigin(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Etag", `"v1"`)
	_, _ = w.Write(benchBody)
}

func benchRedis(b *testing.B, srv *redistest.Server) *resilience.Redis {
	b.Helper()
	rdb, err := resilience.NewRedis(resilience.Config{Addr: srv.Addr()},
		resilience.Options{Logger: quiet, OpTimeout: time.Second})
	require.NoError(b, err)
	b.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func benchCache(b *testing.B, store middleware.Store) *middleware.Cache {
	b.Helper()
	cache, err := middleware.NewCache(store, middleware.CacheOptions{Logger: quiet})
	require.NoError(b, err)
	b.Cleanup(func() { _ = cache.Close() })
	return cache
}

// BenchmarkCacheHit measures the hit path against a real redis-server, next
// to what any hit must cost: a raw go-redis GET of the same value written
// out as the response (raw), and the same through the guarded client
// (guarded). cache minus guarded is the middleware's own cost; the target
// is at most 10 µs and 40 allocations. memory is the middleware alone, on
// a store that answers from memory.
func BenchmarkCacheHit(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	ctx := context.Background()
	policy := cachepolicy.Policy{TTL: time.Hour}
	req := httptest.NewRequest("GET", "/items/42?lang=en", nil)

	// Store one entry through the cache itself, and keep its value.
	rdb := benchRedis(b, srv)
	prime := benchCache(b, rdb)
	prime.Policy(policy)(http.HandlerFunc(benchOrigin)).ServeHTTP(&benchWriter{h: http.Header{}}, req)
	require.NoError(b, prime.Close())
	key := cachepolicy.Key(middleware.DefaultCacheKeyPrefix, req, policy)
	val, err := rdb.Get(ctx, key)
	require.NoError(b, err, "entry not stored")

	b.Run("raw", func(b *testing.B) {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true, DisableIdentity: true})
		defer c.Close()
		w := &benchWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			w.reset()
			v, err := c.Get(ctx, key).Bytes()
			if err != nil { // checked first: require costs time on every iteration
				require.NoError(b, err)
			}
			w.h["Content-Type"] = []string{"application/json"}
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(v)
		}
	})
	b.Run("guarded", func(b *testing.B) {
		w := &benchWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			w.reset()
			v, err := rdb.Get(ctx, key)
			if err != nil { // checked first: require costs time on every iteration
				require.NoError(b, err)
			}
			w.h["Content-Type"] = []string{"application/json"}
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(v)
		}
	})
	b.Run("cache", func(b *testing.B) {
		h := benchCache(b, rdb).Policy(policy)(http.HandlerFunc(benchOrigin))
		w := &benchWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			w.reset()
			h.ServeHTTP(w, req)
			if cs := w.h.Get("Cache-Status"); !strings.HasPrefix(cs, "steadfast; hit") || w.n != len(benchBody) {
				require.Failf(b, "not a hit", "Cache-Status %q, %d bytes", cs, w.n)
			}
		}
	})
	b.Run("memory", func(b *testing.B) {
		store := &fakeStore{GetFunc: func(context.Context, string) ([]byte, error) { return val, nil }}
		h := benchCache(b, store).Policy(policy)(http.HandlerFunc(benchOrigin))
		w := &benchWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			w.reset()
			h.ServeHTTP(w, req)
			if cs := w.h.Get("Cache-Status"); !strings.HasPrefix(cs, "steadfast; hit") || w.n != len(benchBody) {
				require.Failf(b, "not a hit", "Cache-Status %q, %d bytes", cs, w.n)
			}
		}
	})
	// near is cache with the near cache on: the hit comes from process
	// memory (resilience.Options.NearCache), next to memory's fake store.
	b.Run("near", func(b *testing.B) {
		nrdb, err := resilience.NewRedis(resilience.Config{Addr: srv.Addr()},
			resilience.Options{Logger: quiet, OpTimeout: time.Second, NearCache: &resilience.NearCacheOptions{}})
		require.NoError(b, err)
		defer func() { _ = nrdb.Close() }()
		for deadline := time.Now().Add(10 * time.Second); !nrdb.Stats().NearCache.Serving; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				require.Failf(b, "timed out", "near cache not serving: %+v", nrdb.Stats().NearCache)
			}
		}
		h := benchCache(b, nrdb).Policy(policy)(http.HandlerFunc(benchOrigin))
		w := &benchWriter{h: http.Header{}}
		h.ServeHTTP(w, req)
		ops := nrdb.Stats().Ops
		b.ReportAllocs()
		for b.Loop() {
			w.reset()
			h.ServeHTTP(w, req)
			if cs := w.h.Get("Cache-Status"); !strings.HasPrefix(cs, "steadfast; hit") || w.n != len(benchBody) {
				require.Failf(b, "not a hit", "Cache-Status %q, %d bytes", cs, w.n)
			}
		}
		b.ReportMetric(float64(nrdb.Stats().Ops-ops)/float64(b.N), "redis-ops/op")
	})
}

// slowSetStore is a real store whose writes take a while longer.
type slowSetStore struct {
	middleware.Store
	delay time.Duration
}

func (s slowSetStore) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	time.Sleep(s.delay)
	return s.Store.Set(ctx, key, val, ttl)
}

// freeSetStore is a real store whose writes cost nothing.
type freeSetStore struct{ middleware.Store }

func (freeSetStore) Set(context.Context, string, []byte, time.Duration) error { return nil }

// BenchmarkCacheMiss measures what a miss costs the client, each
// iteration a new URL on a real redis-server: the handler alone (handler),
// the handler after the GET a miss must make (lookup), and the cache
// (cache). Storing is asynchronous: free-store, whose writes cost nothing,
// shows the middleware's own cost (free-store minus lookup); slow-store,
// whose writes take 5 ms each, shows that a slow write does not hold the
// client (entries are dropped once the queue is full). What cache adds
// over free-store is the background SETs competing for the same CPUs and
// Redis in a saturated benchmark loop, not time the client waits for.
// memory is the middleware alone, on a store that misses at once.
func BenchmarkCacheMiss(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	ctx := context.Background()
	rdb := benchRedis(b, srv)
	policy := cachepolicy.Policy{TTL: time.Hour}
	newReq := func(i int) *http.Request {
		return httptest.NewRequest("GET", "/items/"+strconv.Itoa(i), nil)
	}

	b.Run("handler", func(b *testing.B) {
		w := &benchWriter{h: http.Header{}}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			w.reset()
			benchOrigin(w, newReq(i))
		}
	})
	b.Run("lookup", func(b *testing.B) {
		w := &benchWriter{h: http.Header{}}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			w.reset()
			r := newReq(i)
			if _, err := rdb.Get(ctx, cachepolicy.Key("bench-miss:", r, policy)); err == nil {
				require.Fail(b, "hit")
			}
			benchOrigin(w, r)
		}
	})
	for _, tc := range []struct {
		name  string
		store middleware.Store
	}{
		{name: "cache", store: rdb},
		{name: "free-store", store: freeSetStore{Store: rdb}},
		{name: "slow-store", store: slowSetStore{Store: rdb, delay: 5 * time.Millisecond}},
		{name: "memory", store: &fakeStore{}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cache := benchCache(b, tc.store)
			h := cache.Policy(policy)(http.HandlerFunc(benchOrigin))
			w := &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				w.reset()
				h.ServeHTTP(w, httptest.NewRequest("GET", "/"+tc.name+"/"+strconv.Itoa(i), nil))
			}
			b.StopTimer()
			s := cache.Stats()
			b.ReportMetric(float64(s.Dropped)/float64(b.N), "dropped/op")
		})
	}
}
