package cachepolicy

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
		require.Equal(t, resp, ParseResponse(h), "ParseResponse(%q) not deterministic", value)
		req := ParseRequest(h)
		require.Equal(t, req, ParseRequest(h), "ParseRequest(%q) not deterministic", value)
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
			require.False(t, d.v < 0 || d.v > MaxDelta || (!d.has && d.v != 0),
				"Parse(%q): %s = %v (present %v) out of range", value, d.name, d.v, d.has)
		}
		// Two lines read as one list: adding an empty line changes nothing.
		h2 := http.Header{"Cache-Control": {value, ""}}
		require.Equal(t, resp, ParseResponse(h2), "ParseResponse(%q, \"\")", value)
		// Without quotes, a directive appended as a list element is seen.
		if !strings.Contains(value, `"`) {
			h3 := http.Header{"Cache-Control": {value + ",no-store"}}
			require.True(t, ParseResponse(h3).NoStore, "ParseResponse(%q + \",no-store\") missed no-store", value)
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
			case name == "*" || !IsToken(name):
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
		require.Equal(t, wantStar, star, "VaryFields(%q) = %q, %v; want %q, %v", vary, got, star, want, wantStar)
		require.True(t, slices.Equal(got, want), "VaryFields(%q) = %q, %v; want %q, %v", vary, got, star, want, wantStar)
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
			require.Equal(t, got, NormalizeField(name, []string{got}), "NormalizeField(%s, %q) = %q, but not of that", name, v, got)
			// Split over two lines at a comma, the value means the same.
			// (A value that does not parse is kept as sent, and matches
			// only itself.)
			if _, parses := normalizeAccept([]string{v}, false); !parses {
				continue
			}
			if i := strings.IndexByte(v, ','); i >= 0 && name != "X-Other" {
				require.Equal(t, got, NormalizeField(name, []string{v[:i], v[i+1:]}), "NormalizeField(%s, %q split)", name, v)
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
		require.Len(t, key, len("pre:")+KeyHashLen, "Key(%s %s %s) = %q: wrong form", method, host, target, key)
		require.True(t, strings.HasPrefix(key, "pre:"), "Key(%s %s %s) = %q: wrong form", method, host, target, key)
		require.Equal(t, key, Key("pre:", req, p), "Key(%s %s %s) not deterministic", method, host, target)

		// Unkeyed headers never count.
		poisoned := *req
		poisoned.Header = http.Header{"X-Tenant": {value}, "X-Forwarded-Host": {value}, "Forwarded": {value}}
		require.Equal(t, key, Key("pre:", &poisoned, p), "Key(%s %s %s) changed with unkeyed headers", method, host, target)

		// Parameters reordered, the values of each name kept in order, share
		// the key: sorted by decoded name, or reversed when all names differ.
		if u.RawQuery != "" {
			params := strings.Split(u.RawQuery, "&")
			sorted := slices.Clone(params)
			slices.SortStableFunc(sorted, func(x, y string) int { return strings.Compare(sortName(x), sortName(y)) })
			for _, order := range [][]string{sorted, distinctReversed(params)} {
				if order == nil {
					continue
				}
				q := strings.Join(order, "&")
				require.Equal(t, key, Key("pre:", withQuery(req, q), p), "Key(%s %s %s) changed with query order %q", method, host, target, q)
			}
		}

		// Any other change of the query as sent changes the key: one byte
		// escaped, "+" for a space, a parameter added.
		for _, q := range rawVariants(u.RawQuery) {
			if slices.Equal(sortedSplit(q), sortedSplit(u.RawQuery)) {
				continue
			}
			require.NotEqual(t, key, Key("pre:", withQuery(req, q), p), "Key(%s %s %s) same for query %q and %q", method, host, target, u.RawQuery, q)
		}

		// HEAD shares GET's key.
		if method == "HEAD" || method == "GET" {
			other := *req
			other.Method = "GET"
			if method == "GET" {
				other.Method = "HEAD"
			}
			require.Equal(t, key, Key("pre:", &other, p), "Key(%s %s %s) differs from %s", method, host, target, other.Method)
		}
	})
}

