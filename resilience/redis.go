package resilience

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
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

// clientOptions turns cfg into go-redis options that fail fast.
func clientOptions(cfg Config, o Options) *redis.Options {
	network := cfg.Network
	if network == "" {
		network = "tcp"
	}
	ro := &redis.Options{
		Network:               network,
		Addr:                  cfg.Addr,
		Username:              cfg.Username,
		Password:              cfg.Password,
		DB:                    cfg.DB,
		MaxRetries:            -1, // failsafe-go owns retries
		DialerRetries:         1,  // one dial per attempt; the breaker and prober do the rest
		DialTimeout:           o.DialTimeout,
		ContextTimeoutEnabled: true,
		// The pool wait gives up a little before the operation's deadline,
		// so that it reports ErrPoolTimeout (not a Redis failure) rather
		// than the deadline (a failure) when the pool, not Redis, is slow.
		PoolTimeout:     poolTimeout(o.OpTimeout),
		PoolSize:        o.PoolSize,
		DisableIdentity: true, // no CLIENT SETINFO round trip on every new connection
	}
	if cfg.TLS {
		host, _, _ := net.SplitHostPort(cfg.Addr)
		ro.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	if o.Dialer != nil {
		d := o.Dialer
		ro.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := d(ctx, network, addr)
			if err == nil && ro.TLSConfig != nil {
				conn = tls.Client(conn, ro.TLSConfig.Clone())
			}
			return conn, err
		}
	}
	return ro
}

func cloneOptions(o *redis.Options) *redis.Options {
	c := *o
	if o.TLSConfig != nil {
		c.TLSConfig = o.TLSConfig.Clone()
	}
	return &c
}

