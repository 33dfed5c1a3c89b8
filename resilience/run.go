package resilience

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/redis/go-redis/v9"
)

// retryable: worth another attempt within the same deadline. Not an open
// breaker, not the caller's own end, not our deadline (nothing is left of
// it), and not a reply that will not change in milliseconds (READONLY, OOM,
// auth).
func retryable(err error) bool {
	if !IsFailure(err) || errors.Is(err, circuitbreaker.ErrOpen) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return !redis.IsReadOnlyError(err) && !redis.IsOOMError(err) && !redis.IsAuthError(err)
}

// execGrace is how long after an operation's deadline failsafe-go's
// executor still waits for the operation's own result.
const execGrace = 25 * time.Millisecond

// isTimeout reports whether err is a deadline that passed, on the context
// or on the socket.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// do is the guard every operation goes through: reject, then run.
func (r *Redis) do(ctx context.Context, op string, idempotent bool, fn func(context.Context, redis.UniversalClient) error) error {
	trial, err := r.reject(r.guard)
	if err != nil {
		return err
	}
	return r.run(ctx, r.guard, trial, operation{name: op, idempotent: idempotent, timeout: r.opts.OpTimeout}, fn)
}

// rejectOnly is reject without trials.
func (r *Redis) rejectOnly(g *guard) error {
	if r.closed.Load() {
		return ErrClosed
	}
	if g.cb.IsOpen() && g.cb.RemainingDelay() > 0 {
		r.st.rejected.Add(1)
		return ErrUnavailable
	}
	return nil
}

// reject answers an operation at once when the Redis is closed or g's
// breaker is open, unless the operation may run as the breaker's trial
// (trial true; see [guard.claimTrial]). Budget: two mutex-guarded reads,
// an atomic load and no allocation, so the methods call it before they
// build the closure they hand to run (a closure that escapes, and would
// cost an allocation even here).
func (r *Redis) reject(g *guard) (trial bool, err error) {
	if r.closed.Load() {
		return false, ErrClosed
	}
	if g.cb.IsOpen() && g.cb.RemainingDelay() > 0 {
		if g.claimTrial() {
			return true, nil
		}
		r.st.rejected.Add(1)
		return false, ErrUnavailable
	}
	return false, nil
}

// operation says how [Redis.run] runs an fn: its name, for stats and
// errors ("get", "set", "del", "ping", "do"), whether it is idempotent
// and so may be retried, and its deadline.
type operation struct {
	name       string
	idempotent bool
	timeout    time.Duration
}

// run executes fn under op's deadline, the retry policy (when op is
// idempotent) and the breaker. Budget: besides the Redis round trip, one context with
// deadline and failsafe-go's execution (a few hundred nanoseconds, some 20
// allocations).
func (r *Redis) run(ctx context.Context, g *guard, trial bool, op operation, fn func(context.Context, redis.UniversalClient) error) error {
	if err := ctx.Err(); err != nil {
		if trial {
			g.trialing.Store(false)
		}
		return err
	}
	if trial {
		return r.runTrial(ctx, g, op.name, op.timeout, fn)
	}
	// The operation runs to its own end, whatever the caller does
	// meanwhile: the breaker then judges Redis by what Redis did, never by
	// a caller that left (which could otherwise close a half-open breaker
	// on a Redis still down). go-redis does not stop a socket read on
	// cancellation anyway, so a caller that leaves waits no longer for it.
	// The caller's deadline, when earlier than ours, still applies.
	start := time.Now()
	deadline := start.Add(op.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	// failsafe-go reports an execution whose context has ended as that
	// context's error, and its breaker counts it, whatever fn returned. The
	// executor's context therefore ends a little after fn's, so that the
	// breaker judges what Redis did (ErrSlowTransfer is no failure). A
	// timeout is never retried, so a hung Redis still costs one deadline.
	execCtx, cancelExec := context.WithDeadline(context.WithoutCancel(ctx), deadline.Add(execGrace))
	defer cancelExec()
	opCtx, cancel := context.WithDeadline(execCtx, deadline)
	defer cancel()
	exec := g.once
	if op.idempotent {
		exec = g.retry
	}
	ref := r.client.Load()
	attempt := func() error {
		err := fn(opCtx, ref.c)
		if IsFailure(err) {
			// Noted per attempt, before the breaker sees it, so that the
			// event of the breaker opening carries the failure that did it.
			r.st.noteError(r.opts.Now(), err)
		}
		return err
	}
	var err error
	if op.name != opDo && r.cluster == nil {
		// go-redis can hold an operation past any context (a failover
		// client's dial that asks the sentinels for the master under a
		// lock, connections of an old master being closed, a hook): the
		// caller stops waiting at the deadline, and the breaker still
		// judges the operation when it ends. Do waits, since its fn may
		// write what the caller reads. A cluster's operations wait too,
		// for now: under load, not waiting there cut the hits on healthy
		// masters while one was killed or paused from 97-99% to 41-85% in
		// the fault matrix, for a reason not yet found.
		err = r.bounded(execCtx, func() error { return exec.WithContext(execCtx).Run(attempt) })
	} else {
		err = exec.WithContext(execCtx).Run(attempt)
	}
	took := time.Since(start)
	r.st.record(took, err)
	r.observe(op.name, took, err)
	switch {
	case err == nil, errors.Is(err, redis.Nil):
		r.markSuccess()
		if !ref.ready.Load() {
			ref.ready.Store(true) // a cluster client answered: its slot map is loaded
		}
		return err
	case errors.Is(err, circuitbreaker.ErrOpen):
		r.st.rejected.Add(1)
		return ErrUnavailable
	}
	if IsFailure(err) {
		r.st.failures.Add(1)
	} else {
		r.markSuccess() // the server answered, if only with an error
	}
	if cerr := ctx.Err(); errors.Is(cerr, context.Canceled) {
		// The caller left: it gets its own reason, which is no failure.
		return fmt.Errorf("redis %s: %w", op.name, cerr)
	}
	return fmt.Errorf("redis %s: %w", op.name, err)
}
