package cachepolicy

import (
	"net/http"
	"strings"
)

// NotModified reports whether a conditional GET or HEAD request can be
// answered with 304 Not Modified from a stored response that has the given
// ETag and Last-Modified field values (either may be empty). It follows
// RFC 9110 section 13:
//
//   - If-None-Match, when present, decides alone: "*" matches any stored
//     response, otherwise the request matches when one of its entity-tags
//     equals etag under weak comparison (W/"x" equals "x");
//   - otherwise If-Modified-Since (exactly one valid HTTP-date) matches when
//     lastModified is a valid HTTP-date not after it;
//   - other methods, and malformed fields or validators, never match.
//
// RFC 9110 answers 304 only in place of a 200, so the caller asks only for
// stored 200 responses. NotModified never panics, whatever the header.
func NotModified(req *http.Request, etag, lastModified string) bool {
	if req == nil || (req.Method != "" && req.Method != http.MethodGet && req.Method != http.MethodHead) {
		return false
	}
	if lines, ok := req.Header["If-None-Match"]; ok {
		return etagListMatches(lines, etag)
	}
	lines := req.Header["If-Modified-Since"]
	if len(lines) != 1 || lastModified == "" {
		return false
	}
	since, err := http.ParseTime(lines[0])
	if err != nil {
		return false
	}
	modified, err := http.ParseTime(lastModified)
	if err != nil {
		return false
	}
	return !modified.After(since)
}

// etagListMatches reports whether the If-None-Match lines hold "*" or an
// entity-tag that weakly matches etag. Malformed elements are skipped.
func etagListMatches(lines []string, etag string) bool {
	want, wantOK := opaqueTag(trimOWS(etag))
	for _, s := range lines {
		for {
			i := 0
			for i < len(s) && (s[i] == ',' || isOWS(s[i])) {
				i++
			}
			s = s[i:]
			if s == "" {
				break
			}
			var tag string
			tag, s = nextEntityTag(s)
			if tag == "*" {
				return true
			}
			if t, ok := opaqueTag(tag); ok && wantOK && t == want {
				return true
			}
		}
	}
	return false
}

// nextEntityTag splits the first element off a list of entity-tags. An
// opaque tag may hold commas, so a quoted tag runs to its closing quote;
// anything else runs to the next comma.
func nextEntityTag(s string) (tag, rest string) {
	start := 0
	if strings.HasPrefix(s, "W/") {
		start = 2
	}
	if start < len(s) && s[start] == '"' {
		if end := strings.IndexByte(s[start+1:], '"'); end >= 0 {
			n := start + 1 + end + 1
			return s[:n], s[n:]
		}
		return s, ""
	}
	if i := strings.IndexByte(s, ','); i >= 0 {
		return trimOWS(s[:i]), s[i:]
	}
	return trimOWS(s), ""
}

// opaqueTag returns the quoted part of an entity-tag (RFC 9110 8.8.3),
// without a weakness prefix, and whether tag is well-formed.
func opaqueTag(tag string) (string, bool) {
	tag = strings.TrimPrefix(tag, "W/")
	if len(tag) < 2 || tag[0] != '"' || tag[len(tag)-1] != '"' {
		return "", false
	}
	if strings.IndexByte(tag[1:len(tag)-1], '"') >= 0 {
		return "", false
	}
	return tag, true
}
