package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

// With the store unavailable (an outage, or a pool too small for a
// burst), concurrent requests for one URL still run the handler once:
// nothing is stored, but the origin is not stampeded.
func TestCacheCoalescesWhileStoreUnavailable(t *testing.T) {
	var sets atomic.Int64
	store := &fakeStore{
		GetFunc: func(context.Context, string) ([]byte, error) { return nil, resilience.ErrUnavailable },
		SetFunc: func(context.Context, string, []byte, time.Duration) error { sets.Add(1); return nil },
	}
	cache, err := middleware.NewCache(store, middleware.CacheOptions{Logger: quiet})
	require.NoError(t, err)
	const n = 200
	var runs atomic.Int64
	h := cache.Policy(cachepolicy.Policy{TTL: time.Minute})(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		runs.Add(1)
		deadline := time.Now().Add(20 * time.Second)
		for cache.Stats().Coalesced < n-1 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		_, _ = io.WriteString(w, "origin")
	}))
	var wg sync.WaitGroup
	responses := make([]*httptest.ResponseRecorder, n)
	for i := range n {
		wg.Go(func() { responses[i] = do(h, "GET", "/cold") })
	}
	wg.Wait()
	require.NoError(t, cache.Close())
	assert.EqualValues(t, 1, runs.Load(), "handler runs with the store unavailable")
	for i, rr := range responses {
		require.Equal(t, http.StatusOK, rr.Code, "response %d", i)
		require.Equal(t, "origin", rr.Body.String(), "response %d", i)
		cs := rr.Header().Get("Cache-Status")
		require.True(t, strings.HasPrefix(cs, "steadfast; fwd=bypass") && strings.HasSuffix(cs, "detail=redis-unavailable"),
			"response %d: Cache-Status %q", i, cs)
	}
	assert.Zero(t, sets.Load(), "stored while the store was unavailable")
	assert.EqualValues(t, n, cache.Stats().Bypasses)
	assert.Zero(t, cache.Stats().Misses, "bypasses counted as misses")
}

func TestCacheCoalescesThousandColdRequests(t *testing.T) {
	// A thousand goroutines under -race on a loaded machine can take
	// longer to queue than the default lock timeout.
	e := newEnv(t, middleware.CacheOptions{LockTimeout: time.Minute})
	const n = 1000
	var runs atomic.Int64
	h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		runs.Add(1)
		// Hold the response until every other request waits for it (or
		// give up after a while, and let the count below fail).
		deadline := time.Now().Add(20 * time.Second)
		for e.cache.Stats().Coalesced < n-1 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		_, _ = io.WriteString(w, "shared")
	}))
	var wg sync.WaitGroup
	responses := make([]*httptest.ResponseRecorder, n)
	for i := range n {
		wg.Go(func() { responses[i] = do(h, "GET", "/hot?b=2&a=1") })
	}
	wg.Wait()
	assert.EqualValues(t, 1, runs.Load(), "handler runs")
	collapsed := 0
	for i, rr := range responses {
		require.Equal(t, http.StatusOK, rr.Code, "response %d", i)
		require.Equal(t, "shared", rr.Body.String(), "response %d", i)
		if strings.Contains(rr.Header().Get("Cache-Status"), "collapsed") {
			collapsed++
		}
	}
	assert.Equal(t, n-1, collapsed, "collapsed responses")
	assert.EqualValues(t, n-1, e.cache.Stats().Coalesced)
}

// leaderAndWaiters runs n concurrent requests for one URL through a
// handler that proceeds once the n-1 others wait for its run, and returns
// each request's response or panic.
func leaderAndWaiters(t *testing.T, e *env, n int, p cachepolicy.Policy,
	handle func(w http.ResponseWriter, r *http.Request),
) ([]*httptest.ResponseRecorder, []any) {
	t.Helper()
	h := e.cache.Policy(p)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deadline := time.Now().Add(10 * time.Second)
		for e.cache.Stats().Coalesced < uint64(n-1) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		handle(w, r)
	}))
	responses := make([]*httptest.ResponseRecorder, n)
	panics := make([]any, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			defer func() { panics[i] = recover() }()
			responses[i] = httptest.NewRecorder()
			h.ServeHTTP(responses[i], newRequest("GET", "/x"))
		})
	}
	wg.Wait()
	return responses, panics
}

