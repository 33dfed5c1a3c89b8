package healthhandler_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/internal/testlog"
	"github.com/steadfast-go/steadfast/resilience"
)

// TestSecretsNeverShown: with a password in the configuration and a URL
// holding it in errors, values and a panic, the password appears in no
// report, however detailed, and in no log line.
func TestSecretsNeverShown(t *testing.T) {
	const password = "s3cret-Pa55"
	m := miniredis.RunT(t)
	m.RequireAuth(password)
	url := "redis://:" + password + "@" + m.Addr() + "/0"
	cfg, err := resilience.ParseURL(url)
	require.NoError(t, err, "ParseURL")
	var logs testlog.Buffer
	synctest.Test(t, func(t *testing.T) {
		rdb := newRedis(t, cfg, resilience.Options{Logger: logs.Text(slog.LevelInfo)})
		hb, err := resilience.NewHeartbeat(rdb, resilience.HeartbeatOptions{ID: "w1", Interval: time.Second, Logger: logs.Text(slog.LevelInfo)})
		require.NoError(t, err, "NewHeartbeat")
		defer hb.Close()
		h := newHandler(t, healthhandler.Options{
			ShowDetails: func(*http.Request) bool { return true },
			Logger:      logs.Text(slog.LevelInfo),
			Description: "cache at " + rdb.String(),
		})
		mustAdd(t, h, mustCheck(t)(healthhandler.Redis(rdb, healthhandler.RedisOptions{Interval: time.Second})))
		mustAdd(t, h, mustCheck(t)(healthhandler.Workers(rdb, healthhandler.WorkersOptions{Interval: time.Second})))
		mustAdd(t, h, healthhandler.Check{Name: "upstream", Interval: time.Second, Run: fixed(nil, errors.New("connect "+url+": connection refused"))})
		mustAdd(t, h, healthhandler.Check{Name: "values", Interval: time.Second, Run: fixed([]healthhandler.Observation{
			{ComponentID: url, Value: url, Status: healthhandler.StatusWarn, Output: "see " + url, Detail: "password=" + password},
			{Measurement: "object", Value: map[string]string{"dsn": url}},
		}, nil)})
		mustAdd(t, h, healthhandler.Check{Name: "buggy", Interval: time.Second, Run: func(context.Context) ([]healthhandler.Observation, error) {
			panic(errors.New("cannot use " + url))
		}})
		synctest.Wait()

		var seen strings.Builder
		collect := func() {
			for _, path := range []string{"/health", "/health/ready", "/health/live"} {
				seen.Write(get(t, h, http.MethodGet, path, true).body)
			}
			for _, c := range h.Stats().Checks {
				seen.WriteString(c.LastError)
			}
		}
		collect()
		m.Close() // Redis fails: errors now mention the server too
		time.Sleep(3 * time.Second)
		synctest.Wait()
		collect()

		settle(h, hb, rdb)
		all := seen.String() + logs.String()
		assert.NotContains(t, all, password, "password shown")
		for _, want := range []string{"redis://:***@", "connection refused", "health check panicked"} {
			assert.Contains(t, all, want, "output and logs lack it, so the test proves little")
		}
	})
}

// secretForms place a secret where go-redis (or a provider's URL) takes a
// credential: a user-info password, a lone user-info, and the query
// parameters password, sentinel_password and an escaped password.
var secretForms = []func(user, secret, host, tail string) string{
	func(u, s, h, t string) string { return "redis://" + u + ":" + s + "@" + h + t },
	func(u, s, h, t string) string { return "rediss://" + s + "@" + h + t },
	func(u, s, h, t string) string { return "redis://" + h + "/0?password=" + s + t },
	func(u, s, h, t string) string {
		return "redis://" + u + "@" + h + "/?master_name=m&sentinel_password=" + s + "&db=1" + t
	},
	func(u, s, h, t string) string { return "redis://" + h + t + "?db=1&pass%77ord=" + s },
	func(u, s, h, t string) string { return "unix://" + u + ":" + s + "@/tmp/redis.sock" + t },
	func(u, s, h, t string) string { return u + ":" + s + "@" + h + t },
}

