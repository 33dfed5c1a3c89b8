package cachepolicy

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// Lifetime says how long a stored response may be used, counted from the
// moment it was stored. It is what an entry must keep of a [StoreDecision]
// to be classified later by [Classify]. The zero value is a response that
// is never fresh.
type Lifetime struct {
	// Fresh is how long the response is fresh after it was stored: its
	// freshness lifetime minus the age it already had (its Age field, or
	// how far its Date lay in the past). Zero or negative: never fresh.
	Fresh time.Duration
	// StaleWhileRevalidate is how long after Fresh runs out the response
	// may still be served while one refresh runs. Zero: no such window.
	StaleWhileRevalidate time.Duration
	// StaleIfError is how long after Fresh runs out the response may still
	// be served when the handler fails. Zero: no such window.
	StaleIfError time.Duration
	// MustRevalidate says the response forbade serving it stale
	// (must-revalidate, proxy-revalidate or s-maxage): beyond the windows
	// above, which then come only from the response's own directives, a
	// client's max-stale is not honoured.
	// False: a client's max-stale may extend its use.
	MustRevalidate bool
}

// TTL returns how much freshness a response stored at storedAt has left at
// now; it is negative once the response is stale. It is the ttl of
// [CacheStatus].
func (l Lifetime) TTL(storedAt, now time.Time) time.Duration {
	return max(l.Fresh, 0) - Age(storedAt, now)
}

// Retention returns how long a store should keep the response: Fresh plus
// the longer of the two stale windows. After that, [Classify] would call it
// [Expired] whatever the request.
func (l Lifetime) Retention() time.Duration {
	return addSat(max(l.Fresh, 0), max(l.StaleWhileRevalidate, l.StaleIfError, 0))
}

// StoreDecision says whether a response may be stored, and if so for how
// long.
type StoreDecision struct {
	// Store is true when the response may be stored.
	Store bool
	// Reason says why the response may not be stored; it is empty when
	// Store is true. It is one of these tokens, usable as a Cache-Status
	// detail: "method", "request-no-store", "authorization", "cookie",
	// "status", "no-store", "private", "no-cache", "set-cookie",
	// "vary-star", "vary-unkeyed", "no-freshness". ("too-large" is the
	// caller's to give when a body outgrows [Policy.BodyLimit].)
	Reason string
	// Lifetime is how long the stored response may be used; zero when
	// Store is false.
	Lifetime
}

// Storable decides whether the response to req, with the status code and
// header h the handler produced, may be stored under policy p, judged at
// time now. The rules, in the order they are checked:
//
//   - only GET responses are stored ("method"): HEAD is served from the
//     GET entry, and other methods are not cached;
//   - a request with Cache-Control no-store is not ("request-no-store");
//   - a request carrying Authorization is not, unless p.AllowAuthorization
//     is set and the response says public, s-maxage or must-revalidate
//     (RFC 9111 section 3.5) ("authorization");
//   - a request carrying Cookie is not, unless p.AllowCookies ("cookie");
//   - the status must be one p allows ("status");
//   - a response with Cache-Control no-store, private or no-cache is not
//     ("no-store", "private", "no-cache"); this cache cannot revalidate, so
//     a response that must be revalidated on every use is not worth storing;
//   - a response with Set-Cookie is not, unless p.AllowSetCookie
//     ("set-cookie");
//   - a response whose Vary is "*" ("vary-star") or names a header that is
//     not in p.KeyHeaders ("vary-unkeyed") is not, since its key could not
//     tell its variants apart;
//   - the freshness lifetime is s-maxage, else max-age, else Expires minus
//     Date (now when Date is missing or invalid; an invalid or repeated
//     Expires means already expired), else p.TTL; the response's age (its
//     Age field, or how far its Date lies in the past) is taken off; a
//     response with no freshness left is not stored ("no-freshness").
//
// The stale windows are the response's stale-while-revalidate and
// stale-if-error directives when present, else the policy's; a response
// that says must-revalidate, proxy-revalidate or s-maxage gets no window
// from the policy. Storable does not look at the body: the caller refuses
// bodies over [Policy.BodyLimit] itself.
func Storable(req *http.Request, status int, h http.Header, p Policy, now time.Time) StoreDecision {
	if req == nil || (req.Method != "" && req.Method != http.MethodGet) {
		return StoreDecision{Reason: "method"}
	}
	if ParseRequest(req.Header).NoStore {
		return StoreDecision{Reason: "request-no-store"}
	}
	authorized := len(req.Header["Authorization"]) > 0
	if authorized && !p.AllowAuthorization {
		return StoreDecision{Reason: "authorization"}
	}
	if len(req.Header["Cookie"]) > 0 && !p.AllowCookies {
		return StoreDecision{Reason: "cookie"}
	}
	if !p.AllowsStatus(status) {
		return StoreDecision{Reason: "status"}
	}
	rd := ParseResponse(h)
	switch {
	case rd.NoStore:
		return StoreDecision{Reason: "no-store"}
	case rd.Private:
		return StoreDecision{Reason: "private"}
	case rd.NoCache:
		return StoreDecision{Reason: "no-cache"}
	case authorized && !rd.Public && !rd.HasSMaxAge && !rd.MustRevalidate:
		return StoreDecision{Reason: "authorization"}
	case len(h["Set-Cookie"]) > 0 && !p.AllowSetCookie:
		return StoreDecision{Reason: "set-cookie"}
	}
	if reason := varyReason(h, p.KeyHeaders); reason != "" {
		return StoreDecision{Reason: reason}
	}

	var lifetime time.Duration
	switch {
	case rd.HasSMaxAge:
		lifetime = rd.SMaxAge
	case rd.HasMaxAge:
		lifetime = rd.MaxAge
	case len(h["Expires"]) > 0:
		lifetime = expiresLifetime(h, now)
	default:
		lifetime = p.TTL
	}
	fresh := lifetime - initialAge(h, now)
	if fresh <= 0 {
		return StoreDecision{Reason: "no-freshness"}
	}

	l := Lifetime{
		Fresh:          fresh,
		MustRevalidate: rd.MustRevalidate || rd.ProxyRevalidate || rd.HasSMaxAge,
	}
	if !l.MustRevalidate {
		l.StaleWhileRevalidate, l.StaleIfError = p.StaleWhileRevalidate, p.StaleIfError
	}
	if rd.HasStaleWhileRevalidate {
		l.StaleWhileRevalidate = rd.StaleWhileRevalidate
	}
	if rd.HasStaleIfError {
		l.StaleIfError = rd.StaleIfError
	}
	return StoreDecision{Store: true, Lifetime: l}
}

