package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/middleware"
)

// lookups collects what ObserveLookups reports.
type lookups struct {
	mu  sync.Mutex
	got []middleware.Lookup
}

func (l *lookups) add(x middleware.Lookup) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, x)
}

func (l *lookups) take() []middleware.Lookup {
	l.mu.Lock()
	defer l.mu.Unlock()
	got := l.got
	l.got = nil
	return got
}

func TestCacheObserveLookups(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	var seen lookups
	e.cache.ObserveLookups(seen.add)
	mux := http.NewServeMux()
	mux.Handle("GET /items/{id}", e.cache.Policy(cachepolicy.Policy{TTL: time.Minute, StaleWhileRevalidate: time.Minute})(&origin{}))
	mux.Handle("GET /bad", e.cache.Policy(cachepolicy.Policy{TTL: -time.Second})(&origin{}))
	const route = "GET /items/{id}"

	for _, tc := range []struct {
		name   string
		do     func()
		result middleware.LookupResult
		reason string
		route  string
	}{
		{name: "miss", do: func() { do(mux, "GET", "/items/1"); e.waitStored(1) }, result: middleware.LookupMiss, route: route},
		{name: "hit", do: func() { do(mux, "GET", "/items/1") }, result: middleware.LookupHit, route: route},
		{name: "head hit", do: func() { do(mux, "HEAD", "/items/1") }, result: middleware.LookupHit, route: route},
		{name: "stale", do: func() { e.clock.Add(90 * time.Second); do(mux, "GET", "/items/1") }, result: middleware.LookupStale, route: route},
		{name: "authorization", do: func() { do(mux, "GET", "/items/2", "Authorization", "Bearer x") }, result: middleware.LookupBypass, reason: "authorization", route: route},
		{name: "no-store", do: func() { do(mux, "GET", "/items/2", "Cache-Control", "no-store") }, result: middleware.LookupBypass, reason: "no-store", route: route},
		{name: "invalid policy", do: func() { do(mux, "GET", "/bad") }, result: middleware.LookupBypass, reason: "invalid-policy", route: "GET /bad"},
		{name: "redis down", do: func() { e.mr.Close(); do(mux, "GET", "/items/3") }, result: middleware.LookupBypass, reason: "redis-unavailable", route: route},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen.take()
			tc.do()
			got := seen.take()
			want := middleware.Lookup{Route: tc.route, Result: tc.result, Reason: tc.reason}
			require.Len(t, got, 1, "one lookup per request: %+v", got)
			assert.Equal(t, want, got[0])
		})
	}

	// No URL, no key, no id anywhere in what is reported.
	e.cache.ObserveLookups(nil)
	do(mux, "GET", "/items/4")
	assert.Empty(t, seen.take(), "reported after the observer was removed")
}

func TestCacheObserveLookupsUnsafeNotReported(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	var seen lookups
	e.cache.ObserveLookups(seen.add)
	h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(&origin{})
	do(h, "POST", "/items/1")
	do(h, "OPTIONS", "/items/1")
	assert.Empty(t, seen.take(), "unsafe and other methods are not lookups")
}

func TestCacheStatsNotStored(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	p := cachepolicy.Policy{TTL: time.Minute, MaxBodyBytes: 8}
	big := e.cache.Policy(p)(&origin{set: func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("x", 64)))
	}})
	announced := e.cache.Policy(p)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "70")
		_, _ = w.Write([]byte(strings.Repeat("y", 70)))
	}))
	cookie := e.cache.Policy(p)(&origin{set: header("Set-Cookie", "a=b")})

	do(big, "GET", "/big")
	do(announced, "GET", "/announced")
	do(cookie, "GET", "/cookie")
	s := e.cache.Stats()
	assert.Equal(t, uint64(2), s.TooLarge, "bodies over the limit: %+v", s)
	assert.Equal(t, uint64(1), s.NotStorable, "Set-Cookie: %+v", s)
	assert.Zero(t, s.Stored, "%+v", s)
}

func TestBreakerStatsTransitions(t *testing.T) {
	b, err := middleware.NewBreaker(middleware.BreakerOptions{Name: "up", FailureThreshold: 1, Delay: time.Hour, Logger: quiet})
	require.NoError(t, err)
	assert.Equal(t, "up", b.Name())
	h := b.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	do(h, "GET", "/")
	s := b.Stats()
	assert.Equal(t, middleware.BreakerOpen, s.State)
	assert.Equal(t, uint64(1), s.Opens, "%+v", s)
	assert.Zero(t, s.HalfOpens+s.Closes, "%+v", s)
}

func TestRetryStatsOutcomes(t *testing.T) {
	rt, err := middleware.NewRetry(middleware.RetryOptions{Name: "up", MaxAttempts: 2, InitialDelay: time.Millisecond, Logger: quiet})
	require.NoError(t, err)
	assert.Equal(t, "up", rt.Name())
	var mu sync.Mutex
	calls := map[string]int{}
	h := rt.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path]++
		n := calls[r.URL.Path]
		mu.Unlock()
		switch {
		case r.URL.Path == "/ok":
		case r.URL.Path == "/second" && n > 1:
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	do(h, "GET", "/ok")
	do(h, "GET", "/second")
	do(h, "GET", "/never")
	s := rt.Stats()
	assert.Equal(t, middleware.RetryStats{Succeeded: 1, Recovered: 1, Retries: 2, Exhausted: 1}, s)
}

// The lookup hook sees a store error as a bypass, never as a miss.
func TestCacheObserveLookupsStoreError(t *testing.T) {
	store := &fakeStore{GetFunc: func(context.Context, string) ([]byte, error) { return nil, errors.New("boom") }}
	c, err := middleware.NewCache(store, middleware.CacheOptions{Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	var seen lookups
	c.ObserveLookups(seen.add)
	do(c.Policy(cachepolicy.Policy{TTL: time.Minute})(&origin{}), "GET", "/x")
	assert.Equal(t, []middleware.Lookup{{Result: middleware.LookupBypass, Reason: "redis-unavailable"}}, seen.take())
}
