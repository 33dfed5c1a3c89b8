package resilience

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
type clusterGuards struct {
	r  *Redis
	co *redis.ClusterOptions // credentials, TLS and dialer for probes

	mu    sync.RWMutex
	nodes map[string]*guard
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
	cg.nodes[addr] = g
	r.bgMu.Lock()
	if !r.closed.Load() {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.guardLoop(g)
		}()
	}
	r.bgMu.Unlock()
	return g
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
	if cg.nodes[g.node] == g {
		delete(cg.nodes, g.node)
	}
	cg.mu.Unlock()
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
	)
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		addr := c.Options().Addr
		g := cg.get(addr)
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
