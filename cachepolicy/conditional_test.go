package cachepolicy

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestNotModified(t *testing.T) {
	lastMod := httpDate(t0)
	tests := []struct {
		name         string
		method       string
		header       []string
		etag         string
		lastModified string
		want         bool
	}{
		{name: "no conditions", method: "GET", etag: `"v1"`, lastModified: lastMod, want: false},
		{name: "strong match", method: "GET", header: []string{"If-None-Match", `"v1"`}, etag: `"v1"`, want: true},
		{name: "HEAD", method: "HEAD", header: []string{"If-None-Match", `"v1"`}, etag: `"v1"`, want: true},
		{name: "empty method is GET", method: "", header: []string{"If-None-Match", `"v1"`}, etag: `"v1"`, want: true},
		{name: "POST never", method: "POST", header: []string{"If-None-Match", `"v1"`}, etag: `"v1"`, want: false},
		{name: "no match", method: "GET", header: []string{"If-None-Match", `"v2"`}, etag: `"v1"`, want: false},
		{name: "weak request tag", method: "GET", header: []string{"If-None-Match", `W/"v1"`}, etag: `"v1"`, want: true},
		{name: "weak stored tag", method: "GET", header: []string{"If-None-Match", `"v1"`}, etag: `W/"v1"`, want: true},
		{name: "both weak", method: "GET", header: []string{"If-None-Match", `W/"v1"`}, etag: `W/"v1"`, want: true},
		{name: "lower-case weak prefix is not weak", method: "GET", header: []string{"If-None-Match", `w/"v1"`}, etag: `"v1"`, want: false},
		{name: "list", method: "GET", header: []string{"If-None-Match", `"a", W/"b" ,"v1"`}, etag: `"v1"`, want: true},
		{name: "list over lines", method: "GET", header: []string{"If-None-Match", `"a"`, "If-None-Match", `"v1"`}, etag: `"v1"`, want: true},
		{name: "comma inside tag", method: "GET", header: []string{"If-None-Match", `"a,b", "c"`}, etag: `"a,b"`, want: true},
		{name: "comma inside tag is not a split", method: "GET", header: []string{"If-None-Match", `"a,b"`}, etag: `"b"`, want: false},
		{name: "star", method: "GET", header: []string{"If-None-Match", "*"}, etag: `"v1"`, want: true},
		{name: "star without etag", method: "GET", header: []string{"If-None-Match", " * "}, want: true},
		{name: "star inside garbage is not star", method: "GET", header: []string{"If-None-Match", "*x"}, etag: `"v1"`, want: false},
		{name: "unquoted tags never match", method: "GET", header: []string{"If-None-Match", "v1"}, etag: "v1", want: false},
		{name: "unterminated tag", method: "GET", header: []string{"If-None-Match", `"v1`}, etag: `"v1"`, want: false},
		{name: "garbage then match", method: "GET", header: []string{"If-None-Match", `x y, "v1"`}, etag: `"v1"`, want: true},
		{name: "no stored etag", method: "GET", header: []string{"If-None-Match", `"v1"`}, want: false},
		{name: "malformed stored etag", method: "GET", header: []string{"If-None-Match", `"v"1"`}, etag: `"v"1"`, want: false},
		{name: "empty if-none-match", method: "GET", header: []string{"If-None-Match", ""}, etag: `"v1"`, lastModified: lastMod, want: false},
		{
			name:         "if-none-match beats if-modified-since",
			method:       "GET",
			header:       []string{"If-None-Match", `"v2"`, "If-Modified-Since", httpDate(t0.Add(time.Hour))},
			etag:         `"v1"`,
			lastModified: lastMod,
			want:         false,
		},
		{name: "not modified since later", method: "GET", header: []string{"If-Modified-Since", httpDate(t0.Add(time.Hour))}, lastModified: lastMod, want: true},
		{name: "not modified since same", method: "GET", header: []string{"If-Modified-Since", lastMod}, lastModified: lastMod, want: true},
		{name: "modified since earlier", method: "GET", header: []string{"If-Modified-Since", httpDate(t0.Add(-time.Second))}, lastModified: lastMod, want: false},
		{name: "RFC 850 date", method: "GET", header: []string{"If-Modified-Since", "Thursday, 02-Jan-25 12:00:00 GMT"}, lastModified: lastMod, want: true},
		{name: "asctime date", method: "GET", header: []string{"If-Modified-Since", "Thu Jan  2 12:00:00 2025"}, lastModified: lastMod, want: true},
		{name: "garbage date", method: "GET", header: []string{"If-Modified-Since", "yesterday"}, lastModified: lastMod, want: false},
		{name: "two dates", method: "GET", header: []string{"If-Modified-Since", lastMod, "If-Modified-Since", lastMod}, lastModified: lastMod, want: false},
		{name: "no last-modified", method: "GET", header: []string{"If-Modified-Since", lastMod}, want: false},
		{name: "garbage last-modified", method: "GET", header: []string{"If-Modified-Since", lastMod}, lastModified: "then", want: false},
		{name: "POST with date", method: "POST", header: []string{"If-Modified-Since", lastMod}, lastModified: lastMod, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := &http.Request{Method: tc.method, Header: header(tc.header...)}
			got := NotModified(req, tc.etag, tc.lastModified)
			assert.Equal(t, tc.want, got, "NotModified(%s %q, etag %q, last-modified %q)", tc.method, req.Header, tc.etag, tc.lastModified)
		})
	}
	assert.False(t, NotModified(nil, `"v1"`, lastMod), "nil request")
}
