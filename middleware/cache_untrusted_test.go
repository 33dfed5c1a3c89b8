package middleware_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/middleware"
)

// serve returns the URL of an HTTP server running h.
func (e *env) serve(h http.Handler) string {
	ts := httptest.NewServer(h)
	e.t.Cleanup(ts.Close)
	return ts.URL
}

// send sends req and returns the response with its body read.
func send(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultTransport.RoundTrip(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

// Two requests share an entry only if the handler sees the same query: a
// handler that reflects the raw query must not serve the raw script it
// stored to a visitor who sent the escaped URL (issue 14 item 4).
func TestCacheQueryAsSentRealRedis(t *testing.T) {
	e := newRealEnv(t, middleware.CacheOptions{})
	reflectQuery := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<p>you searched "+r.URL.RawQuery+"</p>")
	})
	base := e.serve(e.cache.Policy(cachepolicy.Policy{TTL: time.Hour})(reflectQuery))

	raw, err := http.NewRequest("GET", base+"/search", nil)
	require.NoError(t, err)
	raw.URL.RawQuery = `q="><script>alert(1)</script>`
	resp, body := send(t, raw)
	require.Contains(t, body, "<script>", "the raw query did not reach the handler raw")
	require.Equal(t, "steadfast; fwd=uri-miss; stored", resp.Header.Get("Cache-Status"))
	e.waitStored(1)

	escaped, err := http.NewRequest("GET", base+"/search?q=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E", nil)
	require.NoError(t, err)
	resp, body = send(t, escaped)
	assert.NotContains(t, body, "<script>", "the raw request's response was served for the escaped URL")
	assert.Equal(t, "steadfast; fwd=uri-miss; stored", resp.Header.Get("Cache-Status"))
	e.waitStored(1)

	// Each is a hit for itself.
	resp, body = send(t, raw.Clone(raw.Context()))
	assert.Contains(t, body, "<script>")
	assert.Equal(t, "steadfast; hit; ttl=3600", resp.Header.Get("Cache-Status"))
	resp, _ = send(t, escaped.Clone(escaped.Context()))
	assert.Equal(t, "steadfast; hit; ttl=3600", resp.Header.Get("Cache-Status"))
}

// A GET or HEAD with a body is neither looked up nor stored (issue 14
// item 5): the body is not in the key, so its answer must not be served
// to the next client of the URL, nor may it be answered from the cache.
func TestCacheRequestBodyRealRedis(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		chunked bool
	}{
		{name: "GET with Content-Length", method: "GET"},
		{name: "GET chunked", method: "GET", chunked: true},
		{name: "HEAD with Content-Length", method: "HEAD"},
		{name: "HEAD chunked", method: "HEAD", chunked: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newRealEnv(t, middleware.CacheOptions{})
			o := &origin{set: func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				io.WriteString(w, "results for "+string(b)+"; ")
			}}
			base := e.serve(e.cache.Policy(cachepolicy.Policy{TTL: time.Hour})(o))

			// An entry that a fat request must not be answered from.
			_, clean := send(t, mustRequest(t, "GET", base+"/search", ""))
			e.waitStored(1)

			fat := mustRequest(t, tc.method, base+"/search", "evil")
			if tc.chunked {
				fat.ContentLength = -1
				fat.TransferEncoding = []string{"chunked"}
			}
			resp, body := send(t, fat)
			assert.Equal(t, "steadfast; fwd=bypass; detail=request-body", resp.Header.Get("Cache-Status"))
			assert.Empty(t, resp.Header.Get("Age"), "answered from the cache")
			if tc.method == "GET" {
				assert.Equal(t, "results for evil; run 2", body)
			}
			assert.EqualValues(t, 2, o.runs.Load(), "handler runs")
			assert.EqualValues(t, 1, e.cache.Stats().Skipped, "Skipped")

			// Nothing of the fat request was stored under the URL.
			_, after := send(t, mustRequest(t, "GET", base+"/search", ""))
			assert.Equal(t, clean, after)
			assert.NotContains(t, after, "evil")
			stats := e.cache.Stats()
			assert.EqualValues(t, 1, stats.Stored, "stored entries; stats %+v", stats)
		})
	}
}

func mustRequest(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	require.NoError(t, err)
	return req
}
