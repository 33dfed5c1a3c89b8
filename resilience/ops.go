package resilience

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Get returns the value at key. A missing key gives [ErrNotFound]; an open
// breaker gives [ErrUnavailable] without a network call. Get is retried
// within its deadline when that can help. A value larger than [LargeValue]
// that cannot arrive within OpTimeout gives [ErrSlowTransfer], which does
// not count against the breaker; its size is remembered, and later Gets of
// the key get a deadline that fits it (see [Options.MinTransferRate]).
// With the near cache on ([Options].NearCache) a hit comes from process
// memory, with no deadline and no breaker to pay.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, error) {
	if r.near != nil && r.near.serving.Load() && !r.closed.Load() {
		// The fast path: a hit from process memory pays neither the
		// deadline nor the breaker's executor (the gate is closed while
		// the breaker is open).
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if v, found, ok := r.near.lookup(key); ok {
			if !found {
				return nil, ErrNotFound
			}
			return v, nil
		}
	}
	g := r.guardFor(ctx, key)
	trial, err := r.reject(g)
	if err != nil {
		return nil, err
	}
	var val []byte
	known := r.large.size(key)
	op := operation{name: "get", idempotent: true, timeout: r.opTimeout(int(known))}
	if r.near != nil && r.near.serving.Load() {
		// A plain GET: go-redis caches single commands, not pipelines,
		// so this is what fills the near cache. The STRLEN below does not
		// ride along: a large value that times out here counts as a
		// failure, not ErrSlowTransfer, unless its size was noted before.
		err = r.run(ctx, g, trial, op, func(ctx context.Context, c redis.UniversalClient) error {
			v, err := c.Get(ctx, key).Bytes()
			val = v
			return err
		})
	} else {
		err = r.run(ctx, g, trial, op, r.getSized(key, known, &val))
	}
	switch {
	case errors.Is(err, redis.Nil):
		return nil, ErrNotFound
	case err != nil:
		return nil, err // val is not read: an abandoned operation may still set it
	}
	return val, nil
}

// getSized is Get's operation without the near cache: GET with STRLEN
// riding along, so that a large value arriving past the deadline is told
// from a Redis that did not answer. It stores the value in *val.
func (r *Redis) getSized(key string, known int64, val *[]byte) func(context.Context, redis.UniversalClient) error {
	return func(ctx context.Context, c redis.UniversalClient) error {
		// STRLEN rides along in the same round trip: if the deadline
		// passes while a large value is arriving, Redis did answer, and
		// the timeout is the value's size, not a failure.
		var size *redis.IntCmd
		var get *redis.StringCmd
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			size = p.StrLen(ctx, key)
			get = p.Get(ctx, key)
			return nil
		})
		if err != nil {
			// go-redis stamps the batch's error on every command, STRLEN
			// included, but keeps the value it read: non-zero means
			// Redis answered.
			if n := size.Val(); isTimeout(err) && n > LargeValue {
				r.large.note(key, n) // the next Get waits long enough
				return fmt.Errorf("%w (%d bytes): %w", ErrSlowTransfer, n, err)
			}
			return err
		}
		v, err := get.Bytes()
		*val = v
		if known != 0 && int64(len(v)) != known {
			r.large.note(key, int64(len(v)))
		}
		return err
	}
}

// Set stores val at key for ttl (zero: no expiry). Setting the same value
// twice is harmless, so Set is retried like Get.
func (r *Redis) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	g := r.guardFor(ctx, key)
	trial, err := r.reject(g)
	if err != nil {
		return err
	}
	if r.near != nil {
		defer r.near.forget(key)
	}
	return r.run(ctx, g, trial, operation{name: "set", idempotent: true, timeout: r.opTimeout(len(val))}, func(ctx context.Context, c redis.UniversalClient) error {
		return c.Set(ctx, key, val, ttl).Err()
	})
}

// opTimeout is the deadline of an operation that sends n bytes: OpTimeout,
// plus their time on the link at MinTransferRate when n is over LargeValue.
func (r *Redis) opTimeout(n int) time.Duration {
	if n <= LargeValue {
		return r.opts.OpTimeout
	}
	return r.opts.OpTimeout + time.Duration(float64(n)/float64(r.opts.MinTransferRate)*float64(time.Second))
}

// Del deletes keys. Deleting twice is harmless, so Del is retried like Get.
//
// In a cluster the keys must share a hash slot (one key, or keys with the
// same {hash tag}); the first key chooses the node's breaker.
func (r *Redis) Del(ctx context.Context, keys ...string) error {
	g := r.guard
	if len(keys) > 0 {
		g = r.guardFor(ctx, keys[0])
	}
	trial, err := r.reject(g)
	if err != nil {
		return err
	}
	// A copy for the closure: capturing keys itself would make every
	// caller allocate its arguments, even when reject answers.
	ks := append([]string(nil), keys...)
	if r.near != nil {
		defer func() {
			for _, k := range ks {
				r.near.forget(k)
			}
		}()
	}
	return r.run(ctx, g, trial, operation{name: "del", idempotent: true, timeout: r.opts.OpTimeout}, func(ctx context.Context, c redis.UniversalClient) error {
		return c.Del(ctx, ks...).Err()
	})
}

// Ping measures one round trip to Redis through the guard.
//
// In a cluster it pings every master through its node's breaker and
// returns the slowest round trip; it fails only when no master answered
// (the failures of the others are counted in [Redis.Stats]).
func (r *Redis) Ping(ctx context.Context) (time.Duration, error) {
	if r.cluster != nil && r.client.Load().ready.Load() {
		return r.cluster.ping(ctx)
	}
	// No trial: a health check's PING is not traffic, and while the
	// breaker is open it costs nothing.
	if err := r.rejectOnly(r.guard); err != nil {
		return 0, err
	}
	var rtt time.Duration
	err := r.run(ctx, r.guard, false, operation{name: "ping", idempotent: true, timeout: r.opts.OpTimeout}, func(ctx context.Context, c redis.UniversalClient) error {
		start := time.Now()
		err := c.Ping(ctx).Err()
		rtt = time.Since(start)
		return err
	})
	if err != nil {
		return 0, err // rtt is not read: an abandoned ping may still set it
	}
	return rtt, nil
}

// Do runs fn (a pipeline, a script, any command) through the guard, with
// the operation deadline and the breaker, but never retried: fn may not be
// idempotent. Use [Redis.DoIdempotent] when it is.
//
// Unlike Get, Set, Del and Ping, which return at their deadline (plus
// 25 ms) even when go-redis still holds the operation (standalone and
// Sentinel; not yet in a cluster), Do
// waits for fn to return, since fn may write what the caller reads: fn's
// ctx carries the deadline, which go-redis honours on the socket and in
// the pool.
func (r *Redis) Do(ctx context.Context, fn func(ctx context.Context, c redis.UniversalClient) error) error {
	return r.do(ctx, opDo, false, fn)
}

// opDo names the operations of [Redis.Do] and [Redis.DoIdempotent].
const opDo = "do"

// DoIdempotent is [Redis.Do] for a fn that is safe to run twice; it is
// retried within the deadline like [Redis.Get].
func (r *Redis) DoIdempotent(ctx context.Context, fn func(ctx context.Context, c redis.UniversalClient) error) error {
	return r.do(ctx, opDo, true, fn)
}
