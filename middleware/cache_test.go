package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

// The guarded client is what users hand to NewCache.
var _ middleware.Store = (*resilience.Redis)(nil)

// fakeStore is a Store whose methods are set per test.
type fakeStore struct {
	GetFunc func(ctx context.Context, key string) ([]byte, error)
	SetFunc func(ctx context.Context, key string, val []byte, ttl time.Duration) error
	DelFunc func(ctx context.Context, keys ...string) error
}

var _ middleware.Store = (*fakeStore)(nil)

func (f *fakeStore) Get(ctx context.Context, key string) ([]byte, error) {
	if f.GetFunc == nil {
		return nil, fmt.Errorf("fake get: %w", fs.ErrNotExist)
	}
	return f.GetFunc(ctx, key)
}

func (f *fakeStore) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if f.SetFunc == nil {
		return nil
	}
	return f.SetFunc(ctx, key, val, ttl)
}

func (f *fakeStore) Del(ctx context.Context, keys ...string) error {
	if f.DelFunc == nil {
		return nil
	}
	return f.DelFunc(ctx, keys...)
}

// signalStore passes operations on to a real store and reports every Set
// that returned, so tests wait for the background writer on a signal.
type signalStore struct {
	middleware.Store
	sets chan string
}

func (s *signalStore) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	err := s.Store.Set(ctx, key, val, ttl)
	s.sets <- key
	return err
}

// clock is a settable time for CacheOptions.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a cache on miniredis, through the guarded client, with a
// settable clock.
type env struct {
	t     *testing.T
	mr    *miniredis.Miniredis
	rdb   *resilience.Redis
	store *signalStore
	clock *clock
	cache *middleware.Cache
}

var quiet = slog.New(slog.DiscardHandler)

func newEnv(t *testing.T, opts middleware.CacheOptions) *env {
	t.Helper()
	mr := miniredis.RunT(t)
	// Generous deadlines: the tests run a thousand concurrent requests on
	// a loaded machine, where a connection can take long to be accepted,
	// and Redis faults are cache_fault_test.go's subject.
	rdb, err := resilience.NewRedis(resilience.Config{Addr: mr.Addr()}, resilience.Options{
		Logger: quiet, OpTimeout: 10 * time.Second, DialTimeout: 10 * time.Second, PoolSize: 64,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	e := &env{t: t, mr: mr, rdb: rdb, clock: newClock()}
	e.store = &signalStore{Store: rdb, sets: make(chan string, 4096)}
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	if opts.LockTimeout == 0 {
		// Coalescing tests queue many goroutines on a loaded machine;
		// the lock timeout has tests of its own.
		opts.LockTimeout = time.Minute
	}
	e.cache, err = middleware.NewCache(e.store, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.cache.Close() })
	return e
}

// waitStored waits until the background writer has written n entries.
func (e *env) waitStored(n int) {
	e.t.Helper()
	deadline := time.After(10 * time.Second)
	for range n {
		select {
		case <-e.store.sets:
		case <-deadline:
			e.t.Fatalf("timed out waiting for the cache to store an entry; stats %+v", e.cache.Stats())
		}
	}
}

// key returns the cache key of a GET of target under p with the default
// prefix.
func key(target string, p cachepolicy.Policy, header ...string) string {
	return cachepolicy.Key(middleware.DefaultCacheKeyPrefix, newRequest("GET", target, header...), p)
}

func newRequest(method, target string, header ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

// do runs one request through h.
func do(h http.Handler, method, target string, header ...string) *httptest.ResponseRecorder {
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, newRequest(method, target, header...))
	return rr
}

// origin is a handler that counts its runs and answers with a body that
// names the run, after letting set shape the response.
type origin struct {
	runs atomic.Int64
	set  func(w http.ResponseWriter, r *http.Request)
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := o.runs.Add(1)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if o.set != nil {
		o.set(w, r)
	}
	fmt.Fprintf(w, "run %d", n)
}

func header(kv ...string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(kv); i += 2 {
			w.Header().Add(kv[i], kv[i+1])
		}
	}
}

func TestCacheHitAndMiss(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	o := &origin{set: header("X-Multi", "a", "X-Multi", "b")}
	h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(o)

	miss := do(h, "GET", "/items/1")
	assert.Equal(t, http.StatusOK, miss.Code)
	assert.Equal(t, "run 1", miss.Body.String())
	assert.Equal(t, "steadfast; fwd=uri-miss; stored", miss.Header().Get("Cache-Status"))
	assert.Empty(t, miss.Header().Values("Age"), "Age on a miss")
	e.waitStored(1)

	e.clock.Add(10 * time.Second)
	hit := do(h, "GET", "/items/1")
	assert.Equal(t, http.StatusOK, hit.Code)
	assert.Equal(t, "run 1", hit.Body.String())
	assert.Equal(t, "steadfast; hit; ttl=50", hit.Header().Get("Cache-Status"))
	assert.Equal(t, "10", hit.Header().Get("Age"))
	assert.Equal(t, []string{"a", "b"}, hit.Header().Values("X-Multi"))
	assert.Equal(t, "text/plain; charset=utf-8", hit.Header().Get("Content-Type"))
	assert.Equal(t, "5", hit.Header().Get("Content-Length"))
	assert.EqualValues(t, 1, o.runs.Load(), "handler runs")

	other := do(h, "GET", "/items/2")
	assert.Equal(t, "run 2", other.Body.String(), "another URL is another entry")
	e.waitStored(1)

	e.clock.Add(time.Minute)
	expired := do(h, "GET", "/items/1")
	assert.Equal(t, "run 3", expired.Body.String(), "an expired entry is not served")
	assert.Equal(t, "steadfast; fwd=stale; stored", expired.Header().Get("Cache-Status"))

	s := e.cache.Stats()
	assert.EqualValues(t, 1, s.Hits, "hits in %+v", s)
	assert.EqualValues(t, 3, s.Misses, "misses in %+v", s)
}

