package healthhandler

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "dial tcp 10.0.0.7:6379: connect: connection refused", "dial tcp 10.0.0.7:6379: connect: connection refused"},
		{"url password", "connect redis://:s3cret-Pa55@127.0.0.1:6379/0: refused", "connect redis://:***@127.0.0.1:6379/0: refused"},
		{"url user and password", "rediss://app:s3cret-Pa55@cache.internal:6380", "rediss://app:***@cache.internal:6380"},
		{"url password with @", "redis://app:p@ss@host:6379/0", "redis://app:***@host:6379/0"},
		{"url lone userinfo", "https://tok3n@example.com/x", "https://***@example.com/x"},
		{"two urls", "redis://a:x@h1 and redis://b:y@h2", "redis://a:***@h1 and redis://b:***@h2"},
		{"key=value", "connect failed: password=s3cret-Pa55 host=h", "connect failed: password=*** host=h"},
		{"key: value", "Token: abc.def", "Token: ***"},
		{"sentinel_password query", "redis://s1:26379/?master_name=m&sentinel_password=s3cret-Pa55&db=1",
			"redis://s1:26379/?master_name=m&sentinel_password=***&db=1"},
		{"escaped key", "redis://h/0?pass%77ord=s3cret-Pa55", "redis://h/0?pass%77ord=***"},
		{"username is no secret", "user=app host=h", "user=app host=h"},
		{"quoted json", `{"u":"redis://a:x@h","n":1}`, `{"u":"redis://a:***@h","n":1}`},
		{"stack cut", "check panicked\ngoroutine 7 [running]:\nmain.f()", "check panicked"},
		{"carriage return", "first\r\nsecond", "first"},
		{"no credentials", "WRONGPASS invalid username-password pair", "WRONGPASS invalid username-password pair"},
		{"email is not a url", "mail ops@example.com", "mail ops@example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, redact(tc.in), "redact(%q)", tc.in)
		})
	}
}

func TestRedactTruncates(t *testing.T) {
	in := strings.Repeat("é", maxText) // two bytes each
	got := redact(in)
	assert.LessOrEqual(t, len(got), maxText+len("…"), "redact of %d bytes = %q", len(in), got)
	assert.True(t, utf8.ValidString(got), "redact of %d bytes = %q, want valid UTF-8", len(in), got)
	assert.True(t, strings.HasSuffix(got, "…"), "redact of %d bytes = %q, want it to end in …", len(in), got)
}

// FuzzRedact: whatever the text, a password placed in a URL's userinfo
// never survives, the result is one line, and scrubbing encoded JSON keeps
// it valid JSON.
func FuzzRedact(f *testing.F) {
	f.Add("error: ", "s3cret-Pa55", " refused")
	f.Add("", "p@ss", "")
	f.Add("x\n", "pw", "\ny")
	f.Add(`"`, `a"b`, "@")
	f.Fuzz(func(t *testing.T, before, password, after string) {
		text := before + "redis://user:" + password + "@host:6379/0" + after
		got := redact(text)
		assert.False(t, strings.ContainsAny(got, "\r\n"), "redact(%q) = %q: more than one line", text, got)
		if len(password) >= 4 && !strings.ContainsAny(password, " \t\r\n\v\f/\"") &&
			!strings.Contains(before, password) && !strings.Contains(after, password) &&
			!strings.ContainsAny(before, "\r\n") {
			assert.NotContains(t, got, password, "redact(%q): password survived", text)
		}
		b, err := json.Marshal(map[string]string{"text": text})
		if err != nil {
			return
		}
		s := scrub(string(b))
		assert.True(t, json.Valid([]byte(s)), "scrub(%s) = %s: not valid JSON", b, s)
	})
}
