package cachepolicy

import (
	"net/http"
	"net/textproto"
	"strings"
	"time"
)

// MaxDelta is the largest time a Cache-Control or Age value can express:
// 2^31 seconds. Larger values are clamped to it, as RFC 9111 section 1.2.2
// requires.
const MaxDelta = (1 << 31) * time.Second

// RequestDirectives are the Cache-Control directives of a request
// (RFC 9111 section 5.2.1) that a shared cache acts on. The zero value means
// the request said nothing.
type RequestDirectives struct {
	// NoCache is set by no-cache, or by Pragma: no-cache in a request
	// without Cache-Control: a stored response must not be used unless it
	// is validated first.
	NoCache bool
	// NoStore is set by no-store: nothing about this request may be stored.
	NoStore bool
	// OnlyIfCached is set by only-if-cached: the client wants a stored
	// response or a 504, never a forwarded request.
	OnlyIfCached bool

	// MaxAge is the oldest response the client accepts; HasMaxAge says the
	// directive was present. A value that is not a number counts as 0.
	MaxAge    time.Duration
	HasMaxAge bool
	// MaxStale is how far past its freshness a response may be for the
	// client to still accept it; HasMaxStale says the directive was
	// present. max-stale without a value accepts any staleness and is
	// given as [MaxDelta]. A value that is not a number is ignored.
	MaxStale    time.Duration
	HasMaxStale bool
	// MinFresh is how much freshness a response must have left for the
	// client to accept it; HasMinFresh says the directive was present. A
	// value that is not a number counts as [MaxDelta].
	MinFresh    time.Duration
	HasMinFresh bool
}

// ResponseDirectives are the Cache-Control directives of a response
// (RFC 9111 section 5.2.2 and RFC 5861). The zero value means the response
// said nothing. A duration whose value is missing or not a number counts as
// 0 (RFC 9111 section 4.2.1: invalid freshness information makes a response
// stale); when a directive appears more than once the smallest value wins.
type ResponseDirectives struct {
	// Public is set by public (without a value).
	Public bool
	// Private is set by private without a field list (or with one that
	// cannot be read): the response is for one user and is not stored.
	Private bool
	// PrivateFields are the canonical names listed by a qualified
	// private="...": the response may be stored without those fields
	// (RFC 9111 section 5.2.2.7).
	PrivateFields []string
	// NoStore is set by no-store.
	NoStore bool
	// NoCache is set by no-cache without a field list (or with one that
	// cannot be read): the response may be stored, but must be validated
	// before each use.
	NoCache bool
	// NoCacheFields are the canonical names listed by a qualified
	// no-cache="...": this cache stores the response without those fields
	// (RFC 9111 section 5.2.2.4 forbids reusing them unvalidated).
	NoCacheFields []string
	// MustUnderstand is set by must-understand (RFC 9111 section
	// 5.2.2.3): store only if the status code is understood, and then
	// ignore no-store.
	MustUnderstand bool
	// MustRevalidate is set by must-revalidate.
	MustRevalidate bool
	// ProxyRevalidate is set by proxy-revalidate.
	ProxyRevalidate bool
	// NoTransform is set by no-transform.
	NoTransform bool
	// Immutable is set by immutable (RFC 8246).
	Immutable bool

	// MaxAge is the freshness lifetime given by max-age; HasMaxAge says the
	// directive was present.
	MaxAge    time.Duration
	HasMaxAge bool
	// SMaxAge is the freshness lifetime for shared caches given by
	// s-maxage; HasSMaxAge says the directive was present.
	SMaxAge    time.Duration
	HasSMaxAge bool
	// StaleWhileRevalidate is the window given by stale-while-revalidate
	// (RFC 5861); HasStaleWhileRevalidate says the directive was present.
	StaleWhileRevalidate    time.Duration
	HasStaleWhileRevalidate bool
	// StaleIfError is the window given by stale-if-error (RFC 5861);
	// HasStaleIfError says the directive was present.
	StaleIfError    time.Duration
	HasStaleIfError bool
}