func TestCacheCoalescedLeaderPanic(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	var runs atomic.Int64
	_, panics := leaderAndWaiters(t, e, 20, cachepolicy.Policy{TTL: time.Minute}, func(http.ResponseWriter, *http.Request) {
		runs.Add(1)
		panic("leader failed")
	})
	assert.EqualValues(t, 1, runs.Load(), "handler runs")
	for i, v := range panics {
		assert.Equal(t, "leader failed", v, "request %d", i)
	}
}

func TestCacheCoalescedNotShareable(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	var runs atomic.Int64
	responses, panics := leaderAndWaiters(t, e, 10, cachepolicy.Policy{TTL: time.Minute}, func(w http.ResponseWriter, _ *http.Request) {
		n := runs.Add(1)
		http.SetCookie(w, &http.Cookie{Name: "session", Value: fmt.Sprint(n)})
		_, _ = io.WriteString(w, "personal")
	})
	assert.EqualValues(t, 10, runs.Load(), "waiters did not run their own handler")
	cookies := map[string]bool{}
	for i, rr := range responses {
		require.Nil(t, panics[i])
		cookies[rr.Header().Get("Set-Cookie")] = true
	}
	assert.Len(t, cookies, 10, "a Set-Cookie was shared")
}

func TestCacheCoalescedLeaderAbort(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	var runs atomic.Int64
	responses, panics := leaderAndWaiters(t, e, 5, cachepolicy.Policy{TTL: time.Minute}, func(w http.ResponseWriter, _ *http.Request) {
		if runs.Add(1) == 1 {
			panic(http.ErrAbortHandler)
		}
		_, _ = io.WriteString(w, "ok")
	})
	aborted := 0
	for i, v := range panics {
		if v != nil {
			assert.Equal(t, http.ErrAbortHandler, v)
			aborted++
			continue
		}
		assert.Equal(t, "ok", responses[i].Body.String())
	}
	assert.Equal(t, 1, aborted, "only the leader aborts")
	assert.EqualValues(t, 5, runs.Load(), "waiters of an abandoned run did not run their own")
}

func TestCacheLeaderClientGone(t *testing.T) {
	t.Run("waiters keep the work alive", func(t *testing.T) {
		e := newEnv(t, middleware.CacheOptions{})
		entered, release := make(chan struct{}), make(chan struct{})
		workErr := make(chan error, 1)
		h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-release
			workErr <- r.Context().Err()
			_, _ = io.WriteString(w, "done")
		}))
		leaderCtx, cancelLeader := context.WithCancel(context.Background())
		go h.ServeHTTP(httptest.NewRecorder(), newRequest("GET", "/x").WithContext(leaderCtx))
		<-entered
		waiter := make(chan *httptest.ResponseRecorder)
		go func() { waiter <- do(h, "GET", "/x") }()
		require.Eventually(t, func() bool { return e.cache.Stats().Coalesced == 1 }, 10*time.Second, time.Millisecond)
		cancelLeader()
		close(release)
		assert.NoError(t, <-workErr, "the leader's client cancelled the work a waiter waits for")
		assert.Equal(t, "done", (<-waiter).Body.String())
	})

	t.Run("work stops when nobody waits", func(t *testing.T) {
		e := newEnv(t, middleware.CacheOptions{})
		entered, cancelled := make(chan struct{}), make(chan struct{})
		h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-r.Context().Done()
			close(cancelled)
		}))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(httptest.NewRecorder(), newRequest("GET", "/x").WithContext(ctx))
		}()
		<-entered
		cancel()
		<-cancelled
		<-done
	})

	t.Run("a waiter whose client leaves stops waiting", func(t *testing.T) {
		e := newEnv(t, middleware.CacheOptions{})
		entered, release := make(chan struct{}), make(chan struct{})
		var runs atomic.Int64
		h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			runs.Add(1)
			close(entered)
			<-release
		}))
		leaderDone := make(chan struct{})
		go func() { defer close(leaderDone); do(h, "GET", "/x") }()
		<-entered
		ctx, cancel := context.WithCancel(context.Background())
		waiterDone := make(chan struct{})
		go func() {
			defer close(waiterDone)
			h.ServeHTTP(httptest.NewRecorder(), newRequest("GET", "/x").WithContext(ctx))
		}()
		require.Eventually(t, func() bool { return e.cache.Stats().Coalesced == 1 }, 10*time.Second, time.Millisecond)
		cancel()
		<-waiterDone // returns although the leader still runs
		close(release)
		<-leaderDone
		assert.EqualValues(t, 1, runs.Load())
	})
}

