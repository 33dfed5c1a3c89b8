package healthhandler_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/resilience"
)

func TestRedisCheckReport(t *testing.T) {
	m := miniredis.RunT(t)
	synctest.Test(t, func(t *testing.T) {
		rdb := newRedis(t, resilience.Config{Addr: m.Addr()}, resilience.Options{})
		h := newHandler(t, healthhandler.Options{ShowDetails: showDetails})
		mustAdd(t, h, mustCheck(t)(healthhandler.Redis(rdb, healthhandler.RedisOptions{})))
		synctest.Wait()

		res := get(t, h, http.MethodGet, "/health", true)
		rep := decode(t, res.body)
		require.Equal(t, 200, res.code, "report %+v", rep)
		require.Equal(t, healthhandler.StatusPass, rep.Status, "report %+v", rep)
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
			if !assert.Len(t, got, 1, "%s = %+v, want one object", tc.key, got) {
				continue
			}
			c := got[0]
			assert.Equal(t, healthhandler.StatusPass, c.Status, "%s = %+v", tc.key, c)
			assert.Equal(t, "datastore", c.ComponentType, "%s = %+v", tc.key, c)
			assert.Equal(t, tc.unit, c.ObservedUnit, "%s = %+v", tc.key, c)
			assert.True(t, tc.value(c.ObservedValue), "%s = %+v, want a fitting value", tc.key, c)
			assert.Equal(t, rdb.String(), c.ComponentID, "%s = %+v", tc.key, c)
			assert.Empty(t, c.Output, "%s = %+v", tc.key, c)
		}
		assert.Len(t, rep.Checks, len(tests), "checks %v, want exactly %d keys", rep.Checks, len(tests))
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
		assert.Equal(t, "open", decode(t, get(t, cache, http.MethodGet, "/health", false).body).Checks["redis:breaker"][0].ObservedValue, "redis:breaker")

		var err error
		out.Run(func() { err = m.Restart() })
		require.NoError(t, err, "restart")
		time.Sleep(2 * time.Second)
		synctest.Wait()
		for name, h := range map[string]*healthhandler.Handler{"cache": cache, "store": store} {
			res := get(t, h, http.MethodGet, "/health", false)
			assert.Equal(t, 200, res.code, "%s after Redis came back: %s", name, res.body)
			assert.Equal(t, healthhandler.StatusPass, decode(t, res.body).Status, "%s after Redis came back: %s", name, res.body)
		}
		settle(cache, store, rdb)
	})
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
		assert.Equal(t, tc.code, res.code, "%s: /health HTTP code", tc.name)
		assert.Equal(t, tc.status, rep.Status, "%s: /health status", tc.name)
		rt := rep.Checks["redis:responseTime"]
		if assert.Len(t, rt, 1, "%s: public responseTime = %+v", tc.name, rt) {
			assert.Equal(t, healthhandler.StatusFail, rt[0].Status, "%s: public responseTime = %+v", tc.name, rt)
			assert.Equal(t, "redis unavailable", rt[0].Output, "%s: public responseTime = %+v", tc.name, rt)
			assert.Nil(t, rt[0].ObservedValue, "%s: public responseTime = %+v, want no value", tc.name, rt)
		}
		detailed := decode(t, get(t, tc.h, http.MethodGet, "/health", true).body)
		assert.Contains(t, detailed.Checks["redis:responseTime"][0].Output, detail, "%s: detailed output", tc.name)
		ready := get(t, tc.h, http.MethodGet, "/health/ready", false)
		readyRep := decode(t, ready.body)
		assert.Equal(t, tc.readyCode, ready.code, "%s: /health/ready HTTP code", tc.name)
		assert.Equal(t, tc.readyState, readyRep.Status, "%s: /health/ready status", tc.name)
		assert.Equal(t, 200, get(t, tc.h, http.MethodGet, "/health/live", false).code, "%s: /health/live HTTP code", tc.name)
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
			assert.Equal(t, "redis unavailable", public.Output, "public output, want \"redis unavailable\" only")
			detailed := decode(t, get(t, h, http.MethodGet, "/health", true).body).Checks["redis:responseTime"][0]
			assert.True(t, strings.HasPrefix(detailed.Output, "redis unavailable: "), "detailed output %q, want it to start with \"redis unavailable: \"", detailed.Output)
			assert.Contains(t, detailed.Output, tc.detail, "detailed output, want the specific error")
			assert.Contains(t, h.Stats().Checks[0].LastError, tc.detail, "Stats LastError")
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
		res := get(t, h, http.MethodGet, "/health", false)
		require.Equal(t, 200, res.code, "before the kill: %s", res.body)
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
			assert.Equal(t, 200, res.code, "%s %s after restart: %s", name, path, res.body)
			assert.Equal(t, healthhandler.StatusPass, decode(t, res.body).Status, "%s %s after restart: %s", name, path, res.body)
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
		require.NoError(t, err, "Run = %v", obs)
		require.NotEmpty(t, obs, "Run")
		return obs[0].Status, obs[0].Output, obs[0].Detail
	}
	got, _, _ := status()
	require.Equal(t, healthhandler.StatusPass, got, "before the fault")

	for _, args := range [][]string{{"CONFIG", "SET", "maxmemory-policy", "noeviction"}, {"CONFIG", "SET", "maxmemory", "1"}} {
		_, err := srv.Command(args...)
		require.NoError(t, err, "%v", args)
	}
	err := rdb.Set(ctx, "k", []byte("v"), 0)
	require.Error(t, err, "Set out of memory")
	require.True(t, resilience.IsFailure(err), "Set out of memory = %v, want a failure", err)
	got, output, detail := status()
	assert.Equal(t, healthhandler.StatusWarn, got, "with writes failing")
	assert.Equal(t, "redis operations failing", output, "with writes failing")
	assert.Contains(t, detail, "OOM", "with writes failing: want the OOM error")

	_, err = srv.Command("CONFIG", "SET", "maxmemory", "0")
	require.NoError(t, err)
	require.NoError(t, rdb.Set(ctx, "k", []byte("v"), 0), "Set after the fault")
	got, _, _ = status()
	assert.Equal(t, healthhandler.StatusPass, got, "after the fault")
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
					require.False(t, ok, "redis:nearCache = %+v without the option, want none", got)
					return
				}
				if ok && len(got) == 1 {
					v, _ := got[0].ObservedValue.(map[string]any)
					reason, _ := v["reason"].(string)
					if v["serving"] == tc.serving && strings.Contains(reason, tc.reason) && (tc.reason != "" || reason == "") {
						assert.IsType(t, float64(0), v["maxBytes"], "redis:nearCache = %v, want maxBytes", v)
						return
					}
				}
				require.False(t, time.Now().After(deadline), "redis:nearCache = %+v, want serving %v, reason with %q", got, tc.serving, tc.reason)
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}
