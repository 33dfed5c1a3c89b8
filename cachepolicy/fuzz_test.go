package cachepolicy

import (
	"net/http"
	"net/url"
	"reflect"
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
		if again := ParseResponse(h); !reflect.DeepEqual(again, resp) {
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
		if got := ParseResponse(h2); !reflect.DeepEqual(got, resp) {
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

// naiveVaryFields is VaryFields written the obvious way, as an oracle.
func naiveVaryFields(h http.Header) ([]string, bool) {
	var names []string
	for _, line := range h["Vary"] {
		for _, name := range strings.Split(line, ",") {
			name = strings.Trim(name, " \t")
			switch {
			case name == "":
			case name == "*" || !isToken(name):
				return nil, true
			default:
				names = append(names, http.CanonicalHeaderKey(name))
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names), false
}

func FuzzVary(f *testing.F) {
	for _, seed := range []string{
		"", "Accept-Encoding", " accept-encoding ,, X-Tenant", "*", "Origin, *",
		"Accept Encoding", "\t,\t", "\xff, é",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, vary string) {
		h := http.Header{"Vary": {vary}}
		got, star := VaryFields(h)
		want, wantStar := naiveVaryFields(h)
		if star != wantStar || !slices.Equal(got, want) {
			t.Fatalf("VaryFields(%q) = %q, %v; want %q, %v", vary, got, star, want, wantStar)
		}
	})
}

func FuzzNormalizeField(f *testing.F) {
	for _, seed := range []string{
		"gzip, br;q=0.5", "BR;Q=0.50 , gzip", "en-GB;q=0.8, da", "*;q=0", "gzip;q=1.0001",
		"a;q", ";q=1", "x, , y", "\xff;q=0.5",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, name := range []string{"Accept-Encoding", "Accept-Language", "X-Other"} {
			got := NormalizeField(name, []string{v})
			// Normalising is idempotent: a normal value is its own form.
			if again := NormalizeField(name, []string{got}); again != got {
				t.Fatalf("NormalizeField(%s, %q) = %q, but of that %q", name, v, got, again)
			}
			// Split over two lines at a comma, the value means the same.
			// (A value that does not parse is kept as sent, and matches
			// only itself.)
			if _, parses := normalizeAccept([]string{v}, false); !parses {
				continue
			}
			if i := strings.IndexByte(v, ','); i >= 0 && name != "X-Other" {
				if two := NormalizeField(name, []string{v[:i], v[i+1:]}); two != got {
					t.Fatalf("NormalizeField(%s, %q split) = %q, want %q", name, v, two, got)
				}
			}
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
