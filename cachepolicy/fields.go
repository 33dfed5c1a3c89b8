package cachepolicy

import (
	"net/http"
	"net/textproto"
	"slices"
	"strings"
)

// neverStored are the response fields a shared cache never stores
// (RFC 9111 section 3.1, RFC 9110 section 7.6.1), plus Trailer (it
// announces fields of a message's end that a stored response does not
// have) and the two fields the cache writes itself on every response it
// serves, Age and Cache-Status.
var neverStored = [...]string{
	"Age", "Cache-Status", "Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authentication-Info", "Proxy-Authorization", "Proxy-Connection", "Te",
	"Trailer", "Transfer-Encoding", "Upgrade",
}

// FieldFilter says which fields of one response are stored. Make it with
// [NewFieldFilter]; the zero value keeps every field but the fixed list.
// It is safe for concurrent use once made.
type FieldFilter struct {
	named []string // canonical names this response excludes
}

// NewFieldFilter returns the filter for a response with header h and the
// directives rd the cache obeys (see [ParseTargeted]). It leaves out, as
// RFC 9111 section 3.1 requires:
//
//   - Connection, Proxy-Connection, Keep-Alive, TE, Transfer-Encoding,
//     Upgrade, Proxy-Authenticate, Proxy-Authentication-Info and
//     Proxy-Authorization, and every field the Connection field names;
//   - the fields a qualified private="..." or no-cache="..." lists;
//   - Trailer and trailer fields, Age and Cache-Status (the cache writes
//     those two itself).
func NewFieldFilter(h http.Header, rd ResponseDirectives) FieldFilter {
	var f FieldFilter
	for _, line := range h["Connection"] {
		for rest := line; rest != ""; {
			var name string
			name, rest, _ = strings.Cut(rest, ",")
			if name = trimOWS(name); IsToken(name) {
				f.named = append(f.named, textproto.CanonicalMIMEHeaderKey(name))
			}
		}
	}
	f.named = append(f.named, rd.PrivateFields...)
	f.named = append(f.named, rd.NoCacheFields...)
	return f
}

// Stored reports whether the field with the canonical name is stored.
func (f FieldFilter) Stored(name string) bool {
	if strings.HasPrefix(name, http.TrailerPrefix) {
		return false
	}
	if slices.Contains(neverStored[:], name) {
		return false
	}
	return !slices.Contains(f.named, name)
}
