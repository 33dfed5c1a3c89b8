package middleware

import (
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/steadfast-go/steadfast/internal/testlog"
)

// statusHandler answers the status held in status and counts its calls.
type statusHandler struct {
	status atomic.Int64
	calls  atomic.Int64
}

func newStatusHandler(status int) *statusHandler {
	h := new(statusHandler)
	h.status.Store(int64(status))
	return h
}

func (h *statusHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	h.calls.Add(1)
	w.WriteHeader(int(h.status.Load()))
	_, _ = io.WriteString(w, "from handler")
}

// serve runs one request through h and returns what the client got.
func serve(h http.Handler, method string) *httptest.ResponseRecorder {
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(method, "/upstream", nil))
	return rr
}

// changeLog collects state changes.
type changeLog struct {
	mu      sync.Mutex
	changes []string
}

func (c *changeLog) record(ch BreakerStateChange) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes = append(c.changes, ch.From.String()+">"+ch.To.String())
}

func (c *changeLog) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.changes)
}

func TestBreakerLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs testlog.Buffer
		var changes changeLog
		var b *Breaker
		b, err := NewBreaker(BreakerOptions{
			Name:             "upstream",
			FailureThreshold: 3,
			Delay:            10 * time.Second,
			SuccessThreshold: 2,
			OnStateChange: func(c BreakerStateChange) {
				changes.record(c)
				// The callback may read the breaker: no lock is held.
				if s := b.Stats(); s.State != c.To || !s.Since.Equal(c.At) {
					t.Errorf("Stats() in OnStateChange(%+v) = %+v, want the new state since the change", c, s)
				}
			},
			Logger: logs.Text(slog.LevelInfo),
		})
		if err != nil {
			t.Fatal(err)
		}
		h := newStatusHandler(http.StatusBadGateway)
		guarded := b.Handler(h)

		for i := range 3 {
			if rr := serve(guarded, http.MethodGet); rr.Code != http.StatusBadGateway {
				t.Fatalf("request %d: status %d, want the handler's 502", i, rr.Code)
			}
		}
		openedAt := time.Now()
		if s := b.Stats(); s.State != BreakerOpen || !s.Since.Equal(openedAt) || s.Failures != 3 {
			t.Fatalf("after 3 failures Stats() = %+v, want open since %v with 3 failures", s, openedAt)
		}

		// Open: turned away without calling the handler.
		rr := serve(guarded, http.MethodGet)
		if rr.Code != http.StatusServiceUnavailable || rr.Header().Get("Retry-After") != "10" ||
			!strings.Contains(rr.Body.String(), "circuit breaker open") {
			t.Errorf("open breaker answered %d, Retry-After %q, body %q; want 503, 10, a short text",
				rr.Code, rr.Header().Get("Retry-After"), rr.Body.String())
		}
		time.Sleep(6 * time.Second)
		if rr := serve(guarded, http.MethodGet); rr.Header().Get("Retry-After") != "4" {
			t.Errorf("6s later Retry-After = %q, want 4", rr.Header().Get("Retry-After"))
		}
		if got := h.calls.Load(); got != 3 {
			t.Errorf("handler calls while open = %d, want 3 (none while open)", got)
		}
		if got := b.Stats().Rejected; got != 2 {
			t.Errorf("Stats().Rejected = %d, want 2", got)
		}

		// After the delay: half-open, trials go through, 2 successes close.
		time.Sleep(4 * time.Second)
		h.status.Store(http.StatusOK)
		if rr := serve(guarded, http.MethodGet); rr.Code != http.StatusOK {
			t.Fatalf("first trial status %d, want 200", rr.Code)
		}
		if s := b.Stats(); s.State != BreakerHalfOpen || s.Successes != 1 {
			t.Errorf("after one trial Stats() = %+v, want half-open with 1 success", s)
		}
		serve(guarded, http.MethodGet)
		if s := b.Stats(); s.State != BreakerClosed || !s.Since.Equal(time.Now()) {
			t.Errorf("after two trials Stats() = %+v, want closed since now", s)
		}

		want := []string{"closed>open", "open>half-open", "half-open>closed"}
		if got := changes.get(); !slices.Equal(got, want) {
			t.Errorf("state changes %v, want %v", got, want)
		}
		lines := logs.Lines()
		if len(lines) != len(want) {
			t.Fatalf("log lines %q, want one per state change", lines)
		}
		for i, line := range lines {
			from, to, _ := strings.Cut(want[i], ">")
			for _, attr := range []string{LogKeyBreaker + "=upstream", LogKeyFrom + "=" + from, LogKeyTo + "=" + to} {
				if !strings.Contains(line, attr) {
					t.Errorf("log line %q lacks %s", line, attr)
				}
			}
		}
		if !strings.Contains(lines[0], "level=WARN") {
			t.Errorf("opening logged as %q, want level WARN", lines[0])
		}
	})
}

func TestBreakerHalfOpenReopensOnFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var changes changeLog
		b, err := NewBreaker(BreakerOptions{
			FailureThreshold: 1, Delay: time.Second, OnStateChange: changes.record,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		h := newStatusHandler(http.StatusInternalServerError)
		guarded := b.Handler(h)
		serve(guarded, http.MethodGet)
		time.Sleep(time.Second)
		if rr := serve(guarded, http.MethodGet); rr.Code != http.StatusInternalServerError {
			t.Fatalf("trial status %d, want the handler's 500", rr.Code)
		}
		if rr := serve(guarded, http.MethodGet); rr.Code != http.StatusServiceUnavailable {
			t.Errorf("after a failed trial status %d, want 503 from the open breaker", rr.Code)
		}
		want := []string{"closed>open", "open>half-open", "half-open>open"}
		if got := changes.get(); !slices.Equal(got, want) {
			t.Errorf("state changes %v, want %v", got, want)
		}
		if got := h.calls.Load(); got != 2 {
			t.Errorf("handler calls = %d, want 2", got)
		}
	})
}

func TestBreakerHalfOpenTrialLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := NewBreaker(BreakerOptions{
			FailureThreshold: 1, Delay: time.Second, SuccessThreshold: 1, HalfOpenRequests: 2,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		release := make(chan struct{})
		var calls atomic.Int64
		guarded := b.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if calls.Add(1) == 1 {
				w.WriteHeader(http.StatusInternalServerError) // opens the breaker
				return
			}
			<-release
		}))
		serve(guarded, http.MethodGet)
		time.Sleep(time.Second)

		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { serve(guarded, http.MethodGet) })
		}
		synctest.Wait() // both trials are inside the handler
		if rr := serve(guarded, http.MethodGet); rr.Code != http.StatusServiceUnavailable {
			t.Errorf("third request while 2 trials run: status %d, want 503", rr.Code)
		}
		if got := calls.Load(); got != 3 {
			t.Errorf("handler calls = %d, want 1 + 2 trials", got)
		}
		close(release)
		wg.Wait()
		if s := b.Stats(); s.State != BreakerClosed {
			t.Errorf("after successful trials state %v, want closed", s.State)
		}
	})
}

func TestBreakerIsFailureAndFallback(t *testing.T) {
	b, err := NewBreaker(BreakerOptions{
		FailureThreshold: 2,
		IsFailure:        func(status int, _ bool) bool { return status == http.StatusTooManyRequests },
		Fallback: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, "fallback")
		}),
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	h := newStatusHandler(http.StatusInternalServerError)
	guarded := b.Handler(h)
	for range 3 {
		serve(guarded, http.MethodGet)
	}
	if s := b.Stats(); s.State != BreakerClosed || s.Failures != 0 {
		t.Fatalf("after 500s that are not failures Stats() = %+v, want closed, 0 failures", s)
	}
	h.status.Store(http.StatusTooManyRequests)
	serve(guarded, http.MethodGet)
	serve(guarded, http.MethodGet)
	rr := serve(guarded, http.MethodGet)
	if rr.Code != http.StatusOK || rr.Body.String() != "fallback" {
		t.Errorf("open breaker answered %d %q, want the fallback's 200 %q", rr.Code, rr.Body.String(), "fallback")
	}
	if got := h.calls.Load(); got != 5 {
		t.Errorf("handler calls = %d, want 5", got)
	}
}

func TestBreakerStatsCounts(t *testing.T) {
	b, err := NewBreaker(BreakerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := newStatusHandler(http.StatusServiceUnavailable)
	guarded := b.Handler(h)
	serve(guarded, http.MethodGet)
	serve(guarded, http.MethodGet)
	h.status.Store(http.StatusNotFound)
	serve(guarded, http.MethodGet)
	// A handler that writes nothing counts as its implicit 200.
	b.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(
		httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))

	s := b.Stats()
	if s.State != BreakerClosed || s.Executions != 4 || s.Failures != 2 || s.Successes != 2 || s.Rejected != 0 {
		t.Errorf("Stats() = %+v, want closed, 4 executions, 2 failures, 2 successes", s)
	}
}

