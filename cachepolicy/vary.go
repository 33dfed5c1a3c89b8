package cachepolicy

import (
	"net/http"
	"strings"
)

// varyReason checks a response's Vary field against the headers in the
// key. It returns "" when every field Vary names is one of keyHeaders
// (compared case-insensitively), "vary-star" when Vary holds "*", and
// "vary-unkeyed" otherwise. Every Vary line is read; empty list elements
// and surrounding whitespace are ignored, and an element that is not a
// field name never matches. It does not allocate.
func varyReason(h http.Header, keyHeaders []string) string {
	unkeyed := false
	for _, line := range h["Vary"] {
		for rest := line; rest != ""; {
			var name string
			name, rest, _ = strings.Cut(rest, ",")
			name = trimOWS(name)
			switch {
			case name == "":
			case name == "*":
				return "vary-star"
			case !unkeyed && !isKeyHeader(name, keyHeaders):
				unkeyed = true
			}
		}
	}
	if unkeyed {
		return "vary-unkeyed"
	}
	return ""
}

// isKeyHeader reports whether name is a field name listed in keyHeaders,
// ignoring case.
func isKeyHeader(name string, keyHeaders []string) bool {
	if !IsToken(name) {
		return false
	}
	for _, k := range keyHeaders {
		if strings.EqualFold(name, k) {
			return true
		}
	}
	return false
}
