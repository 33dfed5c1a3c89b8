package cachepolicy

import (
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// t0 is the fixed "now" of the freshness tests.
var t0 = time.Date(2025, 1, 2, 12, 0, 0, 0, time.UTC)

// httpDate formats t for a Date, Expires or Last-Modified field.
func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

func TestStorable(t *testing.T) {
	const s = time.Second
	get := func(header ...string) *http.Request { return newRequest("GET", "/x", header...) }
	withWindows := Policy{TTL: time.Minute, StaleWhileRevalidate: 30 * s, StaleIfError: 10 * time.Minute}
	tests := []struct {
		name   string
		req    *http.Request
		status int // 0 means 200
		h      http.Header
		policy Policy
		want   StoreDecision
	}{
		// Freshness.
		{name: "zero policy, no freshness", req: get(), h: header(), want: StoreDecision{Reason: "no-freshness"}},
		{name: "zero policy, max-age", req: get(), h: cc("max-age=60"), want: stored(60*s, 0, 0, false)},
		{name: "policy TTL as default", req: get(), h: header(), policy: Policy{TTL: 30 * s}, want: stored(30*s, 0, 0, false)},
		{name: "max-age beats TTL", req: get(), h: cc("max-age=60"), policy: Policy{TTL: 30 * s}, want: stored(60*s, 0, 0, false)},
		{name: "public without freshness uses TTL", req: get(), h: cc("public"), policy: Policy{TTL: 30 * s}, want: stored(30*s, 0, 0, false)},
		{name: "s-maxage beats max-age", req: get(), h: cc("max-age=60, s-maxage=10"), want: stored(10*s, 0, 0, true)},
		{name: "max-age=0 beats TTL", req: get(), h: cc("max-age=0"), policy: Policy{TTL: time.Hour}, want: StoreDecision{Reason: "no-freshness"}},
		{name: "invalid max-age is stale", req: get(), h: cc("max-age=soon"), policy: Policy{TTL: time.Hour}, want: StoreDecision{Reason: "no-freshness"}},
		{name: "s-maxage=0 beats max-age", req: get(), h: cc("s-maxage=0, max-age=60"), want: StoreDecision{Reason: "no-freshness"}},
		{name: "Expires without Date uses now", req: get(), h: header("Expires", httpDate(t0.Add(time.Hour))), want: stored(time.Hour, 0, 0, false)},
		{
			name: "Expires minus Date",
			req:  get(),
			h:    header("Date", httpDate(t0), "Expires", httpDate(t0.Add(90*s))),
			want: stored(90*s, 0, 0, false),
		},
		{
			name: "Expires minus old Date loses the age",
			req:  get(),
			h:    header("Date", httpDate(t0.Add(-10*s)), "Expires", httpDate(t0.Add(50*s))),
			want: aged(stored(50*s, 0, 0, false), 10*s),
		},
		{
			name: "Expires with invalid Date uses now",
			req:  get(),
			h:    header("Date", "yesterday", "Expires", httpDate(t0.Add(time.Minute))),
			want: stored(time.Minute, 0, 0, false),
		},
		{name: "Expires beats TTL", req: get(), h: header("Expires", httpDate(t0.Add(time.Minute))), policy: Policy{TTL: time.Hour}, want: stored(time.Minute, 0, 0, false)},
		{name: "Expires in the past", req: get(), h: header("Expires", httpDate(t0.Add(-time.Minute))), policy: Policy{TTL: time.Hour}, want: StoreDecision{Reason: "no-freshness"}},
		{name: "invalid Expires is stale", req: get(), h: header("Expires", "0"), policy: Policy{TTL: time.Hour}, want: StoreDecision{Reason: "no-freshness"}},
		{
			name:   "conflicting Expires is stale",
			req:    get(),
			h:      header("Expires", httpDate(t0.Add(time.Minute)), "Expires", httpDate(t0.Add(time.Hour))),
			policy: Policy{TTL: time.Hour},
			want:   StoreDecision{Reason: "no-freshness"},
		},
		{
			name: "repeated equal Expires",
			req:  get(),
			h:    header("Expires", httpDate(t0.Add(time.Minute)), "Expires", httpDate(t0.Add(time.Minute))),
			want: stored(time.Minute, 0, 0, false),
		},
		{name: "far Expires clamps", req: get(), h: header("Expires", "Fri, 31 Dec 9999 23:59:59 GMT"), want: stored(MaxDelta, 0, 0, false)},
		{name: "max-age beats Expires", req: get(), h: header("Cache-Control", "max-age=60", "Expires", "0"), want: stored(60*s, 0, 0, false)},
		{name: "Age is taken off", req: get(), h: header("Cache-Control", "max-age=60", "Age", "20"), want: aged(stored(40*s, 0, 0, false), 20*s)},
		{name: "Age taken off TTL", req: get(), h: header("Age", "20"), policy: Policy{TTL: time.Minute}, want: aged(stored(40*s, 0, 0, false), 20*s)},
		{name: "Age beyond max-age", req: get(), h: header("Cache-Control", "max-age=60", "Age", "60"), want: StoreDecision{Reason: "no-freshness"}},
		{name: "invalid Age ignored", req: get(), h: header("Cache-Control", "max-age=60", "Age", "-3"), want: stored(60*s, 0, 0, false)},
		{name: "largest Age wins", req: get(), h: header("Cache-Control", "max-age=60", "Age", "5", "Age", "15"), want: aged(stored(45*s, 0, 0, false), 15*s)},
		{name: "old Date is apparent age", req: get(), h: header("Cache-Control", "max-age=60", "Date", httpDate(t0.Add(-5*s))), want: aged(stored(55*s, 0, 0, false), 5*s)},
		{name: "Age larger than apparent age", req: get(), h: header("Cache-Control", "max-age=60", "Age", "30", "Date", httpDate(t0.Add(-5*s))), want: aged(stored(30*s, 0, 0, false), 30*s)},
		{name: "apparent age larger than Age", req: get(), h: header("Cache-Control", "max-age=60", "Age", "3", "Date", httpDate(t0.Add(-9*s))), want: aged(stored(51*s, 0, 0, false), 9*s)},
		{name: "double-spaced Expires is expired", req: get(), h: header("Expires", "Thu, 18  Aug  2050 02:01:18 GMT"), policy: Policy{TTL: time.Hour}, want: StoreDecision{Reason: "no-freshness"}},
		{name: "one-digit hour Expires is expired", req: get(), h: header("Expires", "Thu, 18 Aug 2050 2:01:18 GMT"), policy: Policy{TTL: time.Hour}, want: StoreDecision{Reason: "no-freshness"}},
		{name: "rfc850 Expires", req: get(), h: header("Expires", "Thursday, 02-Jan-25 12:01:00 GMT"), want: stored(time.Minute, 0, 0, false)},
		{name: "asctime Expires", req: get(), h: header("Expires", "Thu Jan  2 12:01:00 2025"), want: stored(time.Minute, 0, 0, false)},
		{name: "future Date gives no age", req: get(), h: header("Cache-Control", "max-age=60", "Date", httpDate(t0.Add(time.Hour))), want: stored(60*s, 0, 0, false)},

		// Stale windows.
		{name: "policy windows", req: get(), h: header(), policy: withWindows, want: stored(time.Minute, 30*s, 10*time.Minute, false)},
		{
			name:   "response windows replace policy windows",
			req:    get(),
			h:      cc("max-age=5, stale-while-revalidate=7, stale-if-error=0"),
			policy: withWindows,
			want:   stored(5*s, 7*s, 0, false),
		},
		{name: "response window without policy", req: get(), h: cc("max-age=5, stale-if-error=60"), want: stored(5*s, 0, 60*s, false)},
		{name: "must-revalidate drops policy windows", req: get(), h: cc("max-age=5, must-revalidate"), policy: withWindows, want: stored(5*s, 0, 0, true)},
		{name: "proxy-revalidate drops policy windows", req: get(), h: cc("max-age=5, proxy-revalidate"), policy: withWindows, want: stored(5*s, 0, 0, true)},
		{name: "s-maxage drops policy windows", req: get(), h: cc("s-maxage=5"), policy: withWindows, want: stored(5*s, 0, 0, true)},
		{
			name:   "must-revalidate keeps response windows",
			req:    get(),
			h:      cc("max-age=5, must-revalidate, stale-if-error=60"),
			policy: withWindows,
			want:   stored(5*s, 0, 60*s, true),
		},

		// Method and request.
		{name: "HEAD is not stored", req: newRequest("HEAD", "/x"), h: cc("max-age=60"), want: StoreDecision{Reason: "method"}},
		{name: "POST is not stored", req: newRequest("POST", "/x"), h: cc("max-age=60"), want: StoreDecision{Reason: "method"}},
		{name: "lower-case get is not GET", req: newRequest("get", "/x"), h: cc("max-age=60"), want: StoreDecision{Reason: "method"}},
		{name: "empty method is GET", req: &http.Request{Header: http.Header{}}, h: cc("max-age=60"), want: stored(60*s, 0, 0, false)},
		{name: "nil request", req: nil, h: cc("max-age=60"), want: StoreDecision{Reason: "method"}},
		{name: "method checked first", req: newRequest("HEAD", "/x", "Cache-Control", "no-store"), h: cc("no-store"), want: StoreDecision{Reason: "method"}},
		{name: "request no-store", req: get("Cache-Control", "no-store"), h: cc("max-age=60"), want: StoreDecision{Reason: "request-no-store"}},
		{name: "request no-cache still stores", req: get("Cache-Control", "no-cache"), h: cc("max-age=60"), want: stored(60*s, 0, 0, false)},

		// Credentials and cookies.
		{name: "authorization refused", req: get("Authorization", "Bearer t"), h: cc("public, max-age=60"), want: StoreDecision{Reason: "authorization"}},
		{
			name:   "authorization allowed needs explicit permission",
			req:    get("Authorization", "Bearer t"),
			h:      cc("max-age=60"),
			policy: Policy{AllowAuthorization: true},
			want:   StoreDecision{Reason: "authorization"},
		},
		{
			name:   "authorization allowed with public",
			req:    get("Authorization", "Bearer t"),
			h:      cc("public, max-age=60"),
			policy: Policy{AllowAuthorization: true},
			want:   stored(60*s, 0, 0, false),
		},
		{
			name:   "authorization allowed with s-maxage",
			req:    get("Authorization", "Bearer t"),
			h:      cc("s-maxage=60"),
			policy: Policy{AllowAuthorization: true},
			want:   stored(60*s, 0, 0, true),
		},
		{
			name:   "authorization allowed with must-revalidate",
			req:    get("Authorization", "Bearer t"),
			h:      cc("must-revalidate, max-age=60"),
			policy: Policy{AllowAuthorization: true},
			want:   stored(60*s, 0, 0, true),
		},
		{name: "empty authorization still counts", req: get("Authorization", ""), h: cc("max-age=60"), want: StoreDecision{Reason: "authorization"}},
		{name: "cookie refused", req: get("Cookie", "s=1"), h: cc("max-age=60"), want: StoreDecision{Reason: "cookie"}},
		{name: "cookie allowed", req: get("Cookie", "s=1"), h: cc("max-age=60"), policy: Policy{AllowCookies: true}, want: stored(60*s, 0, 0, false)},
		{name: "set-cookie refused", req: get(), h: header("Cache-Control", "max-age=60", "Set-Cookie", "s=1"), want: StoreDecision{Reason: "set-cookie"}},
		{
			name:   "set-cookie allowed",
			req:    get(),
			h:      header("Cache-Control", "max-age=60", "Set-Cookie", "s=1"),
			policy: Policy{AllowSetCookie: true},
			want:   stored(60*s, 0, 0, false),
		},

		// Status.
		{name: "500 with max-age stored", req: get(), status: 500, h: cc("max-age=60"), want: stored(60*s, 0, 0, false)},
		{name: "302 with max-age stored", req: get(), status: 302, h: cc("max-age=60"), want: stored(60*s, 0, 0, false)},
		{name: "307 with Expires stored", req: get(), status: 307, h: header("Expires", httpDate(t0.Add(time.Minute))), want: stored(time.Minute, 0, 0, false)},
		{name: "599 with s-maxage stored", req: get(), status: 599, h: cc("s-maxage=60"), want: stored(60*s, 0, 0, true)},
		{name: "500 with public and TTL stored", req: get(), status: 500, h: cc("public"), policy: Policy{TTL: time.Minute}, want: stored(time.Minute, 0, 0, false)},
		{name: "500 with TTL only not stored", req: get(), status: 500, h: header(), policy: Policy{TTL: time.Minute}, want: StoreDecision{Reason: "status"}},
		{name: "302 without freshness not stored", req: get(), status: 302, h: header(), policy: Policy{TTL: time.Minute}, want: StoreDecision{Reason: "status"}},
		{name: "410 with TTL stored", req: get(), status: 410, h: header(), policy: Policy{TTL: time.Minute}, want: stored(time.Minute, 0, 0, false)},
		{name: "206 never stored", req: get(), status: 206, h: cc("max-age=60"), want: StoreDecision{Reason: "status"}},
		{name: "206 never stored even when listed", req: get(), status: 206, h: cc("max-age=60"), policy: Policy{Statuses: []int{206}}, want: StoreDecision{Reason: "status"}},
		{name: "304 never stored", req: get(), status: 304, h: cc("max-age=60"), want: StoreDecision{Reason: "status"}},
		{name: "1xx never stored", req: get(), status: 103, h: cc("max-age=60"), want: StoreDecision{Reason: "status"}},
		{name: "500 with max-age not stored when not listed", req: get(), status: 500, h: cc("max-age=60"), policy: Policy{Statuses: []int{200}}, want: StoreDecision{Reason: "status"}},

		// must-understand.
		{name: "must-understand overrides no-store", req: get(), h: cc("must-understand, no-store, max-age=60"), want: stored(60*s, 0, 0, false)},
		{name: "must-understand unknown status", req: get(), status: 299, h: cc("must-understand, no-store, max-age=60"), want: StoreDecision{Reason: "must-understand"}},
		{name: "must-understand without no-store", req: get(), status: 404, h: cc("must-understand, max-age=60"), want: stored(60*s, 0, 0, false)},
		{name: "no-store without must-understand", req: get(), h: cc("no-store, max-age=60"), want: StoreDecision{Reason: "no-store"}},
		{name: "404 stored by default", req: get(), status: 404, h: cc("max-age=60"), want: stored(60*s, 0, 0, false)},
		{name: "302 stored when listed", req: get(), status: 302, h: cc("max-age=60"), policy: Policy{Statuses: []int{302}}, want: stored(60*s, 0, 0, false)},
		{name: "200 not stored when not listed", req: get(), h: cc("max-age=60"), policy: Policy{Statuses: []int{404}}, want: StoreDecision{Reason: "status"}},

		// Response Cache-Control.
		{name: "no-store", req: get(), h: cc("no-store, max-age=60"), policy: Policy{TTL: time.Hour}, want: StoreDecision{Reason: "no-store"}},
		{name: "private", req: get(), h: cc("private, max-age=60"), want: StoreDecision{Reason: "private"}},
		{name: "private with field stored without it", req: get(), h: cc(`private="X-User", max-age=60`), want: stored(60*s, 0, 0, false)},
		{name: "private naming set-cookie", req: get(), h: header("Cache-Control", `private="Set-Cookie", max-age=60`, "Set-Cookie", "a=1"), want: stored(60*s, 0, 0, false)},
		{name: "no-cache without validator", req: get(), h: cc("no-cache, max-age=60"), want: StoreDecision{Reason: "no-cache"}},
		{name: "no-cache with etag", req: get(), h: header("Cache-Control", "no-cache, max-age=60", "Etag", `"a"`), want: kept(noCache(stored(60*s, 0, 0, false)))},
		{name: "no-cache alone with etag", req: get(), h: header("Cache-Control", "no-cache", "Etag", `"a"`), want: kept(noCache(stored(0, 0, 0, false)))},
		{name: "no-cache drops policy swr", req: get(), h: header("Cache-Control", "no-cache", "Etag", `"a"`), policy: withWindows, want: kept(noCache(stored(60*s, 0, 0, false)))},
		{name: "no-cache with field", req: get(), h: header("Cache-Control", `no-cache="Set-Cookie", max-age=60`, "Set-Cookie", "a=1"), want: stored(60*s, 0, 0, false)},
		{name: "max-age=0 with etag stored stale", req: get(), h: header("Cache-Control", "max-age=0", "Etag", `"a"`), want: kept(stored(0, 0, 0, false))},
		{name: "etag without freshness", req: get(), h: header("Etag", `"a"`), want: StoreDecision{Reason: "no-freshness"}},
		{name: "404 with etag not kept", req: get(), status: 404, h: header("Cache-Control", "max-age=60", "Etag", `"a"`), want: stored(60*s, 0, 0, false)},
		{name: "stale 404 with etag not stored", req: get(), status: 404, h: header("Cache-Control", "max-age=0", "Etag", `"a"`), want: StoreDecision{Reason: "no-freshness"}},
		{name: "no-cache 404 not stored", req: get(), status: 404, h: header("Cache-Control", "no-cache, max-age=60", "Etag", `"a"`), want: StoreDecision{Reason: "no-cache"}},

		// Heuristic freshness.
		{name: "heuristic 10%", req: get(), h: header("Date", httpDate(t0), "Last-Modified", httpDate(t0.Add(-100*time.Hour))), want: kept(stored(10*time.Hour, 0, 0, false))},
		{name: "heuristic without Date", req: get(), h: header("Last-Modified", httpDate(t0.Add(-100*s))), want: kept(stored(10*s, 0, 0, false))},
		{name: "heuristic capped", req: get(), h: header("Last-Modified", httpDate(t0.Add(-1000*time.Hour))), want: kept(stored(DefaultHeuristicMax, 0, 0, false))},
		{name: "heuristic own cap and fraction", req: get(), h: header("Last-Modified", httpDate(t0.Add(-1000*s))), policy: Policy{HeuristicFraction: 0.5, HeuristicMax: 100 * s}, want: kept(stored(100*s, 0, 0, false))},
		{name: "heuristic off", req: get(), h: header("Last-Modified", httpDate(t0.Add(-1000*s))), policy: Policy{NoHeuristic: true}, want: StoreDecision{Reason: "no-freshness"}},
		{name: "heuristic loses to TTL", req: get(), h: header("Last-Modified", httpDate(t0.Add(-1000*time.Hour))), policy: Policy{TTL: s}, want: kept(stored(s, 0, 0, false))},
		{name: "heuristic not for 500", req: get(), status: 500, h: header("Last-Modified", httpDate(t0.Add(-1000*s))), want: StoreDecision{Reason: "status"}},
		{name: "heuristic for public 302", req: get(), status: 302, h: header("Cache-Control", "public", "Last-Modified", httpDate(t0.Add(-1000*s))), want: stored(100*s, 0, 0, false)},
		{name: "heuristic future Last-Modified", req: get(), h: header("Last-Modified", httpDate(t0.Add(time.Hour))), want: StoreDecision{Reason: "no-freshness"}},
		{name: "heuristic invalid Last-Modified", req: get(), h: header("Last-Modified", "yesterday"), want: StoreDecision{Reason: "no-freshness"}},

		// Targeted fields.
		{name: "CDN-Cache-Control beats Cache-Control", req: get(), h: header("Cache-Control", "max-age=60", "Cdn-Cache-Control", "max-age=600"), want: stored(600*s, 0, 0, false)},
		{name: "CDN-Cache-Control no-store", req: get(), h: header("Cache-Control", "max-age=60", "Cdn-Cache-Control", "no-store"), want: StoreDecision{Reason: "no-store"}},
		{name: "CDN-Cache-Control replaces private", req: get(), h: header("Cache-Control", "private", "Cdn-Cache-Control", "max-age=60"), want: stored(60*s, 0, 0, false)},
		{name: "invalid CDN-Cache-Control ignored", req: get(), h: header("Cache-Control", "max-age=60", "Cdn-Cache-Control", "Max-Age=600"), want: stored(60*s, 0, 0, false)},
		{
			name:   "own field beats CDN-Cache-Control",
			req:    get(),
			h:      header("Cache-Control", "max-age=60", "Cdn-Cache-Control", "max-age=600", "Steadfast-Cache-Control", "max-age=6"),
			policy: Policy{TargetedField: "steadfast-cache-control"},
			want:   stored(6*s, 0, 0, false),
		},
		{
			name: "own field ignored when not configured",
			req:  get(),
			h:    header("Cache-Control", "max-age=60", "Steadfast-Cache-Control", "max-age=6"),
			want: stored(60*s, 0, 0, false),
		},
		{name: "public and private is private", req: get(), h: cc("public, private, max-age=60"), want: StoreDecision{Reason: "private"}},

		// Vary.
		{name: "vary star", req: get(), h: header("Cache-Control", "max-age=60", "Vary", "*"), want: StoreDecision{Reason: "vary-star"}},
		{name: "vary star in a list", req: get(), h: header("Cache-Control", "max-age=60", "Vary", "Accept, *"), want: StoreDecision{Reason: "vary-star"}},
		{name: "vary unkeyed is a variant", req: get(), h: header("Cache-Control", "max-age=60", "Vary", "accept-encoding"), want: variant(stored(60*s, 0, 0, false), "Accept-Encoding")},
		{name: "vary invalid is star", req: get(), h: header("Cache-Control", "max-age=60", "Vary", "a b"), want: StoreDecision{Reason: "vary-star"}},
		{name: "vary authorization follows the gate", req: get("Authorization", "x"), h: header("Cache-Control", "public, max-age=60", "Vary", "Authorization"), want: StoreDecision{Reason: "authorization"}},
		{
			name:   "vary authorization when allowed",
			req:    get("Authorization", "x"),
			h:      header("Cache-Control", "public, max-age=60", "Vary", "Authorization"),
			policy: Policy{AllowAuthorization: true},
			want:   variant(stored(60*s, 0, 0, false), "Authorization"),
		},
		{
			name:   "vary keyed, any case and spacing",
			req:    get(),
			h:      header("Cache-Control", "max-age=60", "Vary", " accept-encoding ,ACCEPT-LANGUAGE,, ", "Vary", "x-tenant"),
			policy: Policy{KeyHeaders: []string{"Accept-Encoding", "Accept-Language", "X-Tenant"}},
			want:   stored(60*s, 0, 0, false),
		},
		{
			name:   "vary one of several unkeyed",
			req:    get(),
			h:      header("Cache-Control", "max-age=60", "Vary", "Accept-Encoding, Origin"),
			policy: Policy{KeyHeaders: []string{"Accept-Encoding"}},
			want:   variant(stored(60*s, 0, 0, false), "Origin"),
		},
		{name: "empty vary", req: get(), h: header("Cache-Control", "max-age=60", "Vary", ""), want: stored(60*s, 0, 0, false)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status := tc.status
			if status == 0 {
				status = http.StatusOK
			}
			got := Storable(tc.req, status, tc.h, tc.policy, t0)
			got.Fields = FieldFilter{} // TestFieldFilter's subject
			assert.Equal(t, tc.want, got, "Storable(status %d, header %q, policy %+v)", status, tc.h, tc.policy)
		})
	}
}

