package healthhandler

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/resilience"
)

// celeryTestRedis guards a client of the Redis at addr. Its operation
// deadline is generous: tests run on loaded machines. When the test ends,
// after the cleanups registered later (closing the client, listeners and
// fakes), no goroutine started from here on may be left.
func celeryTestRedis(t *testing.T, addr, password string, db int, log *slog.Logger) *resilience.Redis {
	t.Helper()
	celeryNoLeaks(t)
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	rdb, err := resilience.NewRedis(resilience.Config{Addr: addr, Password: password, DB: db},
		resilience.Options{Logger: log, OpTimeout: time.Second})
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// celeryNoLeaks fails the test if goroutines started from now on still
// run once the cleanups registered after this call are done. It waits a
// few seconds for them: a go-redis client that failed to dial may sleep
// out a second in a goroutine of its own after it was closed.
func celeryNoLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := goleak.Find(ignore, // it retries for a moment itself
				// Test servers restarted during the test; their own
				// cleanups, which run later, stop them.
				goleak.IgnoreAnyFunction("github.com/alicebob/miniredis/v2/server.(*Server).serve"),
				goleak.IgnoreAnyFunction("github.com/steadfast-go/steadfast/internal/redisproc.reap"))
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Error(err)
				return
			}
		}
	})
}

// celerySignal wakes a waiter; size one, so no wake-up is lost.
type celerySignal chan struct{}

func newCelerySignal() celerySignal { return make(celerySignal, 1) }

func (s celerySignal) notify() {
	select {
	case s <- struct{}{}:
	default:
	}
}

