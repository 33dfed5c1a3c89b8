package resilience

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
)

// Defaults used when a [RetryOptions] field is zero.
const (
	DefaultTaskAttempts   = 5
	DefaultTaskBackoff    = 100 * time.Millisecond
	DefaultTaskMaxBackoff = 10 * time.Second
)

// RetryOptions tune [Retry]. The zero value retries any error up to five
// attempts with backoff from 100 ms to 10 s.
type RetryOptions struct {
	// Name names the task in log lines. Empty means "task".
	Name string
	// MaxAttempts caps the attempts. Zero means [DefaultTaskAttempts] (5),
	// unless MaxElapsed is set, in which case only MaxElapsed limits them.
	MaxAttempts int
	// MaxElapsed caps the time spent, waits included. Zero means no cap.
	MaxElapsed time.Duration
	// Backoff and MaxBackoff are the first and largest waits; waits double
	// between them, with jitter. Zero means [DefaultTaskBackoff] (100 ms)
	// and [DefaultTaskMaxBackoff] (10 s).
	Backoff, MaxBackoff time.Duration
	// Retryable says whether an error is worth another attempt. Nil means
	// every error except the context's own end.
	Retryable func(error) bool
	// Logger receives one warning per failed attempt. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// PanicError is returned by [Retry] when the task panicked. The panic is
// not retried (it is most likely a bug) and not re-raised.
type PanicError struct {
	// Value is what the task panicked with.
	Value any
}

func (e *PanicError) Error() string { return fmt.Sprintf("task panicked: %v", e.Value) }

// Unwrap returns the panic value when it is an error, so that errors.Is and
// errors.As reach it.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Retry runs fn until it succeeds, with exponential backoff and jitter
// between attempts, logging each failure it will retry as a warning. It
// stops at MaxAttempts or MaxElapsed, when fn's error is not retryable, or
// when ctx ends, and returns the last error, or ctx's error when ctx ended
// first (neither is logged: the caller decides). It never panics: a panic in fn is logged once with its stack
// and returned as a [*PanicError].
//
// It is meant for background work such as a worker's Redis jobs; for
// single Redis operations, [Redis] already retries within its deadline.
func Retry(ctx context.Context, opts RetryOptions, fn func(ctx context.Context) error) error {
	if opts.MaxAttempts < 0 || opts.MaxElapsed < 0 || opts.Backoff < 0 || opts.MaxBackoff < 0 {
		return fmt.Errorf("resilience: RetryOptions.MaxAttempts, MaxElapsed, Backoff and MaxBackoff must not be negative: %w", ErrInvalidOption)
	}
	if err := ctx.Err(); err != nil {
		return err // not even one attempt for a task whose context is over
	}
	name := opts.Name
	if name == "" {
		name = "task"
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	backoff, maxBackoff := opts.Backoff, opts.MaxBackoff
	if backoff == 0 {
		backoff = DefaultTaskBackoff
	}
	if maxBackoff == 0 {
		maxBackoff = DefaultTaskMaxBackoff
	}
	maxBackoff = max(maxBackoff, backoff)
	retryable := opts.Retryable
	if retryable == nil {
		retryable = func(error) bool { return true }
	}
	start := time.Now()
	b := retrypolicy.NewBuilder[any]().
		HandleIf(func(_ any, err error) bool {
			var pe *PanicError
			if err == nil || errors.As(err, &pe) || ctx.Err() != nil || !retryable(err) {
				return false
			}
			// failsafe-go stops only once more than MaxDuration has passed;
			// at the limit exactly it would retry with no wait left, again
			// and again while the clock reads the same.
			return opts.MaxElapsed == 0 || time.Since(start) < opts.MaxElapsed
		}).
		WithBackoff(backoff, maxBackoff).
		WithJitterFactor(0.2).
		ReturnLastFailure().
		OnRetryScheduled(func(e failsafe.ExecutionScheduledEvent[any]) {
			log.Warn("task failed; retrying", slog.String("task", name), slog.Int("attempt", e.Attempts()),
				slog.Duration("retry_in", e.Delay), slog.String(logKeyError, e.LastError().Error()))
		})
	switch {
	case opts.MaxAttempts > 0:
		b = b.WithMaxAttempts(opts.MaxAttempts)
	case opts.MaxElapsed > 0:
		b = b.WithMaxAttempts(-1)
	default:
		b = b.WithMaxAttempts(DefaultTaskAttempts)
	}
	if opts.MaxElapsed > 0 {
		b = b.WithMaxDuration(opts.MaxElapsed)
	}
	return failsafe.With[any](b.Build()).WithContext(ctx).RunWithExecution(func(exec failsafe.Execution[any]) error {
		return runTask(exec.Context(), log, name, fn)
	})
}

func runTask(ctx context.Context, log *slog.Logger, name string, fn func(context.Context) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			log.Error("task panicked", slog.String("task", name), slog.Any("panic", v),
				slog.String("stack", string(debug.Stack())))
			err = &PanicError{Value: v}
		}
	}()
	return fn(ctx)
}