// stored returns the decision to store with the given lifetime.
func stored(fresh, swr, sie time.Duration, mustRevalidate bool) StoreDecision {
	return StoreDecision{Store: true, Lifetime: Lifetime{
		Fresh: fresh, StaleWhileRevalidate: swr, StaleIfError: sie, MustRevalidate: mustRevalidate,
	}}
}

// aged sets the age d's response was stored with.
func aged(d StoreDecision, age time.Duration) StoreDecision {
	d.Age = age
	return d
}

// kept marks d as kept for revalidation.
func kept(d StoreDecision) StoreDecision {
	d.Keep = DefaultStaleRetention
	return d
}

// noCache marks d as validated before each use.
func noCache(d StoreDecision) StoreDecision {
	d.NoCache = true
	return d
}

// variant marks d as a variant on names.
func variant(d StoreDecision, names ...string) StoreDecision {
	d.Vary = names
	return d
}

// TestStorableRefusesPoisonedVariant shows that a response depending on a
// header the key ignores cannot be planted for other clients: it is stored
// only as a variant whose key holds that header's value, which the
// victim's request does not share.
func TestStorableRefusesPoisonedVariant(t *testing.T) {
	victim := newRequest("GET", "https://shop.example/")
	attacker := newRequest("GET", "https://shop.example/", "X-Forwarded-Host", "evil.example")
	reflected := header("Cache-Control", "max-age=600", "Vary", "X-Forwarded-Host")

	p := Policy{TTL: time.Minute}
	base := Key("c:", victim, p)
	assert.Equal(t, base, Key("c:", attacker, p), "unkeyed header must not change the key")
	d := Storable(attacker, http.StatusOK, reflected, p, t0)
	assert.True(t, d.Store, "%+v", d)
	assert.Equal(t, []string{"X-Forwarded-Host"}, d.Vary, "stored as a variant")
	assert.NotEqual(t, string(AppendVariantKey(nil, base, victim.Header, d.Vary)),
		string(AppendVariantKey(nil, base, attacker.Header, d.Vary)), "the victim's variant is another")

	keyed := Policy{TTL: time.Minute, KeyHeaders: []string{"X-Forwarded-Host"}}
	assert.NotEqual(t, Key("c:", victim, keyed), Key("c:", attacker, keyed), "keyed header must change the key")
	d = Storable(attacker, http.StatusOK, reflected, keyed, t0)
	assert.True(t, d.Store, "response varying on a keyed header should be stored: %+v", d)
	assert.Nil(t, d.Vary, "a keyed header needs no variant")
}

