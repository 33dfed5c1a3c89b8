package cachepolicy

import (
	"errors"
	"fmt"
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
// valid and safe: it stores only responses that give their own freshness
// (Cache-Control max-age or s-maxage, or Expires), never serves stale, keys on
// the URL alone and refuses anything that carries credentials or cookies.
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
	// cache key, and so the only headers a response may name in Vary. Names
	// are case-insensitive, order and duplicates do not matter.
	// Nil: no request header is part of the key.
	KeyHeaders []string

	// Statuses lists the response status codes that may be stored; 1xx,
	// 206 and 304 never are (see [StorableStatus]).
	// Empty: the statuses RFC 9110 calls heuristically cacheable, see
	// [DefaultStatuses].
	Statuses []int

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
// stored under the policy. A status for which [StorableStatus] is false
// never is, even when Statuses lists it.
func (p Policy) AllowsStatus(code int) bool {
	if !StorableStatus(code) {
		return false
	}
	if len(p.Statuses) == 0 {
		return isDefaultStatus(code)
	}
	return slices.Contains(p.Statuses, code)
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
	for i, name := range p.KeyHeaders {
		if !isToken(name) {
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
	return p
}

// isToken reports whether s is a non-empty HTTP token (RFC 9110 5.6.2), the
// syntax of field names and of most directive names.
func isToken(s string) bool {
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
