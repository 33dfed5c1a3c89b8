package resilience

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestObserveOps(t *testing.T) {
	mr := miniredis.RunT(t)
	r := newTestRedis(t, Config{Addr: mr.Addr()}, Options{Logger: slog.New(slog.DiscardHandler), FailureThreshold: 1, ProbeInterval: hour, ProbeMaxInterval: hour})
	var mu sync.Mutex
	var got []Op
	r.ObserveOps(func(op Op) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, op)
	})
	ctx := ctxFor(t, waitLimit)
	require.NoError(t, eventually(func() error { _, err := r.Ping(ctx); return err }))
	mu.Lock()
	got = nil
	mu.Unlock()
	_, _ = r.Get(ctx, "missing")
	_ = r.Set(ctx, "k", []byte("v"), 0)
	_ = r.Del(ctx, "k")
	_ = r.Do(ctx, func(ctx context.Context, c redis.UniversalClient) error { return c.Incr(ctx, "n").Err() })
	mu.Lock()
	want := []string{"get", "set", "del", "do"}
	require.Len(t, got, len(want), "observed %+v, want %v", got, want)
	for i, op := range got {
		assert.Equal(t, want[i], op.Name, "op %d = %+v, want %s ok with a duration", i, op, want[i])
		assert.Equal(t, OpOK, op.Outcome, "op %d = %+v, want %s ok with a duration", i, op, want[i])
		assert.Positive(t, op.Duration, "op %d = %+v, want %s ok with a duration", i, op, want[i])
	}
	mu.Unlock()

	r.ObserveOps(nil)
	_, _ = r.Get(ctx, "missing")
	mu.Lock()
	assert.Len(t, got, len(want), "observed after ObserveOps(nil): %+v", got[len(want):])
	mu.Unlock()
	r.ObserveOps(func(op Op) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, op)
	})

	// Redis goes away: every operation that still reaches it is observed,
	// as a failure; those the open breaker turns away are not operations.
	mr.Close()
	before := r.Stats().Ops
	for range 3 {
		_, err := r.Get(ctx, "k")
		require.Error(t, err, "GET with Redis gone")
	}
	reached := r.Stats().Ops - before
	mu.Lock()
	failed := got[len(want):]
	assert.Equal(t, reached, uint64(len(failed)), "operations observed after Redis went away, want what Stats counts")
	for _, op := range failed {
		assert.Equal(t, "get", op.Name, "after Redis went away: %+v, want a get that failed", op)
		assert.NotEqual(t, OpOK, op.Outcome, "after Redis went away: %+v, want a get that failed", op)
	}
	mu.Unlock()
	s := r.Stats()
	assert.EqualValues(t, 1, s.Opens, "Stats().Opens")
	assert.Zero(t, s.Closes, "Stats().Closes")
	assert.NotZero(t, s.Rejected, "Stats().Rejected")
}

func TestOutcomeOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want OpOutcome
	}{
		{nil, OpOK},
		{redis.Nil, OpOK},
		{context.DeadlineExceeded, OpTimeout},
		{redis.ErrPoolTimeout, OpTimeout},
		{context.Canceled, OpCanceled},
		{circuitbreaker.ErrOpen, OpRejected},
		{errors.New("dial tcp: connection refused"), OpError},
		{redis.ErrClosed, OpError},
	} {
		assert.Equal(t, tc.want, outcomeOf(tc.err), "outcomeOf(%v)", tc.err)
	}
}

// BenchmarkOutcomeOf: classifying a success allocates nothing, so the
// operation hook adds no allocation to a hit.
func BenchmarkOutcomeOf(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if outcomeOf(nil) != OpOK {
			b.Fatal("not ok")
		}
	}
}
