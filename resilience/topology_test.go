package resilience

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTopologyURLs(t *testing.T) {
	tests := []struct {
		name, env, raw string
		extra          map[string]string
		want           Config
	}{
		{
			name: "sentinel, go-redis form",
			env:  EnvURL,
			raw:  "redis://sent:" + testPassword + "@s1:26379/2?master_name=mymaster&addr=s2:26379&addr=[::1]:26380&password=datapw",
			want: Config{Network: "tcp", Topology: TopologySentinel, Addr: "s1:26379", Addrs: []string{"s1:26379", "s2:26379", "[::1]:26380"},
				MasterName: "mymaster", SentinelUsername: "sent", SentinelPassword: testPassword, Password: "datapw", DB: 2},
		},
		{
			name:  "sentinel, REDIS_PASSWORD is the data password",
			env:   EnvURL,
			raw:   "rediss://s1?master_name=m%20x&username=app&db=3",
			extra: map[string]string{EnvPassword: testPassword},
			want: Config{Network: "tcp", Topology: TopologySentinel, Addr: "s1:6379", Addrs: []string{"s1:6379"},
				MasterName: "m x", Username: "app", Password: testPassword, DB: 3, TLS: true},
		},
		{
			name: "sentinel, sentinel_password parameter",
			env:  EnvURL,
			raw:  "redis://s1:26379?master_name=m&sentinel_username=su&sentinel_password=" + url.QueryEscape("s3cret&Pa55"),
			want: Config{Network: "tcp", Topology: TopologySentinel, Addr: "s1:26379", Addrs: []string{"s1:26379"},
				MasterName: "m", SentinelUsername: "su", SentinelPassword: "s3cret&Pa55"},
		},
		{
			name: "cluster",
			env:  EnvClusterURL,
			raw:  "redis://app:" + testPassword + "@n1:7000?addr=n2:7001&addr=n3:7002",
			want: Config{Network: "tcp", Topology: TopologyCluster, Addr: "n1:7000", Addrs: []string{"n1:7000", "n2:7001", "n3:7002"},
				Username: "app", Password: testPassword},
		},
		{
			name:  "cluster, REDIS_PASSWORD",
			env:   EnvClusterURL,
			raw:   "rediss://n1/0",
			extra: map[string]string{EnvPassword: testPassword},
			want: Config{Network: "tcp", Topology: TopologyCluster, Addr: "n1:6379", Addrs: []string{"n1:6379"},
				Password: testPassword, TLS: true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{tc.env: tc.raw}
			for k, v := range tc.extra {
				env[k] = v
			}
			got, err := configFrom(mapLookup(env))
			require.NoError(t, err, "configFrom")
			assert.True(t, reflect.DeepEqual(got, tc.want), "config = %#v, want %#v", got, tc.want)
			// Not assert.Equal: it would print the passwords.
			assert.True(t, got.Password == tc.want.Password && got.SentinelPassword == tc.want.SentinelPassword, "passwords differ")
			// The shown form parses back to the same place.
			back, err := configFrom(mapLookup(map[string]string{tc.env: got.String()}))
			require.NoError(t, err, "%s=%s does not parse", tc.env, got.String())
			want := got
			for _, p := range []*string{&want.Password, &want.SentinelPassword} {
				if *p != "" {
					*p = redacted
				}
			}
			assert.True(t, reflect.DeepEqual(back, want), "String %q parses to %#v, want %#v", got.String(), back, want)
		})
	}
}

func TestTopologyString(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Topology: TopologySentinel, Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "m", SentinelPassword: "x", Username: "app", Password: "y", DB: 1},
			"redis://:***@s1:26379/1?master_name=m&addr=s2:26379&username=app&password=***"},
		{Config{Topology: TopologyCluster, Addrs: []string{"n1:7000", "n2:7001"}, Username: "app", Password: "y", TLS: true},
			"rediss://app:***@n1:7000?addr=n2:7001"},
		{Config{Topology: TopologyCluster, Addr: "n1:7000"}, "redis://n1:7000"},
	} {
		assert.Equal(t, tc.want, tc.cfg.String(), "String() of %#v", tc.cfg)
	}
}

