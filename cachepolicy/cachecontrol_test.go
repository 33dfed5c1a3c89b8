package cachepolicy

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// header returns a header with the given lines ("Name", "value", ...).
func header(lines ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(lines); i += 2 {
		h.Add(lines[i], lines[i+1])
	}
	return h
}

// cc returns a header whose Cache-Control lines are values.
func cc(values ...string) http.Header {
	return http.Header{"Cache-Control": values}
}

func TestParseResponse(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name string
		h    http.Header
		want ResponseDirectives
	}{
		{name: "absent", h: http.Header{}, want: ResponseDirectives{}},
		{name: "nil header", h: nil, want: ResponseDirectives{}},
		{name: "empty", h: cc(""), want: ResponseDirectives{}},
		{name: "only commas and spaces", h: cc(" , ,\t,"), want: ResponseDirectives{}},
		{name: "max-age", h: cc("max-age=60"), want: ResponseDirectives{MaxAge: 60 * s, HasMaxAge: true}},
		{name: "max-age zero", h: cc("max-age=0"), want: ResponseDirectives{HasMaxAge: true}},
		{name: "case-insensitive names", h: cc("Max-Age=60, PUBLIC"), want: ResponseDirectives{MaxAge: 60 * s, HasMaxAge: true, Public: true}},
		{name: "spaces around", h: cc("  public ,max-age = 5  "), want: ResponseDirectives{Public: true, MaxAge: 5 * s, HasMaxAge: true}},
		{name: "quoted max-age", h: cc(`max-age="60"`), want: ResponseDirectives{MaxAge: 60 * s, HasMaxAge: true}},
		{name: "quoted with junk after is invalid", h: cc(`max-age="60"x`), want: ResponseDirectives{HasMaxAge: true}},
		{name: "unterminated quote is invalid", h: cc(`max-age="60`), want: ResponseDirectives{HasMaxAge: true}},
		{name: "escaped quote in number is invalid", h: cc(`max-age="6\0"`), want: ResponseDirectives{HasMaxAge: true}},
		{name: "non-numeric max-age is stale", h: cc("max-age=abc"), want: ResponseDirectives{HasMaxAge: true}},
		{name: "negative max-age is stale", h: cc("max-age=-5"), want: ResponseDirectives{HasMaxAge: true}},
		{name: "fractional max-age is stale", h: cc("max-age=1.5"), want: ResponseDirectives{HasMaxAge: true}},
		{name: "max-age without value is stale", h: cc("max-age"), want: ResponseDirectives{HasMaxAge: true}},
		{name: "max-age with empty value is stale", h: cc("max-age="), want: ResponseDirectives{HasMaxAge: true}},
		{name: "max-age with inner space is stale", h: cc("max-age=6 0"), want: ResponseDirectives{HasMaxAge: true}},
		{name: "duplicate max-age takes smallest", h: cc("max-age=60, max-age=30"), want: ResponseDirectives{MaxAge: 30 * s, HasMaxAge: true}},
		{name: "duplicate with invalid is stale", h: cc("max-age=60, max-age=x"), want: ResponseDirectives{HasMaxAge: true}},
		{name: "huge max-age clamps", h: cc("max-age=99999999999999999999999"), want: ResponseDirectives{MaxAge: MaxDelta, HasMaxAge: true}},
		{name: "2^31 exactly", h: cc("max-age=2147483648"), want: ResponseDirectives{MaxAge: MaxDelta, HasMaxAge: true}},
		{name: "just below 2^31", h: cc("max-age=2147483647"), want: ResponseDirectives{MaxAge: MaxDelta - s, HasMaxAge: true}},
		{name: "leading zeros", h: cc("max-age=0007"), want: ResponseDirectives{MaxAge: 7 * s, HasMaxAge: true}},
		{name: "s-maxage", h: cc("s-maxage=10, max-age=60"), want: ResponseDirectives{SMaxAge: 10 * s, HasSMaxAge: true, MaxAge: 60 * s, HasMaxAge: true}},
		{name: "invalid s-maxage", h: cc("s-maxage=soon"), want: ResponseDirectives{HasSMaxAge: true}},
		{name: "multiple lines joined", h: cc("public", "max-age=60", "no-transform"), want: ResponseDirectives{Public: true, MaxAge: 60 * s, HasMaxAge: true, NoTransform: true}},
		{name: "duplicates across lines", h: cc("max-age=60", "max-age=20"), want: ResponseDirectives{MaxAge: 20 * s, HasMaxAge: true}},
		{name: "no-store", h: cc("no-store"), want: ResponseDirectives{NoStore: true}},
		{name: "no-store with value still counts", h: cc("no-store=1"), want: ResponseDirectives{NoStore: true}},
		{name: "no-cache", h: cc("no-cache"), want: ResponseDirectives{NoCache: true}},
		{name: "no-cache with fields", h: cc(`no-cache="Set-Cookie, x-foo"`), want: ResponseDirectives{NoCacheFields: []string{"Set-Cookie", "X-Foo"}}},
		{name: "no-cache with empty list", h: cc(`no-cache=""`), want: ResponseDirectives{NoCache: true}},
		{name: "no-cache with unquoted field", h: cc(`no-cache=Set-Cookie`), want: ResponseDirectives{NoCacheFields: []string{"Set-Cookie"}}},
		{name: "no-cache with bad list", h: cc(`no-cache="a b"`), want: ResponseDirectives{NoCache: true}},
		{name: "must-understand", h: cc("must-understand, no-store"), want: ResponseDirectives{MustUnderstand: true, NoStore: true}},
		{name: "private", h: cc("private"), want: ResponseDirectives{Private: true}},
		{name: "private with field", h: cc(`private="Set-Cookie", max-age=60`), want: ResponseDirectives{PrivateFields: []string{"Set-Cookie"}, MaxAge: 60 * s, HasMaxAge: true}},
		{name: "private unterminated list", h: cc(`private="Set-Cookie`), want: ResponseDirectives{Private: true}},
		{name: "private with quoted list holding comma", h: cc(`private="A, max-age=9", public`), want: ResponseDirectives{Private: true, Public: true}},
		{name: "public with value is ignored", h: cc("public=yes"), want: ResponseDirectives{}},
		{name: "public and private", h: cc("public, private"), want: ResponseDirectives{Public: true, Private: true}},
		{name: "must-revalidate", h: cc("must-revalidate"), want: ResponseDirectives{MustRevalidate: true}},
		{name: "proxy-revalidate", h: cc("proxy-revalidate"), want: ResponseDirectives{ProxyRevalidate: true}},
		{name: "immutable", h: cc("max-age=31536000, immutable"), want: ResponseDirectives{MaxAge: 31536000 * s, HasMaxAge: true, Immutable: true}},
		{
			name: "stale extensions",
			h:    cc("max-age=1, stale-while-revalidate=30, stale-if-error=600"),
			want: ResponseDirectives{MaxAge: s, HasMaxAge: true, StaleWhileRevalidate: 30 * s, HasStaleWhileRevalidate: true, StaleIfError: 600 * s, HasStaleIfError: true},
		},
		{
			name: "invalid stale extensions give no window",
			h:    cc("stale-while-revalidate, stale-if-error=x"),
			want: ResponseDirectives{HasStaleWhileRevalidate: true, HasStaleIfError: true},
		},
		{name: "unknown directives ignored", h: cc(`community="UCI", foo=bar, max-age=5`), want: ResponseDirectives{MaxAge: 5 * s, HasMaxAge: true}},
		{name: "directive name prefix does not match", h: cc("max-ageing=5, publicity"), want: ResponseDirectives{}},
		{name: "non-canonical header key is not read", h: http.Header{"cache-control": {"no-store"}}, want: ResponseDirectives{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseResponse(tc.h)
			assert.Equal(t, tc.want, got, "ParseResponse(%q)", tc.h)
		})
	}
}

