package healthhandler_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/internal/redisproc"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/resilience"
)

// TestWorkersOnSentinelAndCluster: two workers' heartbeats and the
// workers:count check run against a real Sentinel-managed master and a
// real Cluster, and count both workers again after a failover (SENTINEL
// FAILOVER; kill -9 of the cluster master that holds the heartbeat set).
// The heartbeat's scripts name one key each, so a cluster serves them
// from the one slot of the set.
func TestWorkersOnSentinelAndCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Sentinel and Cluster deployments")
	}
	ctx := context.Background()
	for _, topo := range []string{"sentinel", "cluster"} {
		t.Run(topo, func(t *testing.T) {
			var cfg resilience.Config
			var failover func()
			switch topo {
			case "sentinel":
				st := redistest.StartSentinel(t, redisproc.SentinelOptions{})
				cfg = resilience.Config{Topology: resilience.TopologySentinel, MasterName: st.Name, Addrs: st.SentinelAddrs()}
				failover = func() {
					old, err := st.MasterAddr(ctx)
					require.NoError(t, err)
					require.Eventually(t, func() bool { return st.Failover(ctx) == nil }, 10*time.Second, 50*time.Millisecond)
					wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					_, _, err = st.WaitNewMaster(wctx, old)
					require.NoError(t, err)
				}
			case "cluster":
				c := redistest.StartCluster(t, redisproc.ClusterOptions{})
				cfg = resilience.Config{Topology: resilience.TopologyCluster, Addrs: c.Addrs()[:2]}
				failover = func() {
					slot := redisproc.Slot(resilience.DefaultHeartbeatKey)
					victim, err := c.MasterFor(ctx, slot, "")
					require.NoError(t, err)
					c.Node(victim).Kill()
					wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					_, _, err = c.WaitPromoted(wctx, slot, victim)
					require.NoError(t, err)
				}
			}
			rdb := newRedis(t, cfg, resilience.Options{OpTimeout: 200 * time.Millisecond, DialTimeout: time.Second})
			for _, id := range []string{"w1", "w2"} {
				hb, err := resilience.NewHeartbeat(rdb, resilience.HeartbeatOptions{ID: id, Interval: 50 * time.Millisecond})
				require.NoError(t, err)
				t.Cleanup(func() { _ = hb.Close() })
			}
			h, err := healthhandler.New(healthhandler.Options{Logger: discard(), ShowDetails: showDetails})
			require.NoError(t, err)
			t.Cleanup(func() { _ = h.Close() })
			wc, err := healthhandler.Workers(rdb, healthhandler.WorkersOptions{Min: 2, Interval: 50 * time.Millisecond, TTL: time.Second})
			require.NoError(t, err)
			require.NoError(t, h.Add(wc))

			var last []healthhandler.CheckResult
			twoAlive := func() bool {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
				var rep healthhandler.Report
				if json.Unmarshal(rec.Body.Bytes(), &rep) != nil {
					return false
				}
				last = rep.Checks["workers:count"]
				if len(last) != 1 {
					return false
				}
				n, _ := last[0].ObservedValue.(float64)
				return last[0].Status == healthhandler.StatusPass && n == 2
			}
			require.Eventually(t, twoAlive, 15*time.Second, 50*time.Millisecond, "workers:count before the failover")
			failover()
			require.Eventually(t, twoAlive, 15*time.Second, 50*time.Millisecond, "workers:count after the failover")
			t.Logf("%s: workers:count after the failover: %+v", topo, last)
			assert.Equal(t, http.StatusOK, get(t, h, http.MethodGet, "/health", false).code)
		})
	}
}