func TestCacheFreshnessFromResponse(t *testing.T) {
	tests := []struct {
		name     string
		policy   cachepolicy.Policy
		cc       string // response Cache-Control
		miss     string // Cache-Status of the first response
		hit      string // Cache-Status of the second; "" means the handler runs again
		wantRuns int64
	}{
		{name: "policy TTL", policy: cachepolicy.Policy{TTL: time.Minute},
			miss: "steadfast; fwd=uri-miss; stored", hit: "steadfast; hit; ttl=60", wantRuns: 1},
		{name: "max-age beats TTL", policy: cachepolicy.Policy{TTL: time.Minute}, cc: "max-age=30",
			miss: "steadfast; fwd=uri-miss; stored", hit: "steadfast; hit; ttl=30", wantRuns: 1},
		{name: "s-maxage beats max-age", policy: cachepolicy.Policy{TTL: time.Minute}, cc: "max-age=30, s-maxage=20",
			miss: "steadfast; fwd=uri-miss; stored", hit: "steadfast; hit; ttl=20", wantRuns: 1},
		{name: "zero policy with max-age", cc: "max-age=30",
			miss: "steadfast; fwd=uri-miss; stored", hit: "steadfast; hit; ttl=30", wantRuns: 1},
		{name: "zero policy without freshness",
			miss: "steadfast; fwd=uri-miss; detail=no-freshness", wantRuns: 2},
		{name: "no-store", policy: cachepolicy.Policy{TTL: time.Minute}, cc: "no-store",
			miss: "steadfast; fwd=uri-miss; detail=no-store", wantRuns: 2},
		{name: "private", policy: cachepolicy.Policy{TTL: time.Minute}, cc: "private, max-age=60",
			miss: "steadfast; fwd=uri-miss; detail=private", wantRuns: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, middleware.CacheOptions{})
			o := &origin{}
			if tc.cc != "" {
				o.set = header("Cache-Control", tc.cc)
			}
			h := e.cache.Policy(tc.policy)(o)
			first := do(h, "GET", "/x")
			assert.Equal(t, tc.miss, first.Header().Get("Cache-Status"))
			if tc.hit != "" {
				e.waitStored(1)
			}
			second := do(h, "GET", "/x")
			if tc.hit != "" {
				assert.Equal(t, tc.hit, second.Header().Get("Cache-Status"))
				assert.Equal(t, tc.cc, second.Header().Get("Cache-Control"), "stored Cache-Control")
			}
			assert.Equal(t, tc.wantRuns, o.runs.Load(), "handler runs")
		})
	}
}

func TestCacheNeverStoredByDefault(t *testing.T) {
	policy := cachepolicy.Policy{TTL: time.Minute, MaxBodyBytes: 64}
	tests := []struct {
		name   string
		req    []string // request header lines
		set    func(w http.ResponseWriter, r *http.Request)
		status string // Cache-Status of each response
	}{
		{name: "Set-Cookie", set: header("Set-Cookie", "session=1"),
			status: "steadfast; fwd=uri-miss; detail=set-cookie"},
		{name: "Authorization request", req: []string{"Authorization", "Bearer x"},
			status: "steadfast; fwd=bypass; detail=authorization"},
		{name: "Cookie request", req: []string{"Cookie", "session=1"},
			status: "steadfast; fwd=bypass; detail=cookie"},
		{name: "status outside policy", set: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) },
			status: "steadfast; fwd=uri-miss; detail=status"},
		{name: "server error", set: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) },
			status: "steadfast; fwd=uri-miss; detail=status"},
		{name: "Vary star", set: header("Vary", "*"),
			status: "steadfast; fwd=uri-miss; detail=vary-star"},
		{name: "Vary on something that is not a field name", set: header("Vary", "X Forwarded Host"),
			status: "steadfast; fwd=uri-miss; detail=vary-star"},
		{name: "Proxy-Authenticate status", set: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusProxyAuthRequired)
		}, status: "steadfast; fwd=uri-miss; detail=status"},
		{name: "announced over-size body", set: header("Content-Length", "1000"),
			status: "steadfast; fwd=uri-miss; detail=too-large"},
		{name: "request no-store", req: []string{"Cache-Control", "no-store"},
			status: "steadfast; fwd=request; detail=no-store"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, middleware.CacheOptions{})
			o := &origin{set: tc.set}
			h := e.cache.Policy(policy)(o)
			for i := range 2 {
				rr := do(h, "GET", "/x", tc.req...)
				assert.Equal(t, tc.status, rr.Header().Get("Cache-Status"), "response %d", i+1)
			}
			assert.EqualValues(t, 2, o.runs.Load(), "handler runs")
			assert.False(t, e.mr.Exists(key("/x", policy)), "entry stored")
		})
	}
}