func TestParseRequest(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name string
		h    http.Header
		want RequestDirectives
	}{
		{name: "absent", h: http.Header{}, want: RequestDirectives{}},
		{name: "no-cache", h: cc("no-cache"), want: RequestDirectives{NoCache: true}},
		{name: "no-store", h: cc("NO-STORE"), want: RequestDirectives{NoStore: true}},
		{name: "only-if-cached", h: cc("only-if-cached"), want: RequestDirectives{OnlyIfCached: true}},
		{name: "max-age", h: cc("max-age=10"), want: RequestDirectives{MaxAge: 10 * s, HasMaxAge: true}},
		{name: "max-age zero", h: cc("max-age=0"), want: RequestDirectives{HasMaxAge: true}},
		{name: "invalid max-age is zero", h: cc("max-age=soon"), want: RequestDirectives{HasMaxAge: true}},
		{name: "duplicate max-age takes smallest", h: cc("max-age=10, max-age=5"), want: RequestDirectives{MaxAge: 5 * s, HasMaxAge: true}},
		{name: "max-stale without value is unlimited", h: cc("max-stale"), want: RequestDirectives{MaxStale: MaxDelta, HasMaxStale: true}},
		{name: "max-stale value", h: cc("max-stale=30"), want: RequestDirectives{MaxStale: 30 * s, HasMaxStale: true}},
		{name: "max-stale duplicate takes smallest", h: cc("max-stale, max-stale=30"), want: RequestDirectives{MaxStale: 30 * s, HasMaxStale: true}},
		{name: "invalid max-stale ignored", h: cc("max-stale=x"), want: RequestDirectives{}},
		{name: "invalid max-stale cancels valid one", h: cc("max-stale=30, max-stale=x"), want: RequestDirectives{}},
		{name: "min-fresh", h: cc("min-fresh=20"), want: RequestDirectives{MinFresh: 20 * s, HasMinFresh: true}},
		{name: "min-fresh duplicate takes largest", h: cc("min-fresh=20, min-fresh=40"), want: RequestDirectives{MinFresh: 40 * s, HasMinFresh: true}},
		{name: "invalid min-fresh is maximal", h: cc("min-fresh=x"), want: RequestDirectives{MinFresh: MaxDelta, HasMinFresh: true}},
		{name: "pragma no-cache without cache-control", h: header("Pragma", "no-cache"), want: RequestDirectives{NoCache: true}},
		{name: "pragma in a list", h: header("Pragma", "foo, No-Cache"), want: RequestDirectives{NoCache: true}},
		{name: "pragma ignored with cache-control", h: header("Pragma", "no-cache", "Cache-Control", "max-age=5"), want: RequestDirectives{MaxAge: 5 * s, HasMaxAge: true}},
		{name: "multiple lines", h: cc("no-cache", "max-stale=5"), want: RequestDirectives{NoCache: true, MaxStale: 5 * s, HasMaxStale: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseRequest(tc.h)
			assert.Equal(t, tc.want, got, "ParseRequest(%q)", tc.h)
		})
	}
}

