package healthhandler_test

import (
	"context"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	require.NoError(t, err, "NewHeartbeat(%s)", id)
	t.Cleanup(func() { _ = hb.Close() })
	return hb, rdb
}

func workersCount(t *testing.T, h *healthhandler.Handler, details bool) healthhandler.CheckResult {
	t.Helper()
	res := decode(t, get(t, h, http.MethodGet, "/health", details).body).Checks["workers:count"]
	require.Len(t, res, 1, "workers:count = %+v, want one object", res)
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
		require.Equal(t, healthhandler.StatusPass, c.Status, "two workers beating: %+v", c)
		require.Equal(t, float64(2), c.ObservedValue, "two workers beating: %+v", c)
		require.Equal(t, "component", c.ComponentType, "two workers beating: %+v", c)
		require.Empty(t, c.Output, "two workers beating: %+v", c)
		assert.Contains(t, []string{"alive: w2, w1", "alive: w1, w2"}, workersCount(t, h, true).Output, "detailed output, want the live IDs")

		_ = w2.Close() // worker 2 dies: no more beats, and no Close of its heartbeat
		clock.advance(10 * time.Second)
		c = workersCount(t, h, false)
		assert.Equal(t, float64(2), c.ObservedValue, "10 s after w2 died (TTL 15 s): %+v, want still 2", c)
		clock.advance(10 * time.Second)
		c = workersCount(t, h, false)
		assert.Equal(t, healthhandler.StatusFail, c.Status, "20 s after w2 died: %+v", c)
		assert.Equal(t, float64(1), c.ObservedValue, "20 s after w2 died: %+v", c)
		assert.Equal(t, "1 workers alive, want at least 2", c.Output, "20 s after w2 died: %+v", c)
		res := get(t, h, http.MethodGet, "/health", false)
		assert.Equal(t, 200, res.code, "non-critical workers failing: HTTP code")
		assert.Equal(t, healthhandler.StatusWarn, decode(t, res.body).Status, "non-critical workers failing: status")
		assert.NotContains(t, string(res.body), "w1", "public report shows worker IDs")
		assert.NotContains(t, string(res.body), "w2", "public report shows worker IDs")
		assert.Equal(t, "1 workers alive, want at least 2: alive: w1; dead: w2 (20s ago)", workersCount(t, h, true).Output, "detailed output, want live and dead IDs")

		assert.NoError(t, hb1.Close(), "Close w1")
		clock.advance(5 * time.Second)
		c = workersCount(t, h, false)
		assert.Equal(t, float64(0), c.ObservedValue, "after w1 closed: %+v, want 0 at once (Close removes it)", c)
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
			c := workersCount(t, h, false)
			require.Equal(t, healthhandler.StatusPass, c.Status, "after %d s: %+v, want both workers alive", 5*i, c)
			require.Equal(t, float64(2), c.ObservedValue, "after %d s: %+v, want both workers alive", 5*i, c)
			clock.advance(5 * time.Second)
		}
		// The scores are the server's time, not any host's.
		for _, id := range []string{"behind", "ahead"} {
			score, err := m.ZScore(workersKey, id)
			if assert.NoError(t, err, "score of %s", id) {
				assert.WithinDuration(t, clock.now, time.UnixMilli(int64(score)), 5*time.Second, "score of %s, want near the server's time", id)
			}
		}
	})
}

func TestWorkersPrunesLongDead(t *testing.T) {
	m := miniredis.RunT(t)
	newServerClock(m)
	for id, age := range map[string]time.Duration{"fresh": 0, "dead": 10 * time.Minute, "ghost": 3 * time.Hour} {
		_, err := m.ZAdd(workersKey, float64(serverTime.Add(-age).UnixMilli()), id)
		require.NoError(t, err)
	}
	api := newRedis(t, resilience.Config{Addr: m.Addr()}, resilience.Options{})
	h := newHandler(t, healthhandler.Options{ShowDetails: showDetails})
	mustAdd(t, h, mustCheck(t)(healthhandler.Workers(api, healthhandler.WorkersOptions{Key: workersKey})))
	waitChecked(t, h)
	d := workersCount(t, h, true)
	assert.Equal(t, float64(1), d.ObservedValue, "workers:count = %+v, want 1 alive", d)
	assert.Equal(t, "alive: fresh; dead: dead (600s ago)", d.Output, "workers:count = %+v, want dead listed, ghost gone", d)
	members, _ := m.ZMembers(workersKey)
	assert.NotContains(t, members, "ghost", "set after the check, want ghost (3 h) pruned")
	assert.Contains(t, members, "dead", "set after the check, want dead (10 min) kept")
}

func TestWorkersRedisFailing(t *testing.T) {
	m := miniredis.RunT(t)
	m.SetError("READONLY You can't write against a read only replica.")
	api := newRedis(t, resilience.Config{Addr: m.Addr()}, resilience.Options{})
	h := newHandler(t, healthhandler.Options{ShowDetails: showDetails})
	mustAdd(t, h, mustCheck(t)(healthhandler.Workers(api, healthhandler.WorkersOptions{Key: workersKey, Critical: true})))
	waitChecked(t, h)
	res := get(t, h, http.MethodGet, "/health", false)
	c := workersCount(t, h, false)
	assert.Equal(t, 503, res.code, "critical workers with Redis failing: %+v", c)
	assert.Equal(t, healthhandler.StatusFail, c.Status, "critical workers with Redis failing: %+v", c)
	assert.Equal(t, "workers unknown: redis unavailable", c.Output, "critical workers with Redis failing: %+v", c)
	assert.Nil(t, c.ObservedValue, "critical workers with Redis failing: %+v", c)
	assert.Contains(t, workersCount(t, h, true).Output, "READONLY", "detailed output, want the specific error")
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
			_, err := healthhandler.Workers(api, tc.opts)
			assert.ErrorIs(t, err, healthhandler.ErrInvalidOption, "Workers(%+v)", tc.opts)
			assert.ErrorContains(t, err, tc.want, "Workers(%+v)", tc.opts)
		})
	}
}

// TestCloseStopsEveryGoroutine: Close of the handler and of a heartbeat
// leaves no goroutine of theirs behind, even with a check hanging in Run.
func TestCloseStopsEveryGoroutine(t *testing.T) {
	m := miniredis.RunT(t)
	ignore := goleak.IgnoreCurrent()
	rdb, err := resilience.NewRedis(resilience.Config{Addr: m.Addr()}, resilience.Options{Logger: discard(), OpTimeout: time.Second})
	require.NoError(t, err)
	hb, err := resilience.NewHeartbeat(rdb, resilience.HeartbeatOptions{Key: workersKey, Interval: time.Millisecond, Logger: discard()})
	require.NoError(t, err)
	events := newChanges()
	h, err := healthhandler.New(healthhandler.Options{Logger: discard(), OnChange: events.record})
	require.NoError(t, err)
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
		require.NoError(t, h.Add(c), "Add(%q)", c.Name)
	}
	<-started
	seen := 0
	for seen < 2 { // redis and workers have run
		events.wait(t, 0, 10*time.Second, func(healthhandler.Change) bool { return len(events.list()) >= 2 })
		seen = len(events.list())
	}
	assert.NoError(t, h.Close(), "Close")
	assert.NoError(t, hb.Close(), "heartbeat Close")
	assert.NoError(t, rdb.Close(), "redis Close")
	goleak.VerifyNone(t, ignore)
}
