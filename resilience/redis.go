package resilience

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Log attribute keys used by this package.
const (
	logKeyRedis  = "redis"
	logKeyState  = "state"
	logKeyError  = "error"
	logKeyDown   = "down_for"
	logKeyReason = "reason"
)

// Redis is a guarded Redis client: every operation has a deadline, is
// retried when that is safe, and goes through a circuit breaker that
// answers [ErrUnavailable] at once while Redis is down. A background prober
// closes the breaker as soon as Redis answers again; meanwhile traffic
// runs one trial operation at a time, at most every [TrialInterval], so
// that the first request after Redis answers is a cache operation again.
//
// In a Redis Cluster each master node has a breaker of its own, chosen by
// the key's hash slot: a failed node turns the guard off only for the keys
// it serves. Operations that name no key ([Redis.Do], [Redis.Ping]'s
// fallback) share one more breaker.
//
// Build one with [NewRedis] or [Wrap]; the zero value is not usable. A
// Redis is safe for concurrent use. Close stops its goroutines.
type Redis struct {
	opts   Options
	log    *slog.Logger
	name   string // redacted, for logs
	cfg    Config // for Sentinel and Cluster: what DescribeTopology asks
	client atomic.Pointer[clientRef]
	// fresh builds a new client with a new pool, for the swap after an
	// outage; nil when the client was wrapped and is not ours to replace.
	fresh func() redis.UniversalClient
	// probe pings Redis on a connection of its own.
	probe func(ctx context.Context) error
	owned bool

	// guard is the breaker of the whole Redis; in a cluster, of the
	// operations that name no key.
	*guard
	// cluster holds the per-node breakers; nil unless a cluster.
	cluster *clusterGuards

	done   chan struct{}
	ready  chan struct{} // closed at the first success
	closed atomic.Bool
	bgMu   sync.Mutex // orders wg.Add of background work with Close
	wg     sync.WaitGroup

	readyOnce sync.Once
	st        counters
	trans     transitions
	onOp      opObserver  // set by ObserveOps
	large     largeValues // sizes of values too large for OpTimeout

	// near is the near cache; nil when not asked for.
	near      *nearCache
	nearCheck func(ctx context.Context) error
}

type clientRef struct {
	c redis.UniversalClient
	// ready says a cluster client has loaded its slot map, so that the
	// key's node can be looked up without I/O. Always true otherwise.
	ready atomic.Bool
}

