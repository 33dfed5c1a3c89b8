package faultmatrix

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/steadfast-go/steadfast/internal/faultproxy"
	"github.com/steadfast-go/steadfast/internal/loadgen"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/internal/testlog"
)

// The timeline of a phase. The load runs for before+fault+after (plus
// the time inject and clear take), with a fixed number of workers, so
// every phase is bounded in time and in requests.
const (
	warmup        = 300 * time.Millisecond // not part of the baseline
	before        = time.Second
	faultDuration = time.Second
	after         = 2 * time.Second
	workers       = 8
	maxRequests   = 100_000 // per phase, far above what 5 s can send
)

// Bounds. The strict latency and recovery figures are the perf program's
// job; these are ceilings that hold on a loaded 2-core machine under
// -race, yet sit far below the failure signatures the suite is after
// (go-redis's 3 s default read timeout, a 5 s dial, the breaker's 10 s
// fallback delay). Latency is compared with control requests of the same
// span (same work, same machine, no cache), so a machine busy enough to
// slow every request slows both sides alike; a phase that still misses a
// time bound is run once more before it fails.
const (
	// latencyMargin is added to work+opTimeout for the p99 bound: room
	// for -race (5-10x slower code), GC pauses and the scheduling of 8
	// workers, the server, the health poller and redis-server on 2 cores,
	// which the control requests share only in part. 300 ms is still six
	// OpTimeouts, far below a request that waited for Redis without a
	// deadline.
	latencyMargin = 300 * time.Millisecond
	// maxMargin is the same for the slowest single request, which one
	// scheduling stall decides. 2 s still catches every wait that go-redis
	// bounds only by its own defaults (3 s read, 4 s pool wait, 5 s dial)
	// and the breaker's 10 s delay.
	maxMargin = 2 * time.Second
	// resumeBound is DESIGN.md's "1 s worst case" for the first cache
	// operation after Redis answers, plus 1 s for the machine; a hit also
	// needs one miss stored first.
	resumeBound = 2 * time.Second
)

// TestFaultMatrix runs every fault of [faults] under load and prints the
// table.
func TestFaultMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault matrix takes about 75 s; skipped with -short")
	}
	e := newEnv(t)
	var rows []row
	for i, f := range faults() {
		t.Run(f.name, func(t *testing.T) {
			rows = append(rows, runPhase(t, e, i, f))
		})
	}
	tab := table(rows)
	t.Log("fault matrix (latencies measured in the server; \"added\" is beyond the control requests of the same span):\n" + tab)
	switch dest := os.Getenv(tableEnv); dest {
	case "":
	case "1":
		fmt.Print(tab)
	default:
		assert.NoError(t, os.WriteFile(dest, []byte(tab), 0o644), "writing the table to %s=%s", tableEnv, dest)
	}
}

// tableEnv set to 1 prints the table on standard output as well (shown
// by go test -v, or when go test runs in a package directory with no
// package arguments); set to a file name, writes it there.
const tableEnv = "STEADFAST_FAULT_TABLE"

// newEnv starts the servers and the proxy the faults act on.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dataDir: t.TempDir(), password: "pw-" + randomHex(12), rotated: "rot-" + randomHex(12), redisLogs: &testlog.Buffer{}}
	// go-redis logs through a process-wide logger; the suite owns the
	// process, so it takes those lines too, to check them for secrets.
	redis.SetLogger(redisLogger{e.redisLogs})
	e.srv = redistest.Start(t, redistest.Options{Password: e.password, Args: []string{"--dir", e.dataDir}})
	e.master = redistest.Start(t, redistest.Options{})
	p, err := faultproxy.New(e.srv.Addr(), faultproxy.Options{})
	require.NoError(t, err, "proxy")
	t.Cleanup(func() {
		assert.NoError(t, p.Close(), "proxy close")
	})
	e.proxy = p
	e.raw = redis.NewClient(&redis.Options{Addr: e.srv.Addr(), Password: e.password, MaxRetries: -1, DisableIdentity: true})
	t.Cleanup(func() { _ = e.raw.Close() })
	return e
}

// row is one line of the table.
type row struct {
	fault            string
	requests, fiveXX int
	wrong, stale     int
	// p99Control is the p99 of the control requests, which never touch
	// the cache: the machine's own pace. The others are what cached
	// requests took beyond the control requests of the same span.
	p99Control, addedDuring, addedAfter, maxAdded time.Duration
	resume                                        time.Duration // -1: never
	health                                        string
	attempts                                      int
}

