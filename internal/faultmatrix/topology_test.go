package faultmatrix

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/internal/loadgen"
	"github.com/steadfast-go/steadfast/internal/redisproc"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/resilience"
)

// topoSlack is what a request may take, on the server, beyond the
// origin's work, one operation deadline and the time the stall meter saw
// the process not run meanwhile, for scheduling under -race: on this
// 2-core machine shared by up to 8 test runs (load average 15-21), the
// slowest server-side request of a failover round took 125-610 ms in
// all.
const topoSlack = 250 * time.Millisecond

// opSlack is what one Redis operation may hold a request beyond its
// deadline, the 25 ms after it that the guard waits for its own answer
// (then it returns without it), and the time the stall meter saw the
// whole process not run meanwhile: the waiting goroutine's wake-up under
// -race. Measured at load average 15-21: the slowest operation of a
// round 77-101 ms beyond its stall (119-513 ms in all); 529 ms before the
// guard stopped waiting.
const opSlack = 100 * time.Millisecond

// opGrace is how long after its deadline the guard still waits for an
// operation's own answer (resilience's execGrace).
const opGrace = 25 * time.Millisecond

// ignoreResolver: go-redis resolves the made-up address of each failover
// client it builds; the resolver's goroutines outlive the lookup's bound
// where no DNS server answers.
//
// The last three: a go-redis failover client closed while one of its dials
// is asking the sentinels for the master can be handed a sentinel
// connection after it closed (go-redis's MasterAddr race), whose
// +switch-master listener then outlives it. Seen once per few failovers;
// reported, not fixed here.
var ignoreResolver = []goleak.Option{
	goleak.IgnoreAnyFunction("net.(*Resolver).goLookupIPCNAMEOrder.func3.1"),
	goleak.IgnoreAnyFunction("net.(*Resolver).goLookupIPCNAMEOrder.func4"),
	goleak.IgnoreAnyFunction("net.(*Resolver).lookupIPAddr.func2"),
	goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9.(*sentinelFailover).listen"),
	goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9.(*channel).initHealthCheck.func1"),
	goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9.(*channel).initMsgChan.func1"),
}

// topoLoad runs GETs over every resource, round robin, until ctx ends.
func topoLoad(ctx context.Context, s *stack) (loadgen.Result, error) {
	res := allResources()
	return loadgen.Run(ctx, loadgen.Options{
		URL:         s.srv.URL,
		Connections: 4,
		Duration:    time.Hour, // until ctx ends
		Request: func(ctx context.Context, _ int, seq uint64) (*http.Request, error) {
			r := res[seq%uint64(len(res))]
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.srv.URL+r.target(), nil)
			if err == nil {
				req.Host = r.host
			}
			return req, err
		},
		Classify: func(resp *http.Response) string {
			cs := resp.Header.Get("Cache-Status")
			switch {
			case strings.Contains(cs, "; hit"):
				return "hit"
			case strings.Contains(cs, "bypass"):
				return "bypass"
			}
			return "miss:" + resp.Request.Host + resp.Request.URL.RequestURI()
		},
	})
}

// firstHitAfter returns when the first hit started after t (offsets from
// the run's start), or -1.
func firstHitAfter(r loadgen.Result, t time.Duration, match func(loadgen.Sample) bool) time.Duration {
	for _, s := range r.Samples {
		if s.Start >= t && s.Class == "hit" && (match == nil || match(s)) {
			return s.Start
		}
	}
	return -1
}

func percentiles(v []time.Duration) (p50, maxV time.Duration) {
	if len(v) == 0 {
		return 0, 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2], s[len(s)-1]
}

