package cachepolicy

import (
	"strconv"
	"time"
)

// CacheName is the cache's name in the Cache-Status field.
const CacheName = "steadfast"

// Values of [CacheStatus.Fwd], defined by RFC 9211 section 2.2.
const (
	// FwdBypass says the cache was configured not to handle the request,
	// or could not (its store is unavailable).
	FwdBypass = "bypass"
	// FwdMethod says the request method is not cacheable.
	FwdMethod = "method"
	// FwdURIMiss says nothing was stored for the URL.
	FwdURIMiss = "uri-miss"
	// FwdVaryMiss says a response was stored for the URL, but not for
	// the request's values of the Vary headers.
	FwdVaryMiss = "vary-miss"
	// FwdMiss says the request went on for a reason not covered by the
	// other values.
	FwdMiss = "miss"
	// FwdRequest says the request asked not to be served from the cache
	// (no-cache, max-age=0).
	FwdRequest = "request"
	// FwdStale says the stored response was stale.
	FwdStale = "stale"
	// FwdPartial says only part of the response was stored.
	FwdPartial = "partial"
)

// CacheStatus is one member of the Cache-Status response field
// (RFC 9211), the one this cache adds. The zero value describes a response
// the cache had no part in: "steadfast".
type CacheStatus struct {
	// Hit says the response was served from the cache without calling the
	// handler. False: no hit parameter.
	Hit bool
	// Fwd says why the request went on to the handler, one of the Fwd
	// constants such as [FwdURIMiss]. Empty, or not a structured-field
	// token: no fwd parameter.
	Fwd string
	// FwdStatus is the status code the handler gave. Zero: no fwd-status
	// parameter.
	FwdStatus int
	// TTL is the freshness the response has left, negative once stale
	// (see [Lifetime.TTL]); it is written in whole seconds, rounded down.
	// Zero: no ttl parameter.
	TTL time.Duration
	// Stored says the handler's response was stored.
	// False: no stored parameter.
	Stored bool
	// Collapsed says the request was coalesced with another one for the
	// same key. False: no collapsed parameter.
	Collapsed bool
	// Detail is free-form extra information such as "redis-unavailable",
	// written as a token when it is one and as a quoted string otherwise
	// (bytes a structured-field string cannot hold become "?").
	// Empty: no detail parameter.
	Detail string
}

// String returns the field member, such as "steadfast; hit; ttl=42",
// "steadfast; fwd=uri-miss; stored" or
// "steadfast; fwd=bypass; detail=redis-unavailable". Parameters come in the
// order of the struct's fields.
func (s CacheStatus) String() string {
	var buf [96]byte
	b := append(buf[:0], CacheName...)
	if s.Hit {
		b = append(b, "; hit"...)
	}
	if s.Fwd != "" && isSFToken(s.Fwd) {
		b = append(b, "; fwd="...)
		b = append(b, s.Fwd...)
	}
	if s.FwdStatus != 0 {
		b = append(b, "; fwd-status="...)
		b = strconv.AppendInt(b, int64(s.FwdStatus), 10)
	}
	if s.TTL != 0 {
		secs := int64(s.TTL / time.Second)
		if s.TTL < 0 && s.TTL%time.Second != 0 {
			secs--
		}
		b = append(b, "; ttl="...)
		b = strconv.AppendInt(b, secs, 10)
	}
	if s.Stored {
		b = append(b, "; stored"...)
	}
	if s.Collapsed {
		b = append(b, "; collapsed"...)
	}
	if s.Detail != "" {
		b = append(b, "; detail="...)
		b = appendSFTokenOrString(b, s.Detail)
	}
	return string(b)
}

// appendSFTokenOrString appends v as a structured-field token when it is
// one, else as a structured-field string (RFC 8941 section 3.3.3).
func appendSFTokenOrString(b []byte, v string) []byte {
	if isSFToken(v) {
		return append(b, v...)
	}
	b = append(b, '"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c > 0x7e:
			b = append(b, '?')
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// isSFToken reports whether v is a structured-field token (RFC 8941
// section 3.3.4): a letter or "*", then token characters, ":" or "/".
func isSFToken(v string) bool {
	if v == "" {
		return false
	}
	if c := v[0]; (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && c != '*' {
		return false
	}
	for i := 1; i < len(v); i++ {
		if c := v[i]; !isTchar(c) && c != ':' && c != '/' {
			return false
		}
	}
	return true
}