// ParseRequest returns the Cache-Control directives of a request header.
// Every Cache-Control line under the canonical key (as net/http stores
// received headers) is read as one list, names are case-insensitive, values may
// be tokens or quoted strings, unknown directives are ignored, and
// repetitions resolve to the most restrictive reading: the smallest max-age
// and max-stale, the largest min-fresh. Any input gives a result.
func ParseRequest(h http.Header) RequestDirectives {
	var d RequestDirectives
	lines := h["Cache-Control"]
	if len(lines) == 0 {
		for _, line := range h["Pragma"] {
			for dir, rest, ok := nextDirective(line); ok; dir, rest, ok = nextDirective(rest) {
				if strings.EqualFold(dir.name, "no-cache") {
					d.NoCache = true
				}
			}
		}
		return d
	}
	maxStaleBad := false
	for _, line := range lines {
		for dir, rest, ok := nextDirective(line); ok; dir, rest, ok = nextDirective(rest) {
			switch name := dir.name; {
			case strings.EqualFold(name, "no-cache"):
				d.NoCache = true
			case strings.EqualFold(name, "no-store"):
				d.NoStore = true
			case strings.EqualFold(name, "only-if-cached"):
				d.OnlyIfCached = true
			case strings.EqualFold(name, "max-age"):
				setDelta(&d.MaxAge, &d.HasMaxAge, dir)
			case strings.EqualFold(name, "max-stale"):
				if !dir.hasValue {
					setMin(&d.MaxStale, &d.HasMaxStale, MaxDelta)
					break
				}
				v, ok := dir.delta()
				if !ok {
					maxStaleBad = true
					break
				}
				setMin(&d.MaxStale, &d.HasMaxStale, v)
			case strings.EqualFold(name, "min-fresh"):
				v, ok := dir.delta()
				if !ok {
					v = MaxDelta
				}
				if !d.HasMinFresh || v > d.MinFresh {
					d.MinFresh = v
				}
				d.HasMinFresh = true
			}
		}
	}
	if maxStaleBad {
		d.MaxStale, d.HasMaxStale = 0, false
	}
	return d
}

// ParseResponse returns the Cache-Control directives of a response header.
// Every Cache-Control line under the canonical key is read as one list,
// names are case-insensitive, values may be tokens or quoted strings and
// unknown directives are ignored; see [ResponseDirectives] for invalid and
// repeated values. Any input gives a result; it allocates only for the
// field lists of qualified private and no-cache.
func ParseResponse(h http.Header) ResponseDirectives {
	return parseResponseLines(h["Cache-Control"], false)
}

// parseResponseLines reads response directives from lines. sf says the
// lines are a targeted field (RFC 9213), a structured-field dictionary:
// parameters after a value are dropped and a directive whose value is the
// boolean false (?0) is absent.
func parseResponseLines(lines []string, sf bool) ResponseDirectives {
	var d ResponseDirectives
	for _, line := range lines {
		for dir, rest, ok := nextDirective(line); ok; dir, rest, ok = nextDirective(rest) {
			if sf {
				if dir.hasValue && !dir.quoted {
					dir.value, _, _ = strings.Cut(dir.value, ";")
					if dir.value == "?0" {
						continue
					}
					if dir.value == "?1" {
						dir.hasValue, dir.value = false, ""
					}
				}
				dir.name, _, _ = strings.Cut(dir.name, ";")
			}
			switch name := dir.name; {
			case strings.EqualFold(name, "public"):
				// public only grants permissions, so a malformed one
				// (with a value) is ignored.
				if !dir.hasValue {
					d.Public = true
				}
			case strings.EqualFold(name, "private"):
				setFields(&d.PrivateFields, &d.Private, dir)
			case strings.EqualFold(name, "no-store"):
				d.NoStore = true
			case strings.EqualFold(name, "no-cache"):
				setFields(&d.NoCacheFields, &d.NoCache, dir)
			case strings.EqualFold(name, "must-revalidate"):
				d.MustRevalidate = true
			case strings.EqualFold(name, "proxy-revalidate"):
				d.ProxyRevalidate = true
			case strings.EqualFold(name, "must-understand"):
				d.MustUnderstand = true
			case strings.EqualFold(name, "no-transform"):
				d.NoTransform = true
			case strings.EqualFold(name, "immutable"):
				if !dir.hasValue {
					d.Immutable = true
				}
			case strings.EqualFold(name, "max-age"):
				setDelta(&d.MaxAge, &d.HasMaxAge, dir)
			case strings.EqualFold(name, "s-maxage"):
				setDelta(&d.SMaxAge, &d.HasSMaxAge, dir)
			case strings.EqualFold(name, "stale-while-revalidate"):
				setDelta(&d.StaleWhileRevalidate, &d.HasStaleWhileRevalidate, dir)
			case strings.EqualFold(name, "stale-if-error"):
				setDelta(&d.StaleIfError, &d.HasStaleIfError, dir)
			}
		}
	}
	return d
}

