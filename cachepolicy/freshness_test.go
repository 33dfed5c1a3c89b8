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
			want: stored(50*s, 0, 0, false),
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
		{name: "Age is taken off", req: get(), h: header("Cache-Control", "max-age=60", "Age", "20"), want: stored(40*s, 0, 0, false)},
		{name: "Age taken off TTL", req: get(), h: header("Age", "20"), policy: Policy{TTL: time.Minute}, want: stored(40*s, 0, 0, false)},
		{name: "Age beyond max-age", req: get(), h: header("Cache-Control", "max-age=60", "Age", "60"), want: StoreDecision{Reason: "no-freshness"}},
		{name: "invalid Age ignored", req: get(), h: header("Cache-Control", "max-age=60", "Age", "-3"), want: stored(60*s, 0, 0, false)},
		{name: "largest Age wins", req: get(), h: header("Cache-Control", "max-age=60", "Age", "5", "Age", "15"), want: stored(45*s, 0, 0, false)},
		{name: "old Date is apparent age", req: get(), h: header("Cache-Control", "max-age=60", "Date", httpDate(t0.Add(-5*s))), want: stored(55*s, 0, 0, false)},
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
		{name: "500 not stored", req: get(), status: 500, h: cc("max-age=60"), want: StoreDecision{Reason: "status"}},
		{name: "302 not stored by default", req: get(), status: 302, h: cc("max-age=60"), want: StoreDecision{Reason: "status"}},
		{name: "404 stored by default", req: get(), status: 404, h: cc("max-age=60"), want: stored(60*s, 0, 0, false)},
		{name: "302 stored when listed", req: get(), status: 302, h: cc("max-age=60"), policy: Policy{Statuses: []int{302}}, want: stored(60*s, 0, 0, false)},
		{name: "200 not stored when not listed", req: get(), h: cc("max-age=60"), policy: Policy{Statuses: []int{404}}, want: StoreDecision{Reason: "status"}},

		// Response Cache-Control.
		{name: "no-store", req: get(), h: cc("no-store, max-age=60"), policy: Policy{TTL: time.Hour}, want: StoreDecision{Reason: "no-store"}},
		{name: "private", req: get(), h: cc("private, max-age=60"), want: StoreDecision{Reason: "private"}},
		{name: "private with field", req: get(), h: cc(`private="Set-Cookie", max-age=60`), want: StoreDecision{Reason: "private"}},
		{name: "no-cache", req: get(), h: cc("no-cache, max-age=60"), want: StoreDecision{Reason: "no-cache"}},
		{name: "no-cache with field", req: get(), h: cc(`no-cache="Set-Cookie", max-age=60`), want: StoreDecision{Reason: "no-cache"}},
		{name: "public and private is private", req: get(), h: cc("public, private, max-age=60"), want: StoreDecision{Reason: "private"}},

		// Vary.
		{name: "vary star", req: get(), h: header("Cache-Control", "max-age=60", "Vary", "*"), want: StoreDecision{Reason: "vary-star"}},
		{name: "vary star in a list", req: get(), h: header("Cache-Control", "max-age=60", "Vary", "Accept, *"), want: StoreDecision{Reason: "vary-star"}},
		{name: "vary unkeyed", req: get(), h: header("Cache-Control", "max-age=60", "Vary", "Accept-Encoding"), want: StoreDecision{Reason: "vary-unkeyed"}},
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
			want:   StoreDecision{Reason: "vary-unkeyed"},
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

// TestStorableRefusesPoisonedVariant shows that a response depending on a
// header the key ignores cannot be planted for other clients: the
// attacker's request has the victim's key, so the response must not be
// stored unless the policy keys the header.
func TestStorableRefusesPoisonedVariant(t *testing.T) {
	victim := newRequest("GET", "https://shop.example/")
	attacker := newRequest("GET", "https://shop.example/", "X-Forwarded-Host", "evil.example")
	reflected := header("Cache-Control", "max-age=600", "Vary", "X-Forwarded-Host")

	p := Policy{TTL: time.Minute}
	assert.Equal(t, Key("c:", victim, p), Key("c:", attacker, p), "unkeyed header must not change the key")
	d := Storable(attacker, http.StatusOK, reflected, p, t0)
	assert.False(t, d.Store, "response varying on an unkeyed header was stored: %+v", d)
	assert.Equal(t, "vary-unkeyed", d.Reason)

	keyed := Policy{TTL: time.Minute, KeyHeaders: []string{"X-Forwarded-Host"}}
	assert.NotEqual(t, Key("c:", victim, keyed), Key("c:", attacker, keyed), "keyed header must change the key")
	d = Storable(attacker, http.StatusOK, reflected, keyed, t0)
	assert.True(t, d.Store, "response varying on a keyed header should be stored: %+v", d)
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
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(tc.l, t0, t0.Add(tc.age), tc.rd)
			assert.Equal(t, tc.want, got, "Classify(%+v, age %v, %+v): got %v, want %v", tc.l, tc.age, tc.rd, got, tc.want)
		})
	}
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
