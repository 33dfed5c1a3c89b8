package resilience

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func mapLookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// assertConfig compares configs without ever printing a password.
func assertConfig(t *testing.T, got, want Config) {
	t.Helper()
	assert.Equal(t, want.GoString(), got.GoString(), "config = %#v, want %#v", got, want)
	assert.True(t, got.Password == want.Password, "password differs (got %d bytes, want %d bytes)", len(got.Password), len(want.Password))
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
