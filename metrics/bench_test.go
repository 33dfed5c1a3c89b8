package metrics

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"log/slog"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

var benchQuiet = slog.New(slog.DiscardHandler)

// memoryStore is a Store that answers every Get with one value, so that a
// benchmark sees the cache's own cost and not a network's.
type memoryStore struct{ val []byte }

func (s *memoryStore) Get(context.Context, string) ([]byte, error) { return s.val, nil }
func (s *memoryStore) Set(_ context.Context, _ string, val []byte, _ time.Duration) error {
	s.val = append([]byte(nil), val...)
	return nil
}
func (s *memoryStore) Del(context.Context, ...string) error { return nil }

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(int)             {}
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func meterProvider(b *testing.B) *sdkmetric.MeterProvider {
	b.Helper()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp
}

// BenchmarkHitOverhead measures what metrics add to a cache hit. Budget:
// at most 100 ns and no allocation more with metrics on than off.
//
//   - cache/off and cache/on: a hit through a ServeMux route on a store in
//     memory, without and with Instrument: the lookup hook's cost in the
//     real path.
//   - redis/off and redis/on: a guarded GET against miniredis (one per
//     hit), without and with Instrument: the operation hook's cost, lost
//     in the round trip's noise.
//
// BenchmarkHooks in hooks_bench_test.go measures the two hooks alone.
func BenchmarkHitOverhead(b *testing.B) {
	policy := cachepolicy.Policy{TTL: time.Hour}
	origin := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("x", 1024)))
	})
	for _, on := range []bool{false, true} {
		name := "cache/off"
		if on {
			name = "cache/on"
		}
		b.Run(name, func(b *testing.B) {
			store := &memoryStore{}
			cache, err := middleware.NewCache(store, middleware.CacheOptions{Logger: benchQuiet})
			require.NoError(b, err)
			defer func() { _ = cache.Close() }()
			mux := http.NewServeMux()
			mux.Handle("GET /items/{id}", cache.Policy(policy)(origin))
			req := httptest.NewRequest("GET", "/items/42", nil)
			mux.ServeHTTP(&discardWriter{h: http.Header{}}, req)
			require.NoError(b, cache.Close()) // waits for the entry to be written
			if on {
				m, err := Instrument(meterProvider(b), Sources{Cache: cache})
				require.NoError(b, err)
				defer func() { _ = m.Close() }()
			}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			start := cpuTime()
			for b.Loop() {
				clear(w.h)
				mux.ServeHTTP(w, req)
			}
			reportCPU(b, start)
			require.True(b, strings.HasPrefix(w.h.Get("Cache-Status"), "steadfast; hit"), "not a hit: %q", w.h.Get("Cache-Status"))
		})
	}
	mr := miniredis.RunT(b)
	mr.Set("k", "v")
	for _, on := range []bool{false, true} {
		name := "redis/off"
		if on {
			name = "redis/on"
		}
		b.Run(name, func(b *testing.B) {
			rdb, err := resilience.NewRedis(resilience.Config{Addr: mr.Addr()}, resilience.Options{Logger: benchQuiet, OpTimeout: time.Second})
			require.NoError(b, err)
			defer func() { _ = rdb.Close() }()
			if on {
				m, err := Instrument(meterProvider(b), Sources{Redis: rdb})
				require.NoError(b, err)
				defer func() { _ = m.Close() }()
			}
			ctx := context.Background()
			b.ReportAllocs()
			start := cpuTime()
			for b.Loop() {
				if _, err := rdb.Get(ctx, "k"); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start) // miniredis runs in this process: its CPU counts too
		})
	}
}
