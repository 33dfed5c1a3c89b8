package main

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/internal/testlog"
)

const password = "s3cret-Pa55"

// binary is the example built once for all tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "echo-server-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "echo-server")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build echo-server:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// server is one running echo-server process.
type server struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	out  *testlog.Buffer
	done chan struct{}
	err  error
}

// cleanEnv is the test's environment without any Redis or example setting.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "REDIS_URL", "REDISHOST", "REDISPORT", "REDISUSER", "REDIS_PASSWORD", "REDIS_DB",
			"ADDR", "ITEM_DELAY", "WORKERS", "UPSTREAM_FAIL_RATE", "CELERY_CHECK", "ASYNQ_CHECK", "HEALTH_TOKEN", "NEAR_CACHE":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

func startServer(t *testing.T, env ...string) *server {
	t.Helper()
	port := redistest.FreePort(t)
	s := &server{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), out: &testlog.Buffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(binary)
	s.cmd.Env = cleanEnv(append(env, fmt.Sprintf("ADDR=127.0.0.1:%d", port))...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	require.NoError(t, s.cmd.Start())
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
		assert.NotContains(t, s.out.String(), password, "a log line shows the password")
		if t.Failed() {
			t.Logf("echo-server output:\n%s", s.out.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(s.base + "/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-s.done:
			require.Failf(t, "echo-server exited early", "%v\n%s", s.err, s.out.String())
		default:
		}
		if time.Now().After(deadline) {
			require.Failf(t, "echo-server did not answer /health/live", "%s", s.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type reply struct {
	status      int
	cacheStatus string
	body        string
	took        time.Duration
}

func (s *server) do(method, path, body string) reply {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	require.NoError(s.t, err)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err, "%s %s", method, path)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return reply{status: resp.StatusCode, cacheStatus: resp.Header.Get("Cache-Status"), body: string(b), took: time.Since(start)}
}

// until repeats fn every 10 ms until it returns true or limit passes.
func until(t *testing.T, limit time.Duration, what string, fn func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !fn() {
		if time.Since(start) > limit {
			require.Failf(t, what, "not within %v", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func (s *server) healthStatus() (int, string) {
	r := s.do(http.MethodGet, "/health", "")
	var report struct {
		Status string `json:"status"`
	}
	require.NoError(s.t, json.Unmarshal([]byte(r.body), &report), "/health body %q", r.body)
	return r.status, report.Status
}

// itemDelay is the example's simulated work; margin is what a loaded
// 2-core CI machine may add on top of it and of the Redis deadline.
const (
	itemDelay = 50 * time.Millisecond
	opTimeout = 50 * time.Millisecond // resilience.DefaultOpTimeout
	margin    = 400 * time.Millisecond
)

func TestEndToEnd(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{Password: password})
	s := startServer(t, "REDIS_URL="+rs.URL(), "ITEM_DELAY="+itemDelay.String(), "WORKERS=1")

	t.Run("miss then hit", func(t *testing.T) {
		r := s.do(http.MethodGet, "/items/1", "")
		require.Equal(t, http.StatusOK, r.status)
		assert.Contains(t, r.cacheStatus, "fwd=uri-miss")
		until(t, 2*time.Second, "GET /items/1 becomes a hit", func() bool {
			return strings.Contains(s.do(http.MethodGet, "/items/1", "").cacheStatus, "; hit")
		})
	})

	t.Run("compressed and cached", func(t *testing.T) {
		get := func(acceptEncoding string) *http.Response {
			req, err := http.NewRequest(http.MethodGet, s.base+"/items/z", nil)
			require.NoError(t, err)
			req.Header.Set("Accept-Encoding", acceptEncoding) // set: the transport leaves the body encoded
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			t.Cleanup(func() { resp.Body.Close() })
			return resp
		}
		gz := get("gzip")
		require.Equal(t, http.StatusOK, gz.StatusCode)
		assert.Equal(t, "gzip", gz.Header.Get("Content-Encoding"))
		assert.Contains(t, gz.Header.Get("Cache-Status"), "stored")
		until(t, 2*time.Second, "GET /items/z becomes a hit", func() bool {
			return strings.Contains(get("identity").Header.Get("Cache-Status"), "; hit")
		})
		plain := get("identity")
		assert.Empty(t, plain.Header.Get("Content-Encoding"), "a compressed body was stored")
		b, err := io.ReadAll(plain.Body)
		require.NoError(t, err)
		assert.Contains(t, string(b), `"id":"z"`)
		zr, err := gzip.NewReader(get("gzip").Body)
		require.NoError(t, err)
		b, err = io.ReadAll(zr)
		require.NoError(t, err)
		assert.Contains(t, string(b), `"id":"z"`)
	})

	t.Run("a client that hangs up stores nothing", func(t *testing.T) {
		for i := range 5 {
			path := fmt.Sprintf("/items/cut%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), itemDelay/5)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
			require.NoError(t, err)
			req.Header.Set("Cache-Control", "no-cache")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
			cancel()
		}
		for i := range 5 {
			r := s.do(http.MethodGet, fmt.Sprintf("/items/cut%d", i), "")
			require.Equal(t, http.StatusOK, r.status)
			assert.Contains(t, r.body, fmt.Sprintf(`"id":"cut%d"`, i), "an empty or cut body was served: %s", r.cacheStatus)
		}
	})

	t.Run("PUT invalidates", func(t *testing.T) {
		r := s.do(http.MethodPut, "/items/1", `{"name":"changed"}`)
		require.Equal(t, http.StatusOK, r.status, r.body)
		r = s.do(http.MethodGet, "/items/1", "")
		assert.Contains(t, r.body, `"name":"changed"`)
		assert.NotContains(t, r.cacheStatus, "; hit")
	})

	t.Run("health passes", func(t *testing.T) {
		until(t, 10*time.Second, "/health says pass", func() bool {
			code, status := s.healthStatus()
			return code == http.StatusOK && status == "pass"
		})
	})

	t.Run("redis killed", func(t *testing.T) {
		rs.Kill()
		for i := range 30 {
			r := s.do(http.MethodGet, fmt.Sprintf("/items/k%d", i%5), "")
			require.Equal(t, http.StatusOK, r.status, "request %d with Redis down", i)
			assert.Contains(t, r.cacheStatus, "fwd=bypass", "request %d", i)
			assert.Less(t, r.took, itemDelay+margin, "request %d with Redis down", i)
		}
		until(t, 10*time.Second, "/health says warn with 200", func() bool {
			code, status := s.healthStatus()
			return code == http.StatusOK && status == "warn"
		})
		assert.Equal(t, http.StatusOK, s.do(http.MethodGet, "/health/ready", "").status, "readiness with Redis down")
		assert.Equal(t, http.StatusOK, s.do(http.MethodGet, "/health/live", "").status, "liveness with Redis down")
	})

	t.Run("redis restarted", func(t *testing.T) {
		rs.Restart()
		// The prober notices by itself; these requests only observe it.
		took := until(t, time.Second+margin, "caching resumes", func() bool {
			return !strings.Contains(s.do(http.MethodGet, "/items/r", "").cacheStatus, "bypass")
		})
		t.Logf("caching resumed %v after Redis answered", took)
		until(t, 2*time.Second, "GET /items/r becomes a hit", func() bool {
			return strings.Contains(s.do(http.MethodGet, "/items/r", "").cacheStatus, "; hit")
		})
		until(t, 10*time.Second, "/health back to pass", func() bool {
			_, status := s.healthStatus()
			return status == "pass"
		})
	})

	t.Run("redis hung", func(t *testing.T) {
		rs.Pause()
		defer rs.Resume()
		for i := range 10 {
			r := s.do(http.MethodGet, fmt.Sprintf("/items/h%d", i%3), "")
			require.Equal(t, http.StatusOK, r.status, "request %d with Redis hung", i)
			assert.Less(t, r.took, itemDelay+opTimeout+margin, "request %d with Redis hung", i)
		}
	})

	t.Run("SIGTERM exits 0", func(t *testing.T) {
		require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			require.Fail(t, "echo-server did not exit within 15 s of SIGTERM")
		}
		require.NoError(t, s.err, "exit status after SIGTERM")
	})
}

func TestEmbeddedRedis(t *testing.T) {
	s := startServer(t, "ITEM_DELAY=1ms")
	assert.Contains(t, s.out.String(), "embedded Redis")
	r := s.do(http.MethodGet, "/echo?msg=hi", "")
	require.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"msg":"hi"}`, r.body)
	until(t, 2*time.Second, "GET /echo becomes a hit", func() bool {
		return strings.Contains(s.do(http.MethodGet, "/echo?msg=hi", "").cacheStatus, "; hit")
	})
	assert.NotContains(t, s.do(http.MethodGet, "/time", "").cacheStatus, "hit", "/time is never cached")
}

// TestNearCache: NEAR_CACHE=on serves hits from process memory against a
// redis-server (health says so), a PUT still invalidates, and against the
// embedded miniredis it turns itself off with one log line.
func TestNearCache(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{Password: password})
	s := startServer(t, "REDIS_URL="+rs.URL(), "ITEM_DELAY=1ms", "NEAR_CACHE=on")
	until(t, 10*time.Second, "/health shows the near cache serving", func() bool {
		return strings.Contains(s.do(http.MethodGet, "/health", "").body, `"serving":true`)
	})
	s.do(http.MethodGet, "/items/n", "")
	until(t, 2*time.Second, "GET /items/n becomes a hit", func() bool {
		return strings.Contains(s.do(http.MethodGet, "/items/n", "").cacheStatus, "; hit")
	})
	require.Equal(t, http.StatusOK, s.do(http.MethodPut, "/items/n", `{"name":"near"}`).status)
	assert.Contains(t, s.do(http.MethodGet, "/items/n", "").body, `"name":"near"`, "GET after PUT")

	e := startServer(t, "ITEM_DELAY=1ms", "NEAR_CACHE=on")
	until(t, 10*time.Second, "/health says why the near cache is off", func() bool {
		return strings.Contains(e.do(http.MethodGet, "/health", "").body, "CLIENT TRACKING")
	})
	assert.Equal(t, 1, strings.Count(e.out.String(), "near cache off"), "log lines saying the near cache is off")
}

func TestBadSettingsExit2(t *testing.T) {
	tests := []struct {
		name, env, want string
	}{
		{"malformed REDIS_URL", "REDIS_URL=redis://app:" + password + "@cache.internal:notaport/0", "REDIS_URL"},
		{"bad scheme", "REDIS_URL=http://app:" + password + "@cache.internal:6379", "REDIS_URL"},
		{"port without host", "REDISPORT=6379", "REDISHOST"},
		{"bad ITEM_DELAY", "ITEM_DELAY=soon", "ITEM_DELAY"},
		{"bad CELERY_CHECK", "CELERY_CHECK=yes", "CELERY_CHECK"},
		{"bad NEAR_CACHE", "NEAR_CACHE=yes", "NEAR_CACHE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary)
			cmd.Env = cleanEnv(tc.env, "ADDR=127.0.0.1:0")
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			require.True(t, errors.As(err, &ee), "want an exit error, got %v; output %q", err, out)
			assert.Equal(t, exitUsage, ee.ExitCode(), "output %q", out)
			assert.Contains(t, string(out), tc.want)
			assert.NotContains(t, string(out), password)
			assert.Equal(t, 1, strings.Count(strings.TrimSpace(string(out)), "\n")+1, "want one line, got %q", out)
		})
	}
}
