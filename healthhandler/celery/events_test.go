package celery

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/internal/redistest"
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
			if len(obs) != 4 {
				t.Fatalf("got %d observations, want 4", len(obs))
			}
			w := obs[0]
			if w.Measurement != "workers" || w.Status != tc.wantStatus || w.Value != tc.wantCount || w.Output != tc.wantOutput || w.Detail != tc.wantDetail {
				t.Errorf("workers = %+v\nwant status %s, value %v, output %q, detail %q", w, tc.wantStatus, tc.wantCount, tc.wantOutput, tc.wantDetail)
			}
			for _, o := range obs {
				if o.Status != tc.wantStatus {
					t.Errorf("%s status = %s, want %s", o.Measurement, o.Status, tc.wantStatus)
				}
			}
		})
	}
	obs := celeryEventObservations(Stats{Connected: true, Since: listening, Workers: []Worker{alive, alive2, off},
		Malformed: 3, LastMalformed: "malformed message: body is not base64"}, "", 0, 4*time.Second, now)
	if obs[1].Value != int64(3) || obs[2].Value != int64(15) {
		t.Errorf("active, processed = %v, %v; want 3, 15 (live workers only)", obs[1].Value, obs[2].Value)
	}
	if obs[3].Value != uint64(3) || obs[3].Detail != "last: malformed message: body is not base64" {
		t.Errorf("malformed = %+v", obs[3])
	}
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
	if err != nil {
		t.Fatalf("NewEvents: %v", err)
	}
	t.Cleanup(func() { _ = ev.Close() })
	h.ev = ev
	h.sig.wait(t, "subscription", func() bool { return ev.Stats().Connected })
	return h
}

// publish sends msg on channel and waits until the listener handled it.
func (h *celeryHarness) publish(t *testing.T, channel, msg string) {
	t.Helper()
	before := h.ev.Stats().Events
	if n := h.mr.Publish(channel, msg); n != 1 {
		t.Fatalf("PUBLISH %s reached %d subscribers, want 1", channel, n)
	}
	h.sig.wait(t, "event on "+channel, func() bool { return h.ev.Stats().Events > before })
}

func (h *celeryHarness) run(t *testing.T) map[string]healthhandler.Observation {
	t.Helper()
	obs, err := h.ev.Check().Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
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
	if w := obs["workers"]; w.Status != healthhandler.StatusWarn || w.Value != 0 {
		t.Errorf("before any heartbeat, within the warm-up: workers = %+v, want warn with 0", w)
	}

	h.publish(t, ch+"online", kombuMessage(t, workerEvent("worker-online", "w1@a", 2, 0, 0, now), nil))
	h.publish(t, ch+"heartbeat", kombuMessage(t, workerEvent("worker-heartbeat", "w2@b", 2, 1, 7, now-3), nil))
	h.publish(t, ch+"heartbeat", kombuMessage(t, workerEvent("worker-heartbeat", "w1@a", 2, 2, 4, now), nil))
	obs = h.run(t)
	if w := obs["workers"]; w.Status != healthhandler.StatusPass || w.Value != 2 || w.Detail != "alive: w1@a, w2@b" {
		t.Errorf("two workers beating: workers = %+v", w)
	}
	if obs["active"].Value != int64(3) || obs["processed"].Value != int64(11) {
		t.Errorf("active, processed = %v, %v; want 3, 11", obs["active"].Value, obs["processed"].Value)
	}
	st := h.ev.Stats()
	if len(st.Workers) != 2 || st.Workers[1].Skew != 3*time.Second || st.Workers[0].Freq != 2*time.Second {
		t.Errorf("Stats().Workers = %+v; want w2@b with skew 3s, freq 2s", st.Workers)
	}

	// A warm shutdown ends a worker at once.
	h.publish(t, ch+"offline", kombuMessage(t, workerEvent("worker-offline", "w2@b", 2, 0, 7, now), nil))
	if w := h.run(t)["workers"]; w.Value != 1 || w.Detail != "alive: w1@a; offline: w2@b" {
		t.Errorf("after worker-offline: workers = %+v", w)
	}

	// Liveness follows the local clock: alive until two intervals pass.
	h.clock.Advance(4*time.Second - time.Millisecond)
	if w := h.run(t)["workers"]; w.Value != 1 {
		t.Errorf("just before 2×freq: workers = %+v, want 1", w)
	}
	h.clock.Advance(time.Millisecond)
	if w := h.run(t)["workers"]; w.Value != 0 || w.Status != healthhandler.StatusFail || w.Output != "0 celery workers alive, want at least 1" {
		t.Errorf("at 2×freq: workers = %+v, want fail with 0", w)
	}

	// Malformed messages are counted and skipped; other channels and
	// other worker event types change nothing.
	h.publish(t, ch+"heartbeat", "not json")
	h.publish(t, ch+"heartbeat", kombuMessage(t, workerEvent("worker-heartbeat", "", 2, 0, 0, now), nil))
	h.publish(t, ch+"custom", kombuMessage(t, map[string]any{"type": "worker-custom", "hostname": "w9@z"}, nil))
	if n := h.mr.Publish("/3.celeryev/task.succeeded", "x"); n != 0 {
		t.Errorf("task event reached %d subscribers, want 0", n)
	}
	if n := h.mr.Publish("/0.celeryev/worker.heartbeat", "x"); n != 0 {
		t.Errorf("event of database 0 reached %d subscribers, want 0", n)
	}
	obs = h.run(t)
	if m := obs["malformed"]; m.Value != uint64(2) || !strings.Contains(m.Detail, "empty hostname") {
		t.Errorf("malformed = %+v, want 2 with the last reason", m)
	}
	if st := h.ev.Stats(); len(st.Workers) != 2 || st.Events != 7 {
		t.Errorf("Stats() = %+v, want 2 workers known and 7 events", st)
	}

	// Dead workers are forgotten after a while.
	h.clock.Advance(celeryForget + time.Second)
	if st := h.ev.Stats(); len(st.Workers) != 0 {
		t.Errorf("after %v: Stats().Workers = %+v, want none", celeryForget, st.Workers)
	}
}