func TestCacheAnswersLookupThatMissedTheLanding(t *testing.T) {
	// A request whose lookup began before another run's entry landed in
	// the store, and missed it, is answered from that run even after the
	// entry landed (a GET that waited for a pooled connection in a burst).
	var gets atomic.Int64
	entered, release := make(chan struct{}), make(chan struct{})
	stored := make(chan struct{}, 1)
	store := &fakeStore{
		GetFunc: func(context.Context, string) ([]byte, error) {
			if gets.Add(1) == 1 { // the slow lookup
				close(entered)
				<-release
			}
			return nil, fmt.Errorf("fake get: %w", fs.ErrNotExist)
		},
		SetFunc: func(context.Context, string, []byte, time.Duration) error {
			stored <- struct{}{}
			return nil
		},
	}
	cache, err := middleware.NewCache(store, middleware.CacheOptions{Logger: quiet})
	require.NoError(t, err)
	defer cache.Close()
	o := &origin{}
	h := cache.Policy(cachepolicy.Policy{TTL: time.Minute})(o)

	slow := make(chan *httptest.ResponseRecorder)
	go func() { slow <- do(h, "GET", "/x") }()
	<-entered
	first := do(h, "GET", "/x")
	require.Equal(t, "run 1", first.Body.String())
	<-stored
	close(release)
	rr := <-slow
	assert.Equal(t, "run 1", rr.Body.String(), "the handler ran again for a lookup that missed the landing")
	assert.Equal(t, "steadfast; fwd=uri-miss; collapsed", rr.Header().Get("Cache-Status"))
	assert.EqualValues(t, 1, o.runs.Load(), "handler runs")
}

func TestCacheAnswersFromRunWhoseStoreFailed(t *testing.T) {
	// A burst that overwhelms the store: the first run's entry could not
	// be stored, and a lookup that began after that and missed is
	// answered from the run (within flightLinger) instead of running the
	// handler again. When the entry was stored, a later lookup that
	// misses means it is gone, and the handler runs again.
	for _, tc := range []struct {
		name     string
		setErr   error
		wantBody string
		wantRuns int64
	}{
		{"store failed", errors.New("fake set: pool timeout"), "run 1", 1},
		{"stored, then gone", nil, "run 2", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &fakeStore{SetFunc: func(context.Context, string, []byte, time.Duration) error { return tc.setErr }}
			cache, err := middleware.NewCache(store, middleware.CacheOptions{Logger: quiet})
			require.NoError(t, err)
			defer cache.Close()
			o := &origin{}
			p := cachepolicy.Policy{TTL: time.Minute}
			h := cache.Policy(p)(o)
			require.Equal(t, "run 1", do(h, "GET", "/x").Body.String())
			require.Eventually(t, func() bool { return middleware.FlightSettled(cache, key("/x", p)) },
				5*time.Second, time.Millisecond, "the first run's write never ended")

			rr := do(h, "GET", "/x") // its lookup began after the write ended, and missed
			assert.Equal(t, tc.wantBody, rr.Body.String())
			assert.Equal(t, tc.wantRuns, o.runs.Load(), "handler runs")
		})
	}
}

