package resilience

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/redis/go-redis/v9"
)

// OpOutcome is how an operation that reached Redis ended, for [Op]. The
// set is closed, so that it can label a metric.
type OpOutcome string

// The outcomes of an [Op].
const (
	// OpOK: Redis answered, a miss (redis.Nil) included.
	OpOK OpOutcome = "ok"
	// OpTimeout: the operation's deadline passed, or the wait for a
	// pooled connection did.
	OpTimeout OpOutcome = "timeout"
	// OpCanceled: the caller's context was cancelled.
	OpCanceled OpOutcome = "canceled"
	// OpRejected: the breaker opened while the operation waited to retry.
	OpRejected OpOutcome = "rejected"
	// OpError: any other error: a refused or reset connection, LOADING,
	// READONLY, a command error such as WRONGTYPE...
	OpError OpOutcome = "error"
)

// Op describes one operation that went through the guard to Redis, for
// [Redis.ObserveOps]. Operations answered [ErrUnavailable] by the open
// breaker before any network call are not Ops: [Stats.Rejected] counts
// them.
type Op struct {
	// Name is the operation: "get", "set", "del", "ping" or "do" (a
	// pipeline or script run with [Redis.Do]); a closed set.
	Name string
	// Outcome is how it ended.
	Outcome OpOutcome
	// Duration is its whole time, retries included.
	Duration time.Duration
}

// opObserver holds the func set by ObserveOps.
type opObserver = atomic.Pointer[func(Op)]

// ObserveOps makes fn be called once per operation that reached Redis,
// after it ended, on the caller's goroutine: a metrics adapter records
// its duration from here. fn must be quick and must not block; it is
// called concurrently. A later call replaces fn; nil removes it. With no
// fn the cost is one atomic load per operation.
func (r *Redis) ObserveOps(fn func(Op)) {
	if fn == nil {
		r.onOp.Store(nil)
		return
	}
	r.onOp.Store(&fn)
}

// observe reports an operation to the func set by ObserveOps, if any.
func (r *Redis) observe(op string, d time.Duration, err error) {
	fn := r.onOp.Load()
	if fn == nil {
		return
	}
	(*fn)(Op{Name: op, Outcome: outcomeOf(err), Duration: d})
}

// outcomeOf classifies the error an operation ended with.
func outcomeOf(err error) OpOutcome {
	switch {
	case err == nil, errors.Is(err, redis.Nil), errors.Is(err, ErrNotFound):
		return OpOK
	case errors.Is(err, circuitbreaker.ErrOpen):
		return OpRejected
	case errors.Is(err, context.Canceled):
		return OpCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, redis.ErrPoolTimeout), netTimeout(err):
		return OpTimeout
	}
	return OpError
}

// netTimeout reports whether err is a network timeout. It is a function of
// its own so that its escaping net.Error costs an allocation only on this
// failure path, never on a success.
func netTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// transitions count the breaker's changes into each state.
type transitions struct {
	opens, halfOpens, closes atomic.Uint64
}

// count counts a change into to.
func (t *transitions) count(to State) {
	switch to {
	case StateOpen:
		t.opens.Add(1)
	case StateHalfOpen:
		t.halfOpens.Add(1)
	case StateClosed:
		t.closes.Add(1)
	}
}