// fieldList returns the canonical field names of a qualified private or
// no-cache ("private=\"Set-Cookie, X-Id\""), and ok false when the
// directive has no value, or one that is not a non-empty list of field
// names: such a directive counts as unqualified, which is the safe
// reading.
func (d directive) fieldList() (fields []string, ok bool) {
	if !d.hasValue || d.malformed || trimOWS(d.value) == "" {
		return nil, false
	}
	for rest := d.value; rest != ""; {
		var name string
		name, rest, _ = strings.Cut(rest, ",")
		name = trimOWS(name)
		if name == "" {
			continue
		}
		if !IsToken(name) {
			return nil, false
		}
		fields = append(fields, textproto.CanonicalMIMEHeaderKey(name))
	}
	return fields, len(fields) > 0
}

// setFields records a private or no-cache directive: the fields it
// lists are appended to *fields; when it lists none that can be read (see
// [directive.fieldList]), *all is set instead, the safe reading.
func setFields(fields *[]string, all *bool, dir directive) {
	if listed, ok := dir.fieldList(); ok {
		*fields = append(*fields, listed...)
	} else {
		*all = true
	}
}

// setDelta records the directive's delta-seconds (0 when its value is
// missing or not a number, see [directive.delta]) as [setMin] does.
func setDelta(v *time.Duration, has *bool, dir directive) {
	x, _ := dir.delta()
	setMin(v, has, x)
}

// setMin records x in *v if it is the first value or smaller than *v.
func setMin(v *time.Duration, has *bool, x time.Duration) {
	if !*has || x < *v {
		*v = x
	}
	*has = true
}

// directive is one element of a Cache-Control list.
type directive struct {
	name      string // as written, without surrounding whitespace
	value     string // without quotes; backslash escapes are left in place
	hasValue  bool   // an "=" followed the name
	quoted    bool   // the value was a quoted string
	malformed bool   // unterminated quoted string, or text after it
}

// delta returns the directive's value as delta-seconds (RFC 9111 1.2.2),
// clamped to [MaxDelta]. ok is false when the value is missing or not a
// plain decimal number; the returned duration is then 0.
func (d directive) delta() (v time.Duration, ok bool) {
	if !d.hasValue || d.malformed || d.value == "" {
		return 0, false
	}
	const limit = 1 << 31
	var n int64
	for i := 0; i < len(d.value); i++ {
		c := d.value[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n <= limit {
			n = n*10 + int64(c-'0')
		}
	}
	n = min(n, limit)
	return time.Duration(n) * time.Second, true
}

// nextDirective reads the next element of the comma-separated list s,
// skipping empty elements. It returns the element, the unread rest of s,
// and ok false when s holds no further element. It never fails: whatever
// cannot be read as a directive ends up as an unknown name or a malformed
// value.
func nextDirective(s string) (d directive, rest string, ok bool) {
	i := 0
	for i < len(s) && (s[i] == ',' || isOWS(s[i])) {
		i++
	}
	if i == len(s) {
		return directive{}, "", false
	}
	s = s[i:]

	i = 0
	for i < len(s) && s[i] != ',' && s[i] != '=' {
		i++
	}
	d.name = trimOWS(s[:i])
	if i == len(s) || s[i] == ',' {
		return d, s[i:], true
	}

	d.hasValue = true
	s = s[i+1:]
	i = 0
	for i < len(s) && isOWS(s[i]) {
		i++
	}
	s = s[i:]
	if len(s) == 0 || s[0] != '"' {
		i = strings.IndexByte(s, ',')
		if i < 0 {
			i = len(s)
		}
		d.value = trimOWS(s[:i])
		return d, s[i:], true
	}

	d.quoted = true
	end := -1
	for i = 1; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			continue
		}
		if s[i] == '"' {
			end = i
			break
		}
	}
	if end < 0 {
		d.value, d.malformed = s[1:], true
		return d, "", true
	}
	d.value = s[1:end]
	s = s[end+1:]
	for i = 0; i < len(s) && s[i] != ','; i++ {
		if !isOWS(s[i]) {
			d.malformed = true
		}
	}
	return d, s[i:], true
}

// isOWS reports whether c is optional whitespace (RFC 9110 5.6.3).
func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// trimOWS removes optional whitespace from both ends of s.
func trimOWS(s string) string {
	for len(s) > 0 && isOWS(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isOWS(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}