func TestTopologyConfigMalformed(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string
		want    string
	}{
		{"both urls", map[string]string{EnvURL: "redis://a", EnvClusterURL: "redis://b"}, EnvClusterURL, "set together"},
		{"empty master_name", map[string]string{EnvURL: "redis://s1?master_name="}, EnvURL, "empty master_name"},
		{"bad addr", map[string]string{EnvURL: "redis://s1?master_name=m&addr=s2"}, EnvURL, "want host:port"},
		{"bad addr port", map[string]string{EnvClusterURL: "redis://n1?addr=n2:99999"}, EnvClusterURL, "invalid port"},
		{"go-redis option", map[string]string{EnvURL: "redis://s1?master_name=m&dial_timeout=1s"}, EnvURL, `unsupported query parameter "dial_timeout"`},
		{"cluster db", map[string]string{EnvClusterURL: "redis://n1/3"}, EnvClusterURL, "database 0 only"},
		{"cluster password param", map[string]string{EnvClusterURL: "redis://n1?password=" + testPassword}, EnvClusterURL, "unsupported query parameter"},
		{"scheme", map[string]string{EnvClusterURL: "unix:///tmp/x"}, EnvClusterURL, "unsupported scheme"},
		{"password twice", map[string]string{EnvURL: "redis://:a@s1?master_name=m&sentinel_password=" + testPassword}, EnvURL, "given twice"},
		{"master_name twice", map[string]string{EnvURL: "redis://s1?master_name=m&master_name=n"}, EnvURL, "given twice"},
		{"passwords differ", map[string]string{EnvURL: "redis://s1?master_name=m&password=" + testPassword, EnvPassword: "other"}, EnvPassword, "differs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := configFrom(mapLookup(tc.env))
			var ce *ConfigError
			require.ErrorAs(t, err, &ce, "error %v, want a ConfigError on %s saying %q", err, tc.wantVar, tc.want)
			require.Equal(t, tc.wantVar, ce.Var, "error %v, want a ConfigError on %s saying %q", err, tc.wantVar, tc.want)
			require.Contains(t, err.Error(), tc.want, "error %v, want a ConfigError on %s saying %q", err, tc.wantVar, tc.want)
			assertNoSecret(t, "error", err.Error(), testPassword)
		})
	}
}

// TestTopologyPasswordsNeverShown: the sentinels' password and the data
// password, in every place they can be written, never show in a string,
// an error, a log line or a Redis's name.
func TestTopologyPasswordsNeverShown(t *testing.T) {
	for _, tp := range trickyPasswords {
		t.Run(tp.name, func(t *testing.T) {
			esc := url.QueryEscape(tp.pw)
			ui := url.UserPassword("sent", tp.pw).String()
			for _, env := range []map[string]string{
				{EnvURL: "redis://" + ui + "@127.0.0.1:1?master_name=m&password=" + esc},
				{EnvURL: "redis://127.0.0.1:1?master_name=m&sentinel_password=" + esc},
				{EnvURL: "redis://127.0.0.1:1?master_name=m", EnvPassword: tp.pw},
				{EnvClusterURL: "redis://" + ui + "@127.0.0.1:1?addr=127.0.0.1:2"},
				{EnvClusterURL: "redis://127.0.0.1:1", EnvPassword: tp.pw},
				// Written raw, as users do, and malformed after it.
				{EnvURL: "redis://127.0.0.1:1?master_name=m&password=" + tp.pw + "&bad=1"},
				{EnvURL: "redis://127.0.0.1:1?master_name=m&sentinel_password=" + tp.pw + "&addr=x"},
				{EnvURL: "redis://sent:" + tp.pw + "@127.0.0.1:1?master_name=m&db=x"},
				{EnvClusterURL: "redis://app:" + tp.pw + "@127.0.0.1:1/5"},
				{EnvClusterURL: "redis://app:" + tp.pw + "@127.0.0.1:1?addr=n2:bad"},
			} {
				cfg, err := configFrom(mapLookup(env))
				if err != nil {
					assertNoSecret(t, "error", err.Error(), tp.pw)
					continue
				}
				var buf strings.Builder
				slog.New(slog.NewJSONHandler(&buf, nil)).Info("connect", "redis", cfg)
				for what, text := range map[string]string{
					"String": cfg.String(), "%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg),
					"%#v": fmt.Sprintf("%#v", cfg), "slog": buf.String(),
				} {
					assertNoSecret(t, what, text, tp.pw)
				}
				r, err := NewRedis(cfg, Options{Logger: slog.New(slog.DiscardHandler), ProbeInterval: hour, ProbeMaxInterval: hour,
					Dialer: func(context.Context, string, string) (net.Conn, error) {
						return nil, errors.New("no network in this test")
					}})
				require.NoError(t, err, "NewRedis")
				assertNoSecret(t, "Redis.String()", r.String(), tp.pw)
				if _, err := r.Ping(context.Background()); err != nil {
					assertNoSecret(t, "Ping error", err.Error(), tp.pw)
				}
				assertNoSecret(t, "Stats", fmt.Sprintf("%+v", r.Stats()), tp.pw)
				_ = r.Close()
			}
		})
	}
}

