package middleware_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/middleware"
)

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
