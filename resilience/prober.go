package resilience

import (
	"context"

	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
)

// start launches the prober. It pings once at once, so that a Redis that
// is down at start-up opens the breaker (and logs one warning) before
// traffic finds out the slow way.
func (r *Redis) start() {
	r.wg.Add(1)
	go r.probeLoop()
	if r.near != nil && !r.near.unsupported.Load() {
		r.wg.Add(1)
		go r.nearLoop()
	}
}

// probeLoop owns reconnect detection. It sleeps until the breaker opens,
// then pings Redis on a connection of its own with capped exponential
// backoff until it answers; then it swaps in a fresh client (when the
// client is ours) and closes the breaker, with no caller traffic needed.
func (r *Redis) probeLoop() {
	defer r.wg.Done()
	if r.cluster != nil {
		r.loadSlots()
	}
	if err := r.probeOnce(r.guard); err != nil {
		r.st.noteError(r.opts.Now(), err)
		r.cb.Open()
	} else {
		r.markSuccess()
	}
	r.guardLoop(r.guard)
}

// guardLoop waits for g's breaker to open and probes until it closes,
// until the Redis is closed or g is dropped.
func (r *Redis) guardLoop(g *guard) {
	for {
		select {
		case <-r.done:
			return
		case <-g.gone:
			return
		case <-g.wake:
		}
		if !r.untilAnswers(g) {
			return
		}
	}
}

// untilAnswers probes until g's Redis answers (true), or the Redis is
// closed or g dropped (false).
func (r *Redis) untilAnswers(g *guard) bool {
	wait := r.opts.ProbeInterval
	t := time.NewTimer(jitter(wait))
	defer t.Stop()
	if g.node != "" {
		// The node may be gone for good, its replica about to take over:
		// have go-redis ask the cluster for the slot map now.
		r.Client().(*redis.ClusterClient).ReloadState(context.Background())
	}
	defer g.dropSpare()
	for {
		r.renewSpare(g)
		select {
		case <-r.done:
			return false
		case <-g.gone:
			return false
		case <-t.C:
		}
		if g.State() == StateClosed {
			return true // a trial operation closed it first
		}
		if g.node != "" && r.cluster.replaced(g) {
			return false
		}
		err := r.probeOnce(g)
		if err == nil {
			r.recovered(g)
			return true
		}
		r.st.noteError(r.opts.Now(), err)
		wait = min(2*wait, r.opts.ProbeMaxInterval)
		t.Reset(jitter(wait))
	}
}

func (r *Redis) probeOnce(g *guard) error {
	r.st.probes.Add(1)
	ctx, cancel := r.probeContext()
	defer cancel()
	if g.probe != nil {
		return g.probe(ctx)
	}
	return r.probe(ctx)
}

// probeContext bounds a probe by DialTimeout and ends it when the Redis
// closes.
func (r *Redis) probeContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.DialTimeout)
	go func() {
		select {
		case <-r.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// recovered swaps in a fresh client, so that the old pool's dial back-off
// (after PoolSize failed dials go-redis re-dials only once a second) cannot
// hold caching back, then closes g's breaker. The old client is closed
// once operations already running on it have had their deadline.
func (r *Redis) recovered(g *guard) {
	var old redis.UniversalClient
	if r.fresh != nil {
		if c, ok := r.freshReady(); ok {
			old = r.swapClient(c)
		}
	}
	r.markSuccess()
	g.cb.Close()
	if old != nil {
		r.closeAfterGrace(old)
	}
}

// freshReady builds a fresh client; a cluster client must load its slot
// map first, or it is not worth swapping in (false).
func (r *Redis) freshReady() (redis.UniversalClient, bool) {
	c := r.fresh()
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return c, true
	}
	ctx, cancel := r.probeContext()
	defer cancel()
	if err := cc.ForEachMaster(ctx, func(context.Context, *redis.Client) error { return nil }); err != nil {
		_ = c.Close()
		return nil, false
	}
	return c, true
}

// loadSlots has the cluster client in use load its slot map, so that keys
// find their node's breaker from the start.
func (r *Redis) loadSlots() {
	ref := r.client.Load()
	cc, ok := ref.c.(*redis.ClusterClient)
	if !ok {
		return
	}
	ctx, cancel := r.probeContext()
	defer cancel()
	if err := cc.ForEachMaster(ctx, func(context.Context, *redis.Client) error { return nil }); err == nil {
		ref.ready.Store(true)
	}
}

// jitter spreads d by ±10% so that many processes do not probe in step.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	spread := int64(d) / 5
	if spread == 0 {
		return d
	}
	return d - time.Duration(spread/2) + time.Duration(rand.Int64N(spread))
}
