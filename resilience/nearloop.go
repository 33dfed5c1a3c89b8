package resilience

// How a Redis runs its near cache: whether it can run at all, the check
// that the server tracks keys, and the loop that opens and closes its gate.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// nearSetup decides, when a [Redis] is built, whether its near cache can
// run: it returns the cache (nil when not asked for) and, when it cannot
// run, why.
func nearSetup(o Options, db int, username string, standalone bool) (*nearCache, string) {
	if o.NearCache == nil {
		return nil, ""
	}
	n := newNearCache(*o.NearCache, username)
	switch {
	case !standalone:
		return n, "go-redis client-side caching works with a standalone client built by NewRedis only (not Sentinel, Cluster, Ring or a wrapped client)"
	case db != 0:
		return n, fmt.Sprintf("go-redis client-side caching tracks DB 0 only (DB is %d)", db)
	}
	return n, ""
}

// trackingCheckWith asks the server, on a connection of its own, whether
// it speaks RESP3 and accepts CLIENT TRACKING. A reply error means it
// cannot (a *noTrackingError); a transport error means it did not answer,
// and the check is made again later.
func trackingCheckWith(base *redis.Options, o Options) func(ctx context.Context) error {
	po := probeOptions(base, o)
	po.Protocol = 3
	return func(ctx context.Context) error {
		return withOwnClient(ctx, redis.NewClient(cloneOptions(po)), func(c *redis.Client) error {
			conn := c.Conn()
			defer func() { _ = conn.Close() }()
			if err := conn.Do(ctx, "HELLO", "3").Err(); err != nil {
				return noTracking("the server does not speak RESP3", err)
			}
			if err := conn.Do(ctx, "CLIENT", "TRACKING", "ON").Err(); err != nil {
				return noTracking("the server refused CLIENT TRACKING", err)
			}
			return nil
		})
	}
}

// noTrackingError is a server that cannot track keys for the near cache:
// what says so in words fit for anyone (it is [NearCacheStats].Reason),
// err is the server's reply.
type noTrackingError struct {
	what string
	err  error
}

func (e *noTrackingError) Error() string { return e.what + ": " + e.err.Error() }
func (e *noTrackingError) Unwrap() error { return e.err }

func noTracking(what string, err error) error {
	if IsFailure(err) {
		return err // no answer, or not now: try again later
	}
	return &noTrackingError{what: what, err: err}
}

// nearLoop owns the near cache's gate: it confirms once that the server
// can track keys, then pings every Heartbeat through the guard, opening
// the gate when Redis answers and pausing it when it does not.
func (r *Redis) nearLoop() {
	defer r.wg.Done()
	n := r.near
	t := time.NewTicker(n.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
		}
		if !n.checked {
			if r.State() != StateClosed {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), r.opts.DialTimeout)
			err := r.nearCheck(ctx)
			cancel()
			var nt *noTrackingError
			if errors.As(err, &nt) {
				n.disable(nt.what)
				r.log.Warn("near cache off", slog.String(logKeyRedis, r.name),
					slog.String(logKeyReason, nt.what), slog.String(logKeyError, nt.err.Error()))
				return
			}
			if err != nil {
				continue
			}
			n.checked = true
		}
		// Bounded by OpTimeout, as every operation: a silent Redis is
		// noticed within Heartbeat + OpTimeout.
		_, err := r.Ping(context.Background())
		if err == nil {
			if n.resume() {
				r.log.Info("near cache serving", slog.String(logKeyRedis, r.name))
			}
			continue
		}
		if n.pause(nearLost) {
			r.log.Warn("near cache paused: invalidations may be lost until Redis answers",
				slog.String(logKeyRedis, r.name), slog.String(logKeyError, err.Error()))
		}
	}
}

// nearPause pauses the near cache when the breaker opens: Redis is not
// answering, so neither are its invalidations.
func (r *Redis) nearPause() {
	// One that is off for good keeps the reason it is off.
	if r.near != nil && !r.near.unsupported.Load() && r.near.pause(nearLost) {
		r.log.Warn("near cache paused: invalidations may be lost until Redis answers", slog.String(logKeyRedis, r.name))
	}
}

// nearStats is Stats().NearCache.
func (r *Redis) nearStats() NearCacheStats {
	if r.near == nil {
		return NearCacheStats{}
	}
	return r.near.stats()
}

// setNear attaches the near cache to a Redis being built: off says why it
// cannot run (logged once), check asks the server whether it can track
// keys.
func (r *Redis) setNear(n *nearCache, off string, check func(context.Context) error) {
	if n == nil {
		return
	}
	r.near = n
	r.nearCheck = check
	if off != "" {
		n.disable(off)
		r.log.Warn("near cache off", slog.String(logKeyRedis, r.name), slog.String(logKeyReason, off))
	}
}
