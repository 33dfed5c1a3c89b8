package healthhandler_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/internal/redisproc"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/resilience"
)

// waitReport polls /health (with details) until ok says the report is
// the one wanted, or fails the test after limit.
func waitReport(t *testing.T, h http.Handler, limit time.Duration, ok func(healthhandler.Report) bool) healthhandler.Report {
	t.Helper()
	deadline := time.Now().Add(limit)
	var rep healthhandler.Report
	for time.Now().Before(deadline) {
		rep = decode(t, get(t, h, http.MethodGet, "/health", true).body)
		if ok(rep) {
			return rep
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Failf(t, "report never as wanted", "within %v: %+v", limit, rep)
	return rep
}

// noAddresses fails if the public report names any of addrs.
func noAddresses(t *testing.T, h http.Handler, addrs []string) {
	t.Helper()
	body := string(get(t, h, http.MethodGet, "/health", false).body)
	for _, a := range addrs {
		assert.NotContains(t, body, a, "public report names an address")
	}
}

func TestRedisCheckSentinelTopology(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Sentinel deployment")
	}
	st := redistest.StartSentinel(t, redisproc.SentinelOptions{})
	rdb := newRedis(t, resilience.Config{Topology: resilience.TopologySentinel, MasterName: st.Name, Addrs: st.SentinelAddrs()}, resilience.Options{})
	h := newHandler(t, healthhandler.Options{ShowDetails: showDetails})
	mustAdd(t, h, mustCheck(t)(healthhandler.Redis(rdb, healthhandler.RedisOptions{Interval: 50 * time.Millisecond})))
	master := st.Data[0].Addr()
	rep := waitReport(t, h, 10*time.Second, func(r healthhandler.Report) bool {
		return r.Status == healthhandler.StatusPass && len(r.Checks["redis:master"]) == 1
	})
	assert.Equal(t, master, rep.Checks["redis:master"][0].ComponentID, "redis:master componentId")
	if got := rep.Checks["redis:replicas"]; assert.Len(t, got, 1, "redis:replicas = %+v", got) {
		assert.Equal(t, st.Data[1].Addr(), got[0].ComponentID, "redis:replicas = %+v", got)
		assert.Equal(t, "ok", got[0].ObservedValue, "redis:replicas = %+v", got)
	}
	if got := rep.Checks["redis:sentinels"]; assert.Len(t, got, 1, "redis:sentinels = %+v", got) {
		assert.Equal(t, healthhandler.StatusPass, got[0].Status, "redis:sentinels = %+v", got)
	}
	noAddresses(t, h, append(st.SentinelAddrs(), master, st.Data[1].Addr()))

	// Two sentinels of three gone: no quorum for a failover, a warn.
	st.Sentinels[0].Kill()
	st.Sentinels[1].Kill()
	waitReport(t, h, 10*time.Second, func(r healthhandler.Report) bool {
		s := r.Checks["redis:sentinels"]
		return r.Status == healthhandler.StatusWarn && len(s) == 1 && s[0].Status == healthhandler.StatusWarn &&
			s[0].Output != "" && !strings.Contains(s[0].Output, "127.0.0.1:")
	})
}

func TestRedisCheckClusterTopology(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := redistest.StartCluster(t, redisproc.ClusterOptions{})
	rdb := newRedis(t, resilience.Config{Topology: resilience.TopologyCluster, Addrs: c.Addrs()[:1]}, resilience.Options{})
	for _, critical := range []bool{false, true} {
		h := newHandler(t, healthhandler.Options{ShowDetails: showDetails})
		mustAdd(t, h, mustCheck(t)(healthhandler.Redis(rdb, healthhandler.RedisOptions{Interval: 50 * time.Millisecond, Critical: critical})))
		rep := waitReport(t, h, 10*time.Second, func(r healthhandler.Report) bool {
			return r.Status == healthhandler.StatusPass && len(r.Checks["redis:nodes"]) == 6
		})
		masters := 0
		for _, n := range rep.Checks["redis:nodes"] {
			if v, _ := n.ObservedValue.(map[string]any); v["role"] == "master" && v["state"] == "ok" {
				masters++
			}
		}
		s := rep.Checks["redis:slots"]
		assert.Equal(t, 3, masters, "masters; slots %+v", s)
		if assert.Len(t, s, 1, "slots %+v", s) {
			assert.Equal(t, float64(resilience.ClusterSlots), s[0].ObservedValue.(map[string]any)["covered"], "slots %+v, want all covered", s)
		}
		noAddresses(t, h, c.Addrs())
		_ = h.Close()
	}

	// A master paused, its replica not yet promoted: its slots are not
	// covered, a warn for a cache (the cluster-node-timeout is 500 ms,
	// so the window is short: pause, and look at once).
	h := newHandler(t, healthhandler.Options{ShowDetails: showDetails})
	mustAdd(t, h, mustCheck(t)(healthhandler.Redis(rdb, healthhandler.RedisOptions{Interval: 20 * time.Millisecond})))
	waitReport(t, h, 10*time.Second, func(r healthhandler.Report) bool { return r.Status == healthhandler.StatusPass })
	victim, err := c.MasterFor(context.Background(), 0, "")
	require.NoError(t, err)
	node := c.Node(victim)
	node.Kill()
	waitReport(t, h, 10*time.Second, func(r healthhandler.Report) bool {
		for _, n := range r.Checks["redis:nodes"] {
			if n.ComponentID == victim && n.Status == healthhandler.StatusWarn {
				return r.Status == healthhandler.StatusWarn
			}
		}
		return false
	})
}
