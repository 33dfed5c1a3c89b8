// Package detail holds what the ready-made checks of healthhandler and its
// readers (healthhandler/celery, healthhandler/asynq) share to describe
// what they saw: the public texts, the capped lists of names their details
// show, and the checks and errors for names read from foreign messages.
package detail

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// RedisUnavailable is what everyone may read when Redis fails.
const RedisUnavailable = "redis unavailable"

// maxListed caps the names a detailed report lists per kind.
const maxListed = 20

// MaxHostname bounds a worker's node name (name@host) or host name read
// from a foreign message.
const MaxHostname = 255

// ErrMalformed marks a message that is not what its protocol says.
var ErrMalformed = errors.New("malformed message")

// Malformed returns an error wrapping [ErrMalformed] with the formatted
// reason.
func Malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// AppendListed appends "label: a, b, c" to detail when names is not empty.
func AppendListed(detail []string, label string, names []string) []string {
	if len(names) == 0 {
		return detail
	}
	return append(detail, label+": "+List(names))
}

// List joins ids with commas, the first 20 of them and a count of the rest.
func List(ids []string) string {
	if len(ids) <= maxListed {
		return strings.Join(ids, ", ")
	}
	return strings.Join(ids[:maxListed], ", ") + fmt.Sprintf(" and %d more", len(ids)-maxListed)
}

// Millis is d in milliseconds, to the microsecond.
func Millis(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*1e3) / 1e3
}

// CheckHostname accepts a worker's node name: non-empty, at most
// [MaxHostname] bytes of valid UTF-8 without control characters. Its
// errors wrap [ErrMalformed].
func CheckHostname(s string) error {
	switch {
	case s == "":
		return Malformed("empty hostname")
	case len(s) > MaxHostname:
		return Malformed("hostname of %d bytes exceeds %d", len(s), MaxHostname)
	case !utf8.ValidString(s):
		return Malformed("hostname is not UTF-8")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return Malformed("hostname holds a control character")
	}
	return nil
}

// Clip shortens a foreign value quoted in an error or a detail.
func Clip(s string) string {
	const n = 32
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