// runPhase runs f, once more if the first attempt missed only time
// bounds, reports what the last attempt found and returns its row.
func runPhase(t *testing.T, e *env, i int, f fault) row {
	for attempt := 1; ; attempt++ {
		r, v := attemptPhase(t, e, fmt.Sprintf("fm:%d:%d:", i, attempt), f)
		r.attempts = attempt
		if attempt == 1 && len(v.broken) == 0 && len(v.late) > 0 {
			t.Logf("attempt 1 missed time bounds; running the phase once more (a busy machine misses once, a real fault twice):\n  %s", joinLines(v.late))
			continue
		}
		for _, n := range v.notes {
			t.Log(n)
		}
		for _, b := range v.broken {
			assert.Fail(t, b)
		}
		for _, l := range v.late {
			assert.Fail(t, l)
		}
		return r
	}
}

// attemptPhase builds a fresh stack whose keys start with prefix, puts it
// under load, injects f and checks everything the matrix promises.
func attemptPhase(t *testing.T, e *env, prefix string, f fault) (row, *verdict) {
	v := &verdict{}
	e.t = t
	logs := &testlog.Buffer{}
	e.proxy.SetMode(faultproxy.Pass)
	leaks := goleak.IgnoreCurrent()

	addr := e.srv.Addr()
	if f.viaProxy {
		addr = e.proxy.Addr()
	}
	var clearFault func()
	if f.atStart {
		clearFault = f.inject(e)
	}
	st := newStack(t, addr, e.password, prefix, logs.Text(slog.LevelDebug), f.near)
	e.keys = st.keys
	if !f.atStart {
		ready, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := st.rdb.WaitReady(ready)
		cancel()
		if err != nil {
			_ = st.close()
			require.NoError(t, err, "redis not ready before the fault")
		}
	}

	if f.near {
		waitNear(t, st)
	}
	polls := startHealthPoller(st.srv.URL + "/health")
	var posts atomic.Bool
	posts.Store(!f.noPosts)
	during := faultDuration
	if f.during > 0 {
		during = f.during
	}

	start := time.Now()
	var endAt atomic.Int64 // when the load stops: moved on when clearing takes longer
	endAt.Store(start.Add(before + during + after).UnixNano())
	loadDone := make(chan loadTotals, 1)
	go func() { loadDone <- runLoad(st.srv.URL, &posts, &endAt) }()

	time.Sleep(before)
	injected := time.Now()
	if f.atStart {
		injected = start
	} else {
		clearFault = f.inject(e)
	}
	if clearFault != nil {
		time.Sleep(during)
		clearFault()
	}
	cleared := time.Now()
	endAt.Store(max(endAt.Load(), cleared.Add(after).UnixNano()))
	load := <-loadDone
	end := time.Now()
	polls.stop()
	cs := st.cache.Stats()
	ns := st.rdb.Stats().NearCache
	if err := st.close(); err != nil {
		v.fail("closing the stack: %v", err)
	}
	// Nothing of the stack may run on after Close.
	if err := goleak.Find(leaks, ignoreRedistest, ignorePoolTryDial); err != nil {
		v.fail("goroutines left after Close: %v", err)
	}

	// The load itself.
	if load.err != nil {
		v.fail("load: %v", load.err)
	}
	if load.errors > 0 {
		v.fail("%d requests got no response: %v", load.errors, load.errorText)
	}

	all := st.mon.between(start, end)
	r := row{fault: f.name, requests: len(all), resume: -1}

	// No 5xx, no wrong body.
	var problems, stale []string
	for _, o := range all {
		if o.status >= 500 {
			r.fiveXX++
		}
		if o.problem == "" {
			continue
		}
		r.wrong++
		line := fmt.Sprintf("%+.3fs %s [Cache-Status %q]", o.start.Sub(injected).Seconds(), o.problem, o.cacheStatus)
		if o.stale {
			r.stale++
			if len(stale) < 5 {
				stale = append(stale, line)
			}
		} else if len(problems) < 5 {
			problems = append(problems, line)
		}
	}
	if n := load.serverErrors; n != r.fiveXX {
		v.fail("the load saw %d 5xx, the server wrote %d", n, r.fiveXX)
	}
	if r.fiveXX > 0 {
		v.fail("%d responses with a 5xx status (Redis must never cause one)", r.fiveXX)
	}
	if n := r.wrong - r.stale; n > 0 {
		v.fail("%d wrong responses (%d shown, times from the fault):\n  %s", n, len(problems), joinLines(problems))
	}
	if r.stale > 0 {
		report := v.fail
		if knownBug(bugInvalidationLost) || knownBug(bugInvalidationRace) {
			report = v.note
		}
		report("%d responses older than an invalidation that had completed (%d shown, times from the fault; open bugs %q, %q):\n  %s",
			r.stale, len(stale), bugInvalidationLost, bugInvalidationRace, joinLines(stale))
	}

	// The cache did cache, before the fault.
	base := st.mon.between(start.Add(warmup), injected)
	if hits := countHits(base); !f.atStart && hits == 0 {
		v.slow("no cache hit in the %d requests before the fault: the phase proves nothing (cache stats %+v)", len(base), cs)
	}

	// Latency, against the control requests of the same span: they do the
	// same work on the same machine without the cache, so what the cached
	// requests take beyond them is what the cache and Redis added.
	faulty := st.mon.between(injected, cleared)
	if clearFault == nil { // a single event: watch the same span after it
		faulty = st.mon.between(injected, injected.Add(during))
	}
	afterward := st.mon.between(cleared, end)
	r.p99Control = p99(control(all, true))
	r.addedDuring = p99(control(faulty, false)) - p99(control(faulty, true))
	r.addedAfter = p99(control(afterward, false)) - p99(control(afterward, true))
	r.maxAdded = maxLatency(control(all, false)) - maxLatency(control(all, true))
	bound := work + opTimeout + latencyMargin
	if r.addedDuring > bound {
		v.slow("p99 during the fault is %v above the control requests'; want at most work+OpTimeout+%v = %v", r.addedDuring, latencyMargin, bound)
	}
	if r.addedAfter > bound {
		v.slow("p99 after the fault is %v above the control requests'; want at most work+OpTimeout+%v = %v", r.addedAfter, latencyMargin, bound)
	}
	if ceiling := work + opTimeout + maxMargin; r.maxAdded > ceiling {
		v.slow("the slowest request took %v more than the slowest control request; want at most work+OpTimeout+%v = %v", r.maxAdded, maxMargin, ceiling)
	}

	// The near cache served, and stopped serving when the invalidation
	// stream was lost.
	if f.near {
		if ns.Hits == 0 {
			v.fail("near cache on, yet no hit from process memory (%+v)", ns)
		}
		if f.health != nil && ns.Pauses == 0 {
			v.fail("near cache never paused while Redis was cut off (%+v)", ns)
		}
		if f.health == nil && ns.Flushes == 0 {
			v.fail("near cache saw no flush push (%+v)", ns)
		}
		r.fault += fmt.Sprintf(" [near: %d hits, %d pauses]", ns.Hits, ns.Pauses)
	}

	// Caching resumes without a restart.
	for _, o := range afterward {
		if o.hit() {
			r.resume = o.end.Sub(cleared)
			break
		}
	}
	switch {
	case r.resume < 0:
		v.slow("no cache hit in the %v after the fault cleared (%d requests, cache stats %+v, redis state %v)", end.Sub(cleared).Round(time.Millisecond), len(afterward), cs, st.rdb.State())
	case r.resume > resumeBound:
		v.slow("first cache hit %v after the fault cleared; want at most %v", r.resume, resumeBound)
	}

	// /health reports the fault, without secrets, and recovers.
	r.health = checkHealth(v, polls.results(), f, injected, cleared, e.password, e.rotated)

	// An application that starts without Redis says so, once.
	if f.atStart && !strings.Contains(logs.String(), "level=WARN") {
		v.fail("started with Redis down and logged no warning; logs:\n%s", logs.String())
	}

	// No password in any log line, ours or go-redis's.
	for name, b := range map[string]*testlog.Buffer{"stack": logs, "go-redis": e.redisLogs} {
		if bad := linesWith(b, e.password, e.rotated); len(bad) > 0 {
			v.fail("%d %s log lines hold a password, first: %s", len(bad), name, bad[0])
		}
	}
	if len(v.broken)+len(v.late) > 0 {
		v.note("slowest requests:\n  %s", joinLines(slowest(all, injected, 8)))
		v.note("cache stats %+v; origin calls %d; proxy %+v; load %d requests in %d runs", cs, st.origin.callCount(), e.proxy.Stats(), load.requests, load.runs)
	}
	return r, v
}

