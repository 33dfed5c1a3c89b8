package resilience

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/internal/redistest"
)

// BenchmarkGet compares the guarded Get with a raw go-redis Get on the same
// real redis-server, in one run. Target: guarded at most 5% slower and at
// most 30 allocations more.
func BenchmarkGet(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	ctx := context.Background()
	val := make([]byte, 1024)

	b.Run("raw", func(b *testing.B) {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true, DisableIdentity: true})
		defer c.Close()
		require.NoError(b, c.Set(ctx, "k", val, 0).Err())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Get(ctx, "k").Bytes(); err != nil {
				require.NoError(b, err) // only on failure: an assertion per iteration would be measured
			}
		}
	})
	b.Run("guarded", func(b *testing.B) {
		r, err := NewRedis(Config{Addr: srv.Addr()}, Options{OpTimeout: time.Second})
		require.NoError(b, err)
		defer r.Close()
		require.NoError(b, r.Set(ctx, "k", val, 0))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Get(ctx, "k"); err != nil {
				require.NoError(b, err) // only on failure: an assertion per iteration would be measured
			}
		}
	})
}

// BenchmarkGetNear is a near-cache hit of a 1 KiB value, three ways in
// one run: "guarded-csc" is what a hit would cost without the fast path
// (go-redis's own cache hit, inside the deadline context and the
// failsafe-go executor), "raw-csc" go-redis's hit alone, and "fast" the
// fast path of [Redis.Get]. Budget for "fast": under 1 µs and at most 3
// allocations (the cache key, the copy of the value, the RESP reader
// none).
func BenchmarkGetNear(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	ctx := context.Background()
	val := make([]byte, 1024)
	r, err := NewRedis(Config{Addr: srv.Addr()}, Options{OpTimeout: time.Second, NearCache: &NearCacheOptions{Heartbeat: time.Hour}})
	require.NoError(b, err)
	defer r.Close()
	require.NoError(b, r.Set(ctx, "k", val, 0))
	r.near.resume() // the heartbeat is an hour away: open the gate now
	_, err = r.Get(ctx, "k")
	require.NoError(b, err)
	_, _, ok := r.near.lookup("k")
	require.True(b, ok, "k not in the near cache")
	b.Run("guarded-csc", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			err := r.run(ctx, r.guard, false, operation{name: "get", idempotent: true, timeout: r.opts.OpTimeout}, func(ctx context.Context, c redis.UniversalClient) error {
				return c.Get(ctx, "k").Err()
			})
			if err != nil {
				require.NoError(b, err) // only on failure: an assertion per iteration would be measured
			}
		}
	})
	b.Run("raw-csc", func(b *testing.B) {
		c := r.Client()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Get(ctx, "k").Bytes(); err != nil {
				require.NoError(b, err) // only on failure: an assertion per iteration would be measured
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		ops := r.Stats().Ops
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Get(ctx, "k"); err != nil {
				require.NoError(b, err) // only on failure: an assertion per iteration would be measured
			}
		}
		require.Equal(b, ops, r.Stats().Ops, "the fast path went through the guard")
	})
}

// BenchmarkBreakerOpen is the cost of an operation while the breaker is
// open: no network call at all. Target: under 1 µs.
func BenchmarkBreakerOpen(b *testing.B) {
	r, err := NewRedis(Config{Addr: "127.0.0.1:1"}, Options{ProbeInterval: time.Hour, ProbeMaxInterval: time.Hour})
	require.NoError(b, err)
	defer r.Close()
	r.cb.Open()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Get(ctx, "k"); err != ErrUnavailable {
			require.FailNowf(b, "breaker open", "Get with breaker open = %v, want ErrUnavailable", err) // only on failure, as above
		}
	}
}
