package cachepolicy

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func FuzzParseCacheControl(f *testing.F) {
	for _, seed := range []string{
		"",
		"public, max-age=60",
		"no-store",
		`private="Set-Cookie", max-age=0`,
		`no-cache="a, b", s-maxage="30"`,
		"max-age=99999999999999999999999999",
		"stale-while-revalidate=30, stale-if-error=600, immutable",
		"max-stale, min-fresh=5, only-if-cached",
		`max-age="60`,
		`a="\"`,
		`=,=,"",,max-age==5`,
		"MAX-AGE=10\t, Must-Revalidate",
		"max-age=-1, max-age=1.5, max-age=0x10",
		"\x00\xff,\"\\",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		h := http.Header{"Cache-Control": {value}}
		resp := ParseResponse(h)
		if again := ParseResponse(h); again != resp {
			t.Fatalf("ParseResponse(%q) not deterministic: %+v then %+v", value, resp, again)
		}
		req := ParseRequest(h)
		if again := ParseRequest(h); again != req {
			t.Fatalf("ParseRequest(%q) not deterministic: %+v then %+v", value, req, again)
		}
		durations := []struct {
			name string
			v    time.Duration
			has  bool
		}{
			{"max-age", resp.MaxAge, resp.HasMaxAge},
			{"s-maxage", resp.SMaxAge, resp.HasSMaxAge},
			{"stale-while-revalidate", resp.StaleWhileRevalidate, resp.HasStaleWhileRevalidate},
			{"stale-if-error", resp.StaleIfError, resp.HasStaleIfError},
			{"request max-age", req.MaxAge, req.HasMaxAge},
			{"request max-stale", req.MaxStale, req.HasMaxStale},
			{"request min-fresh", req.MinFresh, req.HasMinFresh},
		}
		for _, d := range durations {
			if d.v < 0 || d.v > MaxDelta || (!d.has && d.v != 0) {
				t.Fatalf("Parse(%q): %s = %v (present %v) out of range", value, d.name, d.v, d.has)
			}
		}
		// Two lines read as one list: adding an empty line changes nothing.
		h2 := http.Header{"Cache-Control": {value, ""}}
		if got := ParseResponse(h2); got != resp {
			t.Fatalf("ParseResponse(%q, \"\") = %+v, want %+v", value, got, resp)
		}
		// Without quotes, a directive appended as a list element is seen.
		if !strings.Contains(value, `"`) {
			h3 := http.Header{"Cache-Control": {value + ",no-store"}}
			if !ParseResponse(h3).NoStore {
				t.Fatalf("ParseResponse(%q + \",no-store\") missed no-store", value)
			}
		}
	})
}

// naiveVaryReason is varyReason written the obvious way, as an oracle.
func naiveVaryReason(h http.Header, keys []string) string {
	unkeyed := false
	for _, line := range h["Vary"] {
		for _, name := range strings.Split(line, ",") {
			name = strings.Trim(name, " \t")
			switch {
			case name == "":
			case name == "*":
				return "vary-star"
			case !isToken(name) || !slices.ContainsFunc(keys, func(k string) bool { return strings.EqualFold(k, name) }):
				unkeyed = true
			}
		}
	}
	if unkeyed {
		return "vary-unkeyed"
	}
	return ""
}

func FuzzVary(f *testing.F) {
	for _, seed := range [][2]string{
		{"", "Accept-Encoding"},
		{"Accept-Encoding", "accept-encoding"},
		{" accept-encoding ,, X-Tenant", "X-Tenant"},
		{"*", ""},
		{"Origin, *", "Origin"},
		{"Accept Encoding", "Accept"},
		{"\t,\t", "x"},
		{"\xff, é", "\xff"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, vary, key string) {
		h := http.Header{"Vary": {vary}}
		keys := []string{key, "Accept-Encoding"}
		got := varyReason(h, keys)
		if want := naiveVaryReason(h, keys); got != want {
			t.Fatalf("varyReason(%q, %q) = %q, want %q", vary, keys, got, want)
		}
		switch got {
		case "", "vary-star", "vary-unkeyed":
		default:
			t.Fatalf("varyReason(%q, %q) = unknown reason %q", vary, keys, got)
		}
	})
}

