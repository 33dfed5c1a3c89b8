package middleware_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/middleware"
)

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

func TestCacheEntryTTL(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	p := cachepolicy.Policy{TTL: time.Minute, StaleWhileRevalidate: 30 * time.Second, StaleIfError: 10 * time.Minute}
	do(e.cache.Policy(p)(&origin{}), "GET", "/x")
	e.waitStored(1)
	assert.Equal(t, 11*time.Minute, e.mr.TTL(key("/x", p)), "TTL is freshness plus the longer stale window")
}
