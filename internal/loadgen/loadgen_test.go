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
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := srv.requests.Load(); got != int64(tc.requests) {
				t.Errorf("server saw %d requests, want %d", got, tc.requests)
			}
			if res.Requests != tc.requests || res.Errors != 0 {
				t.Errorf("Result Requests=%d Errors=%d, want %d and 0 (errors: %v)", res.Requests, res.Errors, tc.requests, res.ErrorText)
			}
			if res.Status[http.StatusOK] != tc.requests {
				t.Errorf("Status = %v, want %d x 200", res.Status, tc.requests)
			}
			if len(res.Samples) != tc.requests {
				t.Errorf("len(Samples) = %d, want %d", len(res.Samples), tc.requests)
			}
			if got := srv.conns.Load(); got < 1 || got > int64(tc.connections) {
				t.Errorf("server saw %d connections, want 1 to %d (keep-alive)", got, tc.connections)
			}
			if res.P50 <= 0 || res.P50 > res.P90 || res.P90 > res.P99 || res.P99 > res.Max {
				t.Errorf("percentiles out of order: p50=%v p90=%v p99=%v max=%v", res.P50, res.P90, res.P99, res.Max)
			}
			if res.Throughput <= 0 || res.Elapsed <= 0 {
				t.Errorf("Throughput=%v Elapsed=%v, want both above zero", res.Throughput, res.Elapsed)
			}
			for i := 1; i < len(res.Samples); i++ {
				if res.Samples[i].Start < res.Samples[i-1].Start {
					t.Fatalf("Samples not in start order at %d: %v after %v", i, res.Samples[i].Start, res.Samples[i-1].Start)
				}
			}
		})
	}
}

func TestRunDuration(t *testing.T) {
	srv := newCountingServer(t, nil)
	before := time.Now()
	res, err := Run(context.Background(), Options{URL: srv.URL, Connections: 2, Duration: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Started.Before(before) || res.Started.After(time.Now()) {
		t.Errorf("Started = %v, want a time during the call (called at %v)", res.Started, before)
	}
	if w := res.Between(0, time.Hour); !w.Started.Equal(res.Started) {
		t.Errorf("Between kept Started %v, want the run's %v", w.Started, res.Started)
	}
	if int64(res.Requests) != srv.requests.Load() {
		t.Errorf("Result.Requests = %d, server saw %d; want equal", res.Requests, srv.requests.Load())
	}
	for _, s := range res.Samples {
		if s.Start >= 50*time.Millisecond {
			t.Fatalf("a request started at %v, after the 50ms duration", s.Start)
		}
	}
	if res.Elapsed < 50*time.Millisecond {
		t.Errorf("Elapsed = %v, want at least the 50ms duration", res.Elapsed)
	}
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
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Requests != n {
		t.Errorf("Requests = %d, want %d", res.Requests, n)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for i := range n {
		if p := fmt.Sprintf("/item/%d", i); srv.paths[p] != 1 {
			t.Errorf("path %s requested %d times, want once (paths: %v)", p, srv.paths[p], srv.paths)
		}
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
	if !errors.Is(err, boom) {
		t.Fatalf("Run error = %v, want it to wrap %v", err, boom)
	}
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
			if !errors.Is(err, ErrNotLoopback) {
				t.Fatalf("Run error = %v, want ErrNotLoopback", err)
			}
		})
	}
}

func TestRunRedirectToOtherHostNotFollowed(t *testing.T) {
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://192.0.2.1/", http.StatusFound)
	})
	res, err := Run(context.Background(), Options{URL: srv.URL, Requests: 3, Connections: 1})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Status[http.StatusFound] != 3 {
		t.Errorf("Status = %v, want 3 x 302 (redirects not followed)", res.Status)
	}
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
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestRunCountsErrors(t *testing.T) {
	srv := newCountingServer(t, nil)
	url := srv.URL
	srv.Close() // nothing listens any more
	res, err := Run(context.Background(), Options{URL: url, Requests: 5, Connections: 1})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Errors != 5 || res.Requests != 0 {
		t.Errorf("Errors=%d Requests=%d, want 5 and 0", res.Errors, res.Requests)
	}
	if len(res.ErrorText) == 0 {
		t.Errorf("ErrorText is empty, want the refusal's message")
	}
	for _, s := range res.Samples {
		if !s.Err || s.Status != 0 {
			t.Errorf("sample %+v, want Err and Status 0", s)
		}
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
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Errors != 2 {
		t.Errorf("Errors = %d, want 2 timed-out requests (status %v)", res.Errors, res.Status)
	}
	if res.Max < 20*time.Millisecond {
		t.Errorf("Max = %v, want at least the 20ms timeout", res.Max)
	}
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
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Status[503] != 10 || res.Status[200] != 20 {
		t.Errorf("Status = %v, want 10 x 503 and 20 x 200", res.Status)
	}
	if got := res.ServerErrors(); got != 10 {
		t.Errorf("ServerErrors = %d, want 10", got)
	}
	if res.Classes["bad"] != 10 || res.Classes["good"] != 20 {
		t.Errorf("Classes = %v, want bad:10 good:20", res.Classes)
	}
}

func TestRunRate(t *testing.T) {
	srv := newCountingServer(t, nil)
	const rate = 200.0 // one request every 5ms
	res, err := Run(context.Background(), Options{URL: srv.URL, Connections: 4, Requests: 10, Rate: rate})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Requests != 10 {
		t.Fatalf("Requests = %d, want 10", res.Requests)
	}
	for i, s := range res.Samples {
		if due := time.Duration(float64(i) / rate * float64(time.Second)); s.Start < due {
			t.Errorf("request %d started at %v, before its turn at %v", i, s.Start, due)
		}
	}
}

func TestRunRateStopsAtDuration(t *testing.T) {
	srv := newCountingServer(t, nil)
	res, err := Run(context.Background(), Options{URL: srv.URL, Connections: 2, Duration: 30 * time.Millisecond, Rate: 100})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Turns come at 0, 10 and 20 ms; the one at 30 ms is past the end.
	if res.Requests > 3 {
		t.Errorf("Requests = %d, want at most 3 at 100/s for 30ms", res.Requests)
	}
}

func TestRunContextCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := newCountingServer(t, func(w http.ResponseWriter, _ *http.Request) {
		cancel()
		_, _ = w.Write([]byte("ok"))
	})
	_, err := Run(ctx, Options{URL: srv.URL, Connections: 2, Duration: time.Hour})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v, want context.Canceled", err)
	}
}
