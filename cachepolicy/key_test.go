package cachepolicy

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newRequest returns a server-side style request for target with the given
// header lines ("Name", "value", ...).
func newRequest(method, target string, header ...string) *http.Request {
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	return req
}

func TestKeyFormat(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
	}{
		{name: "empty prefix", prefix: ""},
		{name: "plain prefix", prefix: "app:"},
		{name: "prefix with odd bytes", prefix: "a b\x00c:"},
	}
	hash := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := Key(tc.prefix, newRequest("GET", "/items/1"), Policy{})
			require.Len(t, key, len(tc.prefix)+KeyHashLen, "key %q", key)
			assert.Equal(t, tc.prefix, key[:len(tc.prefix)], "prefix of %q", key)
			assert.Regexp(t, hash, key[len(tc.prefix):], "hash of %q", key)
		})
	}
}

func TestKeyNilRequest(t *testing.T) {
	key := Key("p:", nil, Policy{})
	assert.Len(t, key, 2+KeyHashLen, "key %q", key)
	assert.Equal(t, key, Key("p:", nil, Policy{}), "not deterministic")
	assert.NotEqual(t, key, Key("p:", &http.Request{}, Policy{}), "nil and empty request")
	assert.NotPanics(t, func() { Key("p:", &http.Request{Method: "GET", Host: "h"}, Policy{}) }, "request without URL")
}

func TestKeySame(t *testing.T) {
	keyed := Policy{KeyHeaders: []string{"Accept-Language", "x-tenant"}}
	tests := []struct {
		name   string
		a, b   *http.Request
		policy Policy
	}{
		{name: "HEAD shares GET", a: newRequest("GET", "/x"), b: newRequest("HEAD", "/x")},
		{name: "empty method is GET", a: newRequest("GET", "/x"), b: &http.Request{Host: "example.com", URL: &url.URL{Path: "/x"}}},
		{name: "query order", a: newRequest("GET", "/x?a=1&b=2"), b: newRequest("GET", "/x?b=2&a=1")},
		{name: "query repeated name keeps value order across names", a: newRequest("GET", "/x?a=2&b=0&a=1"), b: newRequest("GET", "/x?b=0&a=2&a=1")},
		{name: "empty query", a: newRequest("GET", "/x"), b: newRequest("GET", "/x?")},
		{name: "query order with empty params", a: newRequest("GET", "/x?&a=1"), b: newRequest("GET", "/x?a=1&")},
		{name: "query repeated name written two ways keeps order", a: newRequest("GET", "/x?a=1&b=0&%61=2"), b: newRequest("GET", "/x?b=0&a=1&%61=2")},
		{name: "query escaped names sort by decoded name", a: newRequest("GET", "/x?%62=1&a=2"), b: newRequest("GET", "/x?a=2&%62=1")},
		{name: "host case", a: newRequest("GET", "http://example.com/x"), b: newRequest("GET", "http://EXAMPLE.Com/x")},
		{name: "http default port", a: newRequest("GET", "http://example.com/x"), b: newRequest("GET", "http://example.com:80/x")},
		{name: "https default port", a: newRequest("GET", "https://example.com/x"), b: newRequest("GET", "https://example.com:443/x")},
		{name: "empty port", a: newRequest("GET", "http://example.com/x"), b: newRequest("GET", "http://example.com:/x")},
		{name: "ipv6 default port", a: newRequest("GET", "http://[::1]/x"), b: newRequest("GET", "http://[::1]:80/x")},
		{name: "empty path is slash", a: newRequest("GET", "http://example.com/"), b: &http.Request{Method: "GET", Host: "example.com", URL: &url.URL{}}},
		{name: "host from URL when Host empty", a: newRequest("GET", "http://example.com/x"), b: &http.Request{Method: "GET", URL: &url.URL{Host: "example.com", Path: "/x"}}},
		{
			name:   "key header order and case in policy",
			a:      newRequest("GET", "/x", "Accept-Language", "de"),
			b:      newRequest("GET", "/x", "Accept-Language", "de"),
			policy: Policy{KeyHeaders: []string{"x-TENANT", "accept-language", "Accept-Language"}},
		},
		{
			name:   "keyed headers equal",
			a:      newRequest("GET", "/x", "Accept-Language", "de", "X-Tenant", "t1"),
			b:      newRequest("GET", "/x", "X-Tenant", "t1", "Accept-Language", "de"),
			policy: keyed,
		},
		{
			name: "unkeyed forwarding headers",
			a:    newRequest("GET", "/x"),
			b: newRequest("GET", "/x",
				"X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https",
				"X-Original-URL", "/admin", "X-Rewrite-URL", "/admin", "X-Host", "evil.example",
				"Forwarded", "host=evil.example;proto=https", "X-Forwarded-For", "10.0.0.1"),
			policy: keyed,
		},
		{
			name:   "unkeyed cookie and authorization",
			a:      newRequest("GET", "/x"),
			b:      newRequest("GET", "/x", "Cookie", "s=1", "Authorization", "Bearer t"),
			policy: keyed,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ka, kb := Key("p:", tc.a, tc.policy), Key("p:", tc.b, tc.policy)
			assert.Equal(t, ka, kb, "keys differ:\n a %s %s%s -> %s\n b %s %s%s -> %s",
				tc.a.Method, tc.a.Host, tc.a.URL, ka, tc.b.Method, tc.b.Host, tc.b.URL, kb)
		})
	}
}