// FuzzSecretNeverShown: whatever the URL around it looks like, no byte
// sequence of a secret given in it reaches a configuration error, a log
// line (text or JSON, of the error or of the Config) or the /health
// output shown with details.
func FuzzSecretNeverShown(f *testing.F) {
	f.Add(uint8(0), "app", "s3cretPa55", "cache:6379", "/0")
	f.Add(uint8(1), "", "T0kenXyz42", "cache", "")
	f.Add(uint8(2), "", "s3cretPa55", "cache:6379", "&db=2")
	f.Add(uint8(3), "sentinel", "s3cretPa55", "s1:26379", "")
	f.Add(uint8(4), "", "s3cretPa55", "h", "/1")
	f.Add(uint8(5), "u", "s3cretPa55", "", "?db=3")
	f.Add(uint8(6), "u", "s3cretPa55", "h", "")
	f.Add(uint8(0), "a/b", "s3cretPa55", "h:x", "%zz")
	f.Fuzz(func(t *testing.T, form uint8, user, secret, host, tail string) {
		if !meaningfulSecret(secret) {
			t.Skip()
		}
		for _, part := range []string{user, host, tail} {
			if strings.Contains(part, secret) {
				t.Skip()
			}
		}
		raw := secretForms[int(form)%len(secretForms)](user, secret, host, tail)

		var shown []string
		cfg, err := resilience.ParseURL(raw)
		var logs testlog.Buffer
		textLog := logs.Text(slog.LevelInfo)
		jsonLog := logs.JSON(slog.LevelInfo)
		if err != nil {
			shown = append(shown, err.Error(), fmt.Sprint(err), fmt.Sprintf("%v", errors.Unwrap(err)))
			textLog.Error("bad redis configuration", "err", err)
			jsonLog.Error("bad redis configuration", "err", err)
		} else {
			shown = append(shown, cfg.String(), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg))
			textLog.Info("redis", "config", cfg)
			jsonLog.Info("redis", "config", cfg)
		}
		shown = append(shown, logs.String(), healthOutput(t, raw, cfg, err))
		for _, s := range shown {
			require.NotContains(t, s, secret, "URL %q: secret %q shown", raw, secret)
		}
	})
}

// meaningfulSecret: at least 6 bytes of URL-safe letters and digits, with
// a digit, an upper-case and a lower-case letter, so that it cannot also be
// a fixed word of an error text.
func meaningfulSecret(s string) bool {
	if len(s) < 6 {
		return false
	}
	var digit, upper, lower bool
	for _, c := range []byte(s) {
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z':
			lower = true
		case strings.IndexByte("-._~", c) >= 0:
		default:
			return false
		}
	}
	return digit && upper && lower
}

// healthOutput is the /health body, details shown, of a Redis check that
// reports what a program would: the configuration as componentId, the
// configuration error, or a connection error that names the URL.
func healthOutput(t *testing.T, raw string, cfg resilience.Config, cfgErr error) string {
	t.Helper()
	ran := make(chan struct{}, 1)
	h, err := healthhandler.New(healthhandler.Options{
		ShowDetails: func(*http.Request) bool { return true },
		Logger:      slog.New(slog.DiscardHandler),
		OnChange: func(healthhandler.Change) {
			select {
			case ran <- struct{}{}:
			default:
			}
		},
	})
	require.NoError(t, err)
	defer h.Close()
	err = h.Add(healthhandler.Check{Name: "redis", Run: func(context.Context) ([]healthhandler.Observation, error) {
		if cfgErr != nil {
			return []healthhandler.Observation{{Detail: cfgErr.Error()}}, cfgErr
		}
		return []healthhandler.Observation{{ComponentID: cfg.String(), Value: cfg.String()}},
			errors.New("dial " + raw + ": connection refused")
	}})
	require.NoError(t, err)
	<-ran
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	return rec.Body.String()
}