func TestClassify(t *testing.T) {
	const s = time.Second
	windows := Lifetime{Fresh: 60 * s, StaleWhileRevalidate: 30 * s, StaleIfError: 600 * s}
	tests := []struct {
		name string
		l    Lifetime
		age  time.Duration
		rd   RequestDirectives
		want Freshness
	}{
		{name: "just stored", l: windows, age: 0, want: Fresh},
		{name: "end of freshness", l: windows, age: 60*s - 1, want: Fresh},
		{name: "stale at lifetime", l: windows, age: 60 * s, want: StaleRevalidate},
		{name: "end of stale-while-revalidate", l: windows, age: 90*s - 1, want: StaleRevalidate},
		{name: "stale-if-error after swr", l: windows, age: 90 * s, want: StaleIfErrorOnly},
		{name: "end of stale-if-error", l: windows, age: 660*s - 1, want: StaleIfErrorOnly},
		{name: "expired", l: windows, age: 660 * s, want: Expired},
		{name: "no windows", l: Lifetime{Fresh: 60 * s}, age: 60 * s, want: Expired},
		{name: "swr longer than sie", l: Lifetime{Fresh: 60 * s, StaleWhileRevalidate: 100 * s, StaleIfError: 10 * s}, age: 150 * s, want: StaleRevalidate},
		{name: "swr longer than sie ends", l: Lifetime{Fresh: 60 * s, StaleWhileRevalidate: 100 * s, StaleIfError: 10 * s}, age: 160 * s, want: Expired},
		{name: "clock went back", l: windows, age: -time.Hour, want: Fresh},
		{name: "zero lifetime", l: Lifetime{}, age: 0, want: Expired},
		{name: "negative fields count as zero", l: Lifetime{Fresh: -s, StaleWhileRevalidate: -s, StaleIfError: -s}, age: 0, want: Expired},

		{name: "no-cache on fresh", l: windows, age: 0, rd: RequestDirectives{NoCache: true}, want: StaleIfErrorOnly},
		{name: "no-cache on fresh without windows", l: Lifetime{Fresh: 60 * s}, age: 0, rd: RequestDirectives{NoCache: true}, want: StaleIfErrorOnly},
		{name: "no-cache in swr window", l: windows, age: 70 * s, rd: RequestDirectives{NoCache: true}, want: StaleIfErrorOnly},
		{name: "no-cache past windows", l: windows, age: 700 * s, rd: RequestDirectives{NoCache: true}, want: Expired},
		{name: "max-age=0 at age 0", l: windows, age: 0, rd: RequestDirectives{HasMaxAge: true}, want: StaleIfErrorOnly},
		{name: "max-age met", l: windows, age: 5 * s, rd: RequestDirectives{MaxAge: 10 * s, HasMaxAge: true}, want: Fresh},
		{name: "max-age exactly met", l: windows, age: 10 * s, rd: RequestDirectives{MaxAge: 10 * s, HasMaxAge: true}, want: Fresh},
		{name: "max-age exceeded", l: windows, age: 20 * s, rd: RequestDirectives{MaxAge: 10 * s, HasMaxAge: true}, want: StaleIfErrorOnly},
		{name: "max-age exceeded in swr", l: windows, age: 70 * s, rd: RequestDirectives{MaxAge: 10 * s, HasMaxAge: true}, want: StaleIfErrorOnly},
		{name: "min-fresh met", l: windows, age: 20 * s, rd: RequestDirectives{MinFresh: 30 * s, HasMinFresh: true}, want: Fresh},
		{name: "min-fresh not met", l: windows, age: 40 * s, rd: RequestDirectives{MinFresh: 30 * s, HasMinFresh: true}, want: StaleIfErrorOnly},
		{name: "min-fresh refuses swr", l: windows, age: 70 * s, rd: RequestDirectives{HasMinFresh: true}, want: StaleIfErrorOnly},
		{name: "max-stale within", l: Lifetime{Fresh: 60 * s}, age: 120 * s, rd: RequestDirectives{MaxStale: 100 * s, HasMaxStale: true}, want: StaleRevalidate},
		{name: "max-stale exactly", l: Lifetime{Fresh: 60 * s}, age: 160 * s, rd: RequestDirectives{MaxStale: 100 * s, HasMaxStale: true}, want: StaleRevalidate},
		{name: "max-stale beyond", l: Lifetime{Fresh: 60 * s}, age: 200 * s, rd: RequestDirectives{MaxStale: 100 * s, HasMaxStale: true}, want: Expired},
		{name: "unlimited max-stale", l: Lifetime{Fresh: 60 * s}, age: 1000 * time.Hour, rd: RequestDirectives{MaxStale: MaxDelta, HasMaxStale: true}, want: StaleRevalidate},
		{name: "max-stale vs must-revalidate", l: Lifetime{Fresh: 60 * s, MustRevalidate: true}, age: 120 * s, rd: RequestDirectives{MaxStale: MaxDelta, HasMaxStale: true}, want: Expired},
		{
			name: "max-stale vs must-revalidate with own window",
			l:    Lifetime{Fresh: 60 * s, StaleIfError: 100 * s, MustRevalidate: true},
			age:  120 * s,
			rd:   RequestDirectives{MaxStale: MaxDelta, HasMaxStale: true},
			want: StaleIfErrorOnly,
		},
		{name: "max-stale with no-cache", l: Lifetime{Fresh: 60 * s}, age: 120 * s, rd: RequestDirectives{NoCache: true, MaxStale: MaxDelta, HasMaxStale: true}, want: Expired},
		{name: "only-if-cached changes nothing", l: windows, age: 0, rd: RequestDirectives{OnlyIfCached: true}, want: Fresh},

		{name: "stored age counts for max-age", l: Lifetime{Fresh: 60 * s, Age: 30 * s}, age: 5 * s, rd: RequestDirectives{MaxAge: 20 * s, HasMaxAge: true}, want: StaleIfErrorOnly},
		{name: "stored age within max-age", l: Lifetime{Fresh: 60 * s, Age: 10 * s}, age: 5 * s, rd: RequestDirectives{MaxAge: 20 * s, HasMaxAge: true}, want: Fresh},
		{name: "stored age and min-fresh", l: Lifetime{Fresh: 30 * s, Age: 30 * s}, age: 5 * s, rd: RequestDirectives{MinFresh: 20 * s, HasMinFresh: true}, want: Fresh},
		{name: "stored age and min-fresh not met", l: Lifetime{Fresh: 30 * s, Age: 30 * s}, age: 15 * s, rd: RequestDirectives{MinFresh: 20 * s, HasMinFresh: true}, want: StaleIfErrorOnly},
		{name: "stored age and max-stale", l: Lifetime{Fresh: 30 * s, Age: 30 * s}, age: 40 * s, rd: RequestDirectives{MaxStale: 10 * s, HasMaxStale: true}, want: StaleRevalidate},
		{name: "response no-cache is never fresh", l: Lifetime{Fresh: 60 * s, NoCache: true}, age: 0, want: Expired},
		{name: "response no-cache with sie", l: Lifetime{Fresh: 60 * s, StaleIfError: 60 * s, NoCache: true}, age: 0, want: StaleIfErrorOnly},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(tc.l, t0, t0.Add(tc.age), tc.rd)
			assert.Equal(t, tc.want, got, "Classify(%+v, age %v, %+v): got %v, want %v", tc.l, tc.age, tc.rd, got, tc.want)
		})
	}
}

