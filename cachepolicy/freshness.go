package cachepolicy

import (
	"math"
	"net/http"
	"time"
)

// Lifetime says how long a stored response may be used, counted from the
// moment it was stored. It is what an entry must keep of a [StoreDecision]
// to be classified later by [Classify]. The zero value is a response that
// is never fresh.
type Lifetime struct {
	// Fresh is how long the response is fresh after it was stored: its
	// freshness lifetime minus the age it already had (Age). Zero or
	// negative: never fresh.
	Fresh time.Duration
	// Age is the age the response already had when it was stored: its
	// corrected_initial_age (RFC 9111 section 4.2.3), the larger of how
	// far its Date lay in the past and its Age field plus the time the
	// handler took. The age of the stored response at any later moment is
	// Age plus the time since it was stored (see [Lifetime.CurrentAge]).
	Age time.Duration
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
	// NoCache says the response said no-cache: it must be validated with
	// the handler (a conditional request) before each use, fresh or not.
	NoCache bool
	// Keep is how long past Fresh and the stale windows a store keeps a
	// response that has a validator (ETag or Last-Modified), so that a
	// stale one can be revalidated with a conditional request instead of
	// fetched again. It counts only for [Lifetime.Retention]; an entry
	// need not keep it. Zero: kept no longer than the windows.
	Keep time.Duration
}

// TTL returns how much freshness a response stored at storedAt has left at
// now; it is negative once the response is stale. It is the ttl of
// [CacheStatus].
func (l Lifetime) TTL(storedAt, now time.Time) time.Duration {
	return max(l.Fresh, 0) - Age(storedAt, now)
}

// CurrentAge returns the age of a response stored at storedAt, at now:
// the age it had when stored plus the time since (RFC 9111 section
// 4.2.3), at most [MaxDelta]. It is the value of the Age field of a
// response served from the cache.
func (l Lifetime) CurrentAge(storedAt, now time.Time) time.Duration {
	return min(addSat(max(l.Age, 0), Age(storedAt, now)), MaxDelta)
}

// Retention returns how long a store should keep the response: Fresh plus
// the longest of the two stale windows and Keep. After that, [Classify]
// would call it [Expired] whatever the request, and it is too old to be
// worth revalidating.
func (l Lifetime) Retention() time.Duration {
	return addSat(max(l.Fresh, 0), max(l.StaleWhileRevalidate, l.StaleIfError, l.Keep, 0))
}

// StoreDecision says whether a response may be stored, and if so for how
// long.
type StoreDecision struct {
	// Store is true when the response may be stored.
	Store bool
	// Reason says why the response may not be stored; it is empty when
	// Store is true. It is one of these tokens, usable as a Cache-Status
	// detail: "method", "request-no-store", "authorization", "cookie",
	// "status", "must-understand", "no-store", "private", "no-cache",
	// "set-cookie", "vary-star", "no-freshness". ("too-large" is the
	// caller's to give when a body outgrows [Policy.BodyLimit].)
	Reason string
	// Lifetime is how long the stored response may be used; zero when
	// Store is false.
	Lifetime
	// Vary lists the canonical names of the request fields, sorted, that
	// the response varies on (its Vary field) beyond [Policy.KeyHeaders].
	// When it is not empty the response is stored as one variant of its
	// URL, under [AppendVariantKey]. Nil: the key alone selects it.
	Vary []string
	// Fields says which of the response's fields are stored.
	Fields FieldFilter
}

// Storable decides whether the response to req, with the status code and
// header h the handler produced, may be stored under policy p, judged at
// time now. It is [StorableAt] with now as both the request and the
// response time.
func Storable(req *http.Request, status int, h http.Header, p Policy, now time.Time) StoreDecision {
	return StorableAt(req, status, h, p, now, now)
}

