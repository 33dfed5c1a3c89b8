package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/internal/testlog"
)

// requirePrometheusEnv turns a missing prometheus binary from a skip into
// a failure (CI sets it).
const requirePrometheusEnv = "STEADFAST_REQUIRE_PROMETHEUS"

// prometheusServer is a real Prometheus process owned by a test, scraping
// one target every scrapeInterval.
type prometheusServer struct {
	t    *testing.T
	base string
	out  *testlog.Buffer
}

const scrapeInterval = 200 * time.Millisecond

// startPrometheus starts Debian's prometheus on a free loopback port with
// a scrape configuration for target (host:port), and waits until it is
// ready. It is killed, by its own PID, when the test ends.
func startPrometheus(t *testing.T, target string) *prometheusServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv(requirePrometheusEnv) == "1" {
			require.Failf(t, "prometheus not found", "%s=1: %v", requirePrometheusEnv, err)
		}
		t.Skipf("prometheus not found (apt-get install prometheus; set %s=1 to fail instead): %v", requirePrometheusEnv, err)
	}
	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  evaluation_interval: 1s
scrape_configs:
  - job_name: echo
    scrape_interval: %[1]s
    scrape_timeout: %[1]s
    static_configs:
      - targets: ['%[2]s']
`, scrapeInterval, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(config), 0o600))
	port := redistest.FreePort(t)
	p := &prometheusServer{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), out: &testlog.Buffer{}}
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+fmt.Sprintf("127.0.0.1:%d", port),
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = p.out, p.out
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("prometheus output:\n%s", p.out.String())
		}
	})
	until(t, 30*time.Second, "prometheus ready", func() bool {
		select {
		case <-done:
			require.Failf(t, "prometheus exited early", "%s", p.out.String())
		default:
		}
		resp, err := http.Get(p.base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// query runs an instant PromQL query and returns the value of each series
// of the vector it gives, by the value of label (or "" for all).
func (p *prometheusServer) query(q, label string) map[string]float64 {
	p.t.Helper()
	resp, err := http.Get(p.base + "/api/v1/query?query=" + url.QueryEscape(q))
	require.NoError(p.t, err)
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	require.NoError(p.t, json.NewDecoder(resp.Body).Decode(&body))
	require.Equal(p.t, "success", body.Status, "query %s: %s", q, body.Error)
	out := map[string]float64{}
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		require.NoError(p.t, err, "query %s: value %v", q, r.Value)
		out[r.Metric[label]] = v
	}
	return out
}

// await waits until the query's series with label value key reaches at
// least want (Prometheus has scraped what the test did), and returns it.
func (p *prometheusServer) await(q, label, key string, want float64) float64 {
	p.t.Helper()
	var got float64
	until(p.t, 20*time.Second, fmt.Sprintf("%s{%s=%q} >= %v (last %v)", q, label, key, want, &got), func() bool {
		v, ok := p.query(q, label)[key]
		got = v
		return ok && v >= want
	})
	return got
}

// dashboardQueries returns the PromQL of every panel of
// grafana-dashboard.json.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("grafana-dashboard.json")
	require.NoError(t, err)
	var d struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &d))
	var qs []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			qs = append(qs, tg.Expr)
		}
	}
	require.NotEmpty(t, qs)
	return qs
}

// TestMetricsPrometheus drives the example against a real redis-server
// and checks, through a real Prometheus that scrapes /metrics, the series
// operators chart: hits, misses, Redis operation durations, live workers,
// and during a Redis outage the bypasses and the open breaker.
func TestMetricsPrometheus(t *testing.T) {
	if _, err := exec.LookPath("prometheus"); err != nil && os.Getenv(requirePrometheusEnv) != "1" {
		t.Skipf("prometheus not found (apt-get install prometheus; set %s=1 to fail instead)", requirePrometheusEnv)
	}
	rs := redistest.Start(t, redistest.Options{})
	s := startServer(t, "REDIS_URL="+rs.URL(), "ITEM_DELAY=1ms", "UPSTREAM_FAIL_RATE=0")
	target, err := url.Parse(s.base)
	require.NoError(t, err)
	prom := startPrometheus(t, target.Host)
	prom.await(`up{job="echo"}`, "job", "echo", 1)

	const route = "GET /items/{id}"
	lookups := func(result string) string {
		return fmt.Sprintf(`sum by (http_route) (steadfast_cache_lookups_total{result=%q})`, result)
	}

	// Two misses, then hits once the entries are stored.
	for _, id := range []string{"1", "2"} {
		r := s.do("GET", "/items/"+id, "")
		require.Equal(t, http.StatusOK, r.status)
	}
	until(t, 10*time.Second, "items stored", func() bool {
		return strings.HasPrefix(s.do("GET", "/items/1", "").cacheStatus, "steadfast; hit")
	})
	// On a loaded machine an operation can miss the guard's 50 ms
	// deadline and bypass: count the hits that happened.
	const hits = 5
	n := 0
	until(t, 20*time.Second, "five hits", func() bool {
		if strings.HasPrefix(s.do("GET", "/items/1", "").cacheStatus, "steadfast; hit") {
			n++
		}
		return n >= hits
	})
	prom.await(lookups("miss"), "http_route", route, 2)
	prom.await(lookups("hit"), "http_route", route, hits)
	prom.await(`steadfast_cache_stores_total{outcome="stored"}`, "outcome", "stored", 2)
	prom.await(`sum by (db_operation_name) (db_client_operation_duration_seconds_count{db_system_name="redis"})`,
		"db_operation_name", "GET", 2+hits)
	prom.await(`sum by (db_operation_name) (db_client_operation_duration_seconds_count{db_system_name="redis"})`,
		"db_operation_name", "SET", 2)
	// The histogram has buckets: a quantile can be charted.
	until(t, 20*time.Second, "a GET latency quantile", func() bool {
		return len(prom.query(`histogram_quantile(0.99, sum by (le) (rate(db_client_operation_duration_seconds_bucket{db_operation_name="GET"}[1m])))`, "")) > 0
	})
	prom.await(`steadfast_health_workers`, "check", "workers", 1)
	require.Equal(t, float64(0), prom.query(`steadfast_breaker_state`, "breaker")["redis"], "redis breaker closed")

	// Redis goes away: requests bypass the cache, the breaker opens.
	rs.Kill()
	for range 10 {
		r := s.do("GET", "/items/3", "")
		require.Equal(t, http.StatusOK, r.status)
	}
	prom.await(`sum by (reason) (steadfast_cache_lookups_total{result="bypass"})`, "reason", "redis-unavailable", 1)
	prom.await(`steadfast_breaker_state`, "breaker", "redis", 1)
	prom.await(`steadfast_breaker_transitions_total{to="open"}`, "breaker", "redis", 1)
	prom.await(`steadfast_health_check_status`, "check", "redis", 1) // warn: Redis is not critical here
	failed := prom.query(`sum by (db_operation_name) (db_client_operation_duration_seconds_count{error_type!=""})`, "db_operation_name")
	require.NotEmpty(t, failed, "no failed Redis operation recorded")

	// Redis is back: the prober closes the breaker by itself.
	rs.Restart()
	prom.await(`steadfast_breaker_transitions_total{to="closed"}`, "breaker", "redis", 1)
	prom.await(`steadfast_breaker_state == 0`, "breaker", "redis", 0)

	// Every query of the shipped Grafana dashboard is valid PromQL, and
	// each panel shows data after this run (the live workers once the
	// workers check ran again since Redis came back: while it cannot
	// count them, the series is absent rather than zero).
	for _, q := range dashboardQueries(t) {
		expr := strings.NewReplacer("$job", ".*", "$__rate_interval", "1m").Replace(q)
		until(t, 20*time.Second, "dashboard query gives series: "+expr, func() bool {
			return len(prom.query(expr, "")) > 0
		})
	}

	// The route label holds patterns only: never a URL, key or id.
	for v := range prom.query(`count by (http_route) ({job="echo", http_route!=""})`, "http_route") {
		require.Equal(t, route, v, "an http_route label that is not the pattern")
	}
}
