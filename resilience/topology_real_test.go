package resilience

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/internal/redisproc"
	"github.com/steadfast-go/steadfast/internal/redistest"
)

// topoOpTimeout is the operation deadline of the topology tests: twice
// the default, so that a loaded machine under -race does not fail a
// healthy operation.
const topoOpTimeout = 100 * time.Millisecond

// cacheOp is what the cache does for one key: a SET then a GET that must
// give the value back.
func cacheOp(ctx context.Context, r *Redis, key string) error {
	if err := r.Set(ctx, key, []byte(key), time.Minute); err != nil {
		return err
	}
	v, err := r.Get(ctx, key)
	if err != nil {
		return err
	}
	if string(v) != key {
		return fmt.Errorf("get %q = %q", key, v)
	}
	return nil
}

// drain returns the changes recorded so far.
func (e *events) drain() []StateChange {
	var out []StateChange
	for {
		select {
		case c := <-e.ch:
			out = append(out, c)
		default:
			return out
		}
	}
}

// untilOK runs op every 5 ms until it succeeds and returns when that was,
// or fails the test after limit.
func untilOK(t *testing.T, limit time.Duration, op func() error) time.Time {
	t.Helper()
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		if err = op(); err == nil {
			return time.Now()
		}
		time.Sleep(5 * time.Millisecond)
	}
	require.FailNowf(t, "no success", "no success within %v; last error: %v", limit, err)
	return time.Time{}
}

func TestSentinelFailoverResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("real failovers take seconds")
	}
	st := redistest.StartSentinel(t, redisproc.SentinelOptions{})
	cfg, err := ParseURL("redis://" + st.SentinelAddrs()[0] + "/0?master_name=" + st.Name +
		"&addr=" + st.SentinelAddrs()[1] + "&addr=" + st.SentinelAddrs()[2])
	require.NoError(t, err)
	ev := newEvents()
	r := newTestRedis(t, cfg, Options{OpTimeout: topoOpTimeout, DialTimeout: 500 * time.Millisecond, OnStateChange: ev.record})
	ctx := context.Background()
	untilOK(t, 10*time.Second, func() error { return cacheOp(ctx, r, "k") })

	for _, fault := range []string{"SENTINEL FAILOVER", "kill -9"} {
		old, err := st.MasterAddr(ctx)
		require.NoError(t, err)
		switch fault {
		case "SENTINEL FAILOVER":
			err = st.Failover(ctx)
		default:
			st.Node(old).Kill()
		}
		require.NoError(t, err, "%s", fault)
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		newMaster, known, err := st.WaitNewMaster(wctx, old)
		cancel()
		require.NoError(t, err, "%s", fault)
		// Every operation meanwhile ends within its deadline (plus
		// scheduling slack), and caching resumes with no restart.
		var slowest time.Duration
		back := untilOK(t, 10*time.Second, func() error {
			start := time.Now()
			err := cacheOp(ctx, r, "k")
			slowest = max(slowest, time.Since(start))
			return err
		})
		t.Logf("%s: %s -> %s; cache operations again %v after Sentinel knew the new master; slowest operation %v",
			fault, old, newMaster, back.Sub(known).Round(time.Millisecond), slowest.Round(time.Millisecond))
		assert.LessOrEqual(t, slowest, 2*(2*topoOpTimeout)+time.Second, "%s: the slowest operation", fault)
		assert.Equal(t, cfg.String(), r.Stats().Addr, "Stats().Addr")
		if fault == "kill -9" {
			_ = st.Node(old).Restart(ctx)
		}
	}
}

