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
	if err := eventually(func() error { _, err := r.Ping(ctx); return err }); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got = nil
	mu.Unlock()
	_, _ = r.Get(ctx, "missing")
	_ = r.Set(ctx, "k", []byte("v"), 0)
	_ = r.Del(ctx, "k")
	_ = r.Do(ctx, func(ctx context.Context, c redis.UniversalClient) error { return c.Incr(ctx, "n").Err() })
	mu.Lock()
	want := []string{"get", "set", "del", "do"}
	if len(got) != len(want) {
		t.Fatalf("observed %+v, want %v", got, want)
	}
	for i, op := range got {
		if op.Name != want[i] || op.Outcome != OpOK || op.Duration <= 0 {
			t.Errorf("op %d = %+v, want %s ok with a duration", i, op, want[i])
		}
	}
	mu.Unlock()

	r.ObserveOps(nil)
	_, _ = r.Get(ctx, "missing")
	mu.Lock()
	if len(got) != len(want) {
		t.Errorf("observed after ObserveOps(nil): %+v", got[len(want):])
	}
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
		if _, err := r.Get(ctx, "k"); err == nil {
			t.Fatal("GET with Redis gone succeeded")
		}
	}
	reached := r.Stats().Ops - before
	mu.Lock()
	failed := got[len(want):]
	if uint64(len(failed)) != reached {
		t.Errorf("observed %d operations after Redis went away, Stats counts %d", len(failed), reached)
	}
	for _, op := range failed {
		if op.Name != "get" || op.Outcome == OpOK {
			t.Errorf("after Redis went away: %+v, want a get that failed", op)
		}
	}
	mu.Unlock()
	if s := r.Stats(); s.Opens != 1 || s.Closes != 0 || s.Rejected == 0 {
		t.Errorf("Stats Opens %d, Closes %d, Rejected %d; want 1, 0, some", s.Opens, s.Closes, s.Rejected)
	}
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
		if got := outcomeOf(tc.err); got != tc.want {
			t.Errorf("outcomeOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
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
