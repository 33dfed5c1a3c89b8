package cachepolicy

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"time"
)

// DefaultMaxBodyBytes is the largest body stored when [Policy.MaxBodyBytes]
// is zero: 1 MiB.
const DefaultMaxBodyBytes int64 = 1 << 20

// ErrInvalidPolicy is wrapped by the errors of [Policy.Validate] and
// [NewRules] when a policy has a bad field; the message names the field.
var ErrInvalidPolicy = errors.New("invalid policy")

// Policy says how the responses of one route are cached. The zero value is
// valid and safe: it stores responses that give their own freshness
// (Cache-Control max-age or s-maxage, Expires, or a targeted field), and
// those with a Last-Modified for 10% of their age (heuristic freshness,
// at most a day); it never serves stale except after a successful
// revalidation, keys on the URL alone (responses that say Vary are stored
// as variants) and refuses anything that carries credentials or cookies.
//
// A Policy is a plain value; it is safe for concurrent use as long as nobody
// modifies its slices.
type Policy struct {
	// TTL is the freshness lifetime of a response that gives none of its
	// own. A response's s-maxage wins over its max-age, which wins over
	// Expires minus Date, which wins over TTL.
	// Zero: only responses with explicit freshness are stored.
	TTL time.Duration

	// StaleWhileRevalidate is how long after a stored response expires it
	// is still served at once, while a single refresh runs in the
	// background. A response's own stale-while-revalidate directive
	// (RFC 5861) replaces this value for that response, and a response
	// that says must-revalidate, proxy-revalidate or s-maxage (all of which
	// forbid a shared cache to serve it stale) gets no window from the
	// policy. Zero: no window unless the response names one.
	StaleWhileRevalidate time.Duration

	// StaleIfError is how long after a stored response expires it is still
	// served when the handler fails (a 5xx status). A response's own
	// stale-if-error directive replaces it, as for StaleWhileRevalidate.
	// Zero: no window unless the response names one.
	StaleIfError time.Duration

	// StaleIfErrorOnPanic makes a handler panic count as a failure that may
	// be answered from the stale-if-error window.
	// False: a panicking handler is never hidden behind a stale response.
	StaleIfErrorOnPanic bool

	// MaxBodyBytes is the largest body that is stored; larger bodies are
	// streamed to the client and not stored. Zero: [DefaultMaxBodyBytes].
	MaxBodyBytes int64

	// KeyHeaders lists the request headers whose values are part of the
	// cache key, up front: a response that says Vary on them needs no
	// variant (and no second round trip). A response that says Vary on
	// other headers is stored as a variant of its URL (see MaxVariants).
	// Names are case-insensitive, order and duplicates do not matter.
	// Nil: no request header is part of the key.
	KeyHeaders []string

	// Statuses lists the response status codes that may be stored; 1xx,
	// 206 and 304 never are (see [StorableStatus]). Empty: any storable
	// status when the response gives explicit freshness (s-maxage,
	// max-age, Expires) or says public, and the statuses RFC 9110 calls
	// heuristically cacheable ([DefaultStatuses]) also without.
	Statuses []int

	// HeuristicFraction is the share of the time between a response's
	// Last-Modified and its Date that it is taken to stay fresh when it
	// gives no freshness of its own and TTL is zero (RFC 9111 section
	// 4.2.2): a page unchanged for ten days is taken as fresh for one. It
	// applies to the statuses of [DefaultStatuses] and to responses that
	// say public. Zero: [DefaultHeuristicFraction], 10%, the fraction RFC
	// 9111 names and most caches use. It must be at most 1.
	HeuristicFraction float64

	// HeuristicMax caps the heuristic freshness lifetime. Zero:
	// [DefaultHeuristicMax], one day, so that a file unchanged for years
	// is still checked daily.
	HeuristicMax time.Duration

	// NoHeuristic turns heuristic freshness off: a response without
	// explicit freshness is then stored only under a TTL.
	// False: heuristic freshness is on.
	NoHeuristic bool

	// StaleRetention is how long past its freshness (and stale windows) a
	// stored 200 that has a validator (ETag or Last-Modified) is kept, so
	// that once stale it is revalidated with a conditional request (the
	// handler may answer 304) instead of fetched whole again.
	// Zero: [DefaultStaleRetention].
	StaleRetention time.Duration

	// MaxVariants is how many variants of one URL are kept when responses
	// say Vary on request fields outside KeyHeaders (one per combination
	// of those fields' normalised values); past it the oldest is dropped.
	// Zero: [DefaultMaxVariants].
	MaxVariants int

	// TargetedField names the cache's own targeted Cache-Control field
	// (RFC 9213), such as "Steadfast-Cache-Control": when a response has
	// it, valid, its directives are obeyed instead of those of
	// CDN-Cache-Control and Cache-Control, so that an origin can give this
	// cache alone a lifetime of its own. Empty: only CDN-Cache-Control is
	// obeyed ahead of Cache-Control.
	TargetedField string

	// AllowAuthorization lets responses to requests that carry an
	// Authorization header be stored and served. Even then, as RFC 9111
	// section 3.5 requires of a shared cache, such a response is stored
	// only if it says public, s-maxage or must-revalidate. The header is not
	// part of the key unless KeyHeaders lists it, so a stored response is
	// shared by every caller.
	// False: such requests are answered by the handler and never stored.
	AllowAuthorization bool

	// AllowCookies lets responses to requests that carry a Cookie header be
	// stored and served. The cookie is not part of the key unless
	// KeyHeaders lists it.
	// False: such requests are answered by the handler and never stored.
	AllowCookies bool

	// AllowSetCookie lets responses that carry Set-Cookie be stored; the
	// cookie is then replayed to every client served from the entry.
	// False: such responses are not stored.
	AllowSetCookie bool
}

