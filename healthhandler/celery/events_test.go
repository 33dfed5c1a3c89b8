package celery

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/internal/testlog"
)

func TestCeleryEventObservations(t *testing.T) {
	now := time.Unix(1000, 0)
	alive := Worker{Hostname: "w1@a", Alive: true, Active: 2, Processed: 10, LastHeard: now}
	alive2 := Worker{Hostname: "w2@b", Alive: true, Active: 1, Processed: 5, LastHeard: now}
	off := Worker{Hostname: "w3@c", Offline: true, LastHeard: now.Add(-time.Minute)}
	gone := Worker{Hostname: "w4@d", LastHeard: now.Add(-30 * time.Second)}
	listening := now.Add(-time.Minute)
	tests := []struct {
		name       string
		st         Stats
		min        int
		wantStatus healthhandler.Status
		wantCount  any // nil: no value
		wantOutput string
		wantDetail string
	}{
		{name: "all alive", min: 2, st: Stats{Connected: true, Since: listening, Workers: []Worker{alive, alive2, off, gone}},
			wantStatus: healthhandler.StatusPass, wantCount: 2, wantDetail: "alive: w1@a, w2@b; offline: w3@c; no heartbeat: w4@d (30s ago)"},
		{name: "too few", min: 3, st: Stats{Connected: true, Since: listening, Workers: []Worker{alive, alive2}},
			wantStatus: healthhandler.StatusFail, wantCount: 2, wantOutput: "2 celery workers alive, want at least 3", wantDetail: "alive: w1@a, w2@b"},
		{name: "too few while warming up", min: 1, st: Stats{Connected: true, Since: now.Add(-time.Second)},
			wantStatus: healthhandler.StatusWarn, wantCount: 0, wantOutput: "0 celery workers heard since listening began, want at least 1"},
		{name: "enough while warming up", min: 1, st: Stats{Connected: true, Since: now.Add(-time.Second), Workers: []Worker{alive}},
			wantStatus: healthhandler.StatusPass, wantCount: 1, wantDetail: "alive: w1@a"},
		{name: "not subscribed", st: Stats{LastError: "celery events: subscribe: dial tcp: connection refused", Workers: []Worker{alive}},
			wantStatus: healthhandler.StatusFail, wantOutput: "celery workers unknown: redis unavailable",
			wantDetail: "celery events: subscribe: dial tcp: connection refused; alive: w1@a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs := celeryEventObservations(tc.st, "redis://:***@h:6379/0", tc.min, 4*time.Second, now)
			require.Len(t, obs, 4, "observations")
			w := obs[0]
			assert.Equal(t, "workers", w.Measurement, "workers = %+v", w)
			assert.Equal(t, tc.wantStatus, w.Status, "workers = %+v", w)
			assert.Equal(t, tc.wantCount, w.Value, "workers = %+v", w)
			assert.Equal(t, tc.wantOutput, w.Output, "workers = %+v", w)
			assert.Equal(t, tc.wantDetail, w.Detail, "workers = %+v", w)
			for _, o := range obs {
				assert.Equal(t, tc.wantStatus, o.Status, "%s status", o.Measurement)
			}
		})
	}
	obs := celeryEventObservations(Stats{Connected: true, Since: listening, Workers: []Worker{alive, alive2, off},
		Malformed: 3, LastMalformed: "malformed message: body is not base64"}, "", 0, 4*time.Second, now)
	assert.Equal(t, int64(3), obs[1].Value, "active (live workers only)")
	assert.Equal(t, int64(15), obs[2].Value, "processed (live workers only)")
	assert.Equal(t, uint64(3), obs[3].Value, "malformed = %+v", obs[3])
	assert.Equal(t, "last: malformed message: body is not base64", obs[3].Detail, "malformed = %+v", obs[3])
}

// celeryHarness runs a listener against miniredis.
type celeryHarness struct {
	mr    *miniredis.Miniredis
	ev    *Events
	clock *celeryClock
	sig   celerySignal
}