func TestCacheOverSizeBodyStreamsThrough(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	big := strings.Repeat("0123456789", 100)
	var runs atomic.Int64
	h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute, MaxBodyBytes: 100})(http.HandlerFunc(
		func(w http.ResponseWriter, _ *http.Request) {
			runs.Add(1)
			for i := 0; i < len(big); i += 10 {
				_, _ = io.WriteString(w, big[i:i+10])
			}
		}))
	for i := range 2 {
		rr := do(h, "GET", "/big")
		assert.Equal(t, big, rr.Body.String(), "response %d body", i+1)
	}
	assert.EqualValues(t, 2, runs.Load(), "an over-size body was stored")
	assert.False(t, e.mr.Exists(key("/big", cachepolicy.Policy{})))
}

func TestCacheOptIns(t *testing.T) {
	tests := []struct {
		name   string
		policy cachepolicy.Policy
		req    []string
		set    func(w http.ResponseWriter, r *http.Request)
	}{
		{name: "Authorization with public response",
			policy: cachepolicy.Policy{TTL: time.Minute, AllowAuthorization: true},
			req:    []string{"Authorization", "Bearer x"}, set: header("Cache-Control", "public")},
		{name: "Cookie", policy: cachepolicy.Policy{TTL: time.Minute, AllowCookies: true},
			req: []string{"Cookie", "a=1"}},
		{name: "Set-Cookie", policy: cachepolicy.Policy{TTL: time.Minute, AllowSetCookie: true},
			set: header("Set-Cookie", "a=1")},
		{name: "status", policy: cachepolicy.Policy{TTL: time.Minute, Statuses: []int{http.StatusCreated}},
			set: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, middleware.CacheOptions{})
			o := &origin{set: tc.set}
			h := e.cache.Policy(tc.policy)(o)
			first := do(h, "GET", "/x", tc.req...)
			assert.Equal(t, "steadfast; fwd=uri-miss; stored", first.Header().Get("Cache-Status"))
			e.waitStored(1)
			second := do(h, "GET", "/x", tc.req...)
			assert.Equal(t, first.Code, second.Code)
			assert.Equal(t, "steadfast; hit; ttl=60", second.Header().Get("Cache-Status"))
			assert.EqualValues(t, 1, o.runs.Load(), "handler runs")
		})
	}
}

func TestCacheRequestDirectives(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	o := &origin{}
	h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(o)

	onlyIfCached := do(h, "GET", "/x", "Cache-Control", "only-if-cached")
	assert.Equal(t, http.StatusGatewayTimeout, onlyIfCached.Code, "only-if-cached on a miss")
	assert.Equal(t, "steadfast; fwd=uri-miss; detail=only-if-cached", onlyIfCached.Header().Get("Cache-Status"))
	assert.EqualValues(t, 0, o.runs.Load())

	do(h, "GET", "/x")
	e.waitStored(1)
	hit := do(h, "GET", "/x", "Cache-Control", "only-if-cached")
	assert.Equal(t, "run 1", hit.Body.String(), "only-if-cached on a hit")

	for i, cc := range []string{"no-cache", "max-age=0"} {
		rr := do(h, "GET", "/x", "Cache-Control", cc)
		assert.Equal(t, fmt.Sprintf("run %d", i+2), rr.Body.String(), "%s revalidates", cc)
		assert.Equal(t, "steadfast; fwd=request; stored", rr.Header().Get("Cache-Status"), cc)
		e.waitStored(1)
		again := do(h, "GET", "/x")
		assert.Equal(t, fmt.Sprintf("run %d", i+2), again.Body.String(), "%s stored the new response", cc)
	}

	pragma := do(h, "GET", "/x", "Pragma", "no-cache")
	assert.Equal(t, "run 4", pragma.Body.String(), "Pragma: no-cache revalidates")
	e.waitStored(1)

	noStore := do(h, "GET", "/x", "Cache-Control", "no-store")
	assert.Equal(t, "run 5", noStore.Body.String(), "no-store bypasses")
	assert.Equal(t, "steadfast; fwd=request; detail=no-store", noStore.Header().Get("Cache-Status"))
	assert.Equal(t, "run 4", do(h, "GET", "/x").Body.String(), "no-store replaced the entry")
}