// secretParam matches the value of a password query parameter, up to the
// next '&'.
var secretParam = regexp.MustCompile(`(?i)([?&](?:sentinel_)?password=)[^&]*`)

func FuzzParseTopologyURL(f *testing.F) {
	for _, s := range []string{
		"redis://s1:26379?master_name=m&addr=s2:26379&password=" + testPassword,
		"redis://:" + testPassword + "@s1?master_name=m",
		"redis://s1?master_name=m&sentinel_password=" + testPassword + "&x=1",
		"redis://s1?master_name=m&password=s3cret%zzPa55",
		"redis://n1:7000?addr=n2:7001",
		"rediss://app:" + testPassword + "@n1/0",
		"redis://n1?addr=[::1]:7000&addr=:1",
		"redis://n1?addr=%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, parse := range []func(string) (Config, error){ParseURL, ParseClusterURL} {
			cfg, err := parse(raw)
			if err != nil && !hasMasterName(raw) && reflect.ValueOf(parse).Pointer() == reflect.ValueOf(ParseURL).Pointer() {
				continue // a standalone URL: FuzzParseURL's business
			}
			if err != nil {
				var ce *ConfigError
				require.ErrorAs(t, err, &ce, "error %T, want *ConfigError", err)
				for _, m := range secretParam.FindAllStringSubmatchIndex(raw, -1) {
					pw := raw[m[3]:m[1]]
					// The parts, not the quoted whole: a quoted control byte
					// spells digits that are in no password.
					require.False(t, len(pw) >= 6 && strings.Count(raw, pw) == 1 && (strings.Contains(ce.Value, pw) || strings.Contains(ce.Err.Error(), pw)),
						"error %q shows the password parameter of %q", err, raw)
				}
				continue
			}
			if cfg.Topology == TopologyStandalone {
				continue
			}
			for _, pw := range []string{cfg.Password, cfg.SentinelPassword} {
				require.False(t, len(pw) >= 6 && strings.Contains(cfg.String(), pw), "String %q shows a password", cfg.String())
			}
			_, err = parse(cfg.String())
			require.NoError(t, err, "String %q of %q does not parse", cfg.String(), raw)
		}
	})
}

// TestTopologyInvalidOption: a Sentinel or Cluster Config NewRedis cannot
// use gives an error that matches ErrInvalidOption and names the field.
func TestTopologyInvalidOption(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		name string
	}{
		{Config{Topology: TopologySentinel}, "Config.Addrs"},
		{Config{Topology: TopologySentinel, Addrs: []string{"s1:26379"}}, "Config.MasterName"},
		{Config{Topology: TopologyCluster}, "Config.Addrs"},
		{Config{Topology: Topology(99), Addrs: []string{"n1:7000"}}, "Config.Topology"},
	} {
		r, err := NewRedis(tc.cfg, Options{})
		if !assert.Error(t, err, "NewRedis(%#v)", tc.cfg) {
			_ = r.Close()
			continue
		}
		assert.ErrorIs(t, err, ErrInvalidOption, "NewRedis(%#v) = %v, want ErrInvalidOption naming %s", tc.cfg, err, tc.name)
		assert.Contains(t, err.Error(), tc.name, "NewRedis(%#v) = %v, want ErrInvalidOption naming %s", tc.cfg, err, tc.name)
	}
}