// loadSegment is the longest run of the load generator: the load is a
// series of runs, so that it can go on until a fault that took longer to
// clear than planned has been watched for the whole "after" span.
const loadSegment = 500 * time.Millisecond

// loadTotals adds up the load generator's runs of a phase.
type loadTotals struct {
	runs, requests, errors, serverErrors int
	errorText                            map[string]int
	err                                  error
}

// runLoad sends load in runs of at most loadSegment until endAt (unix
// nanoseconds, which may move on meanwhile). Each run ends cleanly: it
// stops starting requests and waits for those in flight.
func runLoad(base string, posts *atomic.Bool, endAt *atomic.Int64) loadTotals {
	tot := loadTotals{errorText: map[string]int{}}
	for sent := 0; sent < maxRequests; {
		left := time.Until(time.Unix(0, endAt.Load()))
		if left <= 0 {
			break
		}
		res, err := loadgen.Run(context.Background(), loadgen.Options{
			Request:     requests(base, posts),
			Connections: workers,
			Duration:    min(left, loadSegment),
			Requests:    maxRequests - sent,
			Timeout:     10 * time.Second,
		})
		tot.runs++
		tot.requests += res.Requests
		tot.errors += res.Errors
		tot.serverErrors += res.ServerErrors()
		for msg, n := range res.ErrorText {
			tot.errorText[msg] += n
		}
		sent += res.Requests + res.Errors
		if err != nil {
			tot.err = err
			break
		}
	}
	return tot
}

