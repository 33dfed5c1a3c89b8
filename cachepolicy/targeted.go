package cachepolicy

import (
	"net/http"
	"net/textproto"
)

// CDNCacheControl is the canonical name of the targeted field RFC 9213
// defines for CDNs and other shared caches: CDN-Cache-Control.
const CDNCacheControl = "Cdn-Cache-Control"

// ParseTargeted returns the directives this cache obeys in a response
// header (RFC 9213): those of own, the cache's own targeted field (such as
// "Steadfast-Cache-Control"; empty for none), when it is present and a
// valid structured-field dictionary; else those of CDN-Cache-Control under
// the same condition; else those of Cache-Control ([ParseResponse]). A
// targeted field that is used replaces Cache-Control entirely, so an
// origin can give this cache a different lifetime than browsers get; one
// that is invalid is ignored, as RFC 9213 section 2.1 requires.
func ParseTargeted(h http.Header, own string) ResponseDirectives {
	if own != "" {
		if lines := h[textproto.CanonicalMIMEHeaderKey(own)]; len(lines) > 0 && validSFDictionary(lines) {
			return parseResponseLines(lines, true)
		}
	}
	if lines := h[CDNCacheControl]; len(lines) > 0 && validSFDictionary(lines) {
		return parseResponseLines(lines, true)
	}
	return ParseResponse(h)
}

// validSFDictionary reports whether lines, joined with commas, are a
// structured-field dictionary (RFC 8941 section 3.2) of keys, each with
// an optional bare item (integer, decimal, string, token, byte sequence
// or boolean) and parameters. Inner lists are not accepted: no targeted
// cache directive uses one.
func validSFDictionary(lines []string) bool {
	members := 0
	for _, line := range lines {
		s := line
		for {
			s = skipSP(s)
			if s == "" {
				break
			}
			var ok bool
			if s, ok = sfMember(s); !ok {
				return false
			}
			members++
			s = trimLeftOWS(s)
			if s == "" {
				break
			}
			if s[0] != ',' {
				return false
			}
			s = trimLeftOWS(s[1:])
			if s == "" { // a trailing comma
				return false
			}
		}
	}
	return members > 0
}

// sfMember reads key [ "=" bare-item ] parameters.
func sfMember(s string) (string, bool) {
	var ok bool
	if s, ok = sfKey(s); !ok {
		return s, false
	}
	if s != "" && s[0] == '=' {
		if s, ok = sfBareItem(s[1:]); !ok {
			return s, false
		}
	}
	return sfParams(s)
}

// sfParams reads *( ";" *SP key [ "=" bare-item ] ).
func sfParams(s string) (string, bool) {
	for s != "" && s[0] == ';' {
		var ok bool
		if s, ok = sfKey(skipSP(s[1:])); !ok {
			return s, false
		}
		if s != "" && s[0] == '=' {
			if s, ok = sfBareItem(s[1:]); !ok {
				return s, false
			}
		}
	}
	return s, true
}

// sfKey reads ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ).
func sfKey(s string) (string, bool) {
	if s == "" || (s[0] != '*' && !isLcalpha(s[0])) {
		return s, false
	}
	i := 1
	for i < len(s) && isSFKeyChar(s[i]) {
		i++
	}
	return s[i:], true
}

// isBase64 reports whether c is a base64 character or "=".
func isBase64(c byte) bool {
	switch {
	case isLcalpha(c), 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '+' || c == '/' || c == '='
}

// isLcalpha reports whether c is a lower-case letter.
func isLcalpha(c byte) bool { return 'a' <= c && c <= 'z' }

// isSFKeyChar reports whether c may follow the first character of a key.
func isSFKeyChar(c byte) bool {
	switch {
	case isLcalpha(c), '0' <= c && c <= '9':
		return true
	}
	return c == '_' || c == '-' || c == '.' || c == '*'
}

// sfBareItem reads one bare item.
func sfBareItem(s string) (string, bool) {
	if s == "" {
		return s, false
	}
	switch c := s[0]; {
	case c == '-' || c >= '0' && c <= '9':
		return sfNumber(s)
	case c == '"':
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				if i+1 >= len(s) || (s[i+1] != '"' && s[i+1] != '\\') {
					return s, false
				}
				i++
			case '"':
				return s[i+1:], true
			default:
				if s[i] < 0x20 || s[i] > 0x7e {
					return s, false
				}
			}
		}
		return s, false
	case c == '?':
		if len(s) < 2 || (s[1] != '0' && s[1] != '1') {
			return s, false
		}
		return s[2:], true
	case c == ':':
		for i := 1; i < len(s); i++ {
			b := s[i]
			if b == ':' {
				return s[i+1:], true
			}
			if !isBase64(b) {
				return s, false
			}
		}
		return s, false
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '*':
		i := 1
		for i < len(s) && (isTchar(s[i]) || s[i] == ':' || s[i] == '/') {
			i++
		}
		return s[i:], true
	}
	return s, false
}

// sfNumber reads an integer (up to 15 digits) or a decimal (up to 12
// digits, a dot, 1 to 3 digits).
func sfNumber(s string) (string, bool) {
	i := 0
	if s[0] == '-' {
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intDigits := i - start
	if intDigits == 0 {
		return s, false
	}
	if i < len(s) && s[i] == '.' {
		if intDigits > 12 {
			return s, false
		}
		i++
		fs := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if n := i - fs; n < 1 || n > 3 {
			return s, false
		}
		return s[i:], true
	}
	return s[i:], intDigits <= 15
}

// skipSP skips spaces (structured fields allow SP only, not tabs, at the
// start of a field and after ";").
func skipSP(s string) string {
	for s != "" && s[0] == ' ' {
		s = s[1:]
	}
	return s
}

// trimLeftOWS skips optional whitespace.
func trimLeftOWS(s string) string {
	for s != "" && isOWS(s[0]) {
		s = s[1:]
	}
	return s
}
