package resilience_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/internal/redisproc"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/internal/testlog"
	"github.com/steadfast-go/steadfast/resilience"
)

// The two passwords of TestSentinelPasswords: distinct, and unlikely to
// appear anywhere by chance.
const (
	sentinelSecret = "sentinel-Pw-7f3a9c"
	dataSecret     = "data-Pw-c41e08"
)

// TestSentinelPasswords: sentinels with a password of their own and data
// nodes with another, configured from the environment the two ways
// go-redis reads a failover URL (user-info = the sentinels', password= or
// REDIS_PASSWORD = the data nodes'): caching works, survives a SENTINEL
// FAILOVER, and /health shows the topology; neither password appears in
// the logs, errors, Stats or /health. A wrong sentinel password gives an
// error that names REDIS_URL and shows no secret.
func TestSentinelPasswords(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Sentinel")
	}
	st := redistest.StartSentinel(t, redisproc.SentinelOptions{Password: dataSecret, SentinelPassword: sentinelSecret})
	sa := st.SentinelAddrs()
	base := "redis://:" + sentinelSecret + "@" + sa[0] + "/0?master_name=" + st.Name + "&addr=" + sa[1] + "&addr=" + sa[2]
	ctx := context.Background()

	for i, tc := range []struct {
		name, url, password string
	}{
		{name: "password= in REDIS_URL", url: base + "&password=" + dataSecret},
		{name: "REDIS_PASSWORD", url: base, password: dataSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(resilience.EnvURL, tc.url)
			t.Setenv(resilience.EnvPassword, tc.password)
			cfg, err := resilience.ConfigFromEnv()
			require.NoError(t, err)
			require.Equal(t, resilience.TopologySentinel, cfg.Topology)
			var logs testlog.Buffer
			r, err := resilience.NewRedis(cfg, resilience.Options{OpTimeout: 100 * time.Millisecond, Logger: logs.Text(slog.LevelDebug)})
			require.NoError(t, err)
			defer func() { assert.NoError(t, r.Close()) }()
			health := healthFor(t, r, logs.Text(slog.LevelDebug))

			key := "auth:" + tc.name
			cacheWorks := func() bool {
				if err := r.Set(ctx, key, []byte("v"), time.Minute); err != nil {
					return false
				}
				v, err := r.Get(ctx, key)
				return err == nil && string(v) == "v"
			}
			require.Eventually(t, cacheWorks, 10*time.Second, 10*time.Millisecond, "caching through the sentinels: %v", r.Stats().LastError)
			if i == 0 {
				// Through a failover too: the prober and the fresh client
				// ask the sentinels with their password.
				old, err := st.MasterAddr(ctx)
				require.NoError(t, err)
				require.Eventually(t, func() bool { return st.Failover(ctx) == nil }, 10*time.Second, 50*time.Millisecond)
				wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, _, err = st.WaitNewMaster(wctx, old)
				cancel()
				require.NoError(t, err)
				require.Eventually(t, cacheWorks, 10*time.Second, 10*time.Millisecond, "caching after the failover: %v", r.Stats().LastError)
			}
			ts, err := r.DescribeTopology(ctx)
			require.NoError(t, err)
			assert.Equal(t, 3, ts.SentinelsReachable, "sentinels reachable with their password")
			assert.NotEmpty(t, ts.Master)

			var body string
			require.Eventually(t, func() bool {
				body = health()
				return strings.Contains(body, `"redis:sentinels"`) && strings.Contains(body, `"reachable":3`)
			}, 10*time.Second, 50*time.Millisecond, "/health shows the sentinels: %s", body)
			noSecret(t, "logs", logs.String())
			noSecret(t, "/health", body)
			noSecret(t, "String", r.String()+" "+cfg.String())
			noSecret(t, "Stats", r.Stats().LastError)
		})
	}

	t.Run("wrong sentinel password", func(t *testing.T) {
		t.Setenv(resilience.EnvURL, strings.Replace(base, sentinelSecret, "not-"+sentinelSecret, 1)+"&password="+dataSecret)
		cfg, err := resilience.ConfigFromEnv()
		require.NoError(t, err)
		var logs testlog.Buffer
		r, err := resilience.NewRedis(cfg, resilience.Options{OpTimeout: 100 * time.Millisecond, Logger: logs.Text(slog.LevelDebug)})
		require.NoError(t, err)
		defer func() { assert.NoError(t, r.Close()) }()
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		err = r.WaitReady(wctx)
		require.Error(t, err)
		assert.Contains(t, err.Error(), resilience.EnvURL, "the error names the variable")
		assert.Contains(t, err.Error(), "sentinels refused their credentials")
		noSecret(t, "WaitReady's error", err.Error())
		noSecret(t, "logs", logs.String())
		assert.NotEmpty(t, logs.Lines("sentinels refused their credentials"), "the warning says why:\n%s", logs.String())
		body := healthFor(t, r, logs.Text(slog.LevelDebug))()
		noSecret(t, "/health", body)
	})
}

// healthFor serves /health for r, details shown, logging into log, and
// returns a func that reads it.
func healthFor(t *testing.T, r *resilience.Redis, log *slog.Logger) func() string {
	t.Helper()
	h, err := healthhandler.New(healthhandler.Options{ShowDetails: func(*http.Request) bool { return true }, Logger: log})
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	c, err := healthhandler.Redis(r, healthhandler.RedisOptions{Interval: 50 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, h.Add(c))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return func() string {
		resp, err := http.Get(srv.URL + "/health")
		if err != nil {
			return err.Error()
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
}

// noSecret fails the test if text holds either password.
func noSecret(t *testing.T, where, text string) {
	t.Helper()
	for _, s := range []string{sentinelSecret, dataSecret} {
		assert.NotContains(t, text, s, "%s shows a password", where)
	}
}
