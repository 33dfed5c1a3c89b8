package celery

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	_, err := ps.Receive(context.Background())
	require.NoError(t, err, "fake worker subscribe")
	got := make(chan string, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ps.Channel() {
			body, _, err := decodeKombuEnvelope([]byte(m.Payload))
			if !assert.NoError(t, err, "fake worker got a malformed ping") {
				continue
			}
			var call celeryControl
			if !assert.NoError(t, json.Unmarshal(body, &call), "fake worker got %s", body) ||
				!assert.Equal(t, "ping", call.Method, "fake worker got %s", body) {
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
	require.NoError(t, err, "Ping")
	return c
}

func celeryPingRun(t *testing.T, c healthhandler.Check, ctx context.Context) map[string]healthhandler.Observation {
	t.Helper()
	obs, err := c.Run(ctx)
	require.NoError(t, err, "Run")
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
		assert.NotContains(t, k, "pidbox", "key left behind")
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
	w := obs["workers"]
	assert.Equal(t, healthhandler.StatusPass, w.Status, "workers = %+v", w)
	assert.Equal(t, 2, w.Value, "workers = %+v, want 2 answered", w)
	assert.Equal(t, "answered: w1@a, w2@b", w.Detail, "workers = %+v", w)
	rt := obs["responseTime"]
	assert.Equal(t, "ms", rt.Unit, "responseTime = %+v", rt)
	assert.NotNil(t, rt.Value, "responseTime = %+v", rt)
	require.NoError(t, ctx.Err(), "the ping did not end when both workers had answered")
	assertNoPingLeft(t, mr)

	obs = celeryPingRun(t, ping(t, rdb, PingOptions{Min: 3, Window: time.Minute, Timeout: 2 * time.Minute}), ctx)
	w = obs["workers"]
	assert.Equal(t, healthhandler.StatusFail, w.Status, "with Min 3: workers = %+v", w)
	assert.Equal(t, "2 celery workers answered, want at least 3", w.Output, "with Min 3: workers = %+v", w)
}

func TestCeleryPingNoSubscribers(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := celeryTestRedis(t, mr.Addr(), "", 0, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs := celeryPingRun(t, ping(t, rdb, PingOptions{Min: 1, Window: time.Minute, Timeout: 2 * time.Minute}), ctx)
	w := obs["workers"]
	assert.Equal(t, healthhandler.StatusFail, w.Status, "no worker: workers = %+v", w)
	assert.Equal(t, 0, w.Value, "no worker: workers = %+v", w)
	require.NoError(t, ctx.Err(), "with nobody subscribed the ping waited for its window")
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
	w := obs["workers"]
	assert.Equal(t, 1, w.Value, "workers = %+v, want only w3@c", w)
	assert.Equal(t, "answered: w3@c", w.Detail, "workers = %+v, want only w3@c", w)
	m := obs["malformed"]
	assert.Equal(t, 1, m.Value, "malformed = %+v", m)
	assert.Contains(t, m.Detail, "not kombu JSON", "malformed = %+v", m)
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
		assert.True(t, mr.Exists("_kombu.binding.reply.celery.pidbox"), "no reply binding while the ping waits")
		cancel()
	}()
	obs, err := ping(t, rdb, PingOptions{Window: time.Minute, Timeout: 2 * time.Minute}).Run(ctx)
	require.NoError(t, err)
	w := obs[0]
	assert.Equal(t, healthhandler.StatusFail, w.Status, "cancelled: workers = %+v", w)
	assert.Contains(t, w.Detail, "context canceled", "cancelled: workers = %+v", w)
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
	_, err := mr.SAdd(q.bindingKey, q.member)
	require.NoError(t, err)
	mr.Close()
	p.cleanup(context.Background(), q)
	require.Len(t, p.leftovers, 1, "leftovers = %+v, want the whole queue", p.leftovers)
	require.NotEmpty(t, p.leftovers[0].member, "leftovers = %+v, want the whole queue", p.leftovers)
	require.NoError(t, mr.Restart())
	_, _ = mr.Lpush("x.reply.celery.pidbox", "late answer")
	// A client that did not see the outage, so that its breaker is closed.
	p.rdb = celeryTestRedis(t, mr.Addr(), "", 0, nil)
	_, err = p.ping(context.Background())
	require.NoError(t, err, "ping after the return")
	assertNoPingLeft(t, mr)
	if assert.Len(t, p.leftovers, 1, "leftovers = %+v, want only this run's reply list, for late answers", p.leftovers) {
		assert.Empty(t, p.leftovers[0].member, "leftovers = %+v, want only this run's reply list, for late answers", p.leftovers)
		assert.Len(t, p.leftovers[0].lists, 1, "leftovers = %+v, want only this run's reply list, for late answers", p.leftovers)
	}
}

func TestCeleryPingRedisDown(t *testing.T) {
	rdb := celeryTestRedis(t, "127.0.0.1:1", "", 0, nil)
	obs := celeryPingRun(t, ping(t, rdb, PingOptions{}), context.Background())
	w := obs["workers"]
	assert.Equal(t, healthhandler.StatusFail, w.Status, "Redis down: workers = %+v", w)
	assert.Equal(t, "celery workers unknown: redis unavailable", w.Output, "Redis down: workers = %+v", w)
	assert.Contains(t, w.Detail, "celery ping: bind reply queue", "Redis down: workers = %+v", w)
	assert.Nil(t, w.Value, "Redis down: workers = %+v", w)
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
				assert.ErrorIs(t, err, healthhandler.ErrInvalidOption, "Ping(%+v)", tc.opts)
				assert.ErrorContains(t, err, tc.wantErr, "Ping(%+v)", tc.opts)
				return
			}
			require.NoError(t, err, "Ping(%+v)", tc.opts)
			h, err := healthhandler.New(healthhandler.Options{})
			require.NoError(t, err)
			defer func() { _ = h.Close() }()
			assert.NoError(t, h.Add(c), "Add(Ping(%+v))", tc.opts)
		})
	}
	c := ping(t, rdb, PingOptions{Window: 3 * time.Second})
	assert.Equal(t, 4*time.Second, c.Timeout, "defaults: Timeout")
	assert.Equal(t, "celery", c.Name, "defaults: Name")
}