func TestCacheConditionalRequests(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	const lastModified = "Mon, 02 Jan 2006 15:04:05 GMT"
	o := &origin{set: header("Etag", `"v1"`, "Last-Modified", lastModified)}
	h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(o)
	do(h, "GET", "/x")
	e.waitStored(1)

	tests := []struct {
		name   string
		method string
		req    []string
		want   int
	}{
		{name: "If-None-Match matches", method: "GET", req: []string{"If-None-Match", `"v0", "v1"`}, want: http.StatusNotModified},
		{name: "If-None-Match weak match", method: "GET", req: []string{"If-None-Match", `W/"v1"`}, want: http.StatusNotModified},
		{name: "If-None-Match star", method: "HEAD", req: []string{"If-None-Match", `*`}, want: http.StatusNotModified},
		{name: "If-None-Match differs", method: "GET", req: []string{"If-None-Match", `"v2"`}, want: http.StatusOK},
		{name: "If-Modified-Since later", method: "GET", req: []string{"If-Modified-Since", "Tue, 03 Jan 2006 15:04:05 GMT"}, want: http.StatusNotModified},
		{name: "If-Modified-Since earlier", method: "GET", req: []string{"If-Modified-Since", "Sun, 01 Jan 2006 15:04:05 GMT"}, want: http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rr := do(h, tc.method, "/x", tc.req...)
			assert.Equal(t, tc.want, rr.Code)
			assert.Equal(t, `"v1"`, rr.Header().Get("Etag"), "ETag kept")
			assert.Equal(t, lastModified, rr.Header().Get("Last-Modified"), "Last-Modified kept")
			assert.Equal(t, "steadfast; hit; ttl=60", rr.Header().Get("Cache-Status"))
			if tc.want == http.StatusNotModified {
				assert.Empty(t, rr.Body.String(), "304 body")
				assert.Empty(t, rr.Header().Get("Content-Length"), "304 Content-Length")
			}
		})
	}
	assert.EqualValues(t, 1, o.runs.Load(), "handler runs")
}

func TestCacheHEAD(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	o := &origin{}
	h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(o)

	cold := do(h, "HEAD", "/x")
	assert.Equal(t, "steadfast; fwd=uri-miss; detail=method", cold.Header().Get("Cache-Status"), "HEAD on a miss is not stored")
	assert.EqualValues(t, 1, o.runs.Load())

	do(h, "GET", "/x")
	e.waitStored(1)
	head := do(h, "HEAD", "/x")
	assert.Equal(t, http.StatusOK, head.Code)
	assert.Empty(t, head.Body.String(), "HEAD body")
	assert.Equal(t, "5", head.Header().Get("Content-Length"), "the GET body's length")
	assert.Equal(t, "steadfast; hit; ttl=60", head.Header().Get("Cache-Status"))
	assert.EqualValues(t, 2, o.runs.Load(), "HEAD was not served from the GET entry")
}

func TestCacheInvalidation(t *testing.T) {
	policy := cachepolicy.Policy{TTL: time.Minute}
	tests := []struct {
		method     string
		status     int
		invalidate bool
	}{
		{method: "POST", status: http.StatusOK, invalidate: true},
		{method: "PUT", status: http.StatusNoContent, invalidate: true},
		{method: "PATCH", status: http.StatusOK, invalidate: true},
		{method: "DELETE", status: http.StatusOK, invalidate: true},
		{method: "POST", status: http.StatusSeeOther, invalidate: true},
		{method: "POST", status: http.StatusInternalServerError},
		{method: "PUT", status: http.StatusConflict},
		{method: "OPTIONS", status: http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s %d", tc.method, tc.status), func(t *testing.T) {
			e := newEnv(t, middleware.CacheOptions{})
			o := &origin{set: func(w http.ResponseWriter, r *http.Request) {
				if r.Method != "GET" {
					w.WriteHeader(tc.status)
				}
			}}
			h := e.cache.Policy(policy)(o)
			do(h, "GET", "/items/1?a=1&b=2")
			e.waitStored(1)
			require.True(t, e.mr.Exists(key("/items/1?a=1&b=2", policy)))

			rr := do(h, tc.method, "/items/1?b=2&a=1")
			assert.Equal(t, tc.status, rr.Code)
			assert.Equal(t, tc.invalidate, !e.mr.Exists(key("/items/1?a=1&b=2", policy)), "entry deleted")
			after := do(h, "GET", "/items/1?a=1&b=2")
			if tc.invalidate {
				assert.Equal(t, "run 3", after.Body.String())
				assert.EqualValues(t, 1, e.cache.Stats().Invalidations)
			} else {
				assert.Equal(t, "run 1", after.Body.String())
			}
		})
	}
}

func TestCacheInvalidationWithKeyHeaders(t *testing.T) {
	// Only the variant the unsafe request's own key headers select is
	// deleted; the others live until their TTL.
	e := newEnv(t, middleware.CacheOptions{})
	policy := cachepolicy.Policy{TTL: time.Minute, KeyHeaders: []string{"Accept-Language"}}
	o := &origin{set: header("Vary", "Accept-Language")}
	h := e.cache.Policy(policy)(o)
	do(h, "GET", "/x", "Accept-Language", "de")
	do(h, "GET", "/x", "Accept-Language", "fr")
	e.waitStored(2)
	de := key("/x", normalized(policy), "Accept-Language", "de")
	fr := key("/x", normalized(policy), "Accept-Language", "fr")
	require.True(t, e.mr.Exists(de))
	require.True(t, e.mr.Exists(fr))

	do(h, "POST", "/x", "Accept-Language", "de")
	assert.False(t, e.mr.Exists(de), "variant of the POST kept")
	assert.True(t, e.mr.Exists(fr), "other variant deleted")
}

