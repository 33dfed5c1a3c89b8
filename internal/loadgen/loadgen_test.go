package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingServer answers 200 "ok" and counts requests, paths and new
// connections.
type countingServer struct {
	*httptest.Server
	requests atomic.Int64
	conns    atomic.Int64
	mu       sync.Mutex
	paths    map[string]int
}

func newCountingServer(t *testing.T, h http.HandlerFunc) *countingServer {
	t.Helper()
	cs := &countingServer{paths: map[string]int{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.requests.Add(1)
		cs.mu.Lock()
		cs.paths[r.URL.Path]++
		cs.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			cs.conns.Add(1)
		}
	}
	srv.Start()
	cs.Server = srv
	t.Cleanup(srv.Close)
	return cs
}

func TestRunRequestCap(t *testing.T) {
	tests := []struct {
		name        string
		connections int
		requests    int
	}{
		{name: "one worker", connections: 1, requests: 25},
		{name: "several workers", connections: 4, requests: 200},
		{name: "more workers than requests", connections: 8, requests: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newCountingServer(t, nil)
			res, err := Run(context.Background(), Options{URL: srv.URL, Connections: tc.connections, Requests: tc.requests})
			require.NoError(t, err, "Run")
			assert.Equal(t, int64(tc.requests), srv.requests.Load(), "requests the server saw")
			assert.Equal(t, tc.requests, res.Requests, "Result.Requests (errors: %v)", res.ErrorText)
			assert.Zero(t, res.Errors, "Result.Errors (errors: %v)", res.ErrorText)
			assert.Equal(t, tc.requests, res.Status[http.StatusOK], "200s in Status %v", res.Status)
			assert.Len(t, res.Samples, tc.requests, "Samples")
			conns := srv.conns.Load()
			assert.True(t, conns >= 1 && conns <= int64(tc.connections), "server saw %d connections, want 1 to %d (keep-alive)", conns, tc.connections)
			assert.False(t, res.P50 <= 0 || res.P50 > res.P90 || res.P90 > res.P99 || res.P99 > res.Max,
				"percentiles out of order: p50=%v p90=%v p99=%v max=%v", res.P50, res.P90, res.P99, res.Max)
			assert.Positive(t, res.Throughput, "Throughput")
			assert.Positive(t, res.Elapsed, "Elapsed")
			for i := 1; i < len(res.Samples); i++ {
				require.GreaterOrEqual(t, res.Samples[i].Start, res.Samples[i-1].Start, "Samples not in start order at %d", i)
			}
		})
	}
}

func TestRunDuration(t *testing.T) {
	srv := newCountingServer(t, nil)
	before := time.Now()
	res, err := Run(context.Background(), Options{URL: srv.URL, Connections: 2, Duration: 50 * time.Millisecond})
	require.NoError(t, err, "Run")
	assert.False(t, res.Started.Before(before) || res.Started.After(time.Now()), "Started = %v, want a time during the call (called at %v)", res.Started, before)
	w := res.Between(0, time.Hour)
	assert.True(t, w.Started.Equal(res.Started), "Between kept Started %v, want the run's %v", w.Started, res.Started)
	assert.Equal(t, srv.requests.Load(), int64(res.Requests), "Result.Requests against the requests the server saw")
	for _, s := range res.Samples {
		require.Less(t, s.Start, 50*time.Millisecond, "a request started after the 50ms duration")
	}
	assert.GreaterOrEqual(t, res.Elapsed, 50*time.Millisecond, "Elapsed, want at least the 50ms duration")
}

func TestRunRequestBuilder(t *testing.T) {
	srv := newCountingServer(t, nil)
	const n = 40
	res, err := Run(context.Background(), Options{
		Connections: 3,
		Requests:    n,
		Request: func(ctx context.Context, worker int, seq uint64) (*http.Request, error) {
			if worker < 0 || worker >= 3 {
				return nil, fmt.Errorf("worker %d out of range", worker)
			}
			return http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/item/%d", srv.URL, seq), nil)
		},
	})
	require.NoError(t, err, "Run")
	assert.Equal(t, n, res.Requests, "Requests")
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for i := range n {
		p := fmt.Sprintf("/item/%d", i)
		assert.Equal(t, 1, srv.paths[p], "times path %s was requested (paths: %v)", p, srv.paths)
	}
}

func TestRunBuilderError(t *testing.T) {
	srv := newCountingServer(t, nil)
	boom := errors.New("boom")
	_, err := Run(context.Background(), Options{
		Connections: 2,
		Duration:    time.Hour,
		Request: func(ctx context.Context, _ int, seq uint64) (*http.Request, error) {
			if seq == 5 {
				return nil, boom
			}
			return http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		},
	})
	require.ErrorIs(t, err, boom, "Run error")
}

