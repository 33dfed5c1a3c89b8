package resilience

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ClusterSlots is the number of hash slots of a Redis Cluster.
const ClusterSlots = 16384

// TopologyStatus is what Sentinel or a cluster says about the deployment
// at one moment, for health checks. Addresses are host:port, never with
// credentials.
type TopologyStatus struct {
	// Topology is the deployment's kind.
	Topology Topology

	// Master is the master's address as Sentinel reports it (Sentinel).
	Master string
	// Sentinels is how many sentinels the configuration names, and
	// SentinelsReachable how many answered (Sentinel).
	Sentinels, SentinelsReachable int
	// Quorum says a reachable sentinel confirmed that enough sentinels
	// are up to authorise a failover (SENTINEL CKQUORUM).
	Quorum bool

	// Nodes are the replicas (Sentinel), or every node (Cluster).
	Nodes []NodeStatus
	// SlotsCovered counts the hash slots served by a master that is not
	// failing (Cluster); [ClusterSlots] when all are.
	SlotsCovered int
}

// NodeStatus is one node of a [TopologyStatus].
type NodeStatus struct {
	Addr string
	// Role is "master" or "replica".
	Role string
	// State is "ok", or what is wrong: "fail", "pfail" (suspected by one
	// node), "disconnected", "down" (Sentinel's s_down or o_down),
	// "handshake".
	State string
	// Breaker is, for a cluster master, the state of its breaker.
	Breaker State
}

// Topology returns the kind of deployment: standalone, Sentinel or
// Cluster (a wrapped *redis.ClusterClient is a cluster).
func (r *Redis) Topology() Topology { return r.cfg.Topology }

// DescribeTopology asks Sentinel (every sentinel, at once) or the cluster
// (CLUSTER NODES, from the first node that answers) how the deployment
// stands. It bypasses the breakers and is bounded by ctx and the dial
// timeout. For a standalone Redis it returns a status with only Topology
// set.
func (r *Redis) DescribeTopology(ctx context.Context) (TopologyStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.DialTimeout)
	defer cancel()
	switch r.cfg.Topology {
	case TopologySentinel:
		return r.describeSentinel(ctx)
	case TopologyCluster:
		return r.describeCluster(ctx)
	}
	return TopologyStatus{}, nil
}

func (r *Redis) describeSentinel(ctx context.Context) (TopologyStatus, error) {
	ts := TopologyStatus{Topology: TopologySentinel, Sentinels: len(r.cfg.Addrs)}
	fo := failoverOptions(r.cfg, r.opts)
	type answer struct {
		master   string
		replicas []map[string]string
		quorum   bool
	}
	answers := make([]*answer, len(r.cfg.Addrs))
	var wg sync.WaitGroup
	for i, addr := range r.cfg.Addrs {
		wg.Go(func() {
			sc := redis.NewSentinelClient(sentinelOptions(fo, addr, r.opts))
			defer func() { _ = sc.Close() }()
			m, err := sc.GetMasterAddrByName(ctx, r.cfg.MasterName).Result()
			if err != nil || len(m) != 2 {
				return
			}
			a := &answer{master: m[0] + ":" + m[1]}
			a.replicas, _ = sc.Replicas(ctx, r.cfg.MasterName).Result()
			a.quorum = sc.CkQuorum(ctx, r.cfg.MasterName).Err() == nil
			answers[i] = a
		})
	}
	wg.Wait()
	var first *answer
	for _, a := range answers {
		if a == nil {
			continue
		}
		ts.SentinelsReachable++
		ts.Quorum = ts.Quorum || a.quorum
		if first == nil {
			first = a
		}
	}
	if first == nil {
		return ts, fmt.Errorf("redis sentinel: none of %d sentinels answered", ts.Sentinels)
	}
	ts.Master = first.master
	for _, rep := range first.replicas {
		n := NodeStatus{Addr: rep["ip"] + ":" + rep["port"], Role: "replica", State: "ok"}
		for _, f := range strings.Split(rep["flags"], ",") {
			switch f {
			case "s_down", "o_down":
				n.State = "down"
			case "disconnected":
				if n.State == "ok" {
					n.State = "disconnected"
				}
			}
		}
		ts.Nodes = append(ts.Nodes, n)
	}
	return ts, nil
}

func (r *Redis) describeCluster(ctx context.Context) (TopologyStatus, error) {
	ts := TopologyStatus{Topology: TopologyCluster}
	cc, ok := r.Client().(*redis.ClusterClient)
	if !ok {
		return ts, errors.New("redis cluster: no cluster client")
	}
	co := cc.Options()
	// Every node go-redis knows from the seeds and the slot map, asked at
	// once: the first answer wins, and a paused node holds nothing up.
	addrs := slices.Clone(co.Addrs)
	if r.cluster != nil {
		for addr := range r.cluster.nodeStates() {
			if !slices.Contains(addrs, addr) {
				addrs = append(addrs, addr)
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	texts := make(chan string, len(addrs))
	var wg sync.WaitGroup
	for _, addr := range addrs {
		wg.Go(func() {
			o := nodeOptions(co, addr, r.opts)
			o.PoolSize = 2 // see probeWith
			c := redis.NewClient(o)
			defer func() { _ = c.Close() }()
			stop := context.AfterFunc(ctx, func() { _ = c.Close() })
			defer stop()
			if text, err := c.ClusterNodes(ctx).Result(); err == nil {
				texts <- text
			}
		})
	}
	go func() { wg.Wait(); close(texts) }()
	text, ok := <-texts
	cancel()
	if !ok {
		return ts, fmt.Errorf("redis cluster: none of %d nodes answered CLUSTER NODES", len(addrs))
	}
	var breakers map[string]State
	if r.cluster != nil {
		breakers = r.cluster.nodeStates()
	}
	ts.Nodes, ts.SlotsCovered = parseClusterNodes(text)
	for i := range ts.Nodes {
		ts.Nodes[i].Breaker = breakers[ts.Nodes[i].Addr]
	}
	return ts, nil
}

// parseClusterNodes reads the text of CLUSTER NODES: the nodes, sorted by
// address, and how many slots a master that is not failing serves.
func parseClusterNodes(text string) ([]NodeStatus, int) {
	var nodes []NodeStatus
	covered := 0
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		n := NodeStatus{Addr: addr, Role: "replica", State: "ok"}
		for _, fl := range strings.Split(f[2], ",") {
			switch fl {
			case "master":
				n.Role = "master"
			case "fail":
				n.State = "fail"
			case "fail?":
				if n.State == "ok" {
					n.State = "pfail"
				}
			case "handshake", "noaddr":
				if n.State == "ok" {
					n.State = fl
				}
			}
		}
		if f[7] == "disconnected" && n.State == "ok" {
			n.State = "disconnected"
		}
		if n.Role == "master" && n.State != "fail" && n.State != "pfail" {
			for _, rg := range f[8:] {
				covered += slotCount(rg)
			}
		}
		nodes = append(nodes, n)
	}
	slices.SortFunc(nodes, func(a, b NodeStatus) int { return strings.Compare(a.Addr, b.Addr) })
	return nodes, min(covered, ClusterSlots)
}

// slotCount is the number of slots in "5", "0-5460"; 0 for a slot being
// migrated ("[...]") or anything malformed.
func slotCount(rg string) int {
	lo, hi, ok := strings.Cut(rg, "-")
	if !ok {
		hi = lo
	}
	a, err1 := strconv.Atoi(lo)
	b, err2 := strconv.Atoi(hi)
	if err1 != nil || err2 != nil || a < 0 || b < a || b >= ClusterSlots {
		return 0
	}
	return b - a + 1
}