// NewRedis builds a standalone go-redis client for cfg with fail-fast
// settings and guards it. It returns at once: it does not wait for Redis,
// which may be down at start-up; the client becomes usable when Redis
// answers (see [Redis.WaitReady] for a strict start).
//
// The settings it owns: go-redis's own retries are off (MaxRetries -1:
// retrying is done here, once, by failsafe-go, so nothing multiplies),
// ContextTimeoutEnabled is on so deadlines reach the socket, dials are not
// retried inside go-redis, and pool waits are bounded by OpTimeout.
func NewRedis(cfg Config, opts Options) (*Redis, error) {
	if cfg.Topology != TopologyStandalone {
		o, err := opts.withDefaults()
		if err != nil {
			return nil, err
		}
		return newTopologyRedis(cfg, o)
	}
	if cfg.Addr == "" {
		return nil, fmt.Errorf("resilience: Config.Addr is empty: %w", ErrInvalidOption)
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	base := clientOptions(cfg, o)
	near, off := nearSetup(o, cfg.DB, cfg.Username, true)
	if near != nil && off == "" {
		base.Protocol = 3
		base.ClientSideCache = near
	}
	fresh := func() redis.UniversalClient {
		co := cloneOptions(base)
		if near != nil && near.unsupported.Load() {
			co.ClientSideCache = nil // the server cannot track keys
		}
		return redis.NewClient(co)
	}
	r := newRedis(o, cfg.String(), true, fresh())
	r.fresh = fresh
	r.probe = probeWith(base, o)
	r.setNear(near, off, trackingCheckWith(base, o))
	r.start()
	return r, nil
}

// Wrap guards a client the caller built: standalone, Sentinel (failover),
// Cluster or Ring. The caller keeps owning it: [Redis.Close] does not close
// it. Set ContextTimeoutEnabled on it so that deadlines reach the socket,
// and MaxRetries to -1 so that retries do not multiply.
//
// A wrapped *redis.Client is probed on a connection of its own; other kinds
// are probed through their own pool, which after a long outage can notice
// Redis up to a second later than a fresh connection would.
func Wrap(client redis.UniversalClient, opts Options) (*Redis, error) {
	if client == nil {
		return nil, fmt.Errorf("resilience: Wrap of a nil client: %w", ErrInvalidOption)
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	name := "redis"
	r := newRedis(o, name, false, client)
	if c, ok := client.(*redis.Client); ok {
		base := cloneOptions(c.Options())
		r.name = (&Config{Network: base.Network, Addr: base.Addr, Username: base.Username, Password: base.Password, DB: base.DB, TLS: base.TLSConfig != nil}).String()
		r.probe = probeWith(base, o)
	} else {
		r.probe = func(ctx context.Context) error { return client.Ping(ctx).Err() }
	}
	if cc, ok := client.(*redis.ClusterClient); ok {
		r.cfg = Config{Topology: TopologyCluster, Addrs: cc.Options().Addrs}
		r.cluster = newClusterGuards(r, cc.Options())
	}
	near, off := nearSetup(o, 0, "", false)
	r.setNear(near, off, nil)
	r.start()
	return r, nil
}

// newTopologyRedis is [NewRedis] for Sentinel and Cluster.
func newTopologyRedis(cfg Config, o Options) (*Redis, error) {
	if len(cfg.Addrs) == 0 {
		if cfg.Addr == "" {
			return nil, fmt.Errorf("resilience: Config.Addrs is empty: %w", ErrInvalidOption)
		}
		cfg.Addrs = []string{cfg.Addr}
	}
	switch cfg.Topology {
	case TopologySentinel:
		if cfg.MasterName == "" {
			return nil, fmt.Errorf("resilience: Config.MasterName is empty (Sentinel): %w", ErrInvalidOption)
		}
		fo := failoverOptions(cfg, o)
		fresh := func() redis.UniversalClient { return redis.NewFailoverClient(cloneFailover(fo)) }
		r := newRedis(o, cfg.String(), true, fresh())
		r.cfg = cfg
		r.fresh = fresh
		r.probe = probeFailover(fo, o)
		near, off := nearSetup(o, cfg.DB, cfg.Username, false)
		r.setNear(near, off, nil)
		r.start()
		return r, nil
	case TopologyCluster:
		co := clusterOptions(cfg, o)
		r := newRedis(o, cfg.String(), true, redis.NewClusterClient(cloneCluster(co)))
		r.cfg = cfg
		r.fresh = func() redis.UniversalClient { return redis.NewClusterClient(cloneCluster(co)) }
		r.probe = probeCluster(co, o)
		r.cluster = newClusterGuards(r, co)
		near, off := nearSetup(o, 0, cfg.Username, false)
		r.setNear(near, off, nil)
		r.start()
		return r, nil
	}
	return nil, fmt.Errorf("resilience: Config.Topology is unknown: %w", ErrInvalidOption)
}

func newRedis(o Options, name string, owned bool, c redis.UniversalClient) *Redis {
	r := &Redis{
		opts:  o,
		log:   o.Logger,
		name:  name,
		owned: owned,
		done:  make(chan struct{}),
		ready: make(chan struct{}),
	}
	ref := &clientRef{c: c}
	_, isCluster := c.(*redis.ClusterClient)
	ref.ready.Store(!isCluster)
	r.client.Store(ref)
	r.guard = r.newGuard("", nil)
	return r
}

// Client returns the go-redis client in use, unguarded, for what the
// guarded methods do not cover (pub/sub, blocking commands). It may be
// replaced by a fresh one after an outage: call Client again rather than
// keeping the result.
func (r *Redis) Client() redis.UniversalClient { return r.client.Load().c }

// String returns the redacted address, as redis://user:***@host:port/db.
func (r *Redis) String() string { return r.name }

// State returns the breaker's current state.
func (r *Redis) State() State { return stateOf(r.cb.State()) }

func (r *Redis) markSuccess() {
	r.st.lastSuccess.Store(r.opts.Now().UnixNano())
	r.readyOnce.Do(func() { close(r.ready) })
}

// WaitReady blocks until Redis has answered once, or ctx ends. It is the
// strict start-up: a program that must not run without Redis calls it
// after [NewRedis] and exits on its error, which names the redacted address
// and the last failure.
func (r *Redis) WaitReady(ctx context.Context) error {
	select {
	case <-r.ready:
		return nil
	case <-r.done:
		return ErrClosed
	case <-ctx.Done():
		if last := r.st.lastErr(); last != "" {
			return fmt.Errorf("redis %s not ready: %w (last error: %s)", r.name, ctx.Err(), last)
		}
		return fmt.Errorf("redis %s not ready: %w", r.name, ctx.Err())
	}
}

// Close stops the prober and waits for it, then closes the client if it
// was built by [NewRedis]. Operations after Close return [ErrClosed].
// Close is safe to call more than once.
func (r *Redis) Close() error {
	r.bgMu.Lock()
	first := r.closed.CompareAndSwap(false, true)
	r.bgMu.Unlock()
	if !first {
		return nil
	}
	close(r.done)
	r.wg.Wait()
	if r.near != nil {
		r.near.disable(nearClosed)
	}
	if r.owned {
		if err := r.client.Load().c.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			return fmt.Errorf("redis close: %w", err)
		}
	}
	return nil
}