// StorableAt decides whether the response to req, with the status code
// and header h the handler produced, may be stored under policy p;
// requested is when the request was handed to the handler and received
// when its response header came back. The directives obeyed are those of
// [ParseTargeted] with p.TargetedField. The rules, in the order they are
// checked:
//
//   - only GET responses are stored ("method"): HEAD is served from the
//     GET entry, and other methods are not cached;
//   - a request with Cache-Control no-store is not ("request-no-store");
//   - a request carrying Authorization is not, unless p.AllowAuthorization
//     is set and the response says public, s-maxage or must-revalidate
//     (RFC 9111 section 3.5) ("authorization");
//   - a request carrying Cookie is not, unless p.AllowCookies ("cookie");
//   - 1xx, 206 and 304 are never stored, nor a status p.Statuses leaves
//     out; with p.Statuses empty, any other final status is stored when
//     the response has explicit freshness (s-maxage, max-age, Expires) or
//     says public, and one of [DefaultStatuses] also without ("status");
//   - must-understand stores only a status this cache understands (those
//     RFC 9110 defines) ("must-understand"), and then overrides no-store;
//   - a response with no-store or (unqualified) private is not
//     ("no-store", "private"); private="..." and no-cache="..." store the
//     response without the listed fields;
//   - a response with Set-Cookie is not, unless p.AllowSetCookie or a
//     qualified private or no-cache lists it ("set-cookie");
//   - a response whose Vary is "*", or holds something that is not a
//     field name, is not ("vary-star"); one that names fields outside
//     p.KeyHeaders is stored as a variant (see StoreDecision.Vary);
//   - the freshness lifetime is s-maxage, else max-age, else Expires minus
//     Date (received when Date is missing or invalid; an invalid or
//     repeated Expires means already expired, see [ParseHTTPDate]), else
//     p.TTL, else the heuristic of [Policy.HeuristicLifetime]; the age the
//     response already has ([Lifetime.Age]) is taken off;
//   - a response with no freshness left is not stored ("no-freshness"),
//     unless it is a 200 with a validator (ETag or Last-Modified) that
//     said no-cache or gave explicit freshness: it is then stored stale,
//     to be validated before use;
//   - no-cache (unqualified) marks the stored response to be validated
//     before each use ([Lifetime.NoCache]); without a validator (or for
//     a status other than 200, which a 304 cannot stand for) that would be
//     a full run each time, so it is not stored ("no-cache").
//
// The stale windows are the response's stale-while-revalidate and
// stale-if-error directives when present, else the policy's; a response
// that says must-revalidate, proxy-revalidate or s-maxage gets no window
// from the policy, and one that says no-cache no stale-while-revalidate.
// A 200 with a validator is kept [Policy.StaleRetention] past the windows
// ([Lifetime.Keep]). StorableAt does not look at the body: the caller
// refuses bodies over [Policy.BodyLimit] itself.
func StorableAt(req *http.Request, status int, h http.Header, p Policy, requested, received time.Time) StoreDecision {
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
	rd := ParseTargeted(h, p.TargetedField)
	_, hasExpires := h["Expires"]
	explicit := rd.HasSMaxAge || rd.HasMaxAge || hasExpires || (rd.Public && p.TTL > 0)
	if !p.storesStatus(status, explicit || rd.Public) {
		return StoreDecision{Reason: "status"}
	}
	noStore := rd.NoStore
	if rd.MustUnderstand {
		if !understood(status) {
			return StoreDecision{Reason: "must-understand"}
		}
		noStore = false
	}
	fields := NewFieldFilter(h, rd)
	switch {
	case noStore:
		return StoreDecision{Reason: "no-store"}
	case rd.Private:
		return StoreDecision{Reason: "private"}
	case authorized && !rd.Public && !rd.HasSMaxAge && !rd.MustRevalidate:
		return StoreDecision{Reason: "authorization"}
	case len(h["Set-Cookie"]) > 0 && !p.AllowSetCookie && fields.Stored("Set-Cookie"):
		return StoreDecision{Reason: "set-cookie"}
	}
	vary, star := VaryFields(h)
	if star {
		return StoreDecision{Reason: "vary-star"}
	}
	vary = unkeyed(vary, p.KeyHeaders)

	var lifetime time.Duration
	switch {
	case rd.HasSMaxAge:
		lifetime = rd.SMaxAge
	case rd.HasMaxAge:
		lifetime = rd.MaxAge
	case hasExpires:
		lifetime = expiresLifetime(h, received)
	case p.TTL > 0:
		lifetime = p.TTL
	case isDefaultStatus(status) || rd.Public:
		lifetime = p.HeuristicLifetime(h, received)
	}
	age := correctedInitialAge(h, requested, received)
	fresh := lifetime - age
	_, hasETag := h["Etag"]
	_, hasLM := h["Last-Modified"]
	// Only a 200 is revalidated: RFC 9110 answers 304 in place of a 200.
	validator := (hasETag || hasLM) && status == http.StatusOK
	switch {
	case rd.NoCache && !validator:
		return StoreDecision{Reason: "no-cache"}
	case fresh <= 0 && (!validator || !rd.NoCache && !explicit):
		return StoreDecision{Reason: "no-freshness"}
	}

	l := Lifetime{
		Fresh:          max(fresh, 0),
		Age:            age,
		MustRevalidate: rd.MustRevalidate || rd.ProxyRevalidate || rd.HasSMaxAge,
		NoCache:        rd.NoCache,
	}
	if !l.MustRevalidate && !l.NoCache {
		l.StaleWhileRevalidate, l.StaleIfError = p.StaleWhileRevalidate, p.StaleIfError
	}
	if rd.HasStaleWhileRevalidate && !l.NoCache {
		l.StaleWhileRevalidate = rd.StaleWhileRevalidate
	}
	if rd.HasStaleIfError {
		l.StaleIfError = rd.StaleIfError
	}
	if validator {
		l.Keep = p.staleRetention()
	}
	return StoreDecision{Store: true, Lifetime: l, Vary: vary, Fields: fields}
}