func TestCacheRunWhoseStoreFailedNotServedAfterInvalidation(t *testing.T) {
	// A run whose entry the store did not take answers later misses for
	// a while; a successful PUT in that while ends it: the next GET runs
	// the handler rather than getting the response from before the PUT.
	store := &fakeStore{SetFunc: func(context.Context, string, []byte, time.Duration) error {
		return errors.New("fake set: pool timeout")
	}}
	cache, err := middleware.NewCache(store, middleware.CacheOptions{Logger: quiet})
	require.NoError(t, err)
	defer cache.Close()
	o := &origin{}
	p := cachepolicy.Policy{TTL: time.Minute}
	h := cache.Policy(p)(o)
	require.Equal(t, "run 1", do(h, "GET", "/x").Body.String())
	require.Eventually(t, func() bool { return middleware.FlightSettled(cache, key("/x", p)) },
		5*time.Second, time.Millisecond, "the first run's write never ended")
	require.Equal(t, "run 1", do(h, "GET", "/x").Body.String(), "answered from the run within flightLinger")

	require.Equal(t, "run 2", do(h, "PUT", "/x").Body.String())
	rr := do(h, "GET", "/x")
	assert.Equal(t, "run 3", rr.Body.String(), "a GET after the PUT got the response from before it")
	assert.EqualValues(t, 3, o.runs.Load(), "handler runs")
}

func TestCacheAnswersFromResponseNotYetStored(t *testing.T) {
	// Between the end of the handler and the entry landing in the store,
	// requests for the key are answered from the finished run.
	setting, unblock := make(chan struct{}, 1), make(chan struct{})
	store := &fakeStore{SetFunc: func(context.Context, string, []byte, time.Duration) error {
		setting <- struct{}{}
		<-unblock
		return nil
	}}
	cache, err := middleware.NewCache(store, middleware.CacheOptions{Logger: quiet})
	require.NoError(t, err)
	defer cache.Close()
	o := &origin{}
	h := cache.Policy(cachepolicy.Policy{TTL: time.Minute})(o)
	do(h, "GET", "/x")
	<-setting

	rr := do(h, "GET", "/x")
	assert.Equal(t, "run 1", rr.Body.String())
	assert.Equal(t, "steadfast; fwd=uri-miss; collapsed", rr.Header().Get("Cache-Status"))
	assert.Equal(t, "0", rr.Header().Get("Age"))

	revalidate := do(h, "GET", "/x", "Cache-Control", "no-cache")
	assert.Equal(t, "run 2", revalidate.Body.String(), "no-cache was answered from an earlier run")
	close(unblock)
}

func TestCacheCoalescedLeaderGoexit(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	var runs atomic.Int64
	responses, panics := leaderAndWaiters(t, e, 4, cachepolicy.Policy{TTL: time.Minute}, func(w http.ResponseWriter, _ *http.Request) {
		if runs.Add(1) == 1 {
			runtime.Goexit()
		}
		_, _ = io.WriteString(w, "ok")
	})
	answered := 0
	for i, rr := range responses {
		require.Nil(t, panics[i])
		if rr.Body.String() == "ok" {
			answered++
		}
	}
	assert.Equal(t, 3, answered, "waiters of a run that called Goexit were not answered")
}

func TestCacheCoalescedWaiterVariants(t *testing.T) {
	// A conditional or HEAD request that comes while a GET leads is
	// answered from the GET's response: 304 or headers only.
	e := newEnv(t, middleware.CacheOptions{})
	h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		deadline := time.Now().Add(10 * time.Second)
		for e.cache.Stats().Coalesced < 2 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		w.Header().Set("Etag", `"v7"`)
		_, _ = io.WriteString(w, "body")
	}))
	leader := make(chan *httptest.ResponseRecorder)
	go func() { leader <- do(h, "GET", "/x") }()
	require.Eventually(t, func() bool { return e.cache.Stats().Misses == 1 }, 10*time.Second, time.Millisecond)
	conditional, head := make(chan *httptest.ResponseRecorder), make(chan *httptest.ResponseRecorder)
	go func() { conditional <- do(h, "GET", "/x", "If-None-Match", `"v7"`) }()
	go func() { head <- do(h, "HEAD", "/x") }()

	assert.Equal(t, "body", (<-leader).Body.String())
	c := <-conditional
	assert.Equal(t, http.StatusNotModified, c.Code)
	assert.Equal(t, "steadfast; fwd=uri-miss; collapsed", c.Header().Get("Cache-Status"))
	hd := <-head
	assert.Equal(t, http.StatusOK, hd.Code)
	assert.Empty(t, hd.Body.String())
	assert.Equal(t, "4", hd.Header().Get("Content-Length"))
	assert.EqualValues(t, 1, e.cache.Stats().Misses, "handler runs")
}
