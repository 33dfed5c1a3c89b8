package resilience

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
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
	if err := r.probeOnce(); err != nil {
		r.st.noteError(r.opts.Now(), err)
		r.cb.Open()
	} else {
		r.markSuccess()
	}
	for {
		select {
		case <-r.done:
			return
		case <-r.wake:
		}
		if !r.untilAnswers() {
			return
		}
	}
}

// untilAnswers probes until Redis answers (true) or the Redis is closed
// (false).
func (r *Redis) untilAnswers() bool {
	wait := r.opts.ProbeInterval
	t := time.NewTimer(jitter(wait))
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return false
		case <-t.C:
		}
		if r.State() == StateClosed {
			return true // a trial operation closed it first
		}
		err := r.probeOnce()
		if err == nil {
			r.recovered()
			return true
		}
		r.st.noteError(r.opts.Now(), err)
		wait = min(2*wait, r.opts.ProbeMaxInterval)
		t.Reset(jitter(wait))
	}
}

func (r *Redis) probeOnce() error {
	r.st.probes.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.DialTimeout)
	defer cancel()
	go func() {
		select {
		case <-r.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return r.probe(ctx)
}

// recovered swaps in a fresh client, so that the old pool's dial back-off
// (after PoolSize failed dials go-redis re-dials only once a second) cannot
// hold caching back, then closes the breaker. The old client is closed
// once operations already running on it have had their deadline.
func (r *Redis) recovered() {
	var old *clientRef
	if r.fresh != nil {
		old = r.client.Swap(&clientRef{r.fresh()})
	}
	r.markSuccess()
	r.cb.Close()
	if old == nil {
		return
	}
	grace := time.NewTimer(2*r.opts.OpTimeout + 10*time.Millisecond)
	defer grace.Stop()
	select {
	case <-grace.C:
	case <-r.done:
	}
	if err := old.c.Close(); err != nil {
		r.log.Debug("closing replaced redis client", slog.String(logKeyError, err.Error()))
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
