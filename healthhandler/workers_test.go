package healthhandler_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"go.uber.org/goleak"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/resilience"
)

// serverTime is the Redis server's clock in the workers tests: decades
// from the bubble's (year 2000), so any use of a host clock shows.
var serverTime = time.Date(2031, 5, 17, 9, 30, 0, 0, time.UTC)

const workersKey = "test:workers"

// serverClock moves miniredis's clock and the bubble's together.
type serverClock struct {
	m   *miniredis.Miniredis
	now time.Time
}

func newServerClock(m *miniredis.Miniredis) *serverClock {
	m.SetTime(serverTime)
	return &serverClock{m: m, now: serverTime}
}

// advance lets d pass on both clocks, then waits for the bubble to settle.
func (c *serverClock) advance(d time.Duration) {
	c.now = c.now.Add(d)
	c.m.SetTime(c.now)
	time.Sleep(d)
	synctest.Wait()
}

// startWorker starts a heartbeat on a Redis connection of its own, as a
// worker process would have; closing that connection is the worker dying.
// Both are closed when the test ends.
func startWorker(t *testing.T, m *miniredis.Miniredis, id string, now func() time.Time) (*resilience.Heartbeat, *resilience.Redis) {
	t.Helper()
	rdb := newRedis(t, resilience.Config{Addr: m.Addr()}, resilience.Options{Now: now})
	hb, err := resilience.NewHeartbeat(rdb, resilience.HeartbeatOptions{Key: workersKey, ID: id, Interval: 5 * time.Second, Logger: discard()})
	if err != nil {
		t.Fatalf("NewHeartbeat(%s): %v", id, err)
	}
	t.Cleanup(func() { _ = hb.Close() })
	return hb, rdb
}

func workersCount(t *testing.T, h *healthhandler.Handler, details bool) healthhandler.CheckResult {
	t.Helper()
	res := decode(t, get(t, h, http.MethodGet, "/health", details).body).Checks["workers:count"]
	if len(res) != 1 {
		t.Fatalf("workers:count = %+v, want one object", res)
	}
	return res[0]
}

// TestWorkersDeadAfterTTL: a worker that stops without Close drops out
// once its last beat is older than the TTL, and its ID is shown only to
// callers allowed to see details.
func TestWorkersDeadAfterTTL(t *testing.T) {
	m := miniredis.RunT(t)
	clock := newServerClock(m)
	synctest.Test(t, func(t *testing.T) {
		hb1, _ := startWorker(t, m, "w1", nil)
		hb2, w2 := startWorker(t, m, "w2", nil)
		api := newRedis(t, resilience.Config{Addr: m.Addr()}, resilience.Options{})
		h := newHandler(t, healthhandler.Options{ShowDetails: showDetails})
		mustAdd(t, h, mustCheck(t)(healthhandler.Workers(api, healthhandler.WorkersOptions{Key: workersKey, TTL: 15 * time.Second, Min: 2, Interval: 5 * time.Second})))
		synctest.Wait()

		c := workersCount(t, h, false)
		if c.Status != healthhandler.StatusPass || c.ObservedValue != float64(2) || c.ComponentType != "component" || c.Output != "" {
			t.Fatalf("two workers beating: %+v, want pass with 2", c)
		}
		if d := workersCount(t, h, true); d.Output != "alive: w2, w1" && d.Output != "alive: w1, w2" {
			t.Errorf("detailed output %q, want the live IDs", d.Output)
		}

		_ = w2.Close() // worker 2 dies: no more beats, and no Close of its heartbeat
		clock.advance(10 * time.Second)
		if c := workersCount(t, h, false); c.ObservedValue != float64(2) {
			t.Errorf("10 s after w2 died (TTL 15 s): %+v, want still 2", c)
		}
		clock.advance(10 * time.Second)
		c = workersCount(t, h, false)
		if c.Status != healthhandler.StatusFail || c.ObservedValue != float64(1) || c.Output != "1 workers alive, want at least 2" {
			t.Errorf("20 s after w2 died: %+v, want fail with 1 of 2", c)
		}
		res := get(t, h, http.MethodGet, "/health", false)
		if rep := decode(t, res.body); res.code != 200 || rep.Status != healthhandler.StatusWarn {
			t.Errorf("non-critical workers failing: HTTP %d %q, want 200 warn", res.code, rep.Status)
		}
		if strings.Contains(string(res.body), "w1") || strings.Contains(string(res.body), "w2") {
			t.Errorf("public report shows worker IDs: %s", res.body)
		}
		if d := workersCount(t, h, true); d.Output != "1 workers alive, want at least 2: alive: w1; dead: w2 (20s ago)" {
			t.Errorf("detailed output %q, want live and dead IDs", d.Output)
		}

		if err := hb1.Close(); err != nil {
			t.Errorf("Close w1: %v", err)
		}
		clock.advance(5 * time.Second)
		if c := workersCount(t, h, false); c.ObservedValue != float64(0) {
			t.Errorf("after w1 closed: %+v, want 0 at once (Close removes it)", c)
		}
		settle(h, hb2)
	})
}