func TestRunNotLoopback(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{name: "URL host name", opts: Options{URL: "http://example.com/", Requests: 1}},
		{name: "URL localhost name", opts: Options{URL: "http://localhost:1/", Requests: 1}},
		{name: "URL public IP", opts: Options{URL: "http://192.0.2.1:80/", Requests: 1}},
		{name: "builder public IP", opts: Options{Requests: 1, Request: func(ctx context.Context, _ int, _ uint64) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, http.MethodGet, "http://192.0.2.1/", nil)
		}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.opts)
			require.ErrorIs(t, err, ErrNotLoopback, "Run error")
		})
	}
}

func TestRunRedirectToOtherHostNotFollowed(t *testing.T) {
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://192.0.2.1/", http.StatusFound)
	})
	res, err := Run(context.Background(), Options{URL: srv.URL, Requests: 3, Connections: 1})
	require.NoError(t, err, "Run")
	assert.Equal(t, 3, res.Status[http.StatusFound], "302s in Status %v (redirects not followed)", res.Status)
}

func TestRunInvalidOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{name: "nothing to send", opts: Options{}, want: "both empty"},
		{name: "negative connections", opts: Options{URL: "http://127.0.0.1:1/", Connections: -1}, want: "negative"},
		{name: "negative rate", opts: Options{URL: "http://127.0.0.1:1/", Rate: -1}, want: "negative"},
		{name: "bad URL", opts: Options{URL: "http://127.0.0.1:1/%zz"}, want: "Options.URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.opts)
			require.ErrorContains(t, err, tc.want, "Run error")
		})
	}
}

func TestRunCountsErrors(t *testing.T) {
	srv := newCountingServer(t, nil)
	url := srv.URL
	srv.Close() // nothing listens any more
	res, err := Run(context.Background(), Options{URL: url, Requests: 5, Connections: 1})
	require.NoError(t, err, "Run")
	assert.Equal(t, 5, res.Errors, "Errors")
	assert.Zero(t, res.Requests, "Requests")
	assert.NotEmpty(t, res.ErrorText, "ErrorText is empty, want the refusal's message")
	for _, s := range res.Samples {
		assert.True(t, s.Err, "sample %+v, want Err and Status 0", s)
		assert.Zero(t, s.Status, "sample %+v, want Err and Status 0", s)
	}
}

func TestRunTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	res, err := Run(context.Background(), Options{URL: srv.URL, Requests: 2, Connections: 1, Timeout: 20 * time.Millisecond})
	require.NoError(t, err, "Run")
	assert.Equal(t, 2, res.Errors, "Errors, want 2 timed-out requests (status %v)", res.Status)
	assert.GreaterOrEqual(t, res.Max, 20*time.Millisecond, "Max, want at least the 20ms timeout")
}

func TestRunStatusAndClasses(t *testing.T) {
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") == "1" {
			w.Header().Set("X-Class", "bad")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("X-Class", "good")
		_, _ = w.Write([]byte(strings.Repeat("x", 4096)))
	})
	res, err := Run(context.Background(), Options{
		Connections: 2,
		Requests:    30,
		Request: func(ctx context.Context, _ int, seq uint64) (*http.Request, error) {
			q := ""
			if seq%3 == 0 {
				q = "?fail=1"
			}
			return http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/"+q, nil)
		},
		Classify: func(resp *http.Response) string { return resp.Header.Get("X-Class") },
	})
	require.NoError(t, err, "Run")
	assert.Equal(t, 10, res.Status[503], "503s in Status %v", res.Status)
	assert.Equal(t, 20, res.Status[200], "200s in Status %v", res.Status)
	assert.Equal(t, 10, res.ServerErrors(), "ServerErrors")
	assert.Equal(t, 10, res.Classes["bad"], "Classes %v", res.Classes)
	assert.Equal(t, 20, res.Classes["good"], "Classes %v", res.Classes)
}

func TestRunRate(t *testing.T) {
	srv := newCountingServer(t, nil)
	const rate = 200.0 // one request every 5ms
	res, err := Run(context.Background(), Options{URL: srv.URL, Connections: 4, Requests: 10, Rate: rate})
	require.NoError(t, err, "Run")
	require.Equal(t, 10, res.Requests, "Requests")
	for i, s := range res.Samples {
		due := time.Duration(float64(i) / rate * float64(time.Second))
		assert.GreaterOrEqual(t, s.Start, due, "request %d started before its turn", i)
	}
}

func TestRunRateStopsAtDuration(t *testing.T) {
	srv := newCountingServer(t, nil)
	res, err := Run(context.Background(), Options{URL: srv.URL, Connections: 2, Duration: 30 * time.Millisecond, Rate: 100})
	require.NoError(t, err, "Run")
	// Turns come at 0, 10 and 20 ms; the one at 30 ms is past the end.
	assert.LessOrEqual(t, res.Requests, 3, "Requests, want at most 3 at 100/s for 30ms")
}

func TestRunContextCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := newCountingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		cancel()
		_, _ = w.Write([]byte("ok"))
	})
	_, err := Run(ctx, Options{URL: srv.URL, Connections: 2, Duration: time.Hour})
	require.ErrorIs(t, err, context.Canceled, "Run error")
}