func FuzzKey(f *testing.F) {
	for _, seed := range [][4]string{
		{"GET", "example.com", "/items/1?b=2&a=1", "de"},
		{"HEAD", "EXAMPLE.com:80", "/", ""},
		{"POST", "[::1]:443", "/a%2Fb?x=%zz&y=+", "x"},
		{"", "", "", ""},
		{"GET", "h", "/p?&&=&a=%", "\x00"},
		{"GET", "h:", "*", "v"},
		{"get", "\xff", "//a/../b;c?d#e", "\xff"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, method, host, target, value string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			path, query, _ := strings.Cut(target, "?")
			u = &url.URL{Path: path, RawQuery: query}
		}
		req := &http.Request{Method: method, Host: host, URL: u, Header: http.Header{"X-Tenant": {value}}}
		p := Policy{KeyHeaders: []string{"x-tenant", "Accept"}}

		key := Key("pre:", req, p)
		if len(key) != len("pre:")+KeyHashLen || !strings.HasPrefix(key, "pre:") {
			t.Fatalf("Key(%s %s %s) = %q: wrong form", method, host, target, key)
		}
		if again := Key("pre:", req, p); again != key {
			t.Fatalf("Key(%s %s %s) not deterministic: %q then %q", method, host, target, key, again)
		}

		// Unkeyed headers never count.
		poisoned := *req
		poisoned.Header = http.Header{"X-Tenant": {value}, "X-Forwarded-Host": {value}, "Forwarded": {value}}
		if got := Key("pre:", &poisoned, p); got != key {
			t.Fatalf("Key(%s %s %s) changed with unkeyed headers: %q vs %q", method, host, target, got, key)
		}

		// The order of query parameters never counts.
		if u.RawQuery != "" {
			params := strings.Split(u.RawQuery, "&")
			slices.Reverse(params)
			reordered := *req
			ru := *u
			ru.RawQuery = strings.Join(params, "&")
			reordered.URL = &ru
			if got := Key("pre:", &reordered, p); got != key {
				t.Fatalf("Key(%s %s %s) changed with query order %q: %q vs %q", method, host, target, ru.RawQuery, got, key)
			}
		}

		// HEAD shares GET's key.
		if method == "HEAD" || method == "GET" {
			other := *req
			other.Method = "GET"
			if method == "GET" {
				other.Method = "HEAD"
			}
			if got := Key("pre:", &other, p); got != key {
				t.Fatalf("Key(%s %s %s) differs from %s: %q vs %q", method, host, target, other.Method, got, key)
			}
		}
	})
}

func FuzzNotModified(f *testing.F) {
	for _, seed := range [][4]string{
		{`"v1"`, "", `"v1"`, ""},
		{`W/"a", "b,c"`, "", `"b,c"`, ""},
		{"*", "", "", ""},
		{"", "Thu, 02 Jan 2025 12:00:00 GMT", "", "Thu, 02 Jan 2025 12:00:00 GMT"},
		{`"`, "garbage", `W/`, "garbage"},
		{`W/`, "", `W/""`, ""},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, inm, ims, etag, lastModified string) {
		h := http.Header{}
		if inm != "" {
			h["If-None-Match"] = []string{inm}
		}
		if ims != "" {
			h["If-Modified-Since"] = []string{ims}
		}
		req := &http.Request{Method: "GET", Header: h}
		got := NotModified(req, etag, lastModified)
		if again := NotModified(req, etag, lastModified); again != got {
			t.Fatalf("NotModified(%q, %q, %q, %q) not deterministic", inm, ims, etag, lastModified)
		}
		if _, ok := opaqueTag(etag); ok {
			h2 := http.Header{"If-None-Match": {etag}}
			if !NotModified(&http.Request{Method: "GET", Header: h2}, etag, lastModified) {
				t.Fatalf("If-None-Match %q does not match its own etag", etag)
			}
		}
		post := &http.Request{Method: "POST", Header: h}
		if NotModified(post, etag, lastModified) {
			t.Fatalf("NotModified for POST with If-None-Match %q", inm)
		}
	})
}