// TestWorkersIgnoreHostClocks: hosts whose clocks are minutes apart, from
// each other and from Redis, count the same workers.
func TestWorkersIgnoreHostClocks(t *testing.T) {
	m := miniredis.RunT(t)
	clock := newServerClock(m)
	synctest.Test(t, func(t *testing.T) {
		skewed := func(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }
		startWorker(t, m, "behind", skewed(-3*time.Minute))
		startWorker(t, m, "ahead", skewed(4*time.Minute))
		api := newRedis(t, resilience.Config{Addr: m.Addr()}, resilience.Options{Now: skewed(7 * time.Minute)})
		h := newHandler(t, healthhandler.Options{Now: skewed(7 * time.Minute)})
		mustAdd(t, h, mustCheck(t)(healthhandler.Workers(api, healthhandler.WorkersOptions{Key: workersKey, TTL: 15 * time.Second, Min: 2, Interval: 5 * time.Second})))
		synctest.Wait()
		for i := range 4 {
			if c := workersCount(t, h, false); c.Status != healthhandler.StatusPass || c.ObservedValue != float64(2) {
				t.Fatalf("after %d s: %+v, want both workers alive", 5*i, c)
			}
			clock.advance(5 * time.Second)
		}
		// The scores are the server's time, not any host's.
		for _, id := range []string{"behind", "ahead"} {
			score, err := m.ZScore(workersKey, id)
			if err != nil || time.UnixMilli(int64(score)).Sub(clock.now).Abs() > 5*time.Second {
				t.Errorf("score of %s = %v (%v), want near the server's %v", id, time.UnixMilli(int64(score)), err, clock.now)
			}
		}
	})
}

func TestWorkersPrunesLongDead(t *testing.T) {
	m := miniredis.RunT(t)
	newServerClock(m)
	for id, age := range map[string]time.Duration{"fresh": 0, "dead": 10 * time.Minute, "ghost": 3 * time.Hour} {
		if _, err := m.ZAdd(workersKey, float64(serverTime.Add(-age).UnixMilli()), id); err != nil {
			t.Fatal(err)
		}
	}
	api := newRedis(t, resilience.Config{Addr: m.Addr()}, resilience.Options{})
	h := newHandler(t, healthhandler.Options{ShowDetails: showDetails})
	mustAdd(t, h, mustCheck(t)(healthhandler.Workers(api, healthhandler.WorkersOptions{Key: workersKey})))
	waitChecked(t, h)
	if d := workersCount(t, h, true); d.ObservedValue != float64(1) || d.Output != "alive: fresh; dead: dead (600s ago)" {
		t.Errorf("workers:count = %+v, want 1 alive, dead listed, ghost gone", d)
	}
	members, _ := m.ZMembers(workersKey)
	if slices.Contains(members, "ghost") || !slices.Contains(members, "dead") {
		t.Errorf("set after the check = %v, want ghost (3 h) pruned and dead (10 min) kept", members)
	}
}

