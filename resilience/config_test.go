package resilience

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
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

// assertConfig compares configs without ever printing a password.
func assertConfig(t *testing.T, got, want Config) {
	t.Helper()
	assert.Equal(t, want.GoString(), got.GoString(), "config = %#v, want %#v", got, want)
	assert.True(t, got.Password == want.Password, "password differs (got %d bytes, want %d bytes)", len(got.Password), len(want.Password))
}

func mapLookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Config
	}{
		{
			name: "url host only",
			env:  map[string]string{EnvURL: "redis://localhost"},
			want: Config{Network: "tcp", Addr: "localhost:6379"},
		},
		{
			name: "url host port db",
			env:  map[string]string{EnvURL: "redis://cache.internal:6380/2"},
			want: Config{Network: "tcp", Addr: "cache.internal:6380", DB: 2},
		},
		{
			name: "url user password",
			env:  map[string]string{EnvURL: "redis://app:" + testPassword + "@cache:6379/0"},
			want: Config{Network: "tcp", Addr: "cache:6379", Username: "app", Password: testPassword},
		},
		{
			name: "url password without user",
			env:  map[string]string{EnvURL: "redis://:" + testPassword + "@cache"},
			want: Config{Network: "tcp", Addr: "cache:6379", Password: testPassword},
		},
		{
			name: "url user without password",
			env:  map[string]string{EnvURL: "redis://app@cache"},
			want: Config{Network: "tcp", Addr: "cache:6379", Username: "app"},
		},
		{
			name: "url empty user-info",
			env:  map[string]string{EnvURL: "redis://:@cache"},
			want: Config{Network: "tcp", Addr: "cache:6379"},
		},
		{
			name: "url rediss",
			env:  map[string]string{EnvURL: "rediss://app:" + testPassword + "@cache:6380/1"},
			want: Config{Network: "tcp", Addr: "cache:6380", Username: "app", Password: testPassword, DB: 1, TLS: true},
		},
		{
			name: "url db query",
			env:  map[string]string{EnvURL: "redis://cache:6379?db=3"},
			want: Config{Network: "tcp", Addr: "cache:6379", DB: 3},
		},
		{
			name: "url db query overrides path",
			env:  map[string]string{EnvURL: "redis://cache:6379/1?db=3"},
			want: Config{Network: "tcp", Addr: "cache:6379", DB: 3},
		},
		{
			name: "url trailing slash",
			env:  map[string]string{EnvURL: "redis://cache/"},
			want: Config{Network: "tcp", Addr: "cache:6379"},
		},
		{
			name: "url upper-case scheme",
			env:  map[string]string{EnvURL: "REDIS://cache"},
			want: Config{Network: "tcp", Addr: "cache:6379"},
		},
		{
			name: "url ipv6",
			env:  map[string]string{EnvURL: "redis://[::1]:6380/4"},
			want: Config{Network: "tcp", Addr: "[::1]:6380", DB: 4},
		},
		{
			name: "url port with leading zero",
			env:  map[string]string{EnvURL: "redis://cache:06380"},
			want: Config{Network: "tcp", Addr: "cache:6380"},
		},
		{
			name: "url surrounded by spaces",
			env:  map[string]string{EnvURL: "  redis://cache:6380\n"},
			want: Config{Network: "tcp", Addr: "cache:6380"},
		},
		{
			name: "url escaped password",
			env:  map[string]string{EnvURL: "redis://app:p%40ss%3Aw%2Frd%23x%25@cache"},
			want: Config{Network: "tcp", Addr: "cache:6379", Username: "app", Password: "p@ss:w/rd#x%"},
		},
		{
			name: "url raw at and colon in password",
			env:  map[string]string{EnvURL: "redis://app:p@ss:word@cache"},
			want: Config{Network: "tcp", Addr: "cache:6379", Username: "app", Password: "p@ss:word"},
		},
		{
			name: "url unix",
			env:  map[string]string{EnvURL: "unix:///var/run/redis/redis.sock"},
			want: Config{Network: "unix", Addr: "/var/run/redis/redis.sock"},
		},
		{
			name: "url unix password db",
			env:  map[string]string{EnvURL: "unix://app:" + testPassword + "@/tmp/redis.sock?db=5"},
			want: Config{Network: "unix", Addr: "/tmp/redis.sock", Username: "app", Password: testPassword, DB: 5},
		},
		{
			name: "url unix path with at",
			env:  map[string]string{EnvURL: "unix://:" + testPassword + "@/tmp/r@1.sock"},
			want: Config{Network: "unix", Addr: "/tmp/r@1.sock", Password: testPassword},
		},
		{
			name: "host and port",
			env:  map[string]string{EnvHost: "cache", EnvPort: "6380"},
			want: Config{Network: "tcp", Addr: "cache:6380"},
		},
		{
			name: "host port user password db",
			env: map[string]string{EnvHost: "cache", EnvPort: "6380", EnvUser: "app",
				EnvPassword: testPassword, EnvDB: "7"},
			want: Config{Network: "tcp", Addr: "cache:6380", Username: "app", Password: testPassword, DB: 7},
		},
		{
			name: "host port password with url characters",
			env:  map[string]string{EnvHost: "cache", EnvPort: "6380", EnvPassword: " s3cret@:/#%?Pa55 "},
			want: Config{Network: "tcp", Addr: "cache:6380", Password: " s3cret@:/#%?Pa55 "},
		},
		{
			name: "host port trimmed",
			env:  map[string]string{EnvHost: " cache ", EnvPort: " 6380 ", EnvUser: " app "},
			want: Config{Network: "tcp", Addr: "cache:6380", Username: "app"},
		},
		{
			name: "host ipv6",
			env:  map[string]string{EnvHost: "::1", EnvPort: "6380"},
			want: Config{Network: "tcp", Addr: "[::1]:6380"},
		},
		{
			name: "host ipv6 bracketed",
			env:  map[string]string{EnvHost: "[::1]", EnvPort: "6380"},
			want: Config{Network: "tcp", Addr: "[::1]:6380"},
		},
		{
			name: "url wins over host and port",
			env: map[string]string{EnvURL: "redis://from-url:6381/1", EnvHost: "from-host", EnvPort: "6380",
				EnvPassword: testPassword, EnvDB: "2"},
			want: Config{Network: "tcp", Addr: "from-url:6381", DB: 1},
		},
		{
			name: "empty url falls back to host and port",
			env:  map[string]string{EnvURL: "  ", EnvHost: "cache", EnvPort: "6380"},
			want: Config{Network: "tcp", Addr: "cache:6380"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := configFrom(mapLookup(tc.env))
			require.NoError(t, err, "configFrom")
			assertConfig(t, got, tc.want)
			assertNoSecret(t, "String()", got.String(), got.Password)
		})
	}
}