// normalized returns p as rules hold it, for computing keys in tests.
func normalized(p cachepolicy.Policy) cachepolicy.Policy {
	r, err := cachepolicy.NewRules(map[string]cachepolicy.Policy{"/": p})
	if err != nil {
		panic(err)
	}
	got, _ := r.For(httptest.NewRequest("GET", "/", nil))
	return got
}

func TestCacheHandlerWithRules(t *testing.T) {
	items := cachepolicy.Policy{TTL: time.Minute}
	rules, err := cachepolicy.NewRules(map[string]cachepolicy.Policy{
		"GET /items/{id}": items,
		"GET /slow/":      {TTL: time.Hour},
	})
	require.NoError(t, err)
	e := newEnv(t, middleware.CacheOptions{Rules: rules})
	o := &origin{}
	h := e.cache.Handler(o)

	first := do(h, "GET", "/items/7")
	assert.Equal(t, "steadfast; fwd=uri-miss; stored", first.Header().Get("Cache-Status"))
	e.waitStored(1)
	assert.Equal(t, "steadfast; hit; ttl=60", do(h, "GET", "/items/7").Header().Get("Cache-Status"))
	assert.Equal(t, "steadfast; hit; ttl=3600", func() string {
		do(h, "GET", "/slow/a")
		e.waitStored(1)
		return do(h, "GET", "/slow/a").Header().Get("Cache-Status")
	}())

	untouched := do(h, "GET", "/other")
	assert.Empty(t, untouched.Header().Values("Cache-Status"), "a request without a rule was touched")
	assert.Equal(t, "run 3", untouched.Body.String())

	// A POST has no rule of its own; it invalidates under the GET rule.
	post := do(h, "POST", "/items/7")
	assert.Equal(t, "steadfast; fwd=method", post.Header().Get("Cache-Status"))
	assert.False(t, e.mr.Exists(key("/items/7", items)), "POST did not invalidate")
	assert.Equal(t, "steadfast; fwd=uri-miss; stored", do(h, "GET", "/items/7").Header().Get("Cache-Status"))
}

func TestCacheHandlerInvalidatesPolicyRoutes(t *testing.T) {
	// Handler without rules in front of a mux whose GET route is cached
	// with Policy: an unsafe request the mux routes elsewhere still
	// invalidates the GET entry.
	e := newEnv(t, middleware.CacheOptions{})
	o := &origin{}
	mux := http.NewServeMux()
	mux.Handle("GET /items/{id}", e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(o))
	mux.Handle("PUT /items/{id}", o)
	h := e.cache.Handler(mux)
	do(h, "GET", "/items/1")
	e.waitStored(1)
	assert.Equal(t, "run 1", do(h, "GET", "/items/1").Body.String())
	do(h, "PUT", "/items/1")
	assert.Equal(t, "run 3", do(h, "GET", "/items/1").Body.String(), "PUT did not invalidate")
}

