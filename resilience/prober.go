package resilience

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"

	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
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

// probeWith pings with a client of its own, new for every probe, so that
// no pool's dial back-off can delay noticing that Redis is back.
func probeWith(base *redis.Options, o Options) func(ctx context.Context) error {
	po := probeOptions(base, o)
	return func(ctx context.Context) error {
		return withOwnClient(ctx, redis.NewClient(cloneOptions(po)), func(c *redis.Client) error {
			return c.Ping(ctx).Err()
		})
	}
}

// withOwnClient runs fn with c, a client made for fn alone, and closes c
// when fn returns, or as soon as ctx ends: go-redis does not watch ctx
// while it waits for a reply, only its deadline, so closing the client is
// what ends a probe of a hung Redis at once when the Redis is closed.
func withOwnClient[C io.Closer](ctx context.Context, c C, fn func(c C) error) error {
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer func() {
		stop()
		_ = c.Close()
	}()
	return fn(c)
}

// probeOptions are the options of a client of one's own for a probe.
func probeOptions(base *redis.Options, o Options) *redis.Options {
	po := cloneOptions(base)
	// Two, not one: go-redis starts a background re-dial loop (a goroutine
	// that dials at once, then every second until the pool closes) when a
	// pool has had PoolSize dial failures in a row. A probe dials once, so
	// with two it never starts: no extra dial and no lingering goroutine
	// per failed probe.
	po.PoolSize = 2
	// A probe is a bare PING: none of what a client may share through its
	// options (they may be a live client's, see Wrap) and nothing that adds
	// round trips to its handshake.
	po.PushNotificationProcessor = nil
	po.ClientSideCache = nil
	po.ClientSideCacheConfig = nil
	po.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	po.MinIdleConns = 0
	po.MaxRetries = -1
	po.DialerRetries = 1
	po.PoolTimeout = o.DialTimeout
	po.ReadTimeout = o.DialTimeout
	po.WriteTimeout = o.DialTimeout
	return po
}

// probeCluster pings some node of the cluster with a cluster client of
// its own: the probe of the guard of operations that name no key.
func probeCluster(co *redis.ClusterOptions, o Options) func(ctx context.Context) error {
	po := cloneCluster(co)
	po.PoolSize = 2
	po.PoolTimeout = o.DialTimeout
	po.ReadTimeout = o.DialTimeout
	po.WriteTimeout = o.DialTimeout
	return func(ctx context.Context) error {
		return withOwnClient(ctx, redis.NewClusterClient(cloneCluster(po)), func(c *redis.ClusterClient) error {
			return c.Ping(ctx).Err()
		})
	}
}

// probeFailover pings the master Sentinel names now: it asks the
// sentinels afresh (all at once, the first answer wins) and pings that
// address on a connection of its own, so a promoted replica is found as
// soon as Sentinel knows it. It builds no failover client: go-redis
// resolves the made-up address of one ("FailoverClient") as it builds it.
func probeFailover(fo *redis.FailoverOptions, o Options) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		addr, err := askMaster(ctx, fo, o)
		if err != nil {
			return err
		}
		base := &redis.Options{Addr: addr, Username: fo.Username, Password: fo.Password, DB: fo.DB,
			TLSConfig: fo.TLSConfig, Dialer: fo.Dialer}
		err = probeWith(base, o)(ctx)
		if redis.IsAuthError(err) {
			return fmt.Errorf("redis master %s refused the data nodes' credentials (%s's username= and password=, or %s): %w", addr, EnvURL, EnvPassword, err)
		}
		return err
	}
}

// askMaster asks every sentinel of fo for the master's address and
// returns the first answer.
func askMaster(ctx context.Context, fo *redis.FailoverOptions, o Options) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		addr string
		err  error
	}
	answers := make(chan answer, len(fo.SentinelAddrs))
	for _, addr := range fo.SentinelAddrs {
		go func() {
			sc := redis.NewSentinelClient(sentinelOptions(fo, addr, o))
			defer func() { _ = sc.Close() }()
			stop := context.AfterFunc(ctx, func() { _ = sc.Close() })
			defer stop()
			m, err := sc.GetMasterAddrByName(ctx, fo.MasterName).Result()
			if err == nil && len(m) != 2 {
				err = errors.New("sentinel: malformed master address")
			}
			if err != nil {
				answers <- answer{err: err}
				return
			}
			answers <- answer{addr: net.JoinHostPort(m[0], m[1])}
		}()
	}
	var errs []error
	for range fo.SentinelAddrs {
		a := <-answers
		if a.err == nil {
			return a.addr, nil
		}
		errs = append(errs, a.err)
	}
	if slices.ContainsFunc(errs, redis.IsAuthError) {
		return "", fmt.Errorf("redis sentinel: the sentinels refused their credentials (%s's user-info, or sentinel_username= and sentinel_password=): %w", EnvURL, errors.Join(errs...))
	}
	return "", fmt.Errorf("redis sentinel: no sentinel named the master: %w", errors.Join(errs...))
}