func TestNextDirective(t *testing.T) {
	tests := []struct {
		in   string
		want []directive
	}{
		{in: "", want: nil},
		{in: "a", want: []directive{{name: "a"}}},
		{in: "a=1,b", want: []directive{{name: "a", value: "1", hasValue: true}, {name: "b"}}},
		{in: `a="x,y" , b`, want: []directive{{name: "a", value: "x,y", hasValue: true, quoted: true}, {name: "b"}}},
		{in: `a="x\"y"`, want: []directive{{name: "a", value: `x\"y`, hasValue: true, quoted: true}}},
		{in: `a="x" y,b`, want: []directive{{name: "a", value: "x", hasValue: true, quoted: true, malformed: true}, {name: "b"}}},
		{in: `a="x,b`, want: []directive{{name: "a", value: "x,b", hasValue: true, quoted: true, malformed: true}}},
		{in: `a="x\`, want: []directive{{name: "a", value: `x\`, hasValue: true, quoted: true, malformed: true}}},
		{in: "=5", want: []directive{{name: "", value: "5", hasValue: true}}},
		{in: "a=,b=", want: []directive{{name: "a", hasValue: true}, {name: "b", hasValue: true}}},
		{in: "a==1", want: []directive{{name: "a", value: "=1", hasValue: true}}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			var got []directive
			for rest := tc.in; ; {
				var d directive
				var ok bool
				if d, rest, ok = nextDirective(rest); !ok {
					break
				}
				got = append(got, d)
			}
			assert.Equal(t, tc.want, got, "directives of %q", tc.in)
		})
	}
}

func TestParseResponseAllocs(t *testing.T) {
	h := cc(`public, max-age=60, s-maxage=30, stale-while-revalidate="10", private, no-cache`)
	allocs := testing.AllocsPerRun(100, func() { _ = ParseResponse(h) })
	assert.Zero(t, allocs, "ParseResponse allocations per call")
}

func BenchmarkParseResponse(b *testing.B) {
	h := cc("public, max-age=60, s-maxage=30, stale-while-revalidate=10, stale-if-error=600")
	b.ReportAllocs()
	for b.Loop() {
		_ = ParseResponse(h)
	}
}

func BenchmarkParseRequest(b *testing.B) {
	h := cc("max-age=0, no-cache")
	b.ReportAllocs()
	for b.Loop() {
		_ = ParseRequest(h)
	}
}
