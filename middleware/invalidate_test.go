package middleware_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/middleware"
)

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
