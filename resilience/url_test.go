package resilience

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestParseURLRegressions holds inputs that once leaked a piece of the
// password or were read wrongly.
func TestParseURLRegressions(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string // in the error
	}{
		// net/url's own error quoted the part of the password before the
		// '/', '#' or '?' as a port: `invalid port ":s3cret" after host`.
		{"slash in password", "redis://app:s3cret/Pa55@cache:6379", "percent-encode"},
		{"hash in password", "redis://app:s3cret#Pa55@cache:6379", "percent-encode"},
		{"question mark in password", "redis://app:s3cret?Pa55@cache:6379", "percent-encode"},
		// Accepted as host "app", port 1234, database "s3cretPa55@cache".
		{"digits then slash in password", "redis://app:1234/s3cretPa55@cache", "percent-encode"},
		// net/url quoted three bytes of the password: `invalid URL escape "%Pa"`.
		{"percent in password", "redis://app:s3cret%Pa55@cache", "invalid URL escape"},
		// The database and query were shown decoded, spelling out the
		// password that the URL had escaped.
		{"escaped password as database", "redis://app:s3cret-Pa55@cache/%73%33cret-%50a55", `"%73%33cret-%50a55"`},
		{"escaped password as query key", "redis://app:s3cret-Pa55@cache?%73%33cret-%50a55=1", `"%73%33cret-%50a55"`},
		{"escaped password as db value", "redis://app:s3cret-Pa55@cache?db=%73%33cret-%50a55", `"%73%33cret-%50a55"`},
		// Read as socket /redis.sock on host "tmp".
		{"unix with two slashes", "unix://tmp/redis.sock", "three slashes"},
		// Read as host ":" and port 1.
		{"bare ipv6", "redis://::1", "brackets"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseURL(tc.raw)
			require.Error(t, err, "ParseURL accepted it as %v", cfg)
			assert.Contains(t, err.Error(), tc.want, "ParseURL error %q, want it to contain %q", err, tc.want)
			assertNoSecret(t, "error", err.Error())
			assert.NotContains(t, err.Error(), `%P`, "error %q quotes an escape from the password", err)
		})
	}
}

func TestUnquote(t *testing.T) {
	tests := []struct{ in, want string }{
		{`invalid URL escape "%zz"`, "invalid URL escape"},
		{`invalid port ":s3cret" after host`, "invalid port after host"},
		{`invalid character " " in host name`, "invalid character in host name"},
		{`a "b\"c" d "e`, "a d"},
		{"missing protocol scheme", "missing protocol scheme"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, unquote(tc.in), "unquote(%q)", tc.in)
	}
}

// FuzzParseURL checks that ParseURL never panics, never shows a password
// in an error, and that what it accepts survives String and a re-parse.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"redis://localhost",
		"redis://app:" + testPassword + "@cache:6379/1",
		"rediss://:" + testPassword + "@cache:6380?db=2",
		"unix://app:" + testPassword + "@/tmp/redis.sock?db=3",
		"unix:///tmp/r@1.sock",
		"redis://app:s3cret/Pa55@cache:6379",
		"redis://app:s3cret#Pa55@cache:6379",
		"redis://app:s3cret?Pa55@cache:6379",
		"redis://app:s3cret%Pa55@cache:6379",
		"redis://app:s3cret%zzPa55@cache:6379",
		"redis://app:s3cret@Pa55@cache:6379",
		"redis://app:s3cret:Pa55@cache:6379",
		"redis://app:1234/x@cache",
		"redis://app:abcd@cache/%61bcd",
		"redis://app:abcd@cache?%61bcd=1",
		"redis://app:70000@cache:70000",
		"redis://[fe80::1%25eth0]:6379/0",
		"redis://[::1]:6380",
		"redis://cache:0",
		"redis://cache:",
		"redis://:@:",
		"redis://@",
		"//app:" + testPassword + "@cache",
		"app:" + testPassword + "@cache",
		"http://app:" + testPassword + "@cache",
		"redis://app:" + testPassword + "@ca che",
		"redis://app:" + testPassword + "@cache\x00",
		"redis://a%3Ab:" + testPassword + "@cache",
		"redis://h%C3%A9:1",
		"unix://tmp/redis.sock",
		"unix:///tmp/a:bcde@x?db=1",
		"redis://cache?db=1&db=2",
		"",
		"://",
		"redis:",
		"redis:opaque@x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		cfg, err := ParseURL(raw)
		if err != nil {
			var ce *ConfigError
			require.ErrorAs(t, err, &ce, "ParseURL(%q) error %T, want *ConfigError", raw, err)
			msg := err.Error()
			for _, pw := range fuzzPasswords(raw) {
				require.False(t, leakCheckable(pw, raw, ce) && strings.Contains(msg, pw),
					"ParseURL(%q) error %q shows the password %q", raw, msg, pw)
			}
			return
		}
		// The shown form is the same whatever the password.
		other := cfg
		other.Password = "other"
		require.False(t, cfg.Password != "" && cfg.String() != other.String(),
			"ParseURL(%q).String() = %q depends on the password", raw, cfg.String())
		// It parses back to the same place, with *** as the password.
		back, err := ParseURL(cfg.String())
		require.NoError(t, err, "ParseURL(%q).String() = %q does not parse", raw, cfg.String())
		want := cfg
		if want.Password != "" {
			want.Password = redacted
		}
		if want.SentinelPassword != "" {
			want.SentinelPassword = redacted
		}
		require.True(t, reflect.DeepEqual(back, want), "ParseURL(%q) = %#v; its String %q parses to %#v", raw, cfg, cfg.String(), back)
	})
}

// fuzzPasswords returns what may be a password in raw: the one net/url
// finds, and the raw text between the first ':' after "://" and the last
// '@'.
func fuzzPasswords(raw string) []string {
	var pws []string
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			pws = append(pws, p)
		}
	}
	if _, rest, ok := strings.Cut(raw, "://"); ok {
		if c, at := strings.Index(rest, ":"), strings.LastIndex(rest, "@"); c >= 0 && at > c {
			pws = append(pws, rest[c+1:at])
		}
	}
	return pws
}

// leakCheckable says whether finding pw in the error about raw proves a
// leak: pw is long enough not to match by chance, does not also stand
// outside the password in raw (it would then show in the redacted URL
// legitimately), and is not part of the error's fixed wording.
func leakCheckable(pw, raw string, ce *ConfigError) bool {
	if len(pw) < 4 || strings.ContainsAny(pw, `"\`) {
		return false
	}
	red := redactURL(raw)
	if strings.Contains(red, pw) || strings.Contains(fmt.Sprintf("%q", red), pw) {
		return false
	}
	return !strings.Contains(unquote(ce.Err.Error()), pw) && !strings.Contains(ce.Var, pw)
}
