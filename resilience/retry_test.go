package resilience

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests of Retry run in a synctest bubble: the backoff waits (timers
// inside failsafe-go) advance a fake clock and cost no real time.

func TestRetrySucceedsOnThirdAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, logs := newLogger(slog.LevelDebug)
		attempts := 0
		start := time.Now()
		err := Retry(t.Context(), RetryOptions{Name: "flaky", Backoff: time.Second, MaxBackoff: time.Minute, Logger: log},
			func(context.Context) error {
				attempts++
				if attempts < 3 {
					return fmt.Errorf("attempt %d: %w", attempts, errUpstream)
				}
				return nil
			})
		require.NoError(t, err, "Retry")
		assert.Equal(t, 3, attempts, "attempts")
		// Waits of about 1 s then 2 s, each with ±20% jitter.
		d := time.Since(start)
		assert.GreaterOrEqual(t, d, 2400*time.Millisecond, "time spent, want the two backoff waits (about 3 s)")
		assert.LessOrEqual(t, d, 3600*time.Millisecond, "time spent, want the two backoff waits (about 3 s)")
		assert.Len(t, logs.Lines(`"level":"WARN"`, `"task":"flaky"`), 2, "retry warnings, log:\n%s", logs)
		if got := logs.Lines(`"attempt":1`); assert.Len(t, got, 1, "warnings of attempt 1") {
			assert.Contains(t, got[0], "attempt 1: upstream 500", "first warning does not carry attempt 1 and its error")
		}
	})
}

// errUpstream is an error a task might see.
var errUpstream = errors.New("upstream 500")

func TestRetryStopsAtMaxAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, logs := newLogger(slog.LevelDebug)
		var errs []error
		err := Retry(t.Context(), RetryOptions{MaxAttempts: 4, Backoff: time.Second, MaxBackoff: 2 * time.Second, Logger: log},
			func(context.Context) error {
				e := fmt.Errorf("failure %d", len(errs)+1)
				errs = append(errs, e)
				return e
			})
		require.Len(t, errs, 4, "attempts")
		assert.ErrorIs(t, err, errs[3], "Retry, want the last error")
		assert.Len(t, logs.Lines(`"level":"WARN"`, `"task":"task"`), 3, "warnings, want one per retry, none for the final failure; log:\n%s", logs)
	})
}

func TestRetryZeroOptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, _ := newLogger(slog.LevelDebug)
		attempts := 0
		start := time.Now()
		err := Retry(t.Context(), RetryOptions{Logger: log}, func(context.Context) error {
			attempts++
			return errUpstream
		})
		assert.ErrorIs(t, err, errUpstream, "Retry = %v, want %v", err, errUpstream)
		assert.EqualValues(t, DefaultTaskAttempts, attempts, "attempts = %d, want DefaultTaskAttempts (%d)", attempts, DefaultTaskAttempts)
		// 100+200+400+800 ms, ±20%.
		d := time.Since(start)
		assert.GreaterOrEqual(t, d, 1200*time.Millisecond, "time spent, want about 1.5 s")
		assert.LessOrEqual(t, d, 1800*time.Millisecond, "time spent, want about 1.5 s")
	})
}

func TestRetryMaxBackoffCapsWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, _ := newLogger(slog.LevelDebug)
		var at []time.Time
		_ = Retry(t.Context(), RetryOptions{MaxAttempts: 6, Backoff: time.Second, MaxBackoff: 3 * time.Second, Logger: log},
			func(context.Context) error {
				at = append(at, time.Now())
				return errUpstream
			})
		for i := 1; i < len(at); i++ {
			assert.LessOrEqual(t, at[i].Sub(at[i-1]), 3*time.Second*12/10, "wait before attempt %d, want at most MaxBackoff 3 s (+20%% jitter)", i+1)
		}
	})
}

func TestRetryMaxElapsed(t *testing.T) {
	for _, tc := range []struct {
		name        string
		maxAttempts int
		wantMax     int // attempts at most
	}{
		{"elapsed only", 0, 100},
		{"attempts stop first", 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				log, _ := newLogger(slog.LevelDebug)
				attempts := 0
				start := time.Now()
				err := Retry(t.Context(), RetryOptions{MaxAttempts: tc.maxAttempts, MaxElapsed: 10 * time.Second,
					Backoff: time.Second, MaxBackoff: 4 * time.Second, Logger: log},
					func(context.Context) error {
						attempts++
						if attempts > 1000 {
							return nil // runaway: stop, and fail below
						}
						return errUpstream
					})
				assert.ErrorIs(t, err, errUpstream, "Retry = %v, want %v", err, errUpstream)
				assert.LessOrEqual(t, time.Since(start), 10*time.Second, "time spent, want at most MaxElapsed (10 s)")
				assert.GreaterOrEqual(t, attempts, 2, "attempts, want 2..%d", tc.wantMax)
				assert.LessOrEqual(t, attempts, tc.wantMax, "attempts, want 2..%d", tc.wantMax)
			})
		})
	}
}