func TestWorkersRedisFailing(t *testing.T) {
	m := miniredis.RunT(t)
	m.SetError("READONLY You can't write against a read only replica.")
	api := newRedis(t, resilience.Config{Addr: m.Addr()}, resilience.Options{})
	h := newHandler(t, healthhandler.Options{ShowDetails: showDetails})
	mustAdd(t, h, mustCheck(t)(healthhandler.Workers(api, healthhandler.WorkersOptions{Key: workersKey, Critical: true})))
	waitChecked(t, h)
	res := get(t, h, http.MethodGet, "/health", false)
	if c := workersCount(t, h, false); res.code != 503 || c.Status != healthhandler.StatusFail || c.Output != "workers unknown: redis unavailable" || c.ObservedValue != nil {
		t.Errorf("critical workers with Redis failing: HTTP %d %+v, want 503 and \"workers unknown: redis unavailable\"", res.code, c)
	}
	if d := workersCount(t, h, true); !strings.Contains(d.Output, "READONLY") {
		t.Errorf("detailed output %q, want the specific error", d.Output)
	}
}

func TestWorkersOptionsErrors(t *testing.T) {
	m := miniredis.RunT(t)
	api := newRedis(t, resilience.Config{Addr: m.Addr()}, resilience.Options{})
	tests := []struct {
		name string
		opts healthhandler.WorkersOptions
		want string
	}{
		{"negative TTL", healthhandler.WorkersOptions{TTL: -time.Second}, "negative"},
		{"negative Min", healthhandler.WorkersOptions{Min: -1}, "negative"},
		{"negative PruneAfter", healthhandler.WorkersOptions{PruneAfter: -time.Second}, "negative"},
		{"prune before TTL", healthhandler.WorkersOptions{TTL: time.Minute, PruneAfter: time.Second}, "shorter than TTL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := healthhandler.Workers(api, tc.opts); !errors.Is(err, healthhandler.ErrInvalidOption) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Workers(%+v) = %v, want ErrInvalidOption naming %q", tc.opts, err, tc.want)
			}
		})
	}
}

// TestCloseStopsEveryGoroutine: Close of the handler and of a heartbeat
// leaves no goroutine of theirs behind, even with a check hanging in Run.
func TestCloseStopsEveryGoroutine(t *testing.T) {
	m := miniredis.RunT(t)
	ignore := goleak.IgnoreCurrent()
	rdb, err := resilience.NewRedis(resilience.Config{Addr: m.Addr()}, resilience.Options{Logger: discard(), OpTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	hb, err := resilience.NewHeartbeat(rdb, resilience.HeartbeatOptions{Key: workersKey, Interval: time.Millisecond, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	events := newChanges()
	h, err := healthhandler.New(healthhandler.Options{Logger: discard(), OnChange: events.record})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	for _, c := range []healthhandler.Check{
		mustCheck(t)(healthhandler.Redis(rdb, healthhandler.RedisOptions{Interval: time.Millisecond})),
		mustCheck(t)(healthhandler.Workers(rdb, healthhandler.WorkersOptions{Key: workersKey, Interval: time.Millisecond})),
		{Name: "hang", Timeout: time.Hour, Run: func(ctx context.Context) ([]healthhandler.Observation, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		}},
	} {
		if err := h.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	seen := 0
	for seen < 2 { // redis and workers have run
		events.wait(t, 0, 10*time.Second, func(healthhandler.Change) bool { return len(events.list()) >= 2 })
		seen = len(events.list())
	}
	if err := h.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := hb.Close(); err != nil {
		t.Errorf("heartbeat Close: %v", err)
	}
	if err := rdb.Close(); err != nil {
		t.Errorf("redis Close: %v", err)
	}
	goleak.VerifyNone(t, ignore)
}