// TestTopologySentinelFailover: SENTINEL FAILOVER and kill -9 of the
// master, twice each, under load through the cache: no 5xx, every
// request bounded by the operation deadline, and caching resumes soon
// after Sentinel knows the new master (p50 and max reported).
func TestTopologySentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("real failovers under load")
	}
	st := redistest.StartSentinel(t, redisproc.SentinelOptions{})
	cfg := resilience.Config{Topology: resilience.TopologySentinel, MasterName: st.Name, Addrs: st.SentinelAddrs()}
	rt := &redisTimer{}
	s := newStackWith(t, cfg, "fm:", slog.New(slog.DiscardHandler), false, rt)
	defer func() { _ = s.close() }()
	stalls := startStallMeter()
	defer stalls.close()
	ctx := context.Background()

	var resumes []time.Duration
	for round, fault := range []string{"SENTINEL FAILOVER", "kill -9", "SENTINEL FAILOVER", "kill -9"} {
		lctx, stop := context.WithCancel(ctx)
		var res loadgen.Result
		var lerr error
		var wg sync.WaitGroup
		wg.Go(func() { res, lerr = topoLoad(lctx, s) })
		time.Sleep(500 * time.Millisecond) // warm: every resource cached
		old, err := st.MasterAddr(ctx)
		require.NoError(t, err)
		started := time.Now()
		if fault == "kill -9" {
			st.Node(old).Kill()
		} else {
			// A failover just done may still be settling: INPROG.
			deadline := time.Now().Add(10 * time.Second)
			for err = st.Failover(ctx); err != nil && time.Now().Before(deadline); err = st.Failover(ctx) {
				time.Sleep(50 * time.Millisecond)
			}
			require.NoError(t, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, known, err := st.WaitNewMaster(wctx, old)
		cancel()
		if err != nil {
			stop()
			wg.Wait()
			require.NoError(t, err, "WaitNewMaster")
		}
		time.Sleep(1500 * time.Millisecond)
		stop()
		wg.Wait()
		if !errors.Is(lerr, context.Canceled) {
			require.NoError(t, lerr, "load")
		}
		if fault == "kill -9" {
			require.NoError(t, st.Node(old).Restart(ctx))
		}
		knownAt := known.Sub(res.Started)
		faultAt := started.Sub(res.Started)
		back := firstHitAfter(res, knownAt, nil)
		if !assert.GreaterOrEqual(t, back, time.Duration(0), "round %d, %s: no hit after Sentinel knew the new master", round, fault) {
			continue
		}
		resumes = append(resumes, back-knownAt)
		var slowest time.Duration
		for _, smp := range res.Between(faultAt, res.Elapsed).Samples {
			slowest = max(slowest, smp.Latency)
		}
		// Every request bounded by the operation deadline: no Redis
		// operation held a request past it, beyond the guard's grace,
		// opSlack and the process's own stall meanwhile; and no request
		// took longer on the server than the origin's work, one
		// deadline, topoSlack and its stall.
		var server, inRedis, slowestOp, opStall, reqStall time.Duration
		var slowReq redisTime
		for _, q := range rt.between(started, res.Started.Add(res.Elapsed)) {
			stall := stalls.stalled(q.start, q.end)
			if d := q.end.Sub(q.start); d-stall > server-reqStall {
				server, reqStall, slowReq = d, stall, q
			}
			inRedis = max(inRedis, q.inRedis)
			st := stalls.stalled(q.slowestAt, q.slowestAt.Add(q.slowestOp))
			if q.slowestOp-st > slowestOp-opStall {
				slowestOp, opStall = q.slowestOp, st
			}
			assert.LessOrEqual(t, q.slowestOp, opTimeout+opGrace+opSlack+st,
				"round %d, %s: a Redis operation held a request %v, want at most OpTimeout+%v+%v+the stall of %v", round, fault, q.slowestOp, opGrace, opSlack, st)
			assert.LessOrEqual(t, q.end.Sub(q.start), work+opTimeout+topoSlack+stall,
				"round %d, %s: a request took %v on the server (%d ops, %v in Redis), want at most work+OpTimeout+%v+the stall of %v", round, fault, q.end.Sub(q.start), q.ops, q.inRedis, topoSlack, stall)
		}
		t.Logf("round %d, %s: server side: slowest request %v beyond its stall (%v, stalled %v; %d ops, %v in Redis); most time in Redis %v; slowest op %v beyond its stall (%v, stalled %v)",
			round, fault, (server - reqStall).Round(time.Millisecond), server.Round(time.Millisecond), reqStall.Round(time.Millisecond), slowReq.ops, slowReq.inRedis.Round(time.Millisecond),
			inRedis.Round(time.Millisecond), (slowestOp - opStall).Round(time.Millisecond), slowestOp.Round(time.Millisecond), opStall.Round(time.Millisecond))
		if st := s.rdb.Stats(); st.Abandoned > 0 {
			t.Logf("round %d, %s: %d operations abandoned at their deadline so far", round, fault, st.Abandoned)
		}
		t.Logf("round %d, %s: new master known %v after the fault; first hit %v after that; slowest request %v; status %v; classes hit %d bypass %d",
			round, fault, (knownAt - faultAt).Round(time.Millisecond), (back - knownAt).Round(time.Millisecond),
			slowest.Round(time.Millisecond), res.Status, res.Classes["hit"], res.Classes["bypass"])
		assert.Zero(t, res.ServerErrors(), "round %d, %s: 5xx", round, fault)
		if res.Errors != 0 {
			t.Logf("round %d: %d requests cut by the end of the load: %v", round, res.Errors, res.ErrorText)
		}
		// As the load generator saw it, the machine's scheduling of its
		// own goroutines and of the loopback connection adds to that
		// (up to 580 ms in all at load average 21): bounded loosely.
		assert.LessOrEqual(t, slowest, time.Second, "round %d, %s: slowest request", round, fault)
	}
	p50, maxR := percentiles(resumes)
	t.Logf("Sentinel: caching resumed after the new master was known: p50 %v, max %v over %d failovers", p50.Round(time.Millisecond), maxR.Round(time.Millisecond), len(resumes))
	assert.LessOrEqual(t, maxR, time.Second, "caching resumed up to %v after Sentinel knew the new master, want at most 1 s", maxR)
}

// TestTopologyClusterNodeFaults: one master killed (kill -9) or paused
// (SIGSTOP) under load: no 5xx, hits for keys on the other masters stay at
// or above 95% throughout, and the failed shard caches again soon after
// its replica is promoted.
func TestTopologyClusterNodeFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("real cluster faults under load")
	}
	for _, fault := range []string{"kill -9", "SIGSTOP"} {
		t.Run(fault, func(t *testing.T) {
			c := redistest.StartCluster(t, redisproc.ClusterOptions{})
			cfg := resilience.Config{Topology: resilience.TopologyCluster, Addrs: c.Addrs()[:2]}
			s := newStackFor(t, cfg, "fm:", slog.New(slog.DiscardHandler), false)
			defer func() { _ = s.close() }()
			ctx := context.Background()

			// Which master serves each resource's entry.
			masterOf := map[string]string{}
			for _, r := range allResources() {
				req := httptest.NewRequest(http.MethodGet, "http://"+r.host+r.target(), nil)
				m, err := c.MasterFor(ctx, redisproc.Slot(cachepolicy.Key(s.prefix, req, s.policy)), "")
				require.NoError(t, err)
				masterOf[r.host+r.target()] = m
			}
			first := allResources()[0]
			victim := masterOf[first.host+first.target()]
			victimSlot := redisproc.Slot(cachepolicy.Key(s.prefix, httptest.NewRequest(http.MethodGet, "http://"+first.host+first.target(), nil), s.policy))

			lctx, stop := context.WithCancel(ctx)
			var res loadgen.Result
			var lerr error
			var wg sync.WaitGroup
			// Samples carry no URL: the victim's resources get a load of
			// their own.
			var vres loadgen.Result
			wg.Go(func() { res, lerr = topoLoadOn(lctx, s, func(k string) bool { return masterOf[k] != victim }) })
			wg.Go(func() { vres, _ = topoLoadOn(lctx, s, func(k string) bool { return masterOf[k] == victim }) })
			time.Sleep(700 * time.Millisecond)
			node := c.Node(victim)
			started := time.Now()
			if fault == "kill -9" {
				node.Kill()
			} else {
				require.NoError(t, node.Pause())
			}
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			_, promoted, err := c.WaitPromoted(wctx, victimSlot, victim)
			cancel()
			assert.NoError(t, err, "WaitPromoted")
			time.Sleep(1500 * time.Millisecond)
			stop()
			wg.Wait()
			_ = node.Resume()
			if !errors.Is(lerr, context.Canceled) {
				require.NoError(t, lerr, "load")
			}
			faultAt := started.Sub(res.Started)
			during := res.Between(faultAt, res.Elapsed)
			hitRatio := float64(during.Classes["hit"]) / float64(max(during.Requests, 1))
			promotedAt := promoted.Sub(vres.Started)
			back := firstHitAfter(vres, promotedAt, nil)
			t.Logf("%s of %s: keys on other masters: %d requests, hit ratio %.3f, status %v; failed shard: first hit %v after the promotion",
				fault, victim, during.Requests, hitRatio, during.Status, (back - promotedAt).Round(time.Millisecond))
			assert.Zero(t, res.ServerErrors()+vres.ServerErrors(), "5xx")
			assert.GreaterOrEqual(t, hitRatio, 0.95, "hit ratio on healthy masters during the fault")
			assert.False(t, promoted.IsZero() || back < 0 || back-promotedAt > time.Second,
				"failed shard cached again %v after the promotion, want at most 1 s", back-promotedAt)
		})
	}
}

// topoLoadOn is topoLoad over the resources whose "host+target" keep says.
func topoLoadOn(ctx context.Context, s *stack, keep func(string) bool) (loadgen.Result, error) {
	var res []resource
	for _, r := range allResources() {
		if keep(r.host + r.target()) {
			res = append(res, r)
		}
	}
	if len(res) == 0 {
		return loadgen.Result{}, nil
	}
	return loadgen.Run(ctx, loadgen.Options{
		URL:         s.srv.URL,
		Connections: 2,
		Duration:    time.Hour,
		Request: func(ctx context.Context, _ int, seq uint64) (*http.Request, error) {
			r := res[seq%uint64(len(res))]
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.srv.URL+r.target(), nil)
			if err == nil {
				req.Host = r.host
			}
			return req, err
		},
		Classify: func(resp *http.Response) string {
			if strings.Contains(resp.Header.Get("Cache-Status"), "; hit") {
				return "hit"
			}
			return "other"
		},
	})
}