func TestCurrentAge(t *testing.T) {
	l := Lifetime{Fresh: time.Minute, Age: 30 * time.Second}
	assert.Equal(t, 33*time.Second, l.CurrentAge(t0, t0.Add(3*time.Second)), "origin's Age plus resident time")
	assert.Equal(t, 30*time.Second, l.CurrentAge(t0, t0.Add(-time.Hour)), "clock went back")
	assert.Equal(t, MaxDelta, Lifetime{Age: MaxDelta}.CurrentAge(t0, t0.Add(time.Hour)), "clamped")
}

func TestStorableAtResponseDelay(t *testing.T) {
	// corrected_age_value = Age + response_delay; the apparent age of a
	// fresh Date is smaller, so the Age path wins.
	req := newRequest("GET", "/x")
	h := header("Cache-Control", "max-age=60", "Age", "10", "Date", httpDate(t0.Add(2*time.Second)))
	d := StorableAt(req, 200, h, Policy{}, t0, t0.Add(2*time.Second))
	assert.True(t, d.Store)
	assert.Equal(t, 12*time.Second, d.Age, "Age 10 plus a 2 s response delay")
	assert.Equal(t, 48*time.Second, d.Fresh)
}

func TestAge(t *testing.T) {
	assert.Equal(t, 5*time.Second, Age(t0, t0.Add(5*time.Second)))
	assert.Equal(t, time.Duration(0), Age(t0, t0))
	assert.Equal(t, time.Duration(0), Age(t0, t0.Add(-time.Hour)), "clock went back")
}