func newCeleryHarness(t *testing.T, db int, opts Options) *celeryHarness {
	t.Helper()
	mr := miniredis.RunT(t)
	h := &celeryHarness{mr: mr, clock: &celeryClock{t: time.Unix(1795439400, 0)}, sig: newCelerySignal()}
	opts.Now = h.clock.Now
	ev, err := newEvents(celeryTestRedis(t, mr.Addr(), "", db, nil), opts, h.sig.notify)
	require.NoError(t, err, "NewEvents")
	t.Cleanup(func() { _ = ev.Close() })
	h.ev = ev
	h.sig.wait(t, "subscription", func() bool { return ev.Stats().Connected })
	return h
}

// publish sends msg on channel and waits until the listener handled it.
func (h *celeryHarness) publish(t *testing.T, channel, msg string) {
	t.Helper()
	before := h.ev.Stats().Events
	require.Equal(t, 1, h.mr.Publish(channel, msg), "subscribers PUBLISH %s reached", channel)
	h.sig.wait(t, "event on "+channel, func() bool { return h.ev.Stats().Events > before })
}

func (h *celeryHarness) run(t *testing.T) map[string]healthhandler.Observation {
	t.Helper()
	obs, err := h.ev.Check().Run(context.Background())
	require.NoError(t, err, "Run")
	m := map[string]healthhandler.Observation{}
	for _, o := range obs {
		m[o.Measurement] = o
	}
	return m
}

func TestCeleryEventsCountsWorkers(t *testing.T) {
	h := newCeleryHarness(t, 3, Options{Min: 1})
	const ch = "/3.celeryev/worker."
	now := float64(h.clock.Now().Unix())

	obs := h.run(t)
	w := obs["workers"]
	assert.Equal(t, healthhandler.StatusWarn, w.Status, "before any heartbeat, within the warm-up: workers = %+v", w)
	assert.Equal(t, 0, w.Value, "before any heartbeat, within the warm-up: workers = %+v", w)

	h.publish(t, ch+"online", kombuMessage(t, workerEvent("worker-online", "w1@a", 2, 0, 0, now), nil))
	h.publish(t, ch+"heartbeat", kombuMessage(t, workerEvent("worker-heartbeat", "w2@b", 2, 1, 7, now-3), nil))
	h.publish(t, ch+"heartbeat", kombuMessage(t, workerEvent("worker-heartbeat", "w1@a", 2, 2, 4, now), nil))
	obs = h.run(t)
	w = obs["workers"]
	assert.Equal(t, healthhandler.StatusPass, w.Status, "two workers beating: workers = %+v", w)
	assert.Equal(t, 2, w.Value, "two workers beating: workers = %+v", w)
	assert.Equal(t, "alive: w1@a, w2@b", w.Detail, "two workers beating: workers = %+v", w)
	assert.Equal(t, int64(3), obs["active"].Value, "active")
	assert.Equal(t, int64(11), obs["processed"].Value, "processed")
	st := h.ev.Stats()
	if assert.Len(t, st.Workers, 2, "Stats().Workers = %+v", st.Workers) {
		assert.Equal(t, 3*time.Second, st.Workers[1].Skew, "Stats().Workers = %+v; want w2@b with skew 3s", st.Workers)
		assert.Equal(t, 2*time.Second, st.Workers[0].Freq, "Stats().Workers = %+v; want freq 2s", st.Workers)
	}

	// A warm shutdown ends a worker at once.
	h.publish(t, ch+"offline", kombuMessage(t, workerEvent("worker-offline", "w2@b", 2, 0, 7, now), nil))
	w = h.run(t)["workers"]
	assert.Equal(t, 1, w.Value, "after worker-offline: workers = %+v", w)
	assert.Equal(t, "alive: w1@a; offline: w2@b", w.Detail, "after worker-offline: workers = %+v", w)

	// Liveness follows the local clock: alive until two intervals pass.
	h.clock.Advance(4*time.Second - time.Millisecond)
	w = h.run(t)["workers"]
	assert.Equal(t, 1, w.Value, "just before 2×freq: workers = %+v", w)
	h.clock.Advance(time.Millisecond)
	w = h.run(t)["workers"]
	assert.Equal(t, 0, w.Value, "at 2×freq: workers = %+v", w)
	assert.Equal(t, healthhandler.StatusFail, w.Status, "at 2×freq: workers = %+v", w)
	assert.Equal(t, "0 celery workers alive, want at least 1", w.Output, "at 2×freq: workers = %+v", w)

	// Malformed messages are counted and skipped; other channels and
	// other worker event types change nothing.
	h.publish(t, ch+"heartbeat", "not json")
	h.publish(t, ch+"heartbeat", kombuMessage(t, workerEvent("worker-heartbeat", "", 2, 0, 0, now), nil))
	h.publish(t, ch+"custom", kombuMessage(t, map[string]any{"type": "worker-custom", "hostname": "w9@z"}, nil))
	assert.Zero(t, h.mr.Publish("/3.celeryev/task.succeeded", "x"), "subscribers a task event reached")
	assert.Zero(t, h.mr.Publish("/0.celeryev/worker.heartbeat", "x"), "subscribers an event of database 0 reached")
	obs = h.run(t)
	m := obs["malformed"]
	assert.Equal(t, uint64(2), m.Value, "malformed = %+v", m)
	assert.Contains(t, m.Detail, "empty hostname", "malformed = %+v, want the last reason", m)
	st = h.ev.Stats()
	assert.Len(t, st.Workers, 2, "Stats() = %+v, want 2 workers known", st)
	assert.Equal(t, uint64(7), st.Events, "Stats() = %+v, want 7 events", st)

	// Dead workers are forgotten after a while.
	h.clock.Advance(celeryForget + time.Second)
	assert.Empty(t, h.ev.Stats().Workers, "after %v: Stats().Workers, want none", celeryForget)
}