func TestRetryNotRetryable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, logs := newLogger(slog.LevelDebug)
		permanent := errors.New("bad request")
		attempts := 0
		var seen error
		err := Retry(t.Context(), RetryOptions{Logger: log, Retryable: func(err error) bool {
			seen = err
			return !errors.Is(err, permanent)
		}}, func(context.Context) error {
			attempts++
			return permanent
		})
		assert.ErrorIs(t, err, permanent, "Retry = %v, want %v", err, permanent)
		assert.Equal(t, 1, attempts, "attempts")
		assert.ErrorIs(t, seen, permanent, "Retryable saw %v, want %v", seen, permanent)
		assert.Empty(t, logs.String(), "logged %s, want nothing: the caller decides about the final error", logs)
	})
}

func TestRetryPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, logs := newLogger(slog.LevelDebug)
		attempts := 0
		err := Retry(t.Context(), RetryOptions{Name: "job", Logger: log}, func(context.Context) error {
			attempts++
			panic("boom")
		})
		var pe *PanicError
		require.ErrorAs(t, err, &pe, "Retry = %v (%T), want a *PanicError", err, err)
		assert.Equal(t, "boom", pe.Value, "PanicError.Value = %v, want boom", pe.Value)
		assert.Contains(t, err.Error(), "boom", "PanicError text %q does not say what the panic was", err)
		assert.Equal(t, 1, attempts, "attempts, want 1: a panic is not retried")
		if lines := logs.Lines(); assert.Len(t, lines, 1, "log, want exactly one error line naming the task, with the stack") {
			assert.Contains(t, lines[0], `"level":"ERROR"`, "log line, want an error")
			assert.Contains(t, lines[0], `"task":"job"`, "log line, want the task")
			assert.Contains(t, lines[0], "retry_test.go", "log line, want the stack")
		}
	})
}

func TestRetryPanicWithError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, _ := newLogger(slog.LevelDebug)
		err := Retry(t.Context(), RetryOptions{Logger: log}, func(context.Context) error {
			panic(errUpstream)
		})
		var pe *PanicError
		if assert.ErrorAs(t, err, &pe, "Retry = %v, want a *PanicError holding %v", err, errUpstream) {
			assert.Equal(t, errUpstream, pe.Value, "PanicError.Value")
		}
	})
}

func TestRetryContextCancelStopsWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, _ := newLogger(slog.LevelDebug)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		time.AfterFunc(5*time.Second, cancel)
		attempts := 0
		start := time.Now()
		err := Retry(ctx, RetryOptions{Backoff: time.Minute, Logger: log}, func(context.Context) error {
			attempts++
			return errUpstream
		})
		assert.Equal(t, 5*time.Second, time.Since(start), "Retry returned then, want at the cancel (5 s), not after the 1 min backoff")
		assert.Equal(t, 1, attempts, "attempts")
		assert.ErrorIs(t, err, context.Canceled, "Retry = %v, want context.Canceled", err)
	})
}

func TestRetryContextCancelDuringAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, _ := newLogger(slog.LevelDebug)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		attempts := 0
		err := Retry(ctx, RetryOptions{Backoff: time.Second, Logger: log}, func(ctx context.Context) error {
			attempts++
			cancel()
			<-ctx.Done() // the task sees its context end
			return ctx.Err()
		})
		assert.Equal(t, 1, attempts, "attempts")
		assert.ErrorIs(t, err, context.Canceled, "Retry = %v, want context.Canceled", err)
	})
}

func TestRetryContextDoneBeforeStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, _ := newLogger(slog.LevelDebug)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		attempts := 0
		err := Retry(ctx, RetryOptions{Logger: log}, func(context.Context) error {
			attempts++
			return errUpstream
		})
		assert.ErrorIs(t, err, context.Canceled, "Retry on a done context = %v after %d attempts, want context.Canceled and no attempt", err, attempts)
		assert.Zero(t, attempts, "Retry on a done context = %v after %d attempts, want context.Canceled and no attempt", err, attempts)
	})
}

func TestRetryPassesContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type key struct{}
		ctx := context.WithValue(t.Context(), key{}, "v")
		var got any
		log, _ := newLogger(slog.LevelDebug)
		require.NoError(t, Retry(ctx, RetryOptions{Logger: log}, func(ctx context.Context) error {
			got = ctx.Value(key{})
			return nil
		}))
		assert.Equal(t, "v", got, "task's context value = %v, want the caller's", got)
	})
}

func TestRetryNegativeOptions(t *testing.T) {
	for _, opts := range []RetryOptions{
		{MaxAttempts: -1}, {MaxElapsed: -time.Second}, {Backoff: -1}, {MaxBackoff: -1},
	} {
		called := false
		err := Retry(t.Context(), opts, func(context.Context) error { called = true; return nil })
		assert.Error(t, err, "Retry(%+v), want an error", opts)
		assert.False(t, called, "Retry(%+v) called the task, want no call", opts)
	}
}
