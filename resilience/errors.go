package resilience

import (
	"context"
	"errors"
	"io/fs"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/redis/go-redis/v9"
)

// ErrUnavailable is returned, at once and without a network call, while the
// circuit breaker is open because Redis has been failing. Callers treat it
// like any other Redis failure: serve without the cache.
var ErrUnavailable = errors.New("redis unavailable")

// ErrNotFound is returned by [Redis.Get] when the key does not exist. It is
// not a failure: it never opens the breaker. It matches [fs.ErrNotExist]
// as well (errors.Is), the standard library's "not found" that
// middleware.Store names for a miss, so a store written for middleware
// needs nothing from this package.
var ErrNotFound error = notFoundError{}

// notFoundError is the type of [ErrNotFound].
type notFoundError struct{}

func (notFoundError) Error() string { return "redis: key not found" }

// Is reports whether target is [fs.ErrNotExist].
func (notFoundError) Is(target error) bool { return target == fs.ErrNotExist }

// ErrSlowTransfer is returned by [Redis.Get] when its deadline passed while
// a value larger than [LargeValue] was on its way: Redis answered, the link
// is too slow for the value. It is not a failure: it never opens the
// breaker. See [Options.MinTransferRate].
var ErrSlowTransfer = errors.New("redis: value too large to arrive within the deadline")

// ErrInvalidOption is wrapped by every error a constructor or function of
// this package returns for options or arguments it cannot use; the message
// names the field ("resilience: Options.OpTimeout is negative (-1s):
// invalid option").
var ErrInvalidOption = errors.New("invalid option")

// ErrClosed is returned by operations on a [Redis] after [Redis.Close].
var ErrClosed = errors.New("redis client closed")

// IsFailure reports whether err says Redis itself is unhealthy: a
// connection error, a timeout, or a LOADING, READONLY, OOM, MASTERDOWN,
// CLUSTERDOWN, TRYAGAIN, BUSY or authentication reply. A miss
// ([ErrNotFound], redis.Nil), the caller's own cancellation, command errors
// such as WRONGTYPE, and a wait for a pooled connection that timed out
// (redis.ErrPoolTimeout: the pool is too small for this process's load,
// which says nothing about Redis) and [ErrSlowTransfer] (a large value on
// a slow link) are not failures.
func IsFailure(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, ErrNotFound) ||
		errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, ErrSlowTransfer) {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, circuitbreaker.ErrOpen) {
		return true
	}
	switch {
	case redis.IsLoadingError(err), redis.IsReadOnlyError(err), redis.IsOOMError(err),
		redis.IsMasterDownError(err), redis.IsClusterDownError(err), redis.IsTryAgainError(err),
		redis.IsAuthError(err), redis.IsMaxClientsError(err), redis.HasErrorPrefix(err, "BUSY"):
		return true
	}
	var re redis.Error
	if errors.As(err, &re) {
		// Any other reply from the server means the server works.
		return false
	}
	// Everything else is transport trouble: a deadline, a refused or reset
	// connection, a closed pool, a reply cut short or garbled.
	return true
}