func TestCeleryEventsOptions(t *testing.T) {
	h := newCeleryHarness(t, 0, Options{EventExchange: "ev[1]", KeyPrefix: "app:"})
	h.publish(t, "app:/0.ev[1]/worker.heartbeat", kombuMessage(t, workerEvent("worker-heartbeat", "w1@a", 2, 0, 0, 0), nil))
	w := h.run(t)["workers"]
	assert.Equal(t, 1, w.Value, "with prefix and exchange: workers = %+v", w)
	assert.Zero(t, h.mr.Publish("app:/0.ev1/worker.heartbeat", "x"), "glob characters of the exchange were not escaped: subscribers")

	for _, opts := range []Options{{Min: -1}, {Interval: -time.Second}, {HeartbeatInterval: -1}} {
		_, err := NewEvents(celeryTestRedis(t, h.mr.Addr(), "", 0, nil), opts)
		assert.NotNil(t, err, "NewEvents(%+v): want an error", opts)
	}
	_, err := NewEvents(nil, Options{})
	assert.NotNil(t, err, "NewEvents(nil): want an error")
}

func TestCeleryEventsBoundsWorkers(t *testing.T) {
	h := newCeleryHarness(t, 0, Options{})
	h.ev.mu.Lock()
	for i := range maxCeleryWorkers {
		h.ev.workers[string(rune('a'+i%26))+strings.Repeat("x", i/26)] = &celeryWorker{expires: h.clock.Now().Add(time.Hour)}
	}
	h.ev.mu.Unlock()
	h.publish(t, "/0.celeryev/worker.heartbeat", kombuMessage(t, workerEvent("worker-heartbeat", "one-too-many@a", 2, 0, 0, 0), nil))
	st := h.ev.Stats()
	assert.Len(t, st.Workers, maxCeleryWorkers, "beyond %d workers: workers known", maxCeleryWorkers)
	assert.Equal(t, uint64(1), st.Malformed, "beyond %d workers: malformed (%q)", maxCeleryWorkers, st.LastMalformed)
	assert.Contains(t, st.LastMalformed, "one-too-many", "beyond %d workers: last malformed", maxCeleryWorkers)
}