func TestCacheKeyPoisoning(t *testing.T) {
	// Headers a request may carry to change what a careless handler
	// writes. None of them is in the key unless the policy names it.
	poison := []string{
		"X-Forwarded-Host", "evil.example",
		"X-Forwarded-Proto", "javascript",
		"X-Forwarded-Scheme", "nothttps",
		"X-Forwarded-Port", "1337",
		"X-Original-URL", "/admin",
		"X-Rewrite-URL", "/admin",
		"X-Host", "evil.example",
		"Forwarded", "host=evil.example;proto=http",
		"X-HTTP-Method-Override", "POST",
		"Accept-Language", "xx",
		"User-Agent", "evil",
	}
	// reflect writes every such header into the body, and says so with
	// Vary when vary is set.
	reflect := func(vary string) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			if vary != "" {
				w.Header().Set("Vary", vary)
			}
			for i := 0; i < len(poison); i += 2 {
				if v := r.Header.Get(poison[i]); v != "" {
					fmt.Fprintf(w, "%s=%s ", poison[i], v)
				}
			}
		}
	}

	t.Run("unkeyed headers hit the clean entry", func(t *testing.T) {
		e := newEnv(t, middleware.CacheOptions{})
		h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(&origin{set: reflect("")})
		clean := do(h, "GET", "/page")
		e.waitStored(1)
		for i := 0; i < len(poison); i += 2 {
			rr := do(h, "GET", "/page", poison[i], poison[i+1])
			assert.Equal(t, clean.Body.String(), rr.Body.String(), "%s changed the cached response", poison[i])
			assert.Equal(t, "steadfast; hit; ttl=60", rr.Header().Get("Cache-Status"), poison[i])
		}
	})

	t.Run("response varying on an unkeyed header is stored only for its value", func(t *testing.T) {
		e := newEnv(t, middleware.CacheOptions{})
		h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(&origin{set: reflect("X-Forwarded-Host")})
		evil := do(h, "GET", "/page", "X-Forwarded-Host", "evil.example")
		require.Contains(t, evil.Body.String(), "evil.example")
		assert.Equal(t, "steadfast; fwd=uri-miss; stored", evil.Header().Get("Cache-Status"))
		e.waitStored(2) // the variant, then the URL's variant index
		clean := do(h, "GET", "/page")
		assert.NotContains(t, clean.Body.String(), "evil", "the attacker's response was served")
		assert.Equal(t, "steadfast; fwd=vary-miss; stored", clean.Header().Get("Cache-Status"))
		e.waitStored(2)
		again := do(h, "GET", "/page", "X-Forwarded-Host", "evil.example")
		assert.Contains(t, again.Body.String(), "evil.example")
		assert.Equal(t, "steadfast; hit; ttl=60", again.Header().Get("Cache-Status"))
		clean = do(h, "GET", "/page")
		assert.NotContains(t, clean.Body.String(), "evil", "the attacker's response was served")
		assert.Equal(t, "steadfast; hit; ttl=60", clean.Header().Get("Cache-Status"))
	})

	t.Run("keyed header gets its own entry", func(t *testing.T) {
		e := newEnv(t, middleware.CacheOptions{})
		policy := cachepolicy.Policy{TTL: time.Minute, KeyHeaders: []string{"x-forwarded-host"}}
		h := e.cache.Policy(policy)(&origin{set: reflect("X-Forwarded-Host")})
		evil := do(h, "GET", "/page", "X-Forwarded-Host", "evil.example")
		require.Contains(t, evil.Body.String(), "evil.example")
		e.waitStored(1)
		clean := do(h, "GET", "/page")
		assert.NotContains(t, clean.Body.String(), "evil", "the attacker's variant was served")
		assert.Equal(t, "steadfast; fwd=uri-miss; stored", clean.Header().Get("Cache-Status"))
		e.waitStored(1)
		again := do(h, "GET", "/page", "X-Forwarded-Host", "evil.example")
		assert.Equal(t, evil.Body.String(), again.Body.String())
	})

	t.Run("Host and scheme are keyed, not taken from headers", func(t *testing.T) {
		e := newEnv(t, middleware.CacheOptions{})
		o := &origin{}
		h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(o)
		do(h, "GET", "http://a.example/page")
		e.waitStored(1)
		assert.Equal(t, "run 2", do(h, "GET", "http://b.example/page").Body.String(), "Host not in key")
		assert.Equal(t, "run 3", do(h, "GET", "https://a.example/page").Body.String(), "scheme not in key")
		e.waitStored(2)
		assert.Equal(t, "run 1", do(h, "GET", "http://a.example/page", "X-Forwarded-Proto", "https").Body.String())
	})
}

func TestCacheCorruptEntries(t *testing.T) {
	policy := cachepolicy.Policy{TTL: time.Minute}
	good := func(t *testing.T) string {
		e := newEnv(t, middleware.CacheOptions{})
		do(e.cache.Policy(policy)(&origin{}), "GET", "/x")
		e.waitStored(1)
		v, err := e.mr.Get(key("/x", policy))
		require.NoError(t, err)
		return v
	}(t)
	tests := []struct {
		name string
		val  string
	}{
		{name: "garbage", val: "\x00\x01\x02 not an entry"},
		{name: "empty", val: ""},
		{name: "foreign JSON", val: `{"status":200,"body":"x"}`},
		{name: "truncated", val: good[:len(good)-3]},
		{name: "header only", val: good[:12]},
		{name: "flipped bit", val: good[:len(good)-1] + string(good[len(good)-1]^1)},
		{name: "future version", val: good[:3] + "\x09" + good[4:]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, middleware.CacheOptions{})
			k := key("/x", policy)
			require.NoError(t, e.mr.Set(k, tc.val))
			// A response that is not stored, so that the key stays deleted.
			o := &origin{set: header("Cache-Control", "no-store")}
			rr := do(e.cache.Policy(policy)(o), "GET", "/x")
			assert.Equal(t, http.StatusOK, rr.Code)
			assert.Equal(t, "run 1", rr.Body.String())
			assert.False(t, e.mr.Exists(k), "corrupt value not deleted")
			assert.EqualValues(t, 1, e.cache.Stats().DecodeErrors)
		})
	}

	t.Run("replaced by a good entry", func(t *testing.T) {
		e := newEnv(t, middleware.CacheOptions{})
		require.NoError(t, e.mr.Set(key("/x", policy), "junk"))
		h := e.cache.Policy(policy)(&origin{})
		do(h, "GET", "/x")
		e.waitStored(1)
		assert.Equal(t, "run 1", do(h, "GET", "/x").Body.String())
	})
}

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
	logs := &lines{}
	e := newEnv(t, middleware.CacheOptions{Logger: logs.logger()})
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