func TestConfigFromEnvNotConfigured(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		// wantVar is the ConfigError's variable; empty: a bare ErrNotConfigured.
		wantVar string
		// wantText must all appear in the message.
		wantText []string
	}{
		{name: "nothing set", env: nil, wantText: []string{EnvURL, EnvHost, EnvPort}},
		{name: "only unrelated vars", env: map[string]string{EnvUser: "app", EnvPassword: testPassword, EnvDB: "1"},
			wantText: []string{EnvURL, EnvHost, EnvPort}},
		{name: "blank values", env: map[string]string{EnvURL: " ", EnvHost: "", EnvPort: "\t"},
			wantText: []string{EnvURL, EnvHost, EnvPort}},
		{name: "host without port", env: map[string]string{EnvHost: "cache", EnvPassword: testPassword},
			wantVar: EnvPort, wantText: []string{EnvPort + ": not set"}},
		{name: "port without host", env: map[string]string{EnvPort: "6379", EnvPassword: testPassword},
			wantVar: EnvHost, wantText: []string{EnvHost + ": not set"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := configFrom(mapLookup(tc.env))
			got, want := errors.Is(err, ErrNotConfigured), tc.wantVar == ""
			require.Equal(t, want, got, "err = %v, errors.Is ErrNotConfigured = %v, want %v (only nothing set is not configured)", err, got, want)
			var ce *ConfigError
			switch {
			case tc.wantVar == "" && errors.As(err, &ce):
				assert.Failf(t, "unwanted *ConfigError", "err = %v is a *ConfigError, want a bare ErrNotConfigured", err)
			case tc.wantVar != "" && !errors.As(err, &ce):
				assert.Failf(t, "no *ConfigError", "err = %v is not a *ConfigError", err)
			case tc.wantVar != "" && ce.Var != tc.wantVar:
				assert.Failf(t, "wrong ConfigError.Var", "ConfigError.Var = %q, want %q", ce.Var, tc.wantVar)
			}
			for _, w := range tc.wantText {
				assert.Contains(t, err.Error(), w, "err = %q, want it to contain %q", err, w)
			}
			assertNoSecret(t, "error", err.Error(), testPassword)
		})
	}
}