func TestBreakerPanics(t *testing.T) {
	tests := []struct {
		name          string
		recoverPanics bool
		handler       http.HandlerFunc
		wantPanic     any // nil: no panic reaches the caller
		wantStatus    int
		wantLogLines  int
	}{
		{
			name:      "passes on without recovery",
			handler:   func(http.ResponseWriter, *http.Request) { panic("boom") },
			wantPanic: "boom",
		},
		{
			name:          "500 with recovery",
			recoverPanics: true,
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Length", "999")
				panic("boom")
			},
			wantStatus:   http.StatusInternalServerError,
			wantLogLines: 1,
		},
		{
			name:          "ErrAbortHandler passes on with recovery",
			recoverPanics: true,
			handler:       func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) },
			wantPanic:     http.ErrAbortHandler,
		},
		{
			name:          "aborts after part of the response went out",
			recoverPanics: true,
			handler: func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, "partial")
				panic("boom")
			},
			wantPanic:    http.ErrAbortHandler,
			wantStatus:   http.StatusOK,
			wantLogLines: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs testlog.Buffer
			b, err := NewBreaker(BreakerOptions{FailureThreshold: 1, RecoverPanics: tc.recoverPanics, Logger: logs.Text(slog.LevelInfo)})
			if err != nil {
				t.Fatal(err)
			}
			rr := httptest.NewRecorder()
			got := func() (v any) {
				defer func() { v = recover() }()
				b.Handler(tc.handler).ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/p", nil))
				return nil
			}()
			if got != tc.wantPanic {
				t.Errorf("panic reaching the caller = %v, want %v", got, tc.wantPanic)
			}
			if tc.wantStatus != 0 && rr.Code != tc.wantStatus {
				t.Errorf("status = %d, want %d", rr.Code, tc.wantStatus)
			}
			if tc.wantStatus == http.StatusInternalServerError && rr.Header().Get("Content-Length") != "" {
				t.Errorf("500 kept the handler's Content-Length %q", rr.Header().Get("Content-Length"))
			}
			if s := b.Stats(); s.State != BreakerOpen {
				t.Errorf("state after a panic = %v, want open: a panic is a failure", s.State)
			}
			var panicLines []string
			for _, line := range logs.Lines() {
				if strings.Contains(line, "panic") {
					panicLines = append(panicLines, line)
				}
			}
			if len(panicLines) != tc.wantLogLines {
				t.Fatalf("panic log lines %q, want %d", panicLines, tc.wantLogLines)
			}
			for _, line := range panicLines {
				if !strings.Contains(line, LogKeyPanic+"=boom") || !strings.Contains(line, LogKeyStack+"=") ||
					!strings.Contains(line, LogKeyPath+"=/p") {
					t.Errorf("panic log line %q lacks the value, stack or path", line)
				}
			}
		})
	}
}

func TestBreakerReleasesPermitOnGoexit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := NewBreaker(BreakerOptions{FailureThreshold: 1, Delay: time.Second, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		fail := newStatusHandler(http.StatusInternalServerError)
		serve(b.Handler(fail), http.MethodGet)
		time.Sleep(time.Second)
		done := make(chan struct{})
		go func() {
			defer close(done)
			serve(b.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
				runtime.Goexit()
			})), http.MethodGet)
		}()
		<-done
		// The trial ended, as a failure: the breaker is open again rather
		// than stuck half-open with its only permit taken.
		if s := b.Stats(); s.State != BreakerOpen {
			t.Errorf("state after a trial that called Goexit = %v, want open", s.State)
		}
	})
}

func TestNewBreakerOptions(t *testing.T) {
	tests := []struct {
		name      string
		opts      BreakerOptions
		wantField string // "" means valid
	}{
		{"zero value", BreakerOptions{}, ""},
		{"all set", BreakerOptions{FailureThreshold: 2, Delay: time.Second, SuccessThreshold: 2, HalfOpenRequests: 3}, ""},
		{"negative FailureThreshold", BreakerOptions{FailureThreshold: -1}, "FailureThreshold"},
		{"negative Delay", BreakerOptions{Delay: -time.Second}, "Delay"},
		{"negative SuccessThreshold", BreakerOptions{SuccessThreshold: -1}, "SuccessThreshold"},
		{"negative HalfOpenRequests", BreakerOptions{HalfOpenRequests: -1}, "HalfOpenRequests"},
		{"HalfOpenRequests below SuccessThreshold", BreakerOptions{SuccessThreshold: 3, HalfOpenRequests: 2}, "HalfOpenRequests"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := NewBreaker(tc.opts)
			if tc.wantField == "" {
				if err != nil || b == nil {
					t.Fatalf("NewBreaker(%+v) = %v, %v; want a breaker", tc.opts, b, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), tc.wantField) {
				t.Errorf("NewBreaker(%+v) error = %v, want ErrInvalidOption naming %s", tc.opts, err, tc.wantField)
			}
		})
	}
}

