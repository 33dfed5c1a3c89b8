package celery

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/resilience"
)

// fakeCeleryWorker answers pings on miniredis the way a Celery worker does
// through kombu: it listens on the control channel, looks the reply
// routing key up in the reply exchange's bindings, and pushes its answer
// onto the bound queue. It returns a channel that receives each ping's
// ticket before it is answered; answer false makes it stay silent.
func fakeCeleryWorker(t *testing.T, mr *miniredis.Miniredis, hostname string, answer func(ticket string) (reply string, ok bool)) <-chan string {
	t.Helper()
	// Maintenance notifications are off, as in the clients resilience
	// builds: their background cleanup goroutine outlives Close briefly and
	// trips the leak check.
	c := redis.NewClient(&redis.Options{Addr: mr.Addr(),
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
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

// ping builds a Ping check, failing the test on an error.
func ping(t *testing.T, rdb *resilience.Redis, opts PingOptions) healthhandler.Check {
	t.Helper()
	c, err := Ping(rdb, opts)
	if err != nil {
		t.Fatalf("Ping: %v", err)
	}
	return c
}

func celeryPingRun(t *testing.T, c healthhandler.Check, ctx context.Context) map[string]healthhandler.Observation {
	t.Helper()
	obs, err := c.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	m := map[string]healthhandler.Observation{}
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
	c := ping(t, rdb, PingOptions{Min: 2, Window: time.Minute, Timeout: 2 * time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs := celeryPingRun(t, c, ctx)
	if w := obs["workers"]; w.Status != healthhandler.StatusPass || w.Value != 2 || w.Detail != "answered: w1@a, w2@b" {
		t.Errorf("workers = %+v, want 2 answered", w)
	}
	if rt := obs["responseTime"]; rt.Unit != "ms" || rt.Value == nil {
		t.Errorf("responseTime = %+v", rt)
	}
	if ctx.Err() != nil {
		t.Fatal("the ping did not end when both workers had answered")
	}
	assertNoPingLeft(t, mr)

	obs = celeryPingRun(t, ping(t, rdb, PingOptions{Min: 3, Window: time.Minute, Timeout: 2 * time.Minute}), ctx)
	if w := obs["workers"]; w.Status != healthhandler.StatusFail || w.Output != "2 celery workers answered, want at least 3" {
		t.Errorf("with Min 3: workers = %+v", w)
	}
}

func TestCeleryPingNoSubscribers(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := celeryTestRedis(t, mr.Addr(), "", 0, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs := celeryPingRun(t, ping(t, rdb, PingOptions{Min: 1, Window: time.Minute, Timeout: 2 * time.Minute}), ctx)
	if w := obs["workers"]; w.Status != healthhandler.StatusFail || w.Value != 0 {
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
	obs := celeryPingRun(t, ping(t, rdb, PingOptions{Window: 300 * time.Millisecond}), context.Background())
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
	obs, err := ping(t, rdb, PingOptions{Window: time.Minute, Timeout: 2 * time.Minute}).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w := obs[0]; w.Status != healthhandler.StatusFail || !strings.Contains(w.Detail, "context canceled") {
		t.Errorf("cancelled: workers = %+v", w)
	}
	assertNoPingLeft(t, mr)
}

// TestCeleryPingLeftovers removes, at the next run, what a run could not
// remove because Redis had gone.
func TestCeleryPingLeftovers(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := celeryTestRedis(t, mr.Addr(), "", 0, nil)
	p := &celeryPinger{rdb: rdb, opts: PingOptions{Window: 100 * time.Millisecond, ControlExchange: "celery"}}
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
	obs := celeryPingRun(t, ping(t, rdb, PingOptions{}), context.Background())
	if w := obs["workers"]; w.Status != healthhandler.StatusFail || w.Output != "celery workers unknown: redis unavailable" ||
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
		opts    PingOptions
		wantErr string
	}{
		{name: "defaults", rdb: rdb},
		{name: "nil client", wantErr: "nil client"},
		{name: "negative window", rdb: rdb, opts: PingOptions{Window: -1}, wantErr: "negative"},
		{name: "negative min", rdb: rdb, opts: PingOptions{Min: -1}, wantErr: "negative"},
		{name: "timeout within window", rdb: rdb, opts: PingOptions{Window: 2 * time.Second, Timeout: time.Second}, wantErr: "longer than Window"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Ping(tc.rdb, tc.opts)
			if tc.wantErr != "" {
				if !errors.Is(err, healthhandler.ErrInvalidOption) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Ping(%+v) error = %v, want ErrInvalidOption containing %q", tc.opts, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Ping(%+v): %v", tc.opts, err)
			}
			h, err := healthhandler.New(healthhandler.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = h.Close() }()
			if err := h.Add(c); err != nil {
				t.Errorf("Add(Ping(%+v)) = %v, want nil", tc.opts, err)
			}
		})
	}
	if c := ping(t, rdb, PingOptions{Window: 3 * time.Second}); c.Timeout != 4*time.Second || c.Name != "celery" {
		t.Errorf("defaults: Timeout %v, Name %q; want 4s, celery", c.Timeout, c.Name)
	}
}