func TestKeyDiffers(t *testing.T) {
	keyed := Policy{KeyHeaders: []string{"Accept-Language", "X-Tenant"}}
	tests := []struct {
		name   string
		a, b   *http.Request
		policy Policy
	}{
		{name: "POST has its own class", a: newRequest("GET", "/x"), b: newRequest("POST", "/x")},
		{name: "POST and PUT", a: newRequest("PUT", "/x"), b: newRequest("POST", "/x")},
		{name: "method case", a: newRequest("GET", "/x"), b: newRequest("get", "/x")},
		{name: "host", a: newRequest("GET", "http://a.example/x"), b: newRequest("GET", "http://b.example/x")},
		{name: "scheme", a: newRequest("GET", "http://example.com/x"), b: newRequest("GET", "https://example.com/x")},
		{name: "non-default port", a: newRequest("GET", "http://example.com/x"), b: newRequest("GET", "http://example.com:8080/x")},
		{name: "https port on http", a: newRequest("GET", "http://example.com/x"), b: newRequest("GET", "http://example.com:443/x")},
		{name: "path", a: newRequest("GET", "/x"), b: newRequest("GET", "/y")},
		{name: "trailing slash", a: newRequest("GET", "/x"), b: newRequest("GET", "/x/")},
		{name: "escaped slash in path", a: newRequest("GET", "/a/b"), b: newRequest("GET", "/a%2Fb")},
		{name: "query value", a: newRequest("GET", "/x?a=1"), b: newRequest("GET", "/x?a=2")},
		{name: "query name", a: newRequest("GET", "/x?a=1"), b: newRequest("GET", "/x?b=1")},
		{name: "query extra param", a: newRequest("GET", "/x?a=1"), b: newRequest("GET", "/x?a=1&b=2")},
		{name: "query repeated param", a: newRequest("GET", "/x?a=1"), b: newRequest("GET", "/x?a=1&a=1")},
		{name: "query repeated name value order", a: newRequest("GET", "/x?sort=price&sort=name"), b: newRequest("GET", "/x?sort=name&sort=price")},
		{name: "query escaped separator", a: newRequest("GET", "/x?a=b&c=d"), b: newRequest("GET", "/x?a=b%26c%3Dd")},
		{name: "query name value boundary", a: newRequest("GET", "/x?ab=c"), b: newRequest("GET", "/x?a=bc")},
		{name: "query percent escape not decoded", a: newRequest("GET", "/x?a=1"), b: newRequest("GET", "/x?a=%31")},
		{name: "query name escape not decoded", a: newRequest("GET", "/x?ab=1"), b: newRequest("GET", "/x?a%62=1")},
		{name: "query plus is not space", a: newRequest("GET", "/x?q=a+b"), b: newRequest("GET", "/x?q=a%20b")},
		{name: "query lower and upper hex", a: newRequest("GET", "/x?q=%2f"), b: newRequest("GET", "/x?q=%2F")},
		{name: "query empty params kept", a: newRequest("GET", "/x?a=1"), b: newRequest("GET", "/x?&a=1&&")},
		{name: "query trailing ampersand kept", a: newRequest("GET", "/x?a=1"), b: newRequest("GET", "/x?a=1&")},
		{name: "query name without equals", a: newRequest("GET", "/x?a"), b: newRequest("GET", "/x?a=")},
		{name: "query repeated name written two ways, order", a: newRequest("GET", "/x?a=1&%61=2"), b: newRequest("GET", "/x?%61=2&a=1")},
		{
			name: "query raw script vs escaped",
			a:    &http.Request{Method: "GET", Host: "h", URL: &url.URL{Path: "/x", RawQuery: `q="><script>alert(1)</script>`}},
			b:    &http.Request{Method: "GET", Host: "h", URL: &url.URL{Path: "/x", RawQuery: "q=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E"}},
		},
		{name: "query bad escape kept raw", a: newRequest("GET", "/x?a=%zz"), b: newRequest("GET", "/x?a=%25zz")},
		{name: "query bad escape vs dropped", a: newRequest("GET", "/x?a=%zz"), b: newRequest("GET", "/x")},
		{name: "query semicolon is data", a: newRequest("GET", "/x?a=1;b=2"), b: newRequest("GET", "/x?a=1&b=2")},
		{name: "path and query boundary", a: newRequest("GET", "/x?y"), b: newRequest("GET", "/x%3Fy")},
		{
			name:   "keyed header value",
			a:      newRequest("GET", "/x", "Accept-Language", "de"),
			b:      newRequest("GET", "/x", "Accept-Language", "fr"),
			policy: keyed,
		},
		{
			name:   "keyed header absent vs empty",
			a:      newRequest("GET", "/x"),
			b:      newRequest("GET", "/x", "X-Tenant", ""),
			policy: keyed,
		},
		{
			name:   "keyed header two lines vs joined",
			a:      newRequest("GET", "/x", "X-Tenant", "a", "X-Tenant", "b"),
			b:      newRequest("GET", "/x", "X-Tenant", "a,b"),
			policy: keyed,
		},
		{
			name:   "keyed header value moves between headers",
			a:      newRequest("GET", "/x", "Accept-Language", "de", "X-Tenant", ""),
			b:      newRequest("GET", "/x", "Accept-Language", "", "X-Tenant", "de"),
			policy: keyed,
		},
		{
			name:   "forwarded host when keyed",
			a:      newRequest("GET", "/x"),
			b:      newRequest("GET", "/x", "X-Forwarded-Host", "evil.example"),
			policy: Policy{KeyHeaders: []string{"X-Forwarded-Host"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ka, kb := Key("p:", tc.a, tc.policy), Key("p:", tc.b, tc.policy)
			assert.NotEqual(t, ka, kb, "keys equal for a %s %s%s %v and b %s %s%s %v: %s",
				tc.a.Method, tc.a.Host, tc.a.URL, tc.a.Header, tc.b.Method, tc.b.Host, tc.b.URL, tc.b.Header, ka)
		})
	}
}

func TestKeyPolicyHeadersChangeKey(t *testing.T) {
	req := newRequest("GET", "/x")
	a := Key("p:", req, Policy{})
	b := Key("p:", req, Policy{KeyHeaders: []string{"X-Tenant"}})
	assert.NotEqual(t, a, b, "a policy keyed on an absent header shares keys with an unkeyed policy")
}

func TestAppendKeyMatchesKey(t *testing.T) {
	req := newRequest("GET", "https://example.com/items/1?b=2&a=1", "Accept-Language", "de")
	p := Policy{KeyHeaders: []string{"Accept-Language"}}
	dst := []byte("existing|")
	got := AppendKey(dst, "p:", req, p)
	assert.Equal(t, "existing|"+Key("p:", req, p), string(got))
}

func TestStripDefaultPort(t *testing.T) {
	tests := []struct {
		host  string
		https bool
		want  string
	}{
		{host: "example.com", want: "example.com"},
		{host: "example.com:80", want: "example.com"},
		{host: "example.com:443", want: "example.com:443"},
		{host: "example.com:443", https: true, want: "example.com"},
		{host: "example.com:80", https: true, want: "example.com:80"},
		{host: "example.com:", want: "example.com"},
		{host: "[::1]:80", want: "[::1]"},
		{host: "[::1]", want: "[::1]"},
		{host: "::80", want: "::80"},
		{host: "[::1:80", want: "[::1:80"},
		{host: ":80", want: ""},
		{host: "", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			got := stripDefaultPort(tc.host, tc.https)
			assert.Equal(t, tc.want, got, "stripDefaultPort(%q, https=%v)", tc.host, tc.https)
		})
	}
}