func TestConfigFromEnvMalformed(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		wantVar  string
		wantText []string // all must appear in the message
	}{
		{name: "bad scheme", env: map[string]string{EnvURL: "http://app:" + testPassword + "@cache:6379"},
			wantVar: EnvURL, wantText: []string{`unsupported scheme "http"`, "http://app:***@cache:6379"}},
		{name: "missing scheme", env: map[string]string{EnvURL: "//:" + testPassword + "@cache:6379"},
			wantVar: EnvURL, wantText: []string{"missing scheme", "//:***@cache:6379"}},
		{name: "host and port without scheme", env: map[string]string{EnvURL: "cache:6379"},
			wantVar: EnvURL, wantText: []string{"unsupported scheme"}},
		{name: "bad port", env: map[string]string{EnvURL: "redis://:" + testPassword + "@cache:abc"},
			wantVar: EnvURL, wantText: []string{"malformed URL: invalid port", "redis://:***@cache:abc"}},
		{name: "port zero", env: map[string]string{EnvURL: "redis://:" + testPassword + "@cache:0"},
			wantVar: EnvURL, wantText: []string{`invalid port "0"`, "redis://:***@cache:0"}},
		{name: "port too big", env: map[string]string{EnvURL: "redis://:" + testPassword + "@cache:70000"},
			wantVar: EnvURL, wantText: []string{`invalid port "70000"`}},
		{name: "empty port", env: map[string]string{EnvURL: "redis://cache:"},
			wantVar: EnvURL, wantText: []string{"empty port"}},
		{name: "empty host", env: map[string]string{EnvURL: "redis://:" + testPassword + "@:6379"},
			wantVar: EnvURL, wantText: []string{"missing host", "redis://:***@:6379"}},
		{name: "nothing after scheme", env: map[string]string{EnvURL: "redis://"},
			wantVar: EnvURL, wantText: []string{"missing host"}},
		{name: "bad db path", env: map[string]string{EnvURL: "redis://:" + testPassword + "@cache/abc"},
			wantVar: EnvURL, wantText: []string{`invalid database "abc"`}},
		{name: "negative db path", env: map[string]string{EnvURL: "redis://cache/-1"},
			wantVar: EnvURL, wantText: []string{`invalid database "-1"`}},
		{name: "db path with two segments", env: map[string]string{EnvURL: "redis://cache/0/1"},
			wantVar: EnvURL, wantText: []string{"invalid database"}},
		{name: "bad db query", env: map[string]string{EnvURL: "redis://cache?db=x"},
			wantVar: EnvURL, wantText: []string{`db parameter: invalid database "x"`}},
		{name: "negative db query", env: map[string]string{EnvURL: "redis://cache?db=-2"},
			wantVar: EnvURL, wantText: []string{`invalid database "-2"`}},
		{name: "repeated db query", env: map[string]string{EnvURL: "redis://cache?db=1&db=2"},
			wantVar: EnvURL, wantText: []string{"twice"}},
		{name: "unknown query parameter", env: map[string]string{EnvURL: "redis://:" + testPassword + "@cache?dial_timeout=1s"},
			wantVar: EnvURL, wantText: []string{`unsupported query parameter "dial_timeout"`}},
		{name: "unparseable escape", env: map[string]string{EnvURL: "redis://:" + testPassword + "@cache/%zz"},
			wantVar: EnvURL, wantText: []string{"malformed URL: invalid URL escape"}},
		{name: "control character", env: map[string]string{EnvURL: "redis://:" + testPassword + "@cache\x7f"},
			wantVar: EnvURL, wantText: []string{"malformed URL"}},
		{name: "space in host", env: map[string]string{EnvURL: "redis://:" + testPassword + "@ca che"},
			wantVar: EnvURL, wantText: []string{"malformed URL"}},
		{name: "ipv6 without brackets", env: map[string]string{EnvURL: "redis://::1"},
			wantVar: EnvURL, wantText: []string{"brackets"}},
		{name: "unix with host", env: map[string]string{EnvURL: "unix://tmp/redis.sock"},
			wantVar: EnvURL, wantText: []string{"unix:///path/to/socket"}},
		{name: "unix without path", env: map[string]string{EnvURL: "unix://:" + testPassword + "@"},
			wantVar: EnvURL, wantText: []string{"missing socket path"}},
		{name: "host holds a port", env: map[string]string{EnvHost: "cache:6379", EnvPort: "6379"},
			wantVar: EnvHost, wantText: []string{`REDISHOST="cache:6379"`, EnvPort}},
		{name: "host is a url", env: map[string]string{EnvHost: "redis://app:" + testPassword + "@cache", EnvPort: "6379"},
			wantVar: EnvHost, wantText: []string{"not a URL", "app:***@cache"}},
		{name: "host holds user-info", env: map[string]string{EnvHost: testPassword + "@cache", EnvPort: "6379"},
			wantVar: EnvHost, wantText: []string{"***@cache"}},
		{name: "host empty brackets", env: map[string]string{EnvHost: "[]", EnvPort: "6379"},
			wantVar: EnvHost, wantText: []string{"empty host"}},
		{name: "port not a number", env: map[string]string{EnvHost: "cache", EnvPort: "redis", EnvPassword: testPassword},
			wantVar: EnvPort, wantText: []string{`REDISPORT="redis"`, "invalid port"}},
		{name: "port zero env", env: map[string]string{EnvHost: "cache", EnvPort: "0"},
			wantVar: EnvPort, wantText: []string{"invalid port"}},
		{name: "port too big env", env: map[string]string{EnvHost: "cache", EnvPort: "70000"},
			wantVar: EnvPort, wantText: []string{"invalid port"}},
		{name: "port with sign", env: map[string]string{EnvHost: "cache", EnvPort: "+6379"},
			wantVar: EnvPort, wantText: []string{"invalid port"}},
		{name: "db not a number", env: map[string]string{EnvHost: "cache", EnvPort: "6379", EnvDB: "one", EnvPassword: testPassword},
			wantVar: EnvDB, wantText: []string{`REDIS_DB="one"`}},
		{name: "db negative", env: map[string]string{EnvHost: "cache", EnvPort: "6379", EnvDB: "-1"},
			wantVar: EnvDB, wantText: []string{"invalid database"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := configFrom(mapLookup(tc.env))
			var ce *ConfigError
			require.ErrorAs(t, err, &ce, "err = %v (%T), want a *ConfigError", err, err)
			assert.Equal(t, tc.wantVar, ce.Var, "ConfigError.Var = %q, want %q (err %q)", ce.Var, tc.wantVar, err)
			assert.True(t, strings.HasPrefix(err.Error(), tc.wantVar), "err = %q, want it to start with the variable %s", err, tc.wantVar)
			assert.NotErrorIs(t, err, ErrNotConfigured, "err = %q matches ErrNotConfigured; a malformed value is configured", err)
			for _, w := range tc.wantText {
				assert.Contains(t, err.Error(), w, "err = %q, want it to contain %q", err, w)
			}
			assertNoSecret(t, "error", err.Error(), testPassword)
			assertNoSecret(t, "ConfigError.Value", ce.Value, testPassword)
		})
	}
}