func TestLifetimeTTLAndRetention(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name          string
		l             Lifetime
		age           time.Duration
		wantTTL       time.Duration
		wantRetention time.Duration
	}{
		{name: "fresh", l: Lifetime{Fresh: 60 * s}, age: 18 * s, wantTTL: 42 * s, wantRetention: 60 * s},
		{name: "stale", l: Lifetime{Fresh: 60 * s, StaleIfError: 100 * s}, age: 70 * s, wantTTL: -10 * s, wantRetention: 160 * s},
		{name: "longer window counts", l: Lifetime{Fresh: 60 * s, StaleWhileRevalidate: 300 * s, StaleIfError: 100 * s}, wantTTL: 60 * s, wantRetention: 360 * s},
		{name: "zero", l: Lifetime{}, wantTTL: 0, wantRetention: 0},
		{name: "negative fields", l: Lifetime{Fresh: -s, StaleIfError: -s}, wantTTL: 0, wantRetention: 0},
		{name: "saturates", l: Lifetime{Fresh: math.MaxInt64, StaleIfError: time.Hour}, wantTTL: math.MaxInt64, wantRetention: math.MaxInt64},
		{name: "keep for validation", l: Lifetime{Fresh: 60 * s, StaleIfError: 100 * s, Keep: 600 * s}, wantTTL: 60 * s, wantRetention: 660 * s},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.wantTTL, tc.l.TTL(t0, t0.Add(tc.age)), "TTL of %+v at age %v", tc.l, tc.age)
			assert.Equal(t, tc.wantRetention, tc.l.Retention(), "Retention of %+v", tc.l)
		})
	}
}