// wait blocks until cond holds, re-checking it at each signal, or fails
// the test after a deadline far beyond what the wait should take.
func (s celerySignal) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-s:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// celeryClock is a settable clock for liveness.
type celeryClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *celeryClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *celeryClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// kombuMessage wraps body as kombu's Redis transport does.
func kombuMessage(t testing.TB, body any, headers map[string]any) string {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	if headers == nil {
		headers = map[string]any{}
	}
	env, err := json.Marshal(map[string]any{
		"body":             base64.StdEncoding.EncodeToString(b),
		"content-encoding": "utf-8",
		"content-type":     "application/json",
		"headers":          headers,
		"properties": map[string]any{
			"delivery_mode": 1, "priority": 0, "body_encoding": "base64",
			"delivery_info": map[string]string{"exchange": "celeryev", "routing_key": "worker.heartbeat"},
			"delivery_tag":  "7f1b32b9-31ab-4aaa-a8ea-f56327745f29",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(env)
}

// workerEvent is a worker event body as Celery 5 sends it.
func workerEvent(typ, host string, freq float64, active, processed int, ts float64) map[string]any {
	return map[string]any{
		"hostname": host, "utcoffset": 0, "pid": 4029, "clock": 2, "freq": freq,
		"active": active, "processed": processed, "loadavg": []float64{0.5, 0.3, 0.1},
		"sw_ident": "py-celery", "sw_ver": "5.2.6", "sw_sys": "Linux",
		"timestamp": ts, "type": typ,
	}
}

func TestDecodeCeleryEvent(t *testing.T) {
	ts := 1795439422.853575
	hb := kombuMessage(t, workerEvent("worker-heartbeat", "w1@vm", 2.0, 3, 12, ts), map[string]any{"hostname": "w1@vm"})
	raw, _ := json.Marshal(map[string]any{
		"body":         `{"hostname": "w2@vm", "type": "worker-online", "freq": 5, "timestamp": 10}`,
		"content-type": "application/json", "properties": map[string]any{},
	})
	tests := []struct {
		name    string
		msg     string
		want    celeryEvent
		wantErr string // substring; empty means no error
	}{
		{name: "heartbeat", msg: hb, want: celeryEvent{
			Type: "worker-heartbeat", Hostname: "w1@vm", Freq: 2 * time.Second, Active: 3, Processed: 12,
			Timestamp: time.Unix(1795439422, 853575000),
		}},
		{name: "online", msg: kombuMessage(t, workerEvent("worker-online", "w1@vm", 0.5, 0, 0, ts), nil),
			want: celeryEvent{Type: "worker-online", Hostname: "w1@vm", Freq: 500 * time.Millisecond, Timestamp: time.Unix(1795439422, 853575000)}},
		{name: "offline needs no freq", msg: kombuMessage(t, map[string]any{"type": "worker-offline", "hostname": "w1@vm"}, nil),
			want: celeryEvent{Type: "worker-offline", Hostname: "w1@vm"}},
		{name: "other type ignored", msg: kombuMessage(t, map[string]any{"type": "worker-custom", "hostname": "w1@vm"}, nil),
			want: celeryEvent{Type: "worker-custom", Hostname: "w1@vm"}},
		{name: "body not base64 encoded", msg: string(raw),
			want: celeryEvent{Type: "worker-online", Hostname: "w2@vm", Freq: 5 * time.Second, Timestamp: time.Unix(10, 0)}},
		{name: "not JSON", msg: "hello", wantErr: "not kombu JSON"},
		{name: "JSON array", msg: "[1,2]", wantErr: "not kombu JSON"},
		{name: "no body", msg: `{"content-type":"application/json"}`, wantErr: "no body"},
		{name: "bad base64", msg: `{"body":"!!!","content-type":"application/json","properties":{"body_encoding":"base64"}}`, wantErr: "not base64"},
		{name: "pickle", msg: `{"body":"gAN9cQAu","content-type":"application/x-python-serialize","properties":{"body_encoding":"base64"}}`, wantErr: "not application/json"},
		{name: "compressed", msg: `{"body":"e30=","content-type":"application/json","headers":{"compression":"application/x-gzip"},"properties":{"body_encoding":"base64"}}`, wantErr: "compressed"},
		{name: "odd body encoding", msg: `{"body":"e30=","content-type":"application/json","properties":{"body_encoding":"rot13"}}`, wantErr: "body encoding"},
		{name: "body not an object", msg: kombuMessage(t, []int{1}, nil), wantErr: "event body"},
		{name: "no hostname", msg: kombuMessage(t, map[string]any{"type": "worker-heartbeat", "freq": 2}, nil), wantErr: "without type or hostname"},
		{name: "empty hostname", msg: kombuMessage(t, workerEvent("worker-heartbeat", "", 2, 0, 0, ts), nil), wantErr: "empty hostname"},
		{name: "control character in hostname", msg: kombuMessage(t, workerEvent("worker-heartbeat", "w1\n@vm", 2, 0, 0, ts), nil), wantErr: "control character"},
		{name: "long hostname", msg: kombuMessage(t, workerEvent("worker-heartbeat", strings.Repeat("h", 300), 2, 0, 0, ts), nil), wantErr: "exceeds"},
		{name: "no freq", msg: kombuMessage(t, map[string]any{"type": "worker-heartbeat", "hostname": "w1@vm"}, nil), wantErr: "without freq"},
		{name: "zero freq", msg: kombuMessage(t, workerEvent("worker-heartbeat", "w1@vm", 0, 0, 0, ts), nil), wantErr: "freq"},
		{name: "huge freq", msg: kombuMessage(t, workerEvent("worker-heartbeat", "w1@vm", 1e300, 0, 0, ts), nil), wantErr: "freq"},
		{name: "negative active", msg: kombuMessage(t, workerEvent("worker-heartbeat", "w1@vm", 2, -1, 0, ts), nil), wantErr: "negative"},
		{name: "fractional count", msg: kombuMessage(t, map[string]any{"type": "worker-heartbeat", "hostname": "w1@vm", "freq": 2, "active": 1.5}, nil), wantErr: "event body"},
		{name: "timestamp out of range", msg: kombuMessage(t, workerEvent("worker-heartbeat", "w1@vm", 2, 0, 0, 1e20), nil), wantErr: "timestamp"},
		{name: "too large", msg: `{"body":"` + strings.Repeat("a", maxCeleryMessage) + `"}`, wantErr: "exceeds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeCeleryEvent([]byte(tc.msg))
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, errMalformed) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("decodeCeleryEvent(%.80q) error = %v, want errMalformed containing %q", tc.msg, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodeCeleryEvent(%.80q): %v", tc.msg, err)
			}
			if got.Timestamp.Sub(tc.want.Timestamp).Abs() > time.Microsecond {
				t.Errorf("Timestamp = %v, want %v", got.Timestamp, tc.want.Timestamp)
			}
			got.Timestamp, tc.want.Timestamp = time.Time{}, time.Time{}
			if got != tc.want {
				t.Errorf("decodeCeleryEvent(%.80q) = %+v, want %+v", tc.msg, got, tc.want)
			}
		})
	}
}

func TestDecodeCeleryReply(t *testing.T) {
	const ticket = "d3a42f23-c61b-4f5a-bc28-802046afb142"
	tests := []struct {
		name    string
		msg     string
		want    []string
		wantErr error
	}{
		{name: "pong", msg: kombuMessage(t, map[string]any{"w1@vm": map[string]string{"ok": "pong"}}, map[string]any{"ticket": ticket, "clock": 3}), want: []string{"w1@vm"}},
		{name: "error reply still answers", msg: kombuMessage(t, map[string]any{"w1@vm": map[string]string{"error": "x"}}, map[string]any{"ticket": ticket}), want: []string{"w1@vm"}},
		{name: "other ticket", msg: kombuMessage(t, map[string]any{"w1@vm": map[string]string{"ok": "pong"}}, map[string]any{"ticket": "other"}), wantErr: errStrayReply},
		{name: "no ticket", msg: kombuMessage(t, map[string]any{"w1@vm": map[string]string{"ok": "pong"}}, nil), wantErr: errStrayReply},
		{name: "ticket not a string", msg: kombuMessage(t, map[string]any{"w1@vm": map[string]string{"ok": "pong"}}, map[string]any{"ticket": 7}), wantErr: errMalformed},
		{name: "empty", msg: kombuMessage(t, map[string]any{}, map[string]any{"ticket": ticket}), wantErr: errMalformed},
		{name: "not an object", msg: kombuMessage(t, "pong", map[string]any{"ticket": ticket}), wantErr: errMalformed},
		{name: "value not an object", msg: kombuMessage(t, map[string]any{"w1@vm": "pong"}, map[string]any{"ticket": ticket}), wantErr: errMalformed},
		{name: "bad hostname", msg: kombuMessage(t, map[string]any{"": map[string]string{}}, map[string]any{"ticket": ticket}), wantErr: errMalformed},
		{name: "garbage", msg: "\x00\x01", wantErr: errMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeCeleryReply([]byte(tc.msg), ticket)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("decodeCeleryReply(%.80q) error = %v, want %v", tc.msg, err, tc.wantErr)
				}
				return
			}
			if err != nil || strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("decodeCeleryReply(%.80q) = %q, %v; want %q", tc.msg, got, err, tc.want)
			}
		})
	}
}

