package resilience

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/internal/redisproc"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/internal/testlog"
)

// TestClusterPrunesBreakerOfNodeThatLeft: a master demoted by a manual
// failover (CLUSTER FAILOVER on its replica: no fault, so its breaker
// stays closed and its prober never looks) loses its breaker once a key
// leads to the new master, and Stats and DescribeTopology stop showing
// it; the other masters keep theirs, the very same ones.
func TestClusterPrunesBreakerOfNodeThatLeft(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := redistest.StartCluster(t, redisproc.ClusterOptions{})
	var logs testlog.Buffer
	r := newTestRedis(t, Config{Topology: TopologyCluster, Addrs: c.Addrs()[:2]},
		Options{OpTimeout: topoOpTimeout, Logger: logs.Text(slog.LevelInfo)})
	ctx := context.Background()
	keys := make([]string, 60)
	for i := range keys {
		keys[i] = fmt.Sprintf("key:%d", i)
	}
	allOK := func() error {
		for _, k := range keys {
			if err := cacheOp(ctx, r, k); err != nil {
				return err
			}
		}
		return nil
	}
	untilOK(t, 10*time.Second, allOK)

	victim, err := c.MasterFor(ctx, redisproc.Slot(keys[0]), "")
	require.NoError(t, err)
	nodes, err := c.ClusterNodes(ctx, "")
	require.NoError(t, err)
	var victimID, replica string
	masters := map[string]bool{}
	for _, n := range nodes {
		if n.Master {
			masters[n.Addr] = true
		}
		if n.Addr == victim {
			victimID = n.ID
		}
	}
	for _, n := range nodes {
		if !n.Master && n.MasterID == victimID {
			replica = n.Addr
		}
	}
	require.NotEmpty(t, replica, "no replica of %s in %+v", victim, nodes)
	before := guardsOf(r)
	require.Len(t, before, len(masters), "a breaker per master before the failover")
	for m := range masters {
		require.Contains(t, before, m)
	}

	rc := redis.NewClient(&redis.Options{Addr: replica})
	defer func() { _ = rc.Close() }()
	require.NoError(t, rc.ClusterFailover(ctx).Err(), "CLUSTER FAILOVER on %s", replica)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, _, err = c.WaitPromoted(wctx, redisproc.Slot(keys[0]), victim)
	require.NoError(t, err)

	// Traffic finds the new master; its guard's making prunes the old one.
	require.Eventually(t, func() bool {
		_ = allOK()
		_, still := r.Stats().Nodes[victim]
		_, found := r.Stats().Nodes[replica]
		return !still && found
	}, 20*time.Second, 20*time.Millisecond, "the demoted master's breaker stays: %v", r.Stats().Nodes)

	after := guardsOf(r)
	assert.NotContains(t, after, victim)
	assert.True(t, before[victim].dropped(), "the dropped guard's prober is told to stop")
	for m := range masters {
		if m != victim {
			assert.Same(t, before[m], after[m], "the breaker of %s, still a master, was replaced", m)
		}
	}
	assert.Len(t, after, len(masters), "one breaker per master: %v", r.Stats().Nodes)

	// What /health shows: the node as a replica, with no breaker (every
	// node's CLUSTER NODES learns of the demotion by gossip).
	var ts TopologyStatus
	assert.Eventually(t, func() bool {
		ts, err = r.DescribeTopology(ctx)
		if err != nil {
			return false
		}
		for _, n := range ts.Nodes {
			if n.Addr == victim {
				return n.Role == "replica"
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "the demoted master's role in the topology: %+v (%v)", ts.Nodes, err)
	assert.NotEmpty(t, logs.Lines("no master any more", victim), "the drop is logged:\n%s", logs.String())
	require.NoError(t, allOK(), "caching works on every shard after the prune")
}

// guardsOf returns a copy of r's node guards, by address.
func guardsOf(r *Redis) map[string]*guard {
	r.cluster.mu.RLock()
	defer r.cluster.mu.RUnlock()
	m := make(map[string]*guard, len(r.cluster.nodes))
	for a, g := range r.cluster.nodes {
		m[a] = g
	}
	return m
}
