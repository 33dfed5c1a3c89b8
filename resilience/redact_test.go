package resilience

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testPassword is the password the redaction tests hunt for. Its two
// halves are hunted separately too, so that a password cut in two by a
// parser does not slip through.
const testPassword = "s3cret-Pa55"

// secretParts are the substrings that must never appear in any text the
// package produces from a configuration holding one of trickyPasswords.
var secretParts = []string{"s3cret", "Pa55"}

// trickyPasswords hold the characters that URL parsers stumble on.
var trickyPasswords = []struct{ name, pw string }{
	{"plain", testPassword},
	{"at", "s3cret@Pa55"},
	{"colon", "s3cret:Pa55"},
	{"slash", "s3cret/Pa55"},
	{"hash", "s3cret#Pa55"},
	{"percent", "s3cret%Pa55"},
	{"percent-hex", "s3cret%41Pa55"},
	{"question", "s3cret?Pa55"},
	{"all", "s3cret@:/#%?Pa55"},
}

// assertNoSecret fails if text holds a password or a part of one. It never
// prints the secret itself.
func assertNoSecret(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range append(secrets, secretParts...) {
		if s != "" && strings.Contains(text, s) {
			// Not assert.NotContains: it would print the secret.
			assert.Failf(t, "secret shown", "%s holds a secret of %d bytes: %s", what, len(s), strings.ReplaceAll(text, s, "<SECRET>"))
		}
	}
}

// TestPasswordNeverShown hunts passwords with URL syntax in them through
// every way a configuration is shown.
func TestPasswordNeverShown(t *testing.T) {
	for _, tp := range trickyPasswords {
		t.Run(tp.name, func(t *testing.T) {
			shows := func(t *testing.T, cfg Config) {
				t.Helper()
				var buf bytes.Buffer
				log := slog.New(slog.NewJSONHandler(&buf, nil))
				log.Info("connect", "redis", cfg, "ptr", &cfg, slog.Any("any", cfg), slog.Group("g", "cfg", cfg))
				for what, text := range map[string]string{
					"String()": cfg.String(),
					"%v":       fmt.Sprintf("%v", cfg),
					"%+v":      fmt.Sprintf("%+v", cfg),
					"%#v":      fmt.Sprintf("%#v", cfg),
					"ptr":      fmt.Sprint(&cfg),
					"slog":     buf.String(),
				} {
					assertNoSecret(t, what, text, tp.pw)
				}
				assert.Contains(t, buf.String(), `"redis":"`+cfg.String()+`"`, "slog output %s does not show the redacted URL %s", buf.String(), cfg.String())
			}

			// Set directly, and through REDIS_PASSWORD.
			shows(t, Config{Network: "tcp", Addr: "cache:6379", Username: "app", Password: tp.pw})
			env, err := configFrom(mapLookup(map[string]string{EnvHost: "cache", EnvPort: "6379", EnvPassword: tp.pw}))
			require.NoError(t, err, "configFrom with REDIS_PASSWORD")
			assert.True(t, env.Password == tp.pw, "REDIS_PASSWORD not taken verbatim")
			shows(t, env)

			// Escaped properly in a URL: parsed back exactly.
			u := url.URL{Scheme: "redis", User: url.UserPassword("app", tp.pw), Host: "cache:6379", Path: "/1"}
			cfg, err := ParseURL(u.String())
			require.NoError(t, err, "ParseURL of an escaped URL")
			assert.True(t, cfg.Password == tp.pw, "escaped password not parsed back exactly")
			shows(t, cfg)

			// Written raw into a URL, as users do: either it parses (and is
			// then hidden like any other) or the error does not show it.
			for _, raw := range []string{
				"redis://app:" + tp.pw + "@cache:6379/1",
				"redis://:" + tp.pw + "@cache",
				"rediss://app:" + tp.pw + "@cache:99999",
				"redis://app:" + tp.pw + "@cache:6379/x",
				"redis://app:" + tp.pw + "@cache:6379?bad=1",
				"ftp://app:" + tp.pw + "@cache",
				"unix://app:" + tp.pw + "@/tmp/redis.sock?db=z",
			} {
				cfg, err := configFrom(mapLookup(map[string]string{EnvURL: raw}))
				if err != nil {
					assertNoSecret(t, "error", err.Error(), tp.pw)
					continue
				}
				shows(t, cfg)
			}

			// A NewRedis error and name never show it either.
			r, err := NewRedis(Config{Addr: "127.0.0.1:1", Password: tp.pw}, Options{Logger: slog.New(slog.DiscardHandler),
				ProbeInterval: hour, ProbeMaxInterval: hour})
			require.NoError(t, err, "NewRedis")
			defer r.Close()
			assertNoSecret(t, "Redis.String()", r.String(), tp.pw)
			assertNoSecret(t, "Stats().Addr", r.Stats().Addr, tp.pw)
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"redis://cache:6379/0", "redis://cache:6379/0"},
		{"redis://app:" + testPassword + "@cache:6379/0", "redis://app:***@cache:6379/0"},
		{"redis://:" + testPassword + "@cache", "redis://:***@cache"},
		{"redis://TOKEN@cache", "redis://***@cache"},
		{"redis://cache:6379/0?password=" + testPassword, "redis://cache:6379/0?password=***"},
		{"redis://cache/0?db=1&sentinel_password=" + testPassword + "&x=1", "redis://cache/0?db=1&sentinel_password=***&x=1"},
		{"redis://cache/0?pass%77ord=" + testPassword, "redis://cache/0?pass%77ord=***"},
		{"redis://cache/0?PASSWORD=a b;password=" + testPassword, "redis://cache/0?PASSWORD=***;password=***"},
		{"redis+sentinel://u:" + testPassword + "@s1/?master_name=m&password=" + testPassword, "redis+sentinel://u:***@s1/?master_name=m&password=***"},
		{"redis://cache/?client_name=x&username=app", "redis://cache/?client_name=x&username=app"},
		{"unix:///tmp/a@b.sock", "unix:///tmp/a@b.sock"},
		{"redis://app:s3cret/Pa55@cache", "redis://app:***@cache"},
		{"redis://app:s3cret@Pa55@cache", "redis://app:***@cache"},
		{"redis://app:s3cret#Pa55@cache?db=1", "redis://app:***@cache?db=1"},
		{"app:" + testPassword + "@cache", "app:***@cache"},
		{testPassword + "@cache", "***@cache"},
		{"", ""},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, redactURL(tc.raw), "redactURL(%q)", tc.raw)
	}
}