func TestCeleryEventsOptions(t *testing.T) {
	h := newCeleryHarness(t, 0, Options{EventExchange: "ev[1]", KeyPrefix: "app:"})
	h.publish(t, "app:/0.ev[1]/worker.heartbeat", kombuMessage(t, workerEvent("worker-heartbeat", "w1@a", 2, 0, 0, 0), nil))
	if w := h.run(t)["workers"]; w.Value != 1 {
		t.Errorf("with prefix and exchange: workers = %+v, want 1", w)
	}
	if n := h.mr.Publish("app:/0.ev1/worker.heartbeat", "x"); n != 0 {
		t.Errorf("glob characters of the exchange were not escaped: %d subscribers", n)
	}

	for _, opts := range []Options{{Min: -1}, {Interval: -time.Second}, {HeartbeatInterval: -1}} {
		if _, err := NewEvents(celeryTestRedis(t, h.mr.Addr(), "", 0, nil), opts); err == nil {
			t.Errorf("NewEvents(%+v) = nil error", opts)
		}
	}
	if _, err := NewEvents(nil, Options{}); err == nil {
		t.Error("NewEvents(nil) = nil error")
	}
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
	if len(st.Workers) != maxCeleryWorkers || st.Malformed != 1 || !strings.Contains(st.LastMalformed, "one-too-many") {
		t.Errorf("beyond %d workers: %d known, malformed %d (%q)", maxCeleryWorkers, len(st.Workers), st.Malformed, st.LastMalformed)
	}
}

// TestCeleryEventsReconnect loses Redis under the listener: the check
// fails with the reason, the loss and the return are logged once each,
// and the listener subscribes again by itself.
func TestCeleryEventsReconnect(t *testing.T) {
	const password = "s3cr3t-pa55"
	srv := redistest.Start(t, redistest.Options{Password: password})
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))

	rdb := celeryTestRedis(t, srv.Addr(), password, 0, log)
	sig := newCelerySignal()
	ev, err := newEvents(rdb, Options{Logger: log}, sig.notify)
	if err != nil {
		t.Fatal(err)
	}
	sig.wait(t, "subscription", func() bool { return ev.Stats().Connected })
	publish := func() {
		t.Helper()
		before := ev.Stats().Events
		if err := rdb.Client().Publish(context.Background(), "/0.celeryev/worker.heartbeat",
			kombuMessage(t, workerEvent("worker-heartbeat", "w1@a", 2, 0, 0, 0), nil)).Err(); err != nil {
			t.Fatalf("publish: %v", err)
		}
		sig.wait(t, "heartbeat", func() bool { return ev.Stats().Events > before })
	}
	publish()

	srv.Kill()
	sig.wait(t, "loss noticed", func() bool { return !ev.Stats().Connected })
	obs, _ := ev.Check().Run(context.Background())
	if w := obs[0]; w.Status != healthhandler.StatusFail || w.Output != "celery workers unknown: redis unavailable" || !strings.Contains(w.Detail, "celery events:") || w.Value != nil {
		t.Errorf("with Redis down: workers = %+v", w)
	}

	srv.Restart()
	sig.wait(t, "subscribed again", func() bool { return ev.Stats().Connected })
	publish()
	if st := ev.Stats(); st.Events != 2 || st.LastError != "" {
		t.Errorf("after the return: Stats() = %+v", st)
	}

	if err := ev.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ev.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	logMu.Lock()
	out := logs.String()
	logMu.Unlock()
	if strings.Count(out, "celery events: not listening") != 1 || strings.Count(out, "celery events: listening again") != 1 {
		t.Errorf("want one loss and one return logged, got:\n%s", out)
	}
	if strings.Contains(out, password) {
		t.Errorf("the password is in the logs:\n%s", out)
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestCeleryEventsCloseWithoutRedis closes a listener that never reached
// Redis, while it waits between attempts.
func TestCeleryEventsCloseWithoutRedis(t *testing.T) {
	rdb := celeryTestRedis(t, "127.0.0.1:1", "", 0, nil)
	sig := newCelerySignal()
	ev, err := newEvents(rdb, Options{}, sig.notify)
	if err != nil {
		t.Fatal(err)
	}
	sig.wait(t, "a failed attempt", func() bool { return strings.Contains(ev.Stats().LastError, "subscribe") })
	if err := ev.Close(); err != nil { // celeryTestRedis checks no goroutine is left
		t.Fatal(err)
	}
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
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Close() }()
	sig := newCelerySignal()
	ev, err := newEvents(rdb, Options{Name: "celery-events", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, sig.notify)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ev.Close() }()
	sig.wait(t, "subscription", func() bool { return ev.Stats().Connected })
	mr.Close() // Redis goes away
	sig.wait(t, "loss noticed", func() bool { return !ev.Stats().Connected })
	for _, c := range []healthhandler.Check{ev.Check(), ping(t, rdb, PingOptions{Name: "celery-ping"})} {
		if err := h.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.WaitChecked(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	body := rec.Body.String()
	if strings.Contains(body, password) {
		t.Errorf("the password is in the report: %s", body)
	}
	for _, want := range []string{`"celery-events:workers"`, `"celery-ping:workers"`, "celery workers unknown: redis unavailable", ":***@"} {
		if !strings.Contains(body, want) {
			t.Errorf("report lacks %s: %s", want, body)
		}
	}
}