// requests spreads the load over every resource, with a HEAD now and then
// and, when posts allows, a POST that bumps the resource's version and
// must invalidate its entry. One request in four is a control request: a
// GET of the same work that does not go through the cache.
func requests(base string, posts *atomic.Bool) func(ctx context.Context, worker int, seq uint64) (*http.Request, error) {
	rs := allResources()
	return func(ctx context.Context, _ int, seq uint64) (*http.Request, error) {
		res := rs[(seq*7)%uint64(len(rs))]
		method := http.MethodGet
		switch {
		case seq%4 == 3:
			res.path = controlPrefix + res.path
		case seq%43 == 11 && posts.Load():
			method = http.MethodPost
		case seq%17 == 5:
			method = http.MethodHead
		}
		req, err := http.NewRequestWithContext(ctx, method, base+res.target(), nil)
		if err != nil {
			return nil, err
		}
		req.Host = res.host
		return req, nil
	}
}

func countHits(os []outcome) int {
	n := 0
	for _, o := range os {
		if o.hit() {
			n++
		}
	}
	return n
}

// control returns the control outcomes of os (want true) or the others.
func control(os []outcome, want bool) []outcome {
	var out []outcome
	for _, o := range os {
		if strings.HasPrefix(o.res.path, controlPrefix) == want {
			out = append(out, o)
		}
	}
	return out
}

func maxLatency(os []outcome) time.Duration {
	var m time.Duration
	for _, o := range os {
		m = max(m, o.latency())
	}
	return m
}

// p99 is the nearest-rank 99th percentile of the outcomes' latencies.
func p99(os []outcome) time.Duration {
	lat := make([]time.Duration, len(os))
	for i, o := range os {
		lat[i] = o.latency()
	}
	slices.Sort(lat)
	return loadgen.Percentile(lat, 0.99)
}

// slowest describes the n slowest outcomes, with times from the fault.
func slowest(os []outcome, injected time.Time, n int) []string {
	s := slices.Clone(os)
	slices.SortFunc(s, func(a, b outcome) int { return cmp.Compare(b.latency(), a.latency()) })
	var out []string
	for _, o := range s[:min(n, len(s))] {
		out = append(out, fmt.Sprintf("%+.3fs %v %s %s [%s]", o.start.Sub(injected).Seconds(), o.latency().Round(time.Millisecond), o.method, o.res.id(), o.cacheStatus))
	}
	return out
}

// table formats the rows.
func table(rows []row) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "fault\trequests\t5xx\twrong bodies\t(stale)\tp99 control\tp99 added (fault)\tp99 added (after)\tmax added\ttime to resume\t/health\truns\t")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
	for _, r := range rows {
		resume := "never"
		if r.resume >= 0 {
			resume = ms(r.resume)
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", r.fault, r.requests, r.fiveXX, r.wrong, r.stale,
			ms(r.p99Control), ms(r.addedDuring), ms(r.addedAfter), ms(r.maxAdded), resume, r.health, r.attempts)
	}
	_ = w.Flush()
	return b.String()
}

func randomHex(n int) string {
	b := randomBytes(nil)
	return fmt.Sprintf("%x", b)[:n]
}