// probeWith pings with a client of its own, new for every probe, so that
// no pool's dial back-off can delay noticing that Redis is back.
func probeWith(base *redis.Options, o Options) func(ctx context.Context) error {
	po := probeOptions(base, o)
	return func(ctx context.Context) error {
		c := redis.NewClient(cloneOptions(po))
		// go-redis does not watch ctx while it waits for a reply, only its
		// deadline: closing the client is what ends a probe of a hung
		// Redis at once when the Redis is closed.
		stop := context.AfterFunc(ctx, func() { _ = c.Close() })
		defer func() {
			stop()
			_ = c.Close()
		}()
		return c.Ping(ctx).Err()
	}
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

// Client returns the go-redis client in use, unguarded, for what the
// guarded methods do not cover (pub/sub, blocking commands). It may be
// replaced by a fresh one after an outage: call Client again rather than
// keeping the result.
func (r *Redis) Client() redis.UniversalClient { return r.client.Load().c }

// String returns the redacted address, as redis://user:***@host:port/db.
func (r *Redis) String() string { return r.name }

// State returns the breaker's current state.
func (r *Redis) State() State { return stateOf(r.cb.State()) }

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
	if r.near != nil && r.near.serving.Load() {
		// A plain GET: go-redis caches single commands, not pipelines,
		// so this is what fills the near cache. The STRLEN below does not
		// ride along: a large value that times out here counts as a
		// failure, not ErrSlowTransfer, unless its size was noted before.
		err := r.run(ctx, g, trial, "get", true, r.opTimeout(int(known)), func(ctx context.Context, c redis.UniversalClient) error {
			v, err := c.Get(ctx, key).Bytes()
			val = v
			return err
		})
		switch {
		case errors.Is(err, redis.Nil):
			return nil, ErrNotFound
		case err != nil:
			return nil, err // val is not read: an abandoned operation may still set it
		}
		return val, nil
	}
	err = r.run(ctx, g, trial, "get", true, r.opTimeout(int(known)), func(ctx context.Context, c redis.UniversalClient) error {
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
		val, err = get.Bytes()
		if known != 0 && int64(len(val)) != known {
			r.large.note(key, int64(len(val)))
		}
		return err
	})
	switch {
	case errors.Is(err, redis.Nil):
		return nil, ErrNotFound
	case err != nil:
		return nil, err // val is not read: an abandoned operation may still set it
	}
	return val, nil
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
	return r.run(ctx, g, trial, "set", true, r.opTimeout(len(val)), func(ctx context.Context, c redis.UniversalClient) error {
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

// opDo names the operations of [Redis.Do] and [Redis.DoIdempotent].
const opDo = "do"

// execGrace is how long after an operation's deadline failsafe-go's
// executor still waits for the operation's own result.
const execGrace = 25 * time.Millisecond

// isTimeout reports whether err is a deadline that passed, on the context
// or on the socket.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
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
	return r.run(ctx, g, trial, "del", true, r.opts.OpTimeout, func(ctx context.Context, c redis.UniversalClient) error {
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
	err := r.run(ctx, r.guard, false, "ping", true, r.opts.OpTimeout, func(ctx context.Context, c redis.UniversalClient) error {
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
// Sentinel; not yet in a cluster), Do waits for fn to return, since fn
// may write what the caller reads: fn's ctx carries the deadline, which
// go-redis honours on the socket and in the pool.
func (r *Redis) Do(ctx context.Context, fn func(ctx context.Context, c redis.UniversalClient) error) error {
	return r.do(ctx, opDo, false, fn)
}

// DoIdempotent is [Redis.Do] for a fn that is safe to run twice; it is
// retried within the deadline like [Redis.Get].
func (r *Redis) DoIdempotent(ctx context.Context, fn func(ctx context.Context, c redis.UniversalClient) error) error {
	return r.do(ctx, opDo, true, fn)
}

// do is the guard every operation goes through: reject, then run.
func (r *Redis) do(ctx context.Context, op string, idempotent bool, fn func(context.Context, redis.UniversalClient) error) error {
	trial, err := r.reject(r.guard)
	if err != nil {
		return err
	}
	return r.run(ctx, r.guard, trial, op, idempotent, r.opts.OpTimeout, fn)
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

// run executes fn under the deadline, the retry policy (when idempotent)
// and the breaker. Budget: besides the Redis round trip, one context with
// deadline and failsafe-go's execution (a few hundred nanoseconds, some 20
// allocations).
func (r *Redis) run(ctx context.Context, g *guard, trial bool, op string, idempotent bool, timeout time.Duration, fn func(context.Context, redis.UniversalClient) error) error {
	if err := ctx.Err(); err != nil {
		if trial {
			g.trialing.Store(false)
		}
		return err
	}
	if trial {
		return r.runTrial(ctx, g, op, timeout, fn)
	}
	// The operation runs to its own end, whatever the caller does
	// meanwhile: the breaker then judges Redis by what Redis did, never by
	// a caller that left (which could otherwise close a half-open breaker
	// on a Redis still down). go-redis does not stop a socket read on
	// cancellation anyway, so a caller that leaves waits no longer for it.
	// The caller's deadline, when earlier than ours, still applies.
	start := time.Now()
	deadline := start.Add(timeout)
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
	if idempotent {
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
	if op == opDo || r.cluster != nil {
		// The caller's fn may write what the caller reads: Do waits for
		// it, as long as go-redis holds it. So does a cluster's every
		// operation, for now: under load, not waiting there cut the hits
		// on healthy masters while one was killed or paused from 97-99%
		// to 41-85% in the fault matrix, for a reason not yet found.
		err = exec.WithContext(execCtx).Run(attempt)
	} else {
		err = r.bounded(execCtx, func() error { return exec.WithContext(execCtx).Run(attempt) })
	}
	took := time.Since(start)
	r.st.record(took, err)
	r.observe(op, took, err)
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
		return fmt.Errorf("redis %s: %w", op, cerr)
	}
	return fmt.Errorf("redis %s: %w", op, err)
}

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

// poolTimeout is four fifths of the operation deadline, at least 1 ms.
func poolTimeout(op time.Duration) time.Duration {
	return max(op*4/5, time.Millisecond)
}
