package middleware_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/internal/testlog"
	"github.com/steadfast-go/steadfast/middleware"
)

func TestCacheStaleWhileRevalidate(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	release := make(chan struct{})
	refreshing := make(chan struct{}, 1)
	var runs atomic.Int64
	h := e.cache.Policy(cachepolicy.Policy{TTL: 10 * time.Second, StaleWhileRevalidate: 30 * time.Second})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := runs.Add(1)
			if n > 1 {
				assert.Empty(t, r.Header.Get("If-None-Match"), "refresh is conditional")
				refreshing <- struct{}{}
				<-release
			}
			fmt.Fprintf(w, "run %d", n)
		}))
	do(h, "GET", "/x")
	e.waitStored(1)

	e.clock.Add(15 * time.Second)
	for i := range 5 {
		rr := do(h, "GET", "/x", "If-None-Match", `"nope"`)
		assert.Equal(t, "run 1", rr.Body.String(), "stale request %d", i)
		assert.Equal(t, "steadfast; hit; ttl=-5; detail=stale-while-revalidate", rr.Header().Get("Cache-Status"))
		assert.Equal(t, "15", rr.Header().Get("Age"))
	}
	<-refreshing
	close(release)
	e.waitStored(1)
	assert.EqualValues(t, 2, runs.Load(), "one refresh for five stale requests")
	assert.EqualValues(t, 1, e.cache.Stats().Refreshes)

	fresh := do(h, "GET", "/x")
	assert.Equal(t, "run 2", fresh.Body.String())
	assert.Equal(t, "steadfast; hit; ttl=10", fresh.Header().Get("Cache-Status"))

	e.clock.Add(50 * time.Second)
	assert.Equal(t, "run 3", do(h, "GET", "/x").Body.String(), "beyond the window the handler runs")
}

func TestCacheRefreshPanicIsContained(t *testing.T) {
	var logs testlog.Buffer
	e := newEnv(t, middleware.CacheOptions{Logger: logs.Text(slog.LevelInfo)})
	var runs atomic.Int64
	h := e.cache.Policy(cachepolicy.Policy{TTL: 10 * time.Second, StaleWhileRevalidate: 30 * time.Second})(
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if runs.Add(1) > 1 {
				panic("refresh failed")
			}
			_, _ = io.WriteString(w, "v1")
		}))
	do(h, "GET", "/x")
	e.waitStored(1)
	e.clock.Add(15 * time.Second)
	assert.Equal(t, "v1", do(h, "GET", "/x").Body.String())
	require.NoError(t, e.cache.Close()) // waits for the refresh
	assert.EqualValues(t, 2, runs.Load())
	assert.Contains(t, logs.String(), "refresh failed")
}