func TestCacheFailOpen(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{name: "breaker open", err: resilience.ErrUnavailable},
		{name: "timeout", err: fmt.Errorf("redis get: %w", context.DeadlineExceeded)},
		{name: "connection refused", err: errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sets atomic.Int64
			store := &fakeStore{
				GetFunc: func(context.Context, string) ([]byte, error) { return nil, tc.err },
				SetFunc: func(context.Context, string, []byte, time.Duration) error { sets.Add(1); return nil },
			}
			cache, err := middleware.NewCache(store, middleware.CacheOptions{Logger: quiet})
			require.NoError(t, err)
			o := &origin{}
			h := cache.Policy(cachepolicy.Policy{TTL: time.Minute})(o)
			for i := range 3 {
				rr := do(h, "GET", "/x")
				assert.Equal(t, http.StatusOK, rr.Code)
				assert.Equal(t, fmt.Sprintf("run %d", i+1), rr.Body.String())
				assert.Equal(t, "steadfast; fwd=bypass; detail=redis-unavailable", rr.Header().Get("Cache-Status"))
			}
			require.NoError(t, cache.Close())
			assert.Zero(t, sets.Load(), "stored while the store was unavailable")
			assert.EqualValues(t, 3, cache.Stats().Bypasses)
		})
	}
}

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

func TestCacheClientGoneDuringLookup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	store := &fakeStore{GetFunc: func(ctx context.Context, _ string) ([]byte, error) {
		cancel()
		return nil, fmt.Errorf("redis get: %w", ctx.Err())
	}}
	cache, err := middleware.NewCache(store, middleware.CacheOptions{Logger: quiet})
	require.NoError(t, err)
	defer cache.Close()
	o := &origin{}
	rr := httptest.NewRecorder()
	cache.Policy(cachepolicy.Policy{TTL: time.Minute})(o).ServeHTTP(rr, newRequest("GET", "/x").WithContext(ctx))
	assert.Zero(t, o.runs.Load(), "handler ran for a client that left")
	assert.Zero(t, cache.Stats().Bypasses, "a client leaving counted as Redis unavailable")
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

func TestCacheWriteQueueFull(t *testing.T) {
	logs := &lines{}
	setting := make(chan string, 10)
	unblock := make(chan struct{})
	var stored atomic.Int64
	store := &fakeStore{SetFunc: func(_ context.Context, key string, _ []byte, _ time.Duration) error {
		setting <- key
		<-unblock
		stored.Add(1)
		return nil
	}}
	cache, err := middleware.NewCache(store, middleware.CacheOptions{QueueSize: 1, Workers: 1, Logger: logs.logger()})
	require.NoError(t, err)
	h := cache.Policy(cachepolicy.Policy{TTL: time.Minute})(&origin{})

	do(h, "GET", "/a")
	<-setting // the worker is busy with /a
	for _, path := range []string{"/b", "/c", "/d"} {
		// Each returns at once although nothing can be written: /b waits
		// in the queue, /c and /d are dropped.
		rr := do(h, "GET", path)
		assert.Equal(t, http.StatusOK, rr.Code)
	}
	assert.EqualValues(t, 2, cache.Stats().Dropped)
	close(unblock)
	require.NoError(t, cache.Close())
	assert.EqualValues(t, 2, stored.Load(), "queued entries were not written by Close")
	assert.EqualValues(t, 2, cache.Stats().Stored)
	assert.Equal(t, 1, strings.Count(logs.String(), "queue full"), "log lines:\n%s", logs.String())
}

func TestCacheCloseBoundsDrain(t *testing.T) {
	// A store that does not answer holds Close only until the drain
	// timeout; the write in progress is cancelled and the queued rest is
	// dropped. Under synctest the timeout passes at once.
	synctest.Test(t, testCloseBoundsDrain)
}

func testCloseBoundsDrain(t *testing.T) {
	setting := make(chan struct{}, 10)
	unblock := make(chan struct{})
	store := &fakeStore{SetFunc: func(ctx context.Context, _ string, _ []byte, _ time.Duration) error {
		setting <- struct{}{}
		select {
		case <-ctx.Done():
		case <-unblock:
		}
		return ctx.Err()
	}}
	cache, err := middleware.NewCache(store, middleware.CacheOptions{Workers: 1, Logger: quiet})
	require.NoError(t, err)
	h := cache.Policy(cachepolicy.Policy{TTL: time.Minute})(&origin{})
	for _, p := range []string{"/a", "/b", "/c"} {
		do(h, "GET", p)
	}
	<-setting
	require.NoError(t, cache.Close())
	close(unblock)
	s := cache.Stats()
	assert.EqualValues(t, 1, s.StoreErrors, "stats %+v", s)
	assert.EqualValues(t, 2, s.Dropped, "stats %+v", s)
	require.NoError(t, cache.Close(), "second Close")
}

func TestCacheEntryTTL(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	p := cachepolicy.Policy{TTL: time.Minute, StaleWhileRevalidate: 30 * time.Second, StaleIfError: 10 * time.Minute}
	do(e.cache.Policy(p)(&origin{}), "GET", "/x")
	e.waitStored(1)
	assert.Equal(t, 11*time.Minute, e.mr.TTL(key("/x", p)), "TTL is freshness plus the longer stale window")
}