// TestCeleryEventsReconnect loses Redis under the listener: the check
// fails with the reason, the loss and the return are logged once each,
// and the listener subscribes again by itself.
func TestCeleryEventsReconnect(t *testing.T) {
	const password = "s3cr3t-pa55"
	srv := redistest.Start(t, redistest.Options{Password: password})
	var logs testlog.Buffer
	log := logs.Text(slog.LevelInfo)

	rdb := celeryTestRedis(t, srv.Addr(), password, 0, log)
	sig := newCelerySignal()
	ev, err := newEvents(rdb, Options{Logger: log}, sig.notify)
	require.NoError(t, err)
	sig.wait(t, "subscription", func() bool { return ev.Stats().Connected })
	publish := func() {
		t.Helper()
		before := ev.Stats().Events
		err := rdb.Client().Publish(context.Background(), "/0.celeryev/worker.heartbeat",
			kombuMessage(t, workerEvent("worker-heartbeat", "w1@a", 2, 0, 0, 0), nil)).Err()
		require.NoError(t, err, "publish")
		sig.wait(t, "heartbeat", func() bool { return ev.Stats().Events > before })
	}
	publish()

	srv.Kill()
	sig.wait(t, "loss noticed", func() bool { return !ev.Stats().Connected })
	obs, _ := ev.Check().Run(context.Background())
	w := obs[0]
	assert.Equal(t, healthhandler.StatusFail, w.Status, "with Redis down: workers = %+v", w)
	assert.Equal(t, "celery workers unknown: redis unavailable", w.Output, "with Redis down: workers = %+v", w)
	assert.Contains(t, w.Detail, "celery events:", "with Redis down: workers = %+v", w)
	assert.Nil(t, w.Value, "with Redis down: workers = %+v", w)

	srv.Restart()
	sig.wait(t, "subscribed again", func() bool { return ev.Stats().Connected })
	publish()
	st := ev.Stats()
	assert.Equal(t, uint64(2), st.Events, "after the return: Stats() = %+v", st)
	assert.Empty(t, st.LastError, "after the return: Stats() = %+v", st)

	require.NoError(t, ev.Close())
	assert.NoError(t, ev.Close(), "second Close")

	out := logs.String()
	assert.Len(t, logs.Lines("celery events: not listening"), 1, "want one loss logged, got:\n%s", out)
	assert.Len(t, logs.Lines("celery events: listening again"), 1, "want one return logged, got:\n%s", out)
	assert.NotContains(t, out, password, "the password is in the logs")
}

// TestCeleryEventsCloseWithoutRedis closes a listener that never reached
// Redis, while it waits between attempts.
func TestCeleryEventsCloseWithoutRedis(t *testing.T) {
	rdb := celeryTestRedis(t, "127.0.0.1:1", "", 0, nil)
	sig := newCelerySignal()
	ev, err := newEvents(rdb, Options{}, sig.notify)
	require.NoError(t, err)
	sig.wait(t, "a failed attempt", func() bool { return strings.Contains(ev.Stats().LastError, "subscribe") })
	require.NoError(t, ev.Close()) // celeryTestRedis checks no goroutine is left
}

// TestCeleryNoPasswordInReport serves both Celery checks, with details,
// while Redis is unreachable: the report names the broker without its
// password.
func TestCeleryNoPasswordInReport(t *testing.T) {
	const password = "hunter2-secret"
	mr := miniredis.RunT(t)
	mr.RequireAuth(password)
	rdb := celeryTestRedis(t, mr.Addr(), password, 0, nil)
	h, err := healthhandler.New(healthhandler.Options{ShowDetails: func(*http.Request) bool { return true }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	defer func() { _ = h.Close() }()
	sig := newCelerySignal()
	ev, err := newEvents(rdb, Options{Name: "celery-events", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, sig.notify)
	require.NoError(t, err)
	defer func() { _ = ev.Close() }()
	sig.wait(t, "subscription", func() bool { return ev.Stats().Connected })
	mr.Close() // Redis goes away
	sig.wait(t, "loss noticed", func() bool { return !ev.Stats().Connected })
	for _, c := range []healthhandler.Check{ev.Check(), ping(t, rdb, PingOptions{Name: "celery-ping"})} {
		require.NoError(t, h.Add(c), "Add(%q)", c.Name)
	}
	require.NoError(t, h.WaitChecked(context.Background()))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	body := rec.Body.String()
	assert.NotContains(t, body, password, "the password is in the report")
	for _, want := range []string{`"celery-events:workers"`, `"celery-ping:workers"`, "celery workers unknown: redis unavailable", ":***@"} {
		assert.Contains(t, body, want, "report lacks it")
	}
}
