package cachepolicy

import (
	"net/http"
	"slices"
	"strings"
)

// Validators are what a stored response offers for a conditional request
// (RFC 9110 section 13): its ETag and Last-Modified values, either of
// which may be empty.
type Validators struct {
	ETag, LastModified string
}

// Any reports whether there is a validator to send.
func (v Validators) Any() bool { return v.ETag != "" || v.LastModified != "" }

// SetConditional sets on request header h the conditional fields that ask
// the handler whether the stored response is still current (RFC 9111
// section 4.3.1): If-None-Match with the ETag when there is one, else
// If-Modified-Since with Last-Modified. The request's own validators,
// and the fields that would make the answer a part or a failure
// (If-Match, If-Unmodified-Since, If-Range, Range), are removed first: the
// answer must be about the whole stored response.
func (v Validators) SetConditional(h http.Header) {
	for _, name := range [...]string{
		"If-Match", "If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since", "Range",
	} {
		delete(h, name)
	}
	switch {
	case v.ETag != "":
		h["If-None-Match"] = []string{v.ETag}
	case v.LastModified != "":
		h["If-Modified-Since"] = []string{v.LastModified}
	}
}

// Selects reports whether a 304 response with header h validates the
// stored response with validators v (RFC 9111 section 4.3.4): when the
// 304 carries an ETag it must equal v's (weak comparison: the request
// asked with If-None-Match), else when it carries a Last-Modified it must
// equal v's; a 304 with neither selects the one response asked about.
func (v Validators) Selects(h http.Header) bool {
	if tags := h["Etag"]; len(tags) > 0 {
		got, ok1 := opaqueTag(trimOWS(tags[0]))
		want, ok2 := opaqueTag(trimOWS(v.ETag))
		return ok1 && ok2 && got == want
	}
	if lm := h["Last-Modified"]; len(lm) > 0 {
		return trimOWS(lm[0]) == trimOWS(v.LastModified)
	}
	return true
}

// notUpdated are the fields a 304 never changes in a stored response
// (RFC 9111 section 3.2): Content-Length describes the stored body, not
// the 304's; the others describe that body's encoding, part and identity
// (the 304 was selected by the identity already).
var notUpdated = [...]string{"Content-Encoding", "Content-Length", "Content-Range", "Etag"}

// UpdateHeader returns a copy of stored, the header of a stored response,
// updated from h, the header of a 304 that validated it (RFC 9111 section
// 3.2): each field of h replaces the stored field of the same name,
// except the fields [NewFieldFilter] would not store from h and
// Content-Length, Content-Encoding, Content-Range and ETag. The caller
// decides again with [StorableAt] whether, and for how long, the updated
// response is stored.
func UpdateHeader(stored, h http.Header) http.Header {
	out := make(http.Header, len(stored)+len(h))
	for name, values := range stored {
		out[name] = values
	}
	filter := NewFieldFilter(h, ResponseDirectives{})
	for name, values := range h {
		if len(values) == 0 || !filter.Stored(name) || slices.Contains(notUpdated[:], name) ||
			strings.HasPrefix(name, http.TrailerPrefix) {
			continue
		}
		out[name] = values
	}
	if age, ok := h["Age"]; ok { // for the new corrected_initial_age; never stored
		out["Age"] = age
	}
	return out
}
