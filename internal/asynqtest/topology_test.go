package asynqtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/healthhandler"
	asynqcheck "github.com/steadfast-go/steadfast/healthhandler/asynq"
	"github.com/steadfast-go/steadfast/internal/redisproc"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/resilience"
)

// TestAsynqServersOnSentinelAndCluster counts a real asynq server on a
// real Sentinel-managed master (asynq.RedisFailoverClientOpt) and on a
// real Cluster (asynq.RedisClusterClientOpt), through a resilience.Redis
// of the same topology, and again after a failover: SENTINEL FAILOVER, and
// kill -9 of the cluster master that holds the servers' set. After it, the
// server is seen writing its state to the new master (its expiry moves
// forward there), so the count does not rest on a replicated copy that
// would expire.
func TestAsynqServersOnSentinelAndCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Sentinel and Cluster deployments")
	}
	ctx := context.Background()
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	host, err := os.Hostname()
	require.NoError(t, err)
	want := fmt.Sprintf("alive: %s:%d (concurrency 2, active 0)", host, os.Getpid())
	asynqConfig := asynq.Config{Concurrency: 2, Logger: quiet{}, LogLevel: asynq.FatalLevel}

	for _, topo := range []string{"sentinel", "cluster"} {
		t.Run(topo, func(t *testing.T) {
			var (
				cfg      resilience.Config
				newSrv   func() *asynq.Server
				failover func() (master string, known time.Time)
				// direct is a plain client of one data server.
				direct func(addr string) *redis.Client
			)
			switch topo {
			case "sentinel":
				st := redistest.StartSentinel(t, redisproc.SentinelOptions{})
				cfg = resilience.Config{Topology: resilience.TopologySentinel, MasterName: st.Name, Addrs: st.SentinelAddrs()}
				newSrv = func() *asynq.Server {
					return asynq.NewServer(asynq.RedisFailoverClientOpt{MasterName: st.Name, SentinelAddrs: st.SentinelAddrs()}, asynqConfig)
				}
				failover = func() (string, time.Time) {
					old, err := st.MasterAddr(ctx)
					require.NoError(t, err)
					require.Eventually(t, func() bool { return st.Failover(ctx) == nil }, 10*time.Second, 50*time.Millisecond, "SENTINEL FAILOVER")
					wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					master, known, err := st.WaitNewMaster(wctx, old)
					require.NoError(t, err)
					return master, known
				}
			case "cluster":
				c := redistest.StartCluster(t, redisproc.ClusterOptions{})
				cfg = resilience.Config{Topology: resilience.TopologyCluster, Addrs: c.Addrs()[:2]}
				// asynq.RedisClusterClientOpt leaves go-redis's cluster
				// client to reload its slot map only every 60 s
				// (ClusterStateReloadInterval; it does not reload on
				// "connection refused", go-redis issue 3979): after the kill
				// the server could not write its state for up to a minute,
				// and the check rightly reports it expired. A client of our
				// own reloads every second.
				newSrv = func() *asynq.Server {
					cc := redis.NewClusterClient(&redis.ClusterOptions{
						Addrs:                      c.Addrs()[:2],
						ClusterStateReloadInterval: time.Second,
						// Its cleanup goroutine would outlive Close.
						MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
					})
					t.Cleanup(func() { _ = cc.Close() })
					return asynq.NewServerFromRedisClient(cc, asynqConfig)
				}
				failover = func() (string, time.Time) {
					slot := redisproc.Slot("asynq:servers")
					victim, err := c.MasterFor(ctx, slot, "")
					require.NoError(t, err)
					c.Node(victim).Kill()
					wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					master, known, err := c.WaitPromoted(wctx, slot, victim)
					require.NoError(t, err)
					return master, known
				}
			}
			direct = func(addr string) *redis.Client {
				c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
				t.Cleanup(func() { _ = c.Close() })
				return c
			}

			rdb, err := resilience.NewRedis(cfg, resilience.Options{Logger: discard, OpTimeout: time.Second, DialTimeout: time.Second})
			require.NoError(t, err)
			t.Cleanup(func() { _ = rdb.Close() })
			check, err := asynqcheck.Servers(rdb, asynqcheck.Options{Min: 1})
			require.NoError(t, err)
			var last map[string]healthhandler.Observation
			// count runs the check; Eventually calls it off the test's
			// goroutine, so it only asserts.
			count := func() any {
				obs, err := check.Run(ctx)
				assert.NoError(t, err, "Run")
				last = map[string]healthhandler.Observation{}
				for _, o := range obs {
					last[o.Measurement] = o
				}
				return last["servers"].Value
			}
			require.Equal(t, 0, count(), "no server yet: %+v", last)

			srv := newSrv()
			require.NoError(t, srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })), "start asynq server")
			stopped := false
			t.Cleanup(func() {
				if !stopped {
					srv.Shutdown()
				}
			})

			require.Eventually(t, func() bool { return count() == 1 }, 15*time.Second, 50*time.Millisecond, "one server before the failover: %+v", last)
			assert.Equal(t, healthhandler.StatusPass, last["servers"].Status, "before the failover: %+v", last["servers"])
			assert.Equal(t, want, last["servers"].Detail, "before the failover: %+v", last["servers"])
			assert.Equal(t, int64(2), last["concurrency"].Value, "before the failover: %+v", last["concurrency"])
			assert.Equal(t, 0, last["malformed"].Value, "before the failover: %+v", last["malformed"])

			master, known := failover()
			t.Logf("%s: new master %s", topo, master)
			// The server's state key: its expiry moves forward when the
			// server rewrites it on the new master.
			members, err := direct(master).ZRange(ctx, "asynq:servers", 0, -1).Result()
			require.NoError(t, err, "read the servers' set on the new master")
			require.Len(t, members, 1, "servers' set on the new master")
			// reader reads the state key where it lives now.
			var reader redis.Cmdable = direct(master)
			if topo == "cluster" {
				cc := redis.NewClusterClient(&redis.ClusterOptions{
					Addrs: cfg.Addrs,
					// Its cleanup goroutine would outlive Close.
					MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
				})
				t.Cleanup(func() { _ = cc.Close() })
				reader = cc
			}
			var first time.Duration
			require.Eventually(t, func() bool {
				first, err = reader.PExpireTime(ctx, members[0]).Result()
				return err == nil
			}, 15*time.Second, 50*time.Millisecond, "expiry of the server's state")
			// The check, polled until the server was seen rewriting its
			// state on the new master and counted again; what it said
			// meanwhile is logged.
			seen := map[string]int{}
			rewritten := false
			ok := assert.Eventually(t, func() bool {
				n := count()
				seen[fmt.Sprintf("%v servers, %s", n, last["servers"].Status)]++
				if !rewritten {
					at, err := reader.PExpireTime(ctx, members[0]).Result()
					rewritten = err == nil && at > first
				}
				return rewritten && n == 1
			}, 40*time.Second, 50*time.Millisecond, "one server, rewriting its state on the new master, after the failover: %+v", last)
			require.True(t, ok, "the check said %v", seen)
			t.Logf("%s: counted again %v after the new master was known; meanwhile the check said %v",
				topo, time.Since(known).Round(time.Millisecond), seen)
			assert.Equal(t, healthhandler.StatusPass, last["servers"].Status, "after the failover: %+v", last["servers"])
			assert.Equal(t, want, last["servers"].Detail, "after the failover: %+v", last["servers"])

			srv.Shutdown()
			stopped = true
			require.Eventually(t, func() bool { return count() == 0 }, 15*time.Second, 50*time.Millisecond, "no server after the shutdown: %+v", last)
			assert.Equal(t, healthhandler.StatusFail, last["servers"].Status, "after the shutdown: %+v", last["servers"])
		})
	}
}