// expiresLifetime returns Expires minus Date (or minus now when Date is
// missing or invalid), clamped to [0, MaxDelta]. An Expires that is invalid,
// or given more than once with different values, gives 0.
func expiresLifetime(h http.Header, now time.Time) time.Duration {
	values := h["Expires"]
	for _, v := range values[1:] {
		if v != values[0] {
			return 0
		}
	}
	expires, err := http.ParseTime(values[0])
	if err != nil {
		return 0
	}
	date := now
	if dates := h["Date"]; len(dates) > 0 {
		if d, err := http.ParseTime(dates[0]); err == nil {
			date = d
		}
	}
	return min(max(expires.Sub(date), 0), MaxDelta)
}

// initialAge returns the age a response already has when it reaches the
// cache: the larger of its Age field (the largest valid one if repeated)
// and how many whole seconds its Date lies before now.
func initialAge(h http.Header, now time.Time) time.Duration {
	var age time.Duration
	for _, v := range h["Age"] {
		if a, ok := (directive{value: trimOWS(v), hasValue: true}).delta(); ok {
			age = max(age, a)
		}
	}
	if dates := h["Date"]; len(dates) > 0 {
		if d, err := http.ParseTime(dates[0]); err == nil {
			age = max(age, now.Sub(d).Truncate(time.Second))
		}
	}
	return age
}

// Freshness is the state of a stored response at the time of a request, as
// [Classify] reports it. The zero value is [Expired].
type Freshness int

const (
	// Expired means the stored response must not be served: run the
	// handler.
	Expired Freshness = iota
	// Fresh means the stored response is served as it is.
	Fresh
	// StaleRevalidate means the stored response is served now while one
	// refresh per key runs in the background.
	StaleRevalidate
	// StaleIfErrorOnly means the handler runs, and the stored response is
	// served only if the handler fails.
	StaleIfErrorOnly
)

// String returns the state's name, such as "fresh".
func (f Freshness) String() string {
	switch f {
	case Expired:
		return "expired"
	case Fresh:
		return "fresh"
	case StaleRevalidate:
		return "stale-while-revalidate"
	case StaleIfErrorOnly:
		return "stale-if-error"
	}
	return "Freshness(" + strconv.Itoa(int(f)) + ")"
}

// Classify says how a response stored at storedAt with lifetime l may be
// used at now for a request with directives rd.
//
// Without request directives: [Fresh] while its age is under l.Fresh, then
// [StaleRevalidate] for l.StaleWhileRevalidate, then [StaleIfErrorOnly]
// until l.StaleIfError past l.Fresh, then [Expired]. The stale windows run
// side by side, both counted from the end of freshness.
//
// Request directives: no-cache and max-age=0 force revalidation, so a fresh
// response is at best [StaleIfErrorOnly] (the handler runs; the stored copy
// covers its failure); so does a max-age the age exceeds, or a min-fresh
// the remaining freshness does not meet. A max-stale the staleness is
// within makes a stale response [StaleRevalidate], unless l.MustRevalidate.
// only-if-cached is the caller's to handle.
//
// Age is the time since storedAt (see [Age]); the age a response had when
// it was stored is already taken off l.Fresh by [Storable].
func Classify(l Lifetime, storedAt, now time.Time, rd RequestDirectives) Freshness {
	age := Age(storedAt, now)
	fresh := max(l.Fresh, 0)
	revalidate := rd.NoCache || (rd.HasMaxAge && (rd.MaxAge <= 0 || age > rd.MaxAge))

	if age < fresh {
		if revalidate || (rd.HasMinFresh && fresh-age < rd.MinFresh) {
			return StaleIfErrorOnly
		}
		return Fresh
	}

	stale := age - fresh
	if !revalidate && !rd.HasMinFresh {
		if stale < max(l.StaleWhileRevalidate, 0) {
			return StaleRevalidate
		}
		if rd.HasMaxStale && !l.MustRevalidate && stale <= rd.MaxStale {
			return StaleRevalidate
		}
	}
	if stale < max(l.StaleIfError, 0) {
		return StaleIfErrorOnly
	}
	return Expired
}

// Age returns how long a response stored at storedAt has been stored at
// now, never negative (a clock that went back gives 0). It is the value
// for the Age field of a response served from the cache.
func Age(storedAt, now time.Time) time.Duration {
	return max(now.Sub(storedAt), 0)
}

// Invalidates reports whether a response with the status code to a request
// with the method makes the stored GET response for the same URL invalid:
// an unsafe method (anything but GET, HEAD, OPTIONS and TRACE, including
// unknown ones) with a non-error final status, 200-399 (RFC 9111 section
// 4.4). Method names are case-sensitive; an empty method is GET.
func Invalidates(method string, status int) bool {
	switch method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return status >= 200 && status < 400
}

// addSat returns a+b for non-negative a and b, saturating at the largest
// duration.
func addSat(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
