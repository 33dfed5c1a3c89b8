package healthhandler

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// maxText caps every text a check contributes to a report.
const maxText = 300

// mask replaces a credential.
const mask = "***"

// Read-only patterns for the credentials scrub hides. Neither matches
// across a double quote, so scrubbing encoded JSON keeps it valid.
var (
	// scheme://userinfo@ : the userinfo of any URL, up to its last @
	// (a password may hold one).
	urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)([^\s/"]*)@`)
	// password=..., token: ... and the like.
	secretPair = regexp.MustCompile(`(?i)\b(password|passwd|pwd|secret|token|apikey|api_key)(\s*[=:]\s*)([^\s"',;&]+)`)
)

// scrub hides credentials: the password of a URL (redis://user:***@host),
// a URL's lone userinfo (redis://***@host), and the values of key=value
// pairs with secret-sounding keys.
func scrub(s string) string {
	if !strings.Contains(s, "@") && !strings.ContainsAny(s, "=:") {
		return s
	}
	s = urlUserinfo.ReplaceAllStringFunc(s, func(m string) string {
		sub := urlUserinfo.FindStringSubmatch(m)
		scheme, info := sub[1], sub[2]
		if user, _, ok := strings.Cut(info, ":"); ok {
			return scheme + user + ":" + mask + "@"
		}
		return scheme + mask + "@"
	})
	return secretPair.ReplaceAllString(s, "${1}${2}"+mask)
}

// redact makes a text fit for a report or a log line: credentials
// scrubbed, only the first line kept (so no stack trace ever passes), and
// at most maxText bytes.
func redact(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	s = scrub(strings.TrimSpace(s))
	if len(s) > maxText {
		cut := maxText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