// TestEncodeCeleryPing checks the ping against what kombu's mailbox
// publishes (as seen on a real broker): the envelope decodes, and the body
// names the method, the ticket and where to reply.
func TestEncodeCeleryPing(t *testing.T) {
	expires := time.Unix(1795439421, 725568000)
	msg, err := encodeCeleryPing("celery.pidbox", "reply.celery.pidbox", "oid-1", "ticket-1", "tag-1", expires)
	if err != nil {
		t.Fatal(err)
	}
	body, h, err := decodeKombuEnvelope(msg)
	if err != nil {
		t.Fatalf("decodeKombuEnvelope(ping): %v", err)
	}
	if h.Ticket != "" {
		t.Errorf("ping carries header ticket %q; kombu puts it in the body", h.Ticket)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"method": "ping", "arguments": map[string]any{}, "destination": nil, "pattern": nil, "matcher": nil,
		"ticket": "ticket-1", "reply_to": map[string]any{"exchange": "reply.celery.pidbox", "routing_key": "oid-1"},
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("ping body = %s, want %s", gotJSON, wantJSON)
	}
	var env map[string]any
	_ = json.Unmarshal(msg, &env)
	if exp := env["headers"].(map[string]any)["expires"].(float64); exp != 1795439421.725568 {
		t.Errorf("expires header = %v, want 1795439421.725568", exp)
	}
	props := env["properties"].(map[string]any)
	if props["delivery_tag"] != "tag-1" || props["body_encoding"] != "base64" {
		t.Errorf("properties = %v", props)
	}
}