// TestConfigFromEnvProcess reads the real environment once.
func TestConfigFromEnvProcess(t *testing.T) {
	t.Setenv(EnvURL, "")
	t.Setenv(EnvHost, "cache.internal")
	t.Setenv(EnvPort, "6390")
	t.Setenv(EnvUser, "app")
	t.Setenv(EnvPassword, testPassword)
	t.Setenv(EnvDB, "3")
	got, err := ConfigFromEnv()
	require.NoError(t, err, "ConfigFromEnv")
	assertConfig(t, got, Config{Network: "tcp", Addr: "cache.internal:6390", Username: "app", Password: testPassword, DB: 3})
	assert.Equal(t, "redis://app:***@cache.internal:6390/3", got.String(), "String()")

	t.Setenv(EnvURL, "redis://:"+testPassword+"@cache.internal:bad")
	_, err = ConfigFromEnv()
	var ce *ConfigError
	require.ErrorAs(t, err, &ce, "ConfigFromEnv with a bad REDIS_URL: err = %v, want a *ConfigError for %s", err, EnvURL)
	require.Equal(t, EnvURL, ce.Var, "ConfigFromEnv with a bad REDIS_URL: err = %v, want a *ConfigError for %s", err, EnvURL)
	assertNoSecret(t, "error", err.Error(), testPassword)
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

func TestConfigString(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"host only", Config{Addr: "cache:6379"}, "redis://cache:6379/0"},
		{"user password db", Config{Network: "tcp", Addr: "cache:6379", Username: "app", Password: testPassword, DB: 2},
			"redis://app:***@cache:6379/2"},
		{"password only", Config{Addr: "cache:6379", Password: testPassword}, "redis://:***@cache:6379/0"},
		{"user only: a token for some providers", Config{Addr: "cache:6379", Username: "TOKEN"}, "redis://***@cache:6379/0"},
		{"tls", Config{Addr: "cache:6380", Username: "app", Password: testPassword, TLS: true},
			"rediss://app:***@cache:6380/0"},
		{"ipv6", Config{Addr: "[::1]:6379"}, "redis://[::1]:6379/0"},
		{"user name with url syntax", Config{Addr: "cache:6379", Username: "a:b@c/d", Password: testPassword},
			"redis://a%3Ab%40c%2Fd:***@cache:6379/0"},
		{"unix", Config{Network: "unix", Addr: "/tmp/redis.sock"}, "unix:///tmp/redis.sock"},
		{"unix db password", Config{Network: "unix", Addr: "/tmp/redis.sock", Password: testPassword, DB: 3},
			"unix://:***@/tmp/redis.sock?db=3"},
		{"unix path with question mark", Config{Network: "unix", Addr: "/tmp/a?b.sock"}, "unix:///tmp/a%3Fb.sock"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.cfg.String(), "String()")
			assert.Equal(t, tc.want, tc.cfg.LogValue().String(), "LogValue()")
			// The redacted form parses back to the same place.
			back, err := ParseURL(tc.cfg.String())
			require.NoError(t, err, "ParseURL(String())")
			want := tc.cfg
			if want.Network == "" {
				want.Network = "tcp"
			}
			if want.Password != "" {
				want.Password = redacted
			} else if want.Username != "" {
				want.Username = redacted
			}
			assertConfig(t, back, want)
		})
	}
}

func TestConfigGoString(t *testing.T) {
	cfg := Config{Network: "tcp", Addr: "cache:6379", Username: "app", Password: testPassword, DB: 1, TLS: true}
	want := `resilience.Config{Network:"tcp", Addr:"cache:6379", Username:"app", Password:"***", DB:1, TLS:true}`
	assert.Equal(t, want, fmt.Sprintf("%#v", cfg), "%%#v")
	assert.Contains(t, fmt.Sprintf("%#v", Config{Addr: "x"}), `Password:""`, "%%#v of a config without password, want an empty Password")
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
