package middleware_test

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/middleware"
)

func TestCacheStaleIfError(t *testing.T) {
	tests := []struct {
		name      string
		onPanic   bool
		fail      func(w http.ResponseWriter)
		after     time.Duration
		wantStale bool
	}{
		{name: "5xx within window", fail: func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) },
			after: 20 * time.Second, wantStale: true},
		{name: "5xx with body within window", fail: func(w http.ResponseWriter) {
			http.Error(w, "upstream down", http.StatusBadGateway)
		}, after: 20 * time.Second, wantStale: true},
		{name: "5xx beyond window", fail: func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) },
			after: 2 * time.Minute},
		{name: "panic opted in", onPanic: true, fail: func(http.ResponseWriter) { panic("boom") },
			after: 20 * time.Second, wantStale: true},
		{name: "4xx is not an error", fail: func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) },
			after: 20 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, middleware.CacheOptions{})
			var failing atomic.Bool
			h := e.cache.Policy(cachepolicy.Policy{
				TTL: 10 * time.Second, StaleIfError: time.Minute, StaleIfErrorOnPanic: tc.onPanic,
			})(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("X-Attempt", "this one")
				if failing.Load() {
					tc.fail(w)
					return
				}
				_, _ = io.WriteString(w, "good")
			}))
			do(h, "GET", "/x")
			e.waitStored(1)
			e.clock.Add(tc.after)
			failing.Store(true)
			rr := do(h, "GET", "/x")
			if !tc.wantStale {
				assert.NotEqual(t, "good", rr.Body.String())
				assert.NotContains(t, rr.Header().Get("Cache-Status"), "hit")
				return
			}
			assert.Equal(t, http.StatusOK, rr.Code)
			assert.Equal(t, "good", rr.Body.String())
			ttl := -(tc.after - 10*time.Second) / time.Second
			assert.Equal(t, fmt.Sprintf("steadfast; hit; ttl=%d; detail=stale-if-error", ttl), rr.Header().Get("Cache-Status"))
			assert.Equal(t, "this one", rr.Header().Get("X-Attempt"), "stored header")
			assert.EqualValues(t, 1, e.cache.Stats().StaleHits)
		})
	}
}

func TestCacheStaleIfErrorPanicNotOptedIn(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	var failing atomic.Bool
	h := e.cache.Policy(cachepolicy.Policy{TTL: 10 * time.Second, StaleIfError: time.Minute})(
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if failing.Load() {
				panic("boom")
			}
			_, _ = io.WriteString(w, "good")
		}))
	do(h, "GET", "/x")
	e.waitStored(1)
	e.clock.Add(20 * time.Second)
	failing.Store(true)
	assert.PanicsWithValue(t, "boom", func() { do(h, "GET", "/x") })
}