func TestCeleryEventObservations(t *testing.T) {
	now := time.Unix(1000, 0)
	alive := CeleryWorker{Hostname: "w1@a", Alive: true, Active: 2, Processed: 10, LastHeard: now}
	alive2 := CeleryWorker{Hostname: "w2@b", Alive: true, Active: 1, Processed: 5, LastHeard: now}
	off := CeleryWorker{Hostname: "w3@c", Offline: true, LastHeard: now.Add(-time.Minute)}
	gone := CeleryWorker{Hostname: "w4@d", LastHeard: now.Add(-30 * time.Second)}
	listening := now.Add(-time.Minute)
	tests := []struct {
		name       string
		st         CeleryStats
		min        int
		wantStatus Status
		wantCount  any // nil: no value
		wantOutput string
		wantDetail string
	}{
		{name: "all alive", min: 2, st: CeleryStats{Connected: true, Since: listening, Workers: []CeleryWorker{alive, alive2, off, gone}},
			wantStatus: StatusPass, wantCount: 2, wantDetail: "alive: w1@a, w2@b; offline: w3@c; no heartbeat: w4@d (30s ago)"},
		{name: "too few", min: 3, st: CeleryStats{Connected: true, Since: listening, Workers: []CeleryWorker{alive, alive2}},
			wantStatus: StatusFail, wantCount: 2, wantOutput: "2 celery workers alive, want at least 3", wantDetail: "alive: w1@a, w2@b"},
		{name: "too few while warming up", min: 1, st: CeleryStats{Connected: true, Since: now.Add(-time.Second)},
			wantStatus: StatusWarn, wantCount: 0, wantOutput: "0 celery workers heard since listening began, want at least 1"},
		{name: "enough while warming up", min: 1, st: CeleryStats{Connected: true, Since: now.Add(-time.Second), Workers: []CeleryWorker{alive}},
			wantStatus: StatusPass, wantCount: 1, wantDetail: "alive: w1@a"},
		{name: "not subscribed", st: CeleryStats{LastError: "celery events: subscribe: dial tcp: connection refused", Workers: []CeleryWorker{alive}},
			wantStatus: StatusFail, wantOutput: "celery workers unknown: redis unavailable",
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
	obs := celeryEventObservations(CeleryStats{Connected: true, Since: listening, Workers: []CeleryWorker{alive, alive2, off},
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
	ev    *CeleryEvents
	clock *celeryClock
	sig   celerySignal
}

func newCeleryHarness(t *testing.T, db int, opts CeleryOptions) *celeryHarness {
	t.Helper()
	mr := miniredis.RunT(t)
	h := &celeryHarness{mr: mr, clock: &celeryClock{t: time.Unix(1795439400, 0)}, sig: newCelerySignal()}
	opts.Now = h.clock.Now
	ev, err := newCeleryEvents(celeryTestRedis(t, mr.Addr(), "", db, nil), opts, h.sig.notify)
	if err != nil {
		t.Fatalf("NewCeleryEvents: %v", err)
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

func (h *celeryHarness) run(t *testing.T) map[string]Observation {
	t.Helper()
	obs, err := h.ev.Check().Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	m := map[string]Observation{}
	for _, o := range obs {
		m[o.Measurement] = o
	}
	return m
}

func TestCeleryEventsCountsWorkers(t *testing.T) {
	h := newCeleryHarness(t, 3, CeleryOptions{Min: 1})
	const ch = "/3.celeryev/worker."
	now := float64(h.clock.Now().Unix())

	obs := h.run(t)
	if w := obs["workers"]; w.Status != StatusWarn || w.Value != 0 {
		t.Errorf("before any heartbeat, within the warm-up: workers = %+v, want warn with 0", w)
	}

	h.publish(t, ch+"online", kombuMessage(t, workerEvent("worker-online", "w1@a", 2, 0, 0, now), nil))
	h.publish(t, ch+"heartbeat", kombuMessage(t, workerEvent("worker-heartbeat", "w2@b", 2, 1, 7, now-3), nil))
	h.publish(t, ch+"heartbeat", kombuMessage(t, workerEvent("worker-heartbeat", "w1@a", 2, 2, 4, now), nil))
	obs = h.run(t)
	if w := obs["workers"]; w.Status != StatusPass || w.Value != 2 || w.Detail != "alive: w1@a, w2@b" {
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
	if w := h.run(t)["workers"]; w.Value != 0 || w.Status != StatusFail || w.Output != "0 celery workers alive, want at least 1" {
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
	h := newCeleryHarness(t, 0, CeleryOptions{EventExchange: "ev[1]", KeyPrefix: "app:"})
	h.publish(t, "app:/0.ev[1]/worker.heartbeat", kombuMessage(t, workerEvent("worker-heartbeat", "w1@a", 2, 0, 0, 0), nil))
	if w := h.run(t)["workers"]; w.Value != 1 {
		t.Errorf("with prefix and exchange: workers = %+v, want 1", w)
	}
	if n := h.mr.Publish("app:/0.ev1/worker.heartbeat", "x"); n != 0 {
		t.Errorf("glob characters of the exchange were not escaped: %d subscribers", n)
	}

	for _, opts := range []CeleryOptions{{Min: -1}, {Interval: -time.Second}, {HeartbeatInterval: -1}} {
		if _, err := NewCeleryEvents(celeryTestRedis(t, h.mr.Addr(), "", 0, nil), opts); err == nil {
			t.Errorf("NewCeleryEvents(%+v) = nil error", opts)
		}
	}
	if _, err := NewCeleryEvents(nil, CeleryOptions{}); err == nil {
		t.Error("NewCeleryEvents(nil) = nil error")
	}
}

func TestCeleryEventsBoundsWorkers(t *testing.T) {
	h := newCeleryHarness(t, 0, CeleryOptions{})
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
	ev, err := newCeleryEvents(rdb, CeleryOptions{Logger: log}, sig.notify)
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
	if w := obs[0]; w.Status != StatusFail || w.Output != "celery workers unknown: redis unavailable" || !strings.Contains(w.Detail, "celery events:") || w.Value != nil {
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
	ev, err := newCeleryEvents(rdb, CeleryOptions{}, sig.notify)
	if err != nil {
		t.Fatal(err)
	}
	sig.wait(t, "a failed attempt", func() bool { return strings.Contains(ev.Stats().LastError, "subscribe") })
	if err := ev.Close(); err != nil { // celeryTestRedis checks no goroutine is left
		t.Fatal(err)
	}
}

// fakeCeleryWorker answers pings on miniredis the way a Celery worker does
// through kombu: it listens on the control channel, looks the reply
// routing key up in the reply exchange's bindings, and pushes its answer
// onto the bound queue. It returns a channel that receives each ping's
// ticket before it is answered; answer false makes it stay silent.
func fakeCeleryWorker(t *testing.T, mr *miniredis.Miniredis, hostname string, answer func(ticket string) (reply string, ok bool)) <-chan string {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	ps := c.PSubscribe(context.Background(), "/0.celery.pidbox")
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatalf("fake worker subscribe: %v", err)
	}
	got := make(chan string, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ps.Channel() {
			body, _, err := decodeKombuEnvelope([]byte(m.Payload))
			if err != nil {
				t.Errorf("fake worker got a malformed ping: %v", err)
				continue
			}
			var call celeryControl
			if err := json.Unmarshal(body, &call); err != nil || call.Method != "ping" {
				t.Errorf("fake worker got %s", body)
				continue
			}
			got <- call.Ticket
			reply, ok := answer(call.Ticket)
			if !ok {
				continue
			}
			if reply == "" {
				reply = kombuMessage(t, map[string]any{hostname: map[string]string{"ok": "pong"}}, map[string]any{"ticket": call.Ticket, "clock": 3})
			}
			ctx := context.Background()
			members, _ := c.SMembers(ctx, "_kombu.binding."+call.ReplyTo["exchange"]).Result()
			for _, m := range members {
				parts := strings.Split(m, kombuSep)
				if len(parts) == 3 && parts[0] == call.ReplyTo["routing_key"] {
					c.LPush(ctx, parts[2], reply)
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = ps.Close()
		<-done
		_ = c.Close()
	})
	return got
}

func pong(string) (string, bool) { return "", true }

func celeryPingRun(t *testing.T, c Check, ctx context.Context) map[string]Observation {
	t.Helper()
	obs, err := c.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	m := map[string]Observation{}
	for _, o := range obs {
		m[o.Measurement] = o
	}
	return m
}

// assertNoPingLeft checks that no binding and no reply list remain.
func assertNoPingLeft(t *testing.T, mr *miniredis.Miniredis) {
	t.Helper()
	for _, k := range mr.Keys() {
		if strings.Contains(k, "pidbox") {
			t.Errorf("key %q left behind", k)
		}
	}
}

func TestCeleryPing(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := celeryTestRedis(t, mr.Addr(), "", 0, nil)
	fakeCeleryWorker(t, mr, "w1@a", pong)
	fakeCeleryWorker(t, mr, "w2@b", pong)

	// A long window: the run ends early once both subscribers answered.
	c := CeleryPing(rdb, CeleryPingOptions{Min: 2, Window: time.Minute, Timeout: 2 * time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs := celeryPingRun(t, c, ctx)
	if w := obs["workers"]; w.Status != StatusPass || w.Value != 2 || w.Detail != "answered: w1@a, w2@b" {
		t.Errorf("workers = %+v, want 2 answered", w)
	}
	if rt := obs["responseTime"]; rt.Unit != "ms" || rt.Value == nil {
		t.Errorf("responseTime = %+v", rt)
	}
	if ctx.Err() != nil {
		t.Fatal("the ping did not end when both workers had answered")
	}
	assertNoPingLeft(t, mr)

	obs = celeryPingRun(t, CeleryPing(rdb, CeleryPingOptions{Min: 3, Window: time.Minute, Timeout: 2 * time.Minute}), ctx)
	if w := obs["workers"]; w.Status != StatusFail || w.Output != "2 celery workers answered, want at least 3" {
		t.Errorf("with Min 3: workers = %+v", w)
	}
}

func TestCeleryPingNoSubscribers(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := celeryTestRedis(t, mr.Addr(), "", 0, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs := celeryPingRun(t, CeleryPing(rdb, CeleryPingOptions{Min: 1, Window: time.Minute, Timeout: 2 * time.Minute}), ctx)
	if w := obs["workers"]; w.Status != StatusFail || w.Value != 0 {
		t.Errorf("no worker: workers = %+v, want fail with 0", w)
	}
	if ctx.Err() != nil {
		t.Fatal("with nobody subscribed the ping waited for its window")
	}
	assertNoPingLeft(t, mr)
}

func TestCeleryPingSkipsBadReplies(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := celeryTestRedis(t, mr.Addr(), "", 0, nil)
	fakeCeleryWorker(t, mr, "w1@a", func(ticket string) (string, bool) { return "garbage", true })
	fakeCeleryWorker(t, mr, "w2@b", func(ticket string) (string, bool) {
		return kombuMessage(t, map[string]any{"w2@b": map[string]string{"ok": "pong"}}, map[string]any{"ticket": "old-call"}), true
	})
	fakeCeleryWorker(t, mr, "w3@c", pong)
	obs := celeryPingRun(t, CeleryPing(rdb, CeleryPingOptions{Window: 300 * time.Millisecond}), context.Background())
	if w := obs["workers"]; w.Value != 1 || w.Detail != "answered: w3@c" {
		t.Errorf("workers = %+v, want only w3@c", w)
	}
	if m := obs["malformed"]; m.Value != 1 || !strings.Contains(m.Detail, "not kombu JSON") {
		t.Errorf("malformed = %+v, want 1", m)
	}
	assertNoPingLeft(t, mr)
}

// TestCeleryPingCancelled ends the run's context while it waits for
// answers: the binding and the reply list are removed all the same.
func TestCeleryPingCancelled(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := celeryTestRedis(t, mr.Addr(), "", 0, nil)
	pinged := fakeCeleryWorker(t, mr, "w1@a", func(string) (string, bool) { return "", false })
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-pinged
		if !mr.Exists("_kombu.binding.reply.celery.pidbox") {
			t.Error("no reply binding while the ping waits")
		}
		cancel()
	}()
	obs, err := CeleryPing(rdb, CeleryPingOptions{Window: time.Minute, Timeout: 2 * time.Minute}).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w := obs[0]; w.Status != StatusFail || !strings.Contains(w.Detail, "context canceled") {
		t.Errorf("cancelled: workers = %+v", w)
	}
	assertNoPingLeft(t, mr)
}

// TestCeleryPingLeftovers removes, at the next run, what a run could not
// remove because Redis had gone.
func TestCeleryPingLeftovers(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := celeryTestRedis(t, mr.Addr(), "", 0, nil)
	p := &celeryPinger{rdb: rdb, opts: CeleryPingOptions{Window: 100 * time.Millisecond, ControlExchange: "celery"}}
	q := celeryReplyQueue{bindingKey: "_kombu.binding.reply.celery.pidbox", member: "x" + kombuSep + kombuSep + "x.reply.celery.pidbox",
		lists: []string{"x.reply.celery.pidbox"}}
	if _, err := mr.SAdd(q.bindingKey, q.member); err != nil {
		t.Fatal(err)
	}
	mr.Close()
	p.cleanup(context.Background(), q)
	if len(p.leftovers) != 1 || p.leftovers[0].member == "" {
		t.Fatalf("leftovers = %+v, want the whole queue", p.leftovers)
	}
	if err := mr.Restart(); err != nil {
		t.Fatal(err)
	}
	_, _ = mr.Lpush("x.reply.celery.pidbox", "late answer")
	// A client that did not see the outage, so that its breaker is closed.
	p.rdb = celeryTestRedis(t, mr.Addr(), "", 0, nil)
	if _, err := p.ping(context.Background()); err != nil {
		t.Fatalf("ping after the return: %v", err)
	}
	assertNoPingLeft(t, mr)
	if len(p.leftovers) != 1 || p.leftovers[0].member != "" || len(p.leftovers[0].lists) != 1 {
		t.Errorf("leftovers = %+v, want only this run's reply list, for late answers", p.leftovers)
	}
}

func TestCeleryPingRedisDown(t *testing.T) {
	rdb := celeryTestRedis(t, "127.0.0.1:1", "", 0, nil)
	obs := celeryPingRun(t, CeleryPing(rdb, CeleryPingOptions{}), context.Background())
	if w := obs["workers"]; w.Status != StatusFail || w.Output != "celery workers unknown: redis unavailable" ||
		!strings.Contains(w.Detail, "celery ping: bind reply queue") || w.Value != nil {
		t.Errorf("Redis down: workers = %+v", w)
	}
}

func TestCeleryPingOptions(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := celeryTestRedis(t, mr.Addr(), "", 0, nil)
	tests := []struct {
		name    string
		rdb     *resilience.Redis
		opts    CeleryPingOptions
		wantErr string
	}{
		{name: "defaults", rdb: rdb},
		{name: "nil client", wantErr: "nil client"},
		{name: "negative window", rdb: rdb, opts: CeleryPingOptions{Window: -1}, wantErr: "negative"},
		{name: "negative min", rdb: rdb, opts: CeleryPingOptions{Min: -1}, wantErr: "negative"},
		{name: "timeout within window", rdb: rdb, opts: CeleryPingOptions{Window: 2 * time.Second, Timeout: time.Second}, wantErr: "longer than Window"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := New(Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = h.Close() }()
			err = h.Add(CeleryPing(tc.rdb, tc.opts))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Add(CeleryPing(%+v)) = %v, want error containing %q", tc.opts, err, tc.wantErr)
			}
		})
	}
	if c := CeleryPing(rdb, CeleryPingOptions{Window: 3 * time.Second}); c.Timeout != 4*time.Second || c.Name != "celery" {
		t.Errorf("defaults: Timeout %v, Name %q; want 4s, celery", c.Timeout, c.Name)
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
	h, err := New(Options{ShowDetails: func(*http.Request) bool { return true }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Close() }()
	sig := newCelerySignal()
	ev, err := newCeleryEvents(rdb, CeleryOptions{Name: "celery-events", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, sig.notify)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ev.Close() }()
	sig.wait(t, "subscription", func() bool { return ev.Stats().Connected })
	mr.Close() // Redis goes away
	sig.wait(t, "loss noticed", func() bool { return !ev.Stats().Connected })
	for _, c := range []Check{ev.Check(), CeleryPing(rdb, CeleryPingOptions{Name: "celery-ping"})} {
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