// FuzzKeyQuery checks the query part of the key against a plain oracle:
// two raw queries share a key exactly when they hold the same parameters,
// byte for byte, and only their order differs, the values of each name
// (decoded) staying in order. So "?q=\"><script>" and "?q=%22%3E%3Cscript%3E"
// never share one.
func FuzzKeyQuery(f *testing.F) {
	for _, seed := range [][2]string{
		{`q="><script>`, "q=%22%3E%3Cscript%3E"},
		{"a=1&b=2", "b=2&a=1"},
		{"a=1&a=2", "a=2&a=1"},
		{"a=1&%61=2", "%61=2&a=1"},
		{"a=1&", "&a=1"},
		{"a", "a="},
		{"q=a+b", "q=a%20b"},
		{"x=%zz&y", "y&x=%zz"},
		{"", "&"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, q1, q2 string) {
		r1 := &http.Request{Method: "GET", Host: "h", URL: &url.URL{Path: "/", RawQuery: q1}}
		r2 := &http.Request{Method: "GET", Host: "h", URL: &url.URL{Path: "/", RawQuery: q2}}
		same := Key("", r1, Policy{}) == Key("", r2, Policy{})
		require.Equal(t, canonicalQuery(q1) == canonicalQuery(q2), same, "keys of %q and %q: same", q1, q2)
		require.False(t, same && !slices.Equal(sortedSplit(q1), sortedSplit(q2)), "%q and %q share a key but differ in more than order", q1, q2)
		if same {
			v1, err1 := url.ParseQuery(q1)
			v2, err2 := url.ParseQuery(q2)
			require.Equal(t, err1 == nil, err2 == nil, "%q and %q share a key but parse with errors %v and %v", q1, q2, err1, err2)
			require.Equal(t, v1, v2, "%q and %q share a key but parse differently", q1, q2)
		}
	})
}

// canonicalQuery is the oracle of the query part of the key: the
// parameters as sent, sorted stably by decoded name (bad names last).
func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	params := strings.Split(raw, "&")
	slices.SortStableFunc(params, func(x, y string) int { return strings.Compare(sortName(x), sortName(y)) })
	return strings.Join(params, "\x00&")
}

// sortName is the sort key of a parameter: "0" and the decoded name, or
// "1" and the raw name when it holds a bad escape.
func sortName(param string) string {
	name, _, _ := strings.Cut(param, "=")
	if d, err := url.QueryUnescape(name); err == nil {
		return "0" + d
	}
	return "1" + name
}

// sortedSplit returns the parameters of a raw query, sorted: the multiset
// of what was sent.
func sortedSplit(raw string) []string {
	if raw == "" {
		return nil
	}
	params := strings.Split(raw, "&")
	slices.Sort(params)
	return params
}

// distinctReversed returns params reversed when no two of them share a
// decoded name (reversing cannot reorder one name's values), else nil.
func distinctReversed(params []string) []string {
	seen := make(map[string]bool)
	for _, p := range params {
		if seen[sortName(p)] {
			return nil
		}
		seen[sortName(p)] = true
	}
	r := slices.Clone(params)
	slices.Reverse(r)
	return r
}

// rawVariants returns queries a handler would read differently from raw:
// its first byte percent-escaped, a space as "+" and as "%20", one more
// parameter.
func rawVariants(raw string) []string {
	vs := []string{raw + "&", raw + "&x=1", raw + "%20", raw + "+"}
	if raw != "" {
		vs = append(vs, fmt.Sprintf("%%%02X", raw[0])+raw[1:])
	}
	return vs
}

func withQuery(req *http.Request, q string) *http.Request {
	r := *req
	u := *req.URL
	u.RawQuery = q
	r.URL = &u
	return &r
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
		require.Equal(t, got, NotModified(req, etag, lastModified), "NotModified(%q, %q, %q, %q) not deterministic", inm, ims, etag, lastModified)
		if _, ok := opaqueTag(etag); ok {
			h2 := http.Header{"If-None-Match": {etag}}
			require.True(t, NotModified(&http.Request{Method: "GET", Header: h2}, etag, lastModified), "If-None-Match %q does not match its own etag", etag)
		}
		post := &http.Request{Method: "POST", Header: h}
		require.False(t, NotModified(post, etag, lastModified), "NotModified for POST with If-None-Match %q", inm)
	})
}