func TestClusterNodeIsolation(t *testing.T) {
	if testing.Short() {
		t.Skip("real failovers take seconds")
	}
	for _, fault := range []string{"kill -9", "SIGSTOP"} {
		t.Run(fault, func(t *testing.T) {
			c := redistest.StartCluster(t, redisproc.ClusterOptions{})
			cfg, err := ParseClusterURL("redis://" + c.Addrs()[0] + "?addr=" + c.Addrs()[1])
			require.NoError(t, err)
			ev := newEvents()
			r := newTestRedis(t, cfg, Options{OpTimeout: topoOpTimeout, DialTimeout: 500 * time.Millisecond, OnStateChange: ev.record})
			ctx := context.Background()
			keys := make([]string, 60)
			for i := range keys {
				keys[i] = fmt.Sprintf("key:%d", i)
			}
			untilOK(t, 10*time.Second, func() error {
				for _, k := range keys {
					if err := cacheOp(ctx, r, k); err != nil {
						return err
					}
				}
				return nil
			})
			victim, err := c.MasterFor(ctx, redisproc.Slot(keys[0]), "")
			require.NoError(t, err)
			var onVictim, elsewhere []string
			for _, k := range keys {
				m, err := c.MasterFor(ctx, redisproc.Slot(k), "")
				require.NoError(t, err)
				if m == victim {
					onVictim = append(onVictim, k)
				} else {
					elsewhere = append(elsewhere, k)
				}
			}
			node := c.Node(victim)
			if fault == "kill -9" {
				node.Kill()
			} else {
				require.NoError(t, node.Pause())
			}
			t.Cleanup(func() { _ = node.Resume() })

			// Until the replica takes over, keys on the other masters keep
			// working; the victim's keys fail (and soon fail fast).
			promoted := make(chan time.Time, 1)
			go func() {
				wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				_, at, _ := c.WaitPromoted(wctx, redisproc.Slot(keys[0]), victim)
				promoted <- at
			}()
			var okOps, failedOps int
			var at time.Time
		loop:
			for {
				select {
				case at = <-promoted:
					break loop
				default:
				}
				for _, k := range elsewhere {
					if err := cacheOp(ctx, r, k); err != nil {
						failedOps++
						t.Logf("healthy shard failed: %v", err)
					} else {
						okOps++
					}
				}
				_ = cacheOp(ctx, r, onVictim[0])
				time.Sleep(5 * time.Millisecond)
			}
			require.False(t, at.IsZero(), "the replica was not promoted")
			assert.NotZero(t, okOps, "keys on healthy masters: %d ok, %d failed while %s was down", okOps, failedOps, victim)
			assert.LessOrEqual(t, float64(failedOps), 0.05*float64(okOps+failedOps), "keys on healthy masters: %d ok, %d failed while %s was down", okOps, failedOps, victim)
			// The victim's breaker is open, or gone with the node's slots.
			st, ok := r.Stats().Nodes[victim]
			assert.False(t, ok && st == StateClosed, "the victim's breaker is %v after the promotion, want open or dropped", st)
			back := untilOK(t, 10*time.Second, func() error {
				for _, k := range onVictim {
					if err := cacheOp(ctx, r, k); err != nil {
						return err
					}
				}
				return nil
			})
			t.Logf("%s of %s: healthy shards %d ok / %d failed; failed shard cached again %v after the promotion was seen",
				fault, victim, okOps, failedOps, back.Sub(at).Round(time.Millisecond))
			assert.True(t, slices.ContainsFunc(ev.drain(), func(c StateChange) bool { return c.Node == victim && c.To == StateOpen }), "no event of %s's breaker opening", victim)
		})
	}
}

// TestHeartbeatOnCluster: worker heartbeats and the worker count run on a
// cluster: their Lua scripts name one key each.
func TestHeartbeatOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := redistest.StartCluster(t, redisproc.ClusterOptions{})
	r := newTestRedis(t, Config{Topology: TopologyCluster, Addrs: c.Addrs()[:1]}, Options{OpTimeout: time.Second})
	hb, err := NewHeartbeat(r, HeartbeatOptions{ID: "w1", Interval: 20 * time.Millisecond})
	require.NoError(t, err)
	defer func() { _ = hb.Close() }()
	ctx := context.Background()
	untilOK(t, 10*time.Second, func() error {
		ws, err := r.Workers(ctx, DefaultHeartbeatKey, time.Minute)
		if err != nil {
			return err
		}
		if len(ws) != 1 || ws[0].ID != "w1" {
			return fmt.Errorf("workers %+v, want w1", ws)
		}
		return nil
	})
}