// TestAppendKeyAllocs holds AppendKey to its budget: no allocation for an
// ordinary request with normalised key headers and room in dst.
func TestAppendKeyAllocs(t *testing.T) {
	req := newRequest("GET", "https://api.example.com/items/42?b=2&a=1&q=x+y%21",
		"Accept-Language", "de", "Accept-Encoding", "gzip")
	p := Policy{KeyHeaders: []string{"Accept-Encoding", "Accept-Language"}}
	dst := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		dst = AppendKey(dst[:0], "app:", req, p)
	})
	assert.Zero(t, allocs, "AppendKey allocations per call")
}

func BenchmarkKey(b *testing.B) {
	req := newRequest("GET", "https://api.example.com/items/42?b=2&a=1&q=x+y%21",
		"Accept-Language", "de", "Accept-Encoding", "gzip")
	p := Policy{KeyHeaders: []string{"Accept-Encoding", "Accept-Language"}}
	b.ReportAllocs()
	for b.Loop() {
		_ = Key("app:", req, p)
	}
}

func BenchmarkAppendKey(b *testing.B) {
	req := newRequest("GET", "https://api.example.com/items/42?b=2&a=1&q=x+y%21",
		"Accept-Language", "de", "Accept-Encoding", "gzip")
	p := Policy{KeyHeaders: []string{"Accept-Encoding", "Accept-Language"}}
	dst := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendKey(dst[:0], "app:", req, p)
	}
}