// Defaults of the fields of [Policy] whose zero value means a default.
const (
	// DefaultHeuristicFraction is the heuristic freshness fraction when
	// [Policy.HeuristicFraction] is zero: 10%.
	DefaultHeuristicFraction = 0.1
	// DefaultHeuristicMax caps heuristic freshness when
	// [Policy.HeuristicMax] is zero: one day.
	DefaultHeuristicMax = 24 * time.Hour
	// DefaultStaleRetention is how long a stale response with a validator
	// is kept for revalidation when [Policy.StaleRetention] is zero: ten
	// minutes, nginx's default for keeping entries nobody asked for.
	DefaultStaleRetention = 10 * time.Minute
	// DefaultMaxVariants is how many variants of one URL are kept when
	// [Policy.MaxVariants] is zero.
	DefaultMaxVariants = 8
)

// DefaultStatuses returns the status codes stored when [Policy.Statuses] is
// empty: those RFC 9110 section 15.1 calls heuristically cacheable (200,
// 203, 204, 300, 301, 308, 404, 405, 410, 414, 501). The slice is a fresh
// copy that the caller may modify.
func DefaultStatuses() []int {
	return []int{200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501}
}

// isDefaultStatus reports whether code is one of [DefaultStatuses].
func isDefaultStatus(code int) bool {
	switch code {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// StorableStatus reports whether a response with the status code may ever
// be stored, whatever the policy: a final status (200-599) other than 206
// Partial Content and 304 Not Modified, which a cache answers from a
// stored complete response but never stores.
func StorableStatus(code int) bool {
	return 200 <= code && code <= 599 && code != 206 && code != 304
}

// AllowsStatus reports whether a response with the status code may be
// stored under the policy without explicit freshness: one of p.Statuses,
// or of [DefaultStatuses] when that is empty. A status for which
// [StorableStatus] is false never is, even when Statuses lists it.
func (p Policy) AllowsStatus(code int) bool {
	return p.storesStatus(code, false)
}

// storesStatus reports whether a response with the status code may be
// stored; explicit says it has explicit freshness.
func (p Policy) storesStatus(code int, explicit bool) bool {
	switch {
	case !StorableStatus(code):
		return false
	case len(p.Statuses) > 0:
		return slices.Contains(p.Statuses, code)
	}
	return explicit || isDefaultStatus(code)
}

// understood reports whether the cache understands the status code in the
// sense of must-understand (RFC 9111 section 5.2.2.3): a final status RFC
// 9110 defines, other than 206 and 304, whose caching rules it follows.
func understood(code int) bool {
	switch {
	case code >= 200 && code <= 205, code >= 300 && code <= 303, code == 305, code == 307, code == 308,
		code >= 400 && code <= 417, code >= 421 && code <= 422, code == 426, code >= 500 && code <= 505:
		return true
	}
	return false
}

// HeuristicLifetime returns the heuristic freshness lifetime of a
// response with header h received at received (RFC 9111 section 4.2.2):
// HeuristicFraction of the time from its Last-Modified to its Date (or to
// received when Date is missing or invalid), at most HeuristicMax. It is
// zero when NoHeuristic is set or Last-Modified is missing, invalid or not
// in the past. The caller decides whether the response's status allows a
// heuristic.
func (p Policy) HeuristicLifetime(h http.Header, received time.Time) time.Duration {
	lm := h["Last-Modified"]
	if p.NoHeuristic || len(lm) == 0 {
		return 0
	}
	modified, ok := ParseHTTPDate(lm[0], received)
	if !ok {
		return 0
	}
	since := dateOr(h, received).Sub(modified)
	if since <= 0 {
		return 0
	}
	fraction := p.HeuristicFraction
	if fraction == 0 {
		fraction = DefaultHeuristicFraction
	}
	limit := p.HeuristicMax
	if limit == 0 {
		limit = DefaultHeuristicMax
	}
	return min(time.Duration(float64(since)*fraction).Truncate(time.Second), limit)
}

// staleRetention returns StaleRetention or its default.
func (p Policy) staleRetention() time.Duration {
	if p.StaleRetention == 0 {
		return DefaultStaleRetention
	}
	return p.StaleRetention
}

// VariantLimit returns how many variants of one URL are kept:
// MaxVariants, or [DefaultMaxVariants] when that is zero.
func (p Policy) VariantLimit() int {
	if p.MaxVariants == 0 {
		return DefaultMaxVariants
	}
	return p.MaxVariants
}

// BodyLimit returns the largest body stored under the policy:
// MaxBodyBytes, or [DefaultMaxBodyBytes] when that is zero.
func (p Policy) BodyLimit() int64 {
	if p.MaxBodyBytes == 0 {
		return DefaultMaxBodyBytes
	}
	return p.MaxBodyBytes
}

// Validate reports the policy's bad fields: a negative duration or size, a
// status code outside 100-599, an empty key header name or one that is not
// an HTTP token. Each error wraps [ErrInvalidPolicy] and names its field;
// several are joined with [errors.Join]. The zero Policy is valid.
func (p Policy) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalidPolicy, fmt.Sprintf(format, args...)))
	}
	if p.TTL < 0 {
		bad("TTL %v is negative", p.TTL)
	}
	if p.StaleWhileRevalidate < 0 {
		bad("StaleWhileRevalidate %v is negative", p.StaleWhileRevalidate)
	}
	if p.StaleIfError < 0 {
		bad("StaleIfError %v is negative", p.StaleIfError)
	}
	if p.MaxBodyBytes < 0 {
		bad("MaxBodyBytes %d is negative", p.MaxBodyBytes)
	}
	if p.HeuristicFraction < 0 || p.HeuristicFraction > 1 || p.HeuristicFraction != p.HeuristicFraction {
		bad("HeuristicFraction %v is not within [0, 1]", p.HeuristicFraction)
	}
	if p.HeuristicMax < 0 {
		bad("HeuristicMax %v is negative", p.HeuristicMax)
	}
	if p.StaleRetention < 0 {
		bad("StaleRetention %v is negative", p.StaleRetention)
	}
	if p.MaxVariants < 0 {
		bad("MaxVariants %d is negative", p.MaxVariants)
	}
	if p.TargetedField != "" && !IsToken(p.TargetedField) {
		bad("TargetedField %q is not a header name", p.TargetedField)
	}
	for i, name := range p.KeyHeaders {
		if !IsToken(name) {
			bad("KeyHeaders[%d] %q is not a header name", i, name)
		}
	}
	for i, code := range p.Statuses {
		if code < 100 || code > 599 {
			bad("Statuses[%d] %d is not a status code", i, code)
		}
	}
	return errors.Join(errs...)
}

// Normalize returns a copy of p whose slices are its own and whose
// KeyHeaders are canonical, sorted and free of duplicates: the form
// [AppendKey] handles without allocating, and the form [Rules.For] returns.
// It changes no decision: a normalized policy gives the same keys and
// verdicts as p.
func (p Policy) Normalize() Policy {
	if p.KeyHeaders != nil {
		hs := make([]string, len(p.KeyHeaders))
		for i, name := range p.KeyHeaders {
			hs[i] = textproto.CanonicalMIMEHeaderKey(name)
		}
		slices.Sort(hs)
		p.KeyHeaders = slices.Clip(slices.Compact(hs))
	}
	if p.Statuses != nil {
		p.Statuses = slices.Clone(p.Statuses)
	}
	if p.TargetedField != "" {
		p.TargetedField = textproto.CanonicalMIMEHeaderKey(p.TargetedField)
	}
	return p
}

// IsToken reports whether s is a non-empty HTTP token (RFC 9110 5.6.2), the
// syntax of methods, field names and most directive names.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

// isTchar reports whether c may appear in an HTTP token.
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