func TestCacheResponseWriterInterfaces(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	p := cachepolicy.Policy{TTL: time.Minute}
	mux := http.NewServeMux()
	mux.Handle("GET /flush", e.cache.Policy(p)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		rc := http.NewResponseController(w)
		assert.NoError(t, rc.SetWriteDeadline(time.Now().Add(time.Minute)), "Unwrap reaches the connection")
		_, _ = io.WriteString(w, "part 1;")
		assert.NoError(t, rc.Flush())
		_, _ = io.WriteString(w, "part 2")
	})))
	mux.Handle("GET /readfrom", e.cache.Policy(p)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		rf, ok := w.(io.ReaderFrom)
		require.True(t, ok, "io.ReaderFrom lost")
		_, err := rf.ReadFrom(strings.NewReader("copied body"))
		assert.NoError(t, err)
	})))
	mux.Handle("GET /hijack", e.cache.Policy(p)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if !assert.NoError(t, err) {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		_ = brw.Flush()
	})))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (string, string) {
		res, err := srv.Client().Get(srv.URL + path)
		require.NoError(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return string(b), res.Header.Get("Cache-Status")
	}

	body, status := get("/flush")
	assert.Equal(t, "part 1;part 2", body)
	assert.Equal(t, "steadfast; fwd=uri-miss; stored", status)
	body, _ = get("/readfrom")
	assert.Equal(t, "copied body", body)
	e.waitStored(2)
	body, status = get("/flush")
	assert.Equal(t, "part 1;part 2", body, "flushed response stored whole")
	assert.Equal(t, "steadfast; hit; ttl=60", status)
	body, _ = get("/readfrom")
	assert.Equal(t, "copied body", body)

	body, status = get("/hijack")
	assert.Equal(t, "hijacked", body)
	assert.Empty(t, status)
	assert.False(t, e.mr.Exists(key(srv.URL+"/hijack", p)))
}

func TestCacheInvalidPolicy(t *testing.T) {
	logs := &lines{}
	e := newEnv(t, middleware.CacheOptions{Logger: logs.logger()})
	o := &origin{}
	h := e.cache.Policy(cachepolicy.Policy{TTL: -time.Second})(o)
	for range 2 {
		rr := do(h, "GET", "/x")
		assert.Equal(t, "steadfast; fwd=bypass; detail=invalid-policy", rr.Header().Get("Cache-Status"))
	}
	assert.EqualValues(t, 2, o.runs.Load())
	assert.Equal(t, 1, strings.Count(logs.String(), "TTL"), "log:\n%s", logs.String())
}

func TestNewCacheOptions(t *testing.T) {
	tests := []struct {
		name  string
		store middleware.Store
		opts  middleware.CacheOptions
		field string
	}{
		{name: "nil store", opts: middleware.CacheOptions{}, field: "store"},
		{name: "negative queue", store: &fakeStore{}, opts: middleware.CacheOptions{QueueSize: -1}, field: "QueueSize"},
		{name: "negative workers", store: &fakeStore{}, opts: middleware.CacheOptions{Workers: -1}, field: "Workers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := middleware.NewCache(tc.store, tc.opts)
			assert.Nil(t, c)
			assert.ErrorIs(t, err, middleware.ErrInvalidOption)
			assert.ErrorContains(t, err, tc.field)
		})
	}
}

// lines collects log output.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *lines) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

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

func TestCacheKeepsOuterHeadersOutOfEntries(t *testing.T) {
	// Fields outer middleware set before the cache runs belong to their
	// own request: never stored. They count in the store decision (see
	// TestCacheOuterMiddlewareHeaders), but for the Vary names of
	// OuterVary (an outer compressor's Accept-Encoding).
	e := newEnv(t, middleware.CacheOptions{OuterVary: []string{"accept-encoding"}})
	var id atomic.Int64
	cached := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(&origin{set: header("X-From-Handler", "yes")})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", fmt.Sprint(id.Add(1)))
		w.Header().Add("Vary", "Accept-Encoding")
		w.Header().Add("X-Outer", "seen=1")
		cached.ServeHTTP(w, r)
	})
	miss := do(h, "GET", "/x")
	assert.Equal(t, "steadfast; fwd=uri-miss; stored", miss.Header().Get("Cache-Status"))
	e.waitStored(1)
	e.clock.Add(5 * time.Second)
	hit := do(h, "GET", "/x")
	assert.Equal(t, "steadfast; hit; ttl=55", hit.Header().Get("Cache-Status"))
	assert.Equal(t, "2", hit.Header().Get("X-Request-Id"), "an outer middleware's field was replayed")
	assert.Equal(t, "yes", hit.Header().Get("X-From-Handler"))
	assert.Equal(t, "Sun, 01 Jun 2025 12:00:00 GMT", hit.Header().Get("Date"), "Date of the stored response")
	assert.Equal(t, "5", hit.Header().Get("Age"))
	assert.Equal(t, []string{"seen=1"}, hit.Header().Values("X-Outer"), "the outer field, once")
	assert.Equal(t, []string{"Accept-Encoding"}, hit.Header().Values("Vary"), "the outer Vary, once")

	// A field the handler changes is its own.
	vary := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(&origin{set: header("Vary", "X-Unkeyed")})
	rr := httptest.NewRecorder()
	rr.Header().Set("Vary", "Accept-Encoding")
	vary.ServeHTTP(rr, newRequest("GET", "/y"))
	assert.Equal(t, "steadfast; fwd=uri-miss; stored", rr.Header().Get("Cache-Status"), "stored as a variant")
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
