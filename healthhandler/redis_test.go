package healthhandler_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/resilience"
)

// newRedis guards a client of cfg; it is closed when the test ends. Its
// deadlines are generous (unless opts sets them) so that a loaded machine
// does not turn a slow answer into a failure.
func newRedis(t *testing.T, cfg resilience.Config, opts resilience.Options) *resilience.Redis {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discard()
	}
	if opts.OpTimeout == 0 {
		opts.OpTimeout = time.Second
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	r, err := resilience.NewRedis(cfg, opts)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestRedisCheckReport(t *testing.T) {
	m := miniredis.RunT(t)
	synctest.Test(t, func(t *testing.T) {
		rdb := newRedis(t, resilience.Config{Addr: m.Addr()}, resilience.Options{})
		h := newHandler(t, healthhandler.Options{ShowDetails: showDetails})
		mustAdd(t, h, mustCheck(t)(healthhandler.Redis(rdb, healthhandler.RedisOptions{})))
		synctest.Wait()

		res := get(t, h, http.MethodGet, "/health", true)
		rep := decode(t, res.body)
		if res.code != 200 || rep.Status != healthhandler.StatusPass {
			t.Fatalf("HTTP %d %+v, want 200 pass", res.code, rep)
		}
		tests := []struct {
			key, unit string
			value     func(any) bool
		}{
			{"redis:responseTime", "ms", func(v any) bool { f, ok := v.(float64); return ok && f >= 0 }},
			{"redis:connections", "", func(v any) bool {
				o, ok := v.(map[string]any)
				return ok && len(o) == 6 && o["total"] != nil && o["idle"] != nil && o["stale"] != nil &&
					o["hits"] != nil && o["misses"] != nil && o["timeouts"] != nil
			}},
			{"redis:breaker", "", func(v any) bool { return v == "closed" }},
			{"redis:lastSuccess", "s", func(v any) bool { f, ok := v.(float64); return ok && f >= 0 }},
		}
		for _, tc := range tests {
			got := rep.Checks[tc.key]
			if len(got) != 1 {
				t.Errorf("%s = %+v, want one object", tc.key, got)
				continue
			}
			c := got[0]
			if c.Status != healthhandler.StatusPass || c.ComponentType != "datastore" || c.ObservedUnit != tc.unit ||
				!tc.value(c.ObservedValue) || c.ComponentID != rdb.String() || c.Output != "" {
				t.Errorf("%s = %+v, want pass, datastore, unit %q, componentId %q, a fitting value", tc.key, c, tc.unit, rdb.String())
			}
		}
		if len(rep.Checks) != len(tests) {
			t.Errorf("checks %v, want exactly %d keys", rep.Checks, len(tests))
		}
	})
}

// TestRedisCheckOutage: with Redis gone, a non-critical Redis makes the
// report warn (200) and a critical one fail (503); liveness stays 200; the
// report returns to pass by itself when Redis is back.
func TestRedisCheckOutage(t *testing.T) {
	m := miniredis.RunT(t)
	out := redistest.NewOutside(t)
	synctest.Test(t, func(t *testing.T) {
		rdb := newRedis(t, resilience.Config{Addr: m.Addr()}, resilience.Options{})
		cache := newHandler(t, healthhandler.Options{ShowDetails: showDetails})
		mustAdd(t, cache, mustCheck(t)(healthhandler.Redis(rdb, healthhandler.RedisOptions{Interval: time.Second})))
		store := newHandler(t, healthhandler.Options{ShowDetails: showDetails})
		mustAdd(t, store, mustCheck(t)(healthhandler.Redis(rdb, healthhandler.RedisOptions{Critical: true, Interval: time.Second})))
		synctest.Wait()

		m.Close()
		// One interval, and the operation's deadline: a failing PING
		// retries after a backoff, which takes the bubble's time too.
		time.Sleep(time.Second + resilience.DefaultOpTimeout)
		synctest.Wait()
		wantOutage(t, cache, store, "connection refused")

		time.Sleep(10 * time.Second) // the breaker opens: the check costs nothing more
		synctest.Wait()
		wantOutage(t, cache, store, "breaker open; last error: ")
		if v := decode(t, get(t, cache, http.MethodGet, "/health", false).body).Checks["redis:breaker"][0].ObservedValue; v != "open" {
			t.Errorf("redis:breaker = %v, want open", v)
		}

		var err error
		out.Run(func() { err = m.Restart() })
		if err != nil {
			t.Fatalf("restart: %v", err)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		for name, h := range map[string]*healthhandler.Handler{"cache": cache, "store": store} {
			res := get(t, h, http.MethodGet, "/health", false)
			if rep := decode(t, res.body); res.code != 200 || rep.Status != healthhandler.StatusPass {
				t.Errorf("%s after Redis came back: HTTP %d %s, want 200 pass", name, res.code, res.body)
			}
		}
		settle(cache, store, rdb)
	})
}

// settle closes what a synctest bubble started and lets go-redis's
// background redials end: after failed dials go-redis starts a goroutine
// that sleeps a second before it notices its pool is closed, and a bubble
// whose main goroutine has returned lets no time pass. Close errors (a
// heartbeat that cannot remove itself from a Redis that is down) are
// expected here and tested elsewhere.
func settle(closers ...io.Closer) {
	for _, c := range closers {
		_ = c.Close()
	}
	time.Sleep(2 * time.Second)
}

func wantOutage(t *testing.T, cache, store *healthhandler.Handler, detail string) {
	t.Helper()
	tests := []struct {
		name       string
		h          *healthhandler.Handler
		code       int
		status     healthhandler.Status
		readyCode  int
		readyState healthhandler.Status
	}{
		{"non-critical", cache, 200, healthhandler.StatusWarn, 200, healthhandler.StatusPass},
		{"critical", store, 503, healthhandler.StatusFail, 503, healthhandler.StatusFail},
	}
	for _, tc := range tests {
		res := get(t, tc.h, http.MethodGet, "/health", false)
		rep := decode(t, res.body)
		if res.code != tc.code || rep.Status != tc.status {
			t.Errorf("%s: /health HTTP %d %q, want %d %q", tc.name, res.code, rep.Status, tc.code, tc.status)
		}
		rt := rep.Checks["redis:responseTime"]
		if len(rt) != 1 || rt[0].Status != healthhandler.StatusFail || rt[0].Output != "redis unavailable" || rt[0].ObservedValue != nil {
			t.Errorf("%s: public responseTime = %+v, want fail, \"redis unavailable\", no value", tc.name, rt)
		}
		detailed := decode(t, get(t, tc.h, http.MethodGet, "/health", true).body)
		if out := detailed.Checks["redis:responseTime"][0].Output; !strings.Contains(out, detail) {
			t.Errorf("%s: detailed output %q, want it to hold %q", tc.name, out, detail)
		}
		ready := get(t, tc.h, http.MethodGet, "/health/ready", false)
		if rep := decode(t, ready.body); ready.code != tc.readyCode || rep.Status != tc.readyState {
			t.Errorf("%s: /health/ready HTTP %d %q, want %d %q", tc.name, ready.code, rep.Status, tc.readyCode, tc.readyState)
		}
		if live := get(t, tc.h, http.MethodGet, "/health/live", false); live.code != 200 {
			t.Errorf("%s: /health/live HTTP %d, want 200", tc.name, live.code)
		}
	}
}

func TestRedisCheckSpecificErrors(t *testing.T) {
	tests := []struct {
		name   string
		fault  func(m *miniredis.Miniredis)
		cfg    func(addr string) resilience.Config
		detail string
	}{
		{
			name:   "read-only replica",
			fault:  func(m *miniredis.Miniredis) { m.SetError("READONLY You can't write against a read only replica.") },
			cfg:    func(addr string) resilience.Config { return resilience.Config{Addr: addr} },
			detail: "READONLY You can't write against a read only replica.",
		},
		{
			name:   "wrong password",
			fault:  func(m *miniredis.Miniredis) { m.RequireAuth("right") },
			cfg:    func(addr string) resilience.Config { return resilience.Config{Addr: addr, Password: "wrong"} },
			detail: "WRONGPASS invalid username-password pair",
		},
		{
			name:   "loading",
			fault:  func(m *miniredis.Miniredis) { m.SetError("LOADING Redis is loading the dataset in memory") },
			cfg:    func(addr string) resilience.Config { return resilience.Config{Addr: addr} },
			detail: "LOADING Redis is loading",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := miniredis.RunT(t)
			tc.fault(m)
			rdb := newRedis(t, tc.cfg(m.Addr()), resilience.Options{})
			h := newHandler(t, healthhandler.Options{ShowDetails: showDetails})
			mustAdd(t, h, mustCheck(t)(healthhandler.Redis(rdb, healthhandler.RedisOptions{})))
			waitChecked(t, h)
			public := decode(t, get(t, h, http.MethodGet, "/health", false).body).Checks["redis:responseTime"][0]
			if public.Output != "redis unavailable" {
				t.Errorf("public output %q, want \"redis unavailable\" only", public.Output)
			}
			detailed := decode(t, get(t, h, http.MethodGet, "/health", true).body).Checks["redis:responseTime"][0]
			if !strings.HasPrefix(detailed.Output, "redis unavailable: ") || !strings.Contains(detailed.Output, tc.detail) {
				t.Errorf("detailed output %q, want the specific error %q", detailed.Output, tc.detail)
			}
			if st := h.Stats().Checks[0]; !strings.Contains(st.LastError, tc.detail) {
				t.Errorf("Stats LastError %q, want %q", st.LastError, tc.detail)
			}
		})
	}
}

// TestRedisKilled kills a real redis-server and starts it again.
func TestRedisKilled(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	rdb := newRedis(t, resilience.Config{Addr: srv.Addr()}, resilience.Options{})
	cacheEvents, storeEvents := newChanges(), newChanges()
	cache := newHandler(t, healthhandler.Options{ShowDetails: showDetails, OnChange: cacheEvents.record})
	// A long Timeout: on a loaded machine a run must fail because Redis
	// is gone, not because the run was slow.
	mustAdd(t, cache, mustCheck(t)(healthhandler.Redis(rdb, healthhandler.RedisOptions{Interval: 20 * time.Millisecond, Timeout: time.Minute})))
	store := newHandler(t, healthhandler.Options{ShowDetails: showDetails, OnChange: storeEvents.record})
	mustAdd(t, store, mustCheck(t)(healthhandler.Redis(rdb, healthhandler.RedisOptions{Critical: true, Interval: 20 * time.Millisecond, Timeout: time.Minute})))
	is := func(s healthhandler.Status) func(healthhandler.Change) bool {
		return func(c healthhandler.Change) bool { return c.To == s }
	}
	const limit = 10 * time.Second
	ci := cacheEvents.wait(t, 0, limit, is(healthhandler.StatusPass))
	si := storeEvents.wait(t, 0, limit, is(healthhandler.StatusPass))
	for _, h := range []*healthhandler.Handler{cache, store} {
		if res := get(t, h, http.MethodGet, "/health", false); res.code != 200 {
			t.Fatalf("before the kill: HTTP %d %s, want 200", res.code, res.body)
		}
	}

	srv.Kill()
	ci = cacheEvents.wait(t, ci, limit, is(healthhandler.StatusFail))
	si = storeEvents.wait(t, si, limit, is(healthhandler.StatusFail))
	wantOutage(t, cache, store, "redis unavailable: ")

	srv.Restart()
	cacheEvents.wait(t, ci, limit, is(healthhandler.StatusPass))
	storeEvents.wait(t, si, limit, is(healthhandler.StatusPass))
	for name, h := range map[string]*healthhandler.Handler{"cache": cache, "store": store} {
		for _, path := range []string{"/health", "/health/ready", "/health/live"} {
			res := get(t, h, http.MethodGet, path, false)
			if rep := decode(t, res.body); res.code != 200 || rep.Status != healthhandler.StatusPass {
				t.Errorf("%s %s after restart: HTTP %d %s, want 200 pass", name, path, res.code, res.body)
			}
		}
	}
}

// TestRedisCheckSeesWriteFailures: a Redis that answers PING but refuses
// writes (here out of memory under noeviction) makes the check warn, with
// the specific error in the details, and it passes again once writes work.
func TestRedisCheckSeesWriteFailures(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	rdb := newRedis(t, resilience.Config{Addr: srv.Addr()}, resilience.Options{})
	check := mustCheck(t)(healthhandler.Redis(rdb, healthhandler.RedisOptions{}))
	ctx := context.Background()
	status := func() (healthhandler.Status, string, string) {
		t.Helper()
		obs, err := check.Run(ctx)
		if err != nil || len(obs) == 0 {
			t.Fatalf("Run = %v, %v", obs, err)
		}
		return obs[0].Status, obs[0].Output, obs[0].Detail
	}
	if got, _, _ := status(); got != healthhandler.StatusPass {
		t.Fatalf("before the fault: %s, want pass", got)
	}

	for _, args := range [][]string{{"CONFIG", "SET", "maxmemory-policy", "noeviction"}, {"CONFIG", "SET", "maxmemory", "1"}} {
		if _, err := srv.Command(args...); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	if err := rdb.Set(ctx, "k", []byte("v"), 0); err == nil || !resilience.IsFailure(err) {
		t.Fatalf("Set out of memory = %v, want a failure", err)
	}
	got, output, detail := status()
	if got != healthhandler.StatusWarn || output != "redis operations failing" || !strings.Contains(detail, "OOM") {
		t.Errorf("with writes failing: %s %q %q, want warn, \"redis operations failing\" and the OOM error", got, output, detail)
	}

	if _, err := srv.Command("CONFIG", "SET", "maxmemory", "0"); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatalf("Set after the fault: %v", err)
	}
	if got, _, _ := status(); got != healthhandler.StatusPass {
		t.Errorf("after the fault: %s, want pass", got)
	}
}

// TestSecretsNeverShown: with a password in the configuration and a URL
// holding it in errors, values and a panic, the password appears in no
// report, however detailed, and in no log line.
func TestSecretsNeverShown(t *testing.T) {
	const password = "s3cret-Pa55"
	m := miniredis.RunT(t)
	m.RequireAuth(password)
	url := "redis://:" + password + "@" + m.Addr() + "/0"
	cfg, err := resilience.ParseURL(url)
	if err != nil {
		t.Fatalf("ParseURL: %v", err)
	}
	var logs syncBuffer
	synctest.Test(t, func(t *testing.T) {
		rdb := newRedis(t, cfg, resilience.Options{Logger: logs.logger()})
		hb, err := resilience.NewHeartbeat(rdb, resilience.HeartbeatOptions{ID: "w1", Interval: time.Second, Logger: logs.logger()})
		if err != nil {
			t.Fatalf("NewHeartbeat: %v", err)
		}
		defer hb.Close()
		h := newHandler(t, healthhandler.Options{
			ShowDetails: func(*http.Request) bool { return true },
			Logger:      logs.logger(),
			Description: "cache at " + rdb.String(),
		})
		mustAdd(t, h, mustCheck(t)(healthhandler.Redis(rdb, healthhandler.RedisOptions{Interval: time.Second})))
		mustAdd(t, h, mustCheck(t)(healthhandler.Workers(rdb, healthhandler.WorkersOptions{Interval: time.Second})))
		mustAdd(t, h, healthhandler.Check{Name: "upstream", Interval: time.Second, Run: fixed(nil, fmt.Errorf("connect %s: connection refused", url))})
		mustAdd(t, h, healthhandler.Check{Name: "values", Interval: time.Second, Run: fixed([]healthhandler.Observation{
			{ComponentID: url, Value: url, Status: healthhandler.StatusWarn, Output: "see " + url, Detail: "password=" + password},
			{Measurement: "object", Value: map[string]string{"dsn": url}},
		}, nil)})
		mustAdd(t, h, healthhandler.Check{Name: "buggy", Interval: time.Second, Run: func(context.Context) ([]healthhandler.Observation, error) {
			panic(errors.New("cannot use " + url))
		}})
		synctest.Wait()

		var seen strings.Builder
		collect := func() {
			for _, path := range []string{"/health", "/health/ready", "/health/live"} {
				seen.Write(get(t, h, http.MethodGet, path, true).body)
			}
			for _, c := range h.Stats().Checks {
				seen.WriteString(c.LastError)
			}
		}
		collect()
		m.Close() // Redis fails: errors now mention the server too
		time.Sleep(3 * time.Second)
		synctest.Wait()
		collect()

		settle(h, hb, rdb)
		all := seen.String() + logs.String()
		if strings.Contains(all, password) {
			t.Errorf("password shown:\n%s", all)
		}
		for _, want := range []string{"redis://:***@", "connection refused", "health check panicked"} {
			if !strings.Contains(all, want) {
				t.Errorf("output and logs lack %q, so the test proves little:\n%s", want, all)
			}
		}
	})
}

// TestRedisCheckNearCache: the near cache shows in the report when it was
// asked for: serving against a redis-server, off with the reason against
// miniredis (no CLIENT TRACKING), and absent when not asked for.
func TestRedisCheckNearCache(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	m := miniredis.RunT(t)
	cases := []struct {
		name    string
		addr    string
		near    *resilience.NearCacheOptions
		serving bool
		reason  string
	}{
		{"redis-server", srv.Addr(), &resilience.NearCacheOptions{}, true, ""},
		{"miniredis", m.Addr(), &resilience.NearCacheOptions{}, false, "CLIENT TRACKING"},
		{"not asked", m.Addr(), nil, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rdb := newRedis(t, resilience.Config{Addr: tc.addr}, resilience.Options{NearCache: tc.near})
			h := newHandler(t, healthhandler.Options{})
			mustAdd(t, h, mustCheck(t)(healthhandler.Redis(rdb, healthhandler.RedisOptions{Interval: 10 * time.Millisecond})))
			deadline := time.Now().Add(10 * time.Second)
			for {
				rep := decode(t, get(t, h, http.MethodGet, "/health", false).body)
				got, ok := rep.Checks["redis:nearCache"]
				if tc.near == nil {
					if ok {
						t.Fatalf("redis:nearCache = %+v without the option, want none", got)
					}
					return
				}
				if ok && len(got) == 1 {
					v, _ := got[0].ObservedValue.(map[string]any)
					reason, _ := v["reason"].(string)
					if v["serving"] == tc.serving && strings.Contains(reason, tc.reason) && (tc.reason != "" || reason == "") {
						if _, ok := v["maxBytes"].(float64); !ok {
							t.Errorf("redis:nearCache = %v, want maxBytes", v)
						}
						return
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("redis:nearCache = %+v, want serving %v, reason with %q", got, tc.serving, tc.reason)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}
