package resilience

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterGuards are the breakers of a cluster's master nodes, by address:
// a failed node stops only the operations on the keys it serves.
//
// A node's guard is made when a key first leads to it. While its breaker
// is open its prober pings the node and, after every failed ping, asks the
// cluster for the slot map: once a replica has taken over the node's
// slots, the guard is dropped and the keys find the new master's guard.
//
// A node can also stop being a master with its breaker closed (a manual
// failover demotes it, a resharding empties it, it is removed): then a
// key leads to a master with no guard yet, and making that guard starts a
// prune, which drops the guard of every node that no longer masters a
// slot. [Redis.Ping] prunes too, with the masters it pinged. So the map
// holds, beyond the current masters, only guards made since the last
// prune: its size is bounded by the cluster's, not by its history.
type clusterGuards struct {
	r  *Redis
	co *redis.ClusterOptions // credentials, TLS and dialer for probes

	mu    sync.RWMutex
	nodes map[string]*guard
	gen   uint64 // guards made so far: a guard's gen is its number

	pruning atomic.Bool // a prune runs
}

func newClusterGuards(r *Redis, co *redis.ClusterOptions) *clusterGuards {
	return &clusterGuards{r: r, co: co, nodes: map[string]*guard{}}
}

// guardFor returns the breaker that guards key: in a cluster, that of the
// master serving the key's hash slot, as go-redis routes it; otherwise,
// and until the cluster client has loaded its slot map, the whole Redis's.
// Budget: go-redis's slot lookup (a CRC16 of the key) and a read-locked
// map lookup; no I/O and no allocation.
func (r *Redis) guardFor(ctx context.Context, key string) *guard {
	if r.cluster == nil {
		return r.guard
	}
	ref := r.client.Load()
	cc, ok := ref.c.(*redis.ClusterClient)
	if !ok || !ref.ready.Load() {
		return r.guard
	}
	// With the slot map loaded, MasterForKey does no I/O.
	node, err := cc.MasterForKey(ctx, key)
	if err != nil {
		return r.guard
	}
	return r.cluster.get(node.Options().Addr)
}

// get returns addr's guard, making it (and starting its prober) when
// there is none.
func (cg *clusterGuards) get(addr string) *guard {
	cg.mu.RLock()
	g := cg.nodes[addr]
	cg.mu.RUnlock()
	if g != nil {
		return g
	}
	cg.mu.Lock()
	defer cg.mu.Unlock()
	if g = cg.nodes[addr]; g != nil {
		return g
	}
	r := cg.r
	probe := probeWith(nodeOptions(cg.co, addr, r.opts), r.opts)
	// A node answers a PING in well under four operation deadlines; a
	// paused one never does, and the prober must get on to asking the
	// cluster whether a replica has taken over.
	limit := min(r.opts.DialTimeout, max(4*r.opts.OpTimeout, 100*time.Millisecond))
	g = r.newGuard(addr, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		return probe(ctx)
	})
	g.gone = make(chan struct{})
	cg.gen++
	g.gen = cg.gen
	cg.nodes[addr] = g
	r.bgMu.Lock()
	if !r.closed.Load() {
		r.wg.Add(2)
		go func() {
			defer r.wg.Done()
			r.guardLoop(g)
		}()
		// A new master may have taken over from one that keeps its
		// guard: prune, in the background (a request made this guard).
		go func() {
			defer r.wg.Done()
			cg.prune()
		}()
	}
	r.bgMu.Unlock()
	return g
}

// prune asks the cluster for its masters and drops the guards of nodes
// that are not among them; one prune at a time (a second one asked for
// meanwhile would see the same masters).
func (cg *clusterGuards) prune() {
	if !cg.pruning.CompareAndSwap(false, true) {
		return
	}
	defer cg.pruning.Store(false)
	cc, ok := cg.r.Client().(*redis.ClusterClient)
	if !ok {
		return
	}
	cg.mu.RLock()
	gen := cg.gen
	cg.mu.RUnlock()
	ctx, cancel := cg.r.probeContext()
	defer cancel()
	masters, err := masterAddrs(ctx, cc)
	if err != nil || len(masters) == 0 {
		return // no word from the cluster: keep every guard
	}
	cg.pruneTo(masters, gen)
}

