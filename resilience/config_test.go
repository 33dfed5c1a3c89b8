package resilience

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