// expiresLifetime returns Expires minus Date (or minus received when Date
// is missing or invalid), clamped to [0, MaxDelta]. An Expires that is
// invalid (see [ParseHTTPDate]), or given more than once with different
// values, gives 0: already expired.
func expiresLifetime(h http.Header, received time.Time) time.Duration {
	values := h["Expires"]
	for _, v := range values[1:] {
		if v != values[0] {
			return 0
		}
	}
	expires, ok := ParseHTTPDate(values[0], received)
	if !ok {
		return 0
	}
	return min(max(expires.Sub(dateOr(h, received)), 0), MaxDelta)
}

// dateOr returns the response's Date, or received when it has no valid
// Date.
func dateOr(h http.Header, received time.Time) time.Time {
	if d, ok := dateOf(h, received); ok {
		return d
	}
	return received
}

// dateOf returns the response's Date, if it has one valid Date.
func dateOf(h http.Header, now time.Time) (time.Time, bool) {
	dates := h["Date"]
	if len(dates) == 0 {
		return time.Time{}, false
	}
	return ParseHTTPDate(dates[0], now)
}

// correctedInitialAge returns the age a response already has when it
// reaches the cache (RFC 9111 section 4.2.3): the larger of its apparent
// age (how many whole seconds its Date lies before received) and its Age
// field (the largest valid one if repeated) plus the response delay
// (received minus requested).
func correctedInitialAge(h http.Header, requested, received time.Time) time.Duration {
	var apparent, corrected time.Duration
	if d, ok := dateOf(h, received); ok {
		apparent = max(received.Sub(d).Truncate(time.Second), 0)
	}
	var ageValue time.Duration
	hasAge := false
	for _, v := range h["Age"] {
		if a, ok := (directive{value: trimOWS(v), hasValue: true}).delta(); ok {
			ageValue, hasAge = max(ageValue, a), true
		}
	}
	if hasAge {
		corrected = addSat(ageValue, max(received.Sub(requested), 0))
	}
	return min(max(apparent, corrected), MaxDelta)
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
