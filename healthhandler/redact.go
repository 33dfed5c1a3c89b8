package healthhandler

import (
	"strings"
	"unicode/utf8"

	"github.com/steadfast-go/steadfast/resilience"
)

// maxText caps every text a check contributes to a report.
const maxText = 300

// scrub hides credentials with the module's one scrubber,
// [resilience.Redact]: the password of a URL (redis://user:***@host), a
// URL's lone user-info (redis://***@host), and the values of key=value
// pairs with secret-sounding keys (password=, sentinel_password=, token:).
// It never matches across a double quote, so scrubbing encoded JSON keeps
// it valid.
func scrub(s string) string { return resilience.Redact(s) }

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
