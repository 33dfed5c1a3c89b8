package resilience

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"
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
		if err != nil {
			t.Fatalf("Retry = %v, want nil", err)
		}
		if attempts != 3 {
			t.Errorf("attempts = %d, want 3", attempts)
		}
		// Waits of about 1 s then 2 s, each with ±20% jitter.
		if d := time.Since(start); d < 2400*time.Millisecond || d > 3600*time.Millisecond {
			t.Errorf("time spent = %v, want the two backoff waits (about 3 s)", d)
		}
		if got := logs.lines(`"level":"WARN"`, `"task":"flaky"`); len(got) != 2 {
			t.Errorf("logged %d retry warnings, want 2:\n%s", len(got), logs)
		}
		if got := logs.lines(`"attempt":1`); len(got) != 1 || !strings.Contains(got[0], "attempt 1: upstream 500") {
			t.Errorf("first warning %q does not carry attempt 1 and its error", got)
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
		if len(errs) != 4 {
			t.Fatalf("attempts = %d, want 4", len(errs))
		}
		if !errors.Is(err, errs[3]) {
			t.Errorf("Retry = %v, want the last error %v", err, errs[3])
		}
		if got := logs.lines(`"level":"WARN"`, `"task":"task"`); len(got) != 3 {
			t.Errorf("logged %d warnings, want 3 (one per retry, none for the final failure):\n%s", len(got), logs)
		}
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
		if !errors.Is(err, errUpstream) {
			t.Errorf("Retry = %v, want %v", err, errUpstream)
		}
		if attempts != DefaultTaskAttempts {
			t.Errorf("attempts = %d, want DefaultTaskAttempts (%d)", attempts, DefaultTaskAttempts)
		}
		// 100+200+400+800 ms, ±20%.
		if d := time.Since(start); d < 1200*time.Millisecond || d > 1800*time.Millisecond {
			t.Errorf("time spent = %v, want about 1.5 s", d)
		}
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
			if d := at[i].Sub(at[i-1]); d > 3*time.Second*12/10 {
				t.Errorf("wait before attempt %d = %v, want at most MaxBackoff 3 s (+20%% jitter)", i+1, d)
			}
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
				if !errors.Is(err, errUpstream) {
					t.Errorf("Retry = %v, want %v", err, errUpstream)
				}
				if d := time.Since(start); d > 10*time.Second {
					t.Errorf("time spent = %v, want at most MaxElapsed (10 s)", d)
				}
				if attempts < 2 || attempts > tc.wantMax {
					t.Errorf("attempts = %d, want 2..%d", attempts, tc.wantMax)
				}
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
		if !errors.Is(err, permanent) {
			t.Errorf("Retry = %v, want %v", err, permanent)
		}
		if attempts != 1 {
			t.Errorf("attempts = %d, want 1", attempts)
		}
		if !errors.Is(seen, permanent) {
			t.Errorf("Retryable saw %v, want %v", seen, permanent)
		}
		if logs.String() != "" {
			t.Errorf("logged %s, want nothing: the caller decides about the final error", logs)
		}
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
		if !errors.As(err, &pe) {
			t.Fatalf("Retry = %v (%T), want a *PanicError", err, err)
		}
		if pe.Value != "boom" {
			t.Errorf("PanicError.Value = %v, want boom", pe.Value)
		}
		if !strings.Contains(err.Error(), "boom") {
			t.Errorf("PanicError text %q does not say what the panic was", err)
		}
		if attempts != 1 {
			t.Errorf("attempts = %d, want 1: a panic is not retried", attempts)
		}
		lines := logs.lines()
		if len(lines) != 1 || !strings.Contains(lines[0], `"level":"ERROR"`) || !strings.Contains(lines[0], `"task":"job"`) ||
			!strings.Contains(lines[0], "retry_test.go") {
			t.Errorf("log = %q, want exactly one error line naming the task, with the stack", lines)
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
		if !errors.As(err, &pe) || pe.Value != errUpstream {
			t.Errorf("Retry = %v, want a *PanicError holding %v", err, errUpstream)
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
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("Retry returned after %v, want at the cancel (5 s), not after the 1 min backoff", d)
		}
		if attempts != 1 {
			t.Errorf("attempts = %d, want 1", attempts)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Retry = %v, want context.Canceled", err)
		}
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
		if attempts != 1 {
			t.Errorf("attempts = %d, want 1", attempts)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Retry = %v, want context.Canceled", err)
		}
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
		if !errors.Is(err, context.Canceled) || attempts != 0 {
			t.Errorf("Retry on a done context = %v after %d attempts, want context.Canceled and no attempt", err, attempts)
		}
	})
}

func TestRetryPassesContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type key struct{}
		ctx := context.WithValue(t.Context(), key{}, "v")
		var got any
		log, _ := newLogger(slog.LevelDebug)
		if err := Retry(ctx, RetryOptions{Logger: log}, func(ctx context.Context) error {
			got = ctx.Value(key{})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got != "v" {
			t.Errorf("task's context value = %v, want the caller's", got)
		}
	})
}

func TestRetryNegativeOptions(t *testing.T) {
	for _, opts := range []RetryOptions{
		{MaxAttempts: -1}, {MaxElapsed: -time.Second}, {Backoff: -1}, {MaxBackoff: -1},
	} {
		called := false
		err := Retry(t.Context(), opts, func(context.Context) error { called = true; return nil })
		if err == nil || called {
			t.Errorf("Retry(%+v) = %v, called %v; want an error and no call", opts, err, called)
		}
	}
}