func TestBreakerStateString(t *testing.T) {
	for s, want := range map[BreakerState]string{
		BreakerClosed: "closed", BreakerOpen: "open", BreakerHalfOpen: "half-open", BreakerState(7): "BreakerState(7)",
	} {
		if got := s.String(); got != want {
			t.Errorf("BreakerState(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

// discardWriter is the cheapest ResponseWriter, for benchmarks.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// benchHandler is the handler benchmarks wrap: a header, a status, a body.
var benchBody = []byte(`{"ok":true}`)

func benchHandler(w http.ResponseWriter, _ *http.Request) {
	w.Header()["Content-Type"] = []string{"application/json"}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(benchBody)
}

// runBench serves req with h b.N times.
func runBench(b *testing.B, h http.Handler) {
	w := &discardWriter{h: make(http.Header)}
	req := httptest.NewRequest(http.MethodGet, "/upstream", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}

// BenchmarkBreaker measures the cost Breaker adds while closed: compare
// "closed" with "bare". Budget: under 2 µs and 20 allocations added.
func BenchmarkBreaker(b *testing.B) {
	b.Run("bare", func(b *testing.B) {
		runBench(b, http.HandlerFunc(benchHandler))
	})
	b.Run("closed", func(b *testing.B) {
		br, err := NewBreaker(BreakerOptions{})
		if err != nil {
			b.Fatal(err)
		}
		runBench(b, br.Handler(http.HandlerFunc(benchHandler)))
	})
}

// TestBreakerIgnoresClientsThatHangUp puts a Breaker around
// httputil.ReverseProxy to a healthy upstream. Five clients hang up while
// the upstream works; the proxy answers each 502 (its upstream request was
// canceled), which must not count: the breaker stays closed and the next
// client is served.
func TestBreakerIgnoresClientsThatHangUp(t *testing.T) {
	arrived := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("slow") != "" {
			arrived <- struct{}{}
			<-r.Context().Done() // slow: the client hangs up first
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	target, err := url.Parse(upstream.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = log.New(io.Discard, "", 0)

	b, err := NewBreaker(BreakerOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	finished := make(chan int, 1)
	guarded := b.Handler(proxy)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		guarded.ServeHTTP(w, r)
		if r.URL.Query().Get("slow") != "" {
			finished <- 0
		}
	}))
	defer front.Close()
	client := front.Client()

	for i := range 5 {
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			<-arrived // the upstream is working on it
			cancel()
		}()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, front.URL+"/?slow=1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("client %d: got %s, want its own cancellation", i, resp.Status)
		}
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Fatalf("client %d: the proxy did not return after the hang-up", i)
		}
	}
	if s := b.Stats(); s.State != BreakerClosed || s.Failures != 0 {
		t.Errorf("after 5 hang-ups Stats() = %+v, want closed with no failure", s)
	}
	resp, err := client.Get(front.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Retry-After") != "" {
		t.Errorf("next client got %s (Retry-After %q), want 200 from the healthy upstream",
			resp.Status, resp.Header.Get("Retry-After"))
	}
}

// TestBreakerHalfOpenTrialClientLeaves: a trial whose client hangs up says
// nothing about the handler; its permit goes to the next request instead of
// leaving the breaker half-open with no trial left to run.
func TestBreakerHalfOpenTrialClientLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := NewBreaker(BreakerOptions{FailureThreshold: 1, Delay: time.Second, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		h := newStatusHandler(http.StatusInternalServerError)
		guarded := b.Handler(h)
		serve(guarded, http.MethodGet)
		time.Sleep(time.Second)

		ctx, cancel := context.WithCancel(t.Context())
		hangUp := b.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			cancel()
			w.WriteHeader(http.StatusBadGateway)
		}))
		hangUp.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))
		if s := b.Stats(); s.State != BreakerHalfOpen || s.Failures != 0 || s.Successes != 0 {
			t.Fatalf("after a trial whose client left Stats() = %+v, want half-open, nothing counted", s)
		}
		h.status.Store(http.StatusOK)
		if rr := serve(guarded, http.MethodGet); rr.Code != http.StatusOK {
			t.Fatalf("next request got %d, want the handler's 200 as a trial", rr.Code)
		}
		if s := b.Stats(); s.State != BreakerClosed {
			t.Errorf("after a successful trial state %v, want closed", s.State)
		}
	})
}