func TestInvalidates(t *testing.T) {
	tests := []struct {
		method string
		status int
		want   bool
	}{
		{method: "POST", status: 200, want: true},
		{method: "POST", status: 201, want: true},
		{method: "PUT", status: 204, want: true},
		{method: "PATCH", status: 200, want: true},
		{method: "DELETE", status: 204, want: true},
		{method: "POST", status: 303, want: true},
		{method: "POST", status: 399, want: true},
		{method: "PROPPATCH", status: 207, want: true},
		{method: "get", status: 200, want: true},
		{method: "POST", status: 100, want: false},
		{method: "POST", status: 400, want: false},
		{method: "DELETE", status: 404, want: false},
		{method: "PUT", status: 500, want: false},
		{method: "GET", status: 200, want: false},
		{method: "HEAD", status: 200, want: false},
		{method: "OPTIONS", status: 200, want: false},
		{method: "TRACE", status: 200, want: false},
		{method: "", status: 200, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+http.StatusText(tc.status), func(t *testing.T) {
			got := Invalidates(tc.method, tc.status)
			assert.Equal(t, tc.want, got, "Invalidates(%q, %d)", tc.method, tc.status)
		})
	}
}

func TestFreshnessString(t *testing.T) {
	tests := []struct {
		f    Freshness
		want string
	}{
		{f: Expired, want: "expired"},
		{f: Fresh, want: "fresh"},
		{f: StaleRevalidate, want: "stale-while-revalidate"},
		{f: StaleIfErrorOnly, want: "stale-if-error"},
		{f: Freshness(42), want: "Freshness(42)"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.f.String(), "Freshness(%d).String()", int(tc.f))
		})
	}
	var zero Freshness
	assert.Equal(t, Expired, zero, "the zero Freshness must be Expired")
}

func BenchmarkStorable(b *testing.B) {
	req := newRequest("GET", "/items/1", "Accept-Encoding", "gzip")
	h := header("Cache-Control", "public, max-age=60", "Vary", "Accept-Encoding", "Content-Type", "application/json")
	p := Policy{KeyHeaders: []string{"Accept-Encoding"}, StaleIfError: time.Minute}
	b.ReportAllocs()
	for b.Loop() {
		if !Storable(req, http.StatusOK, h, p, t0).Store {
			b.Fatal("not stored")
		}
	}
}