// pruneTo drops the guards, made no later than guard number gen, of the
// nodes that are not in masters. A guard made after gen is kept: masters
// may be older than the key that led to it.
func (cg *clusterGuards) pruneTo(masters []string, gen uint64) {
	var left []*guard
	cg.mu.Lock()
	for addr, g := range cg.nodes {
		if g.gen <= gen && !slices.Contains(masters, addr) {
			delete(cg.nodes, addr)
			left = append(left, g)
		}
	}
	cg.mu.Unlock()
	for _, g := range left {
		close(g.gone)
		cg.r.log.Info("redis cluster node is no master any more: its breaker is dropped",
			slog.String(logKeyRedis, cg.r.name), slog.String(logKeyNode, g.node))
	}
}

// replaced reports whether g's node no longer masters any slot (a replica
// took over): then it drops g and returns true. It asks the cluster for
// the slot map, which go-redis's client then uses too.
func (cg *clusterGuards) replaced(g *guard) bool {
	cc, ok := cg.r.Client().(*redis.ClusterClient)
	if !ok {
		return false
	}
	// No deadline for the whole reload: go-redis asks the nodes one after
	// the other, and a paused one would use up a shared deadline. Each
	// node's answer is bounded by the client's ReadTimeout instead.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-cg.r.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer cancel()
	masters, err := masterAddrs(ctx, cc)
	if err != nil {
		return false
	}
	for _, m := range masters {
		if m == g.node {
			return false
		}
	}
	cg.mu.Lock()
	mine := cg.nodes[g.node] == g
	if mine {
		delete(cg.nodes, g.node)
	}
	cg.mu.Unlock()
	if !mine {
		return true // a prune dropped it meanwhile
	}
	close(g.gone)
	cg.r.log.Info("redis cluster node serves no slot any more: its keys moved to another master",
		slog.String(logKeyRedis, cg.r.name), slog.String(logKeyNode, g.node))
	return true
}

// masterAddrs reloads the slot map of cc and returns its masters.
func masterAddrs(ctx context.Context, cc *redis.ClusterClient) ([]string, error) {
	var mu sync.Mutex
	var addrs []string
	err := cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		addrs = append(addrs, c.Options().Addr)
		mu.Unlock()
		return nil
	})
	return addrs, err
}

// ping pings every master through its node's guard and returns the
// slowest round trip. It fails only when no master answered.
func (cg *clusterGuards) ping(ctx context.Context) (time.Duration, error) {
	r := cg.r
	cc, ok := r.Client().(*redis.ClusterClient)
	if !ok {
		return 0, ErrUnavailable
	}
	var (
		mu       sync.Mutex
		slowest  time.Duration
		answered int
		errs     []error
		masters  []string
	)
	cg.mu.RLock()
	gen := cg.gen
	cg.mu.RUnlock()
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		addr := c.Options().Addr
		g := cg.get(addr)
		mu.Lock()
		masters = append(masters, addr)
		mu.Unlock()
		var rtt time.Duration
		err := r.rejectOnly(g)
		if err == nil {
			err = r.run(ctx, g, false, operation{name: "ping", idempotent: true, timeout: r.opts.OpTimeout}, func(ctx context.Context, _ redis.UniversalClient) error {
				start := time.Now()
				err := c.Ping(ctx).Err()
				rtt = time.Since(start)
				return err
			})
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", addr, err))
			return nil
		}
		answered++
		slowest = max(slowest, rtt)
		return nil
	})
	if err == nil && len(masters) > 0 {
		cg.pruneTo(masters, gen)
	}
	switch {
	case err != nil:
		return 0, fmt.Errorf("redis ping: %w", err)
	case answered == 0 && len(errs) > 0:
		return 0, errors.Join(errs...)
	case answered == 0:
		return 0, fmt.Errorf("redis ping: %w", ErrUnavailable)
	}
	return slowest, nil
}

// nodeStates returns the breaker state of every node guard, by address.
func (cg *clusterGuards) nodeStates() map[string]State {
	cg.mu.RLock()
	defer cg.mu.RUnlock()
	m := make(map[string]State, len(cg.nodes))
	for addr, g := range cg.nodes {
		m[addr] = g.State()
	}
	return m
}
