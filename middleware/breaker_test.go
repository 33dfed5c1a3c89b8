package middleware

import (
	"context"
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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
				s := b.Stats()
				assert.True(t, s.State == c.To && s.Since.Equal(c.At),
					"Stats() in OnStateChange(%+v) = %+v, want the new state since the change", c, s)
			},
			Logger: logs.Text(slog.LevelInfo),
		})
		require.NoError(t, err)
		h := newStatusHandler(http.StatusBadGateway)
		guarded := b.Handler(h)

		for i := range 3 {
			rr := serve(guarded, http.MethodGet)
			require.Equal(t, http.StatusBadGateway, rr.Code, "request %d: want the handler's 502", i)
		}
		openedAt := time.Now()
		s := b.Stats()
		require.True(t, s.State == BreakerOpen && s.Since.Equal(openedAt) && s.Failures == 3,
			"after 3 failures Stats() = %+v, want open since %v with 3 failures", s, openedAt)

		// Open: turned away without calling the handler.
		rr := serve(guarded, http.MethodGet)
		assert.Equal(t, http.StatusServiceUnavailable, rr.Code, "open breaker's status")
		assert.Equal(t, "10", rr.Header().Get("Retry-After"), "open breaker's Retry-After")
		assert.Contains(t, rr.Body.String(), "circuit breaker open", "open breaker's body")
		time.Sleep(6 * time.Second)
		assert.Equal(t, "4", serve(guarded, http.MethodGet).Header().Get("Retry-After"), "6s later Retry-After")
		assert.EqualValues(t, 3, h.calls.Load(), "handler calls while open (none while open)")
		assert.EqualValues(t, 2, b.Stats().Rejected, "Stats().Rejected")

		// After the delay: half-open, trials go through, 2 successes close.
		time.Sleep(4 * time.Second)
		h.status.Store(http.StatusOK)
		require.Equal(t, http.StatusOK, serve(guarded, http.MethodGet).Code, "first trial status")
		s = b.Stats()
		assert.True(t, s.State == BreakerHalfOpen && s.Successes == 1, "after one trial Stats() = %+v, want half-open with 1 success", s)
		serve(guarded, http.MethodGet)
		s = b.Stats()
		assert.True(t, s.State == BreakerClosed && s.Since.Equal(time.Now()), "after two trials Stats() = %+v, want closed since now", s)

		want := []string{"closed>open", "open>half-open", "half-open>closed"}
		assert.Equal(t, want, changes.get(), "state changes")
		lines := logs.Lines()
		require.Len(t, lines, len(want), "log lines %q, want one per state change", lines)
		for i, line := range lines {
			from, to, _ := strings.Cut(want[i], ">")
			for _, attr := range []string{LogKeyBreaker + "=upstream", LogKeyFrom + "=" + from, LogKeyTo + "=" + to} {
				assert.Contains(t, line, attr, "log line lacks %s", attr)
			}
		}
		assert.Contains(t, lines[0], "level=WARN", "opening logged at level WARN")
	})
}

func TestBreakerHalfOpenReopensOnFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var changes changeLog
		b, err := NewBreaker(BreakerOptions{
			FailureThreshold: 1, Delay: time.Second, OnStateChange: changes.record,
			Logger: slog.New(slog.DiscardHandler),
		})
		require.NoError(t, err)
		h := newStatusHandler(http.StatusInternalServerError)
		guarded := b.Handler(h)
		serve(guarded, http.MethodGet)
		time.Sleep(time.Second)
		require.Equal(t, http.StatusInternalServerError, serve(guarded, http.MethodGet).Code, "trial status: want the handler's 500")
		assert.Equal(t, http.StatusServiceUnavailable, serve(guarded, http.MethodGet).Code,
			"after a failed trial: want 503 from the open breaker")
		want := []string{"closed>open", "open>half-open", "half-open>open"}
		assert.Equal(t, want, changes.get(), "state changes")
		assert.EqualValues(t, 2, h.calls.Load(), "handler calls")
	})
}

func TestBreakerHalfOpenTrialLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := NewBreaker(BreakerOptions{
			FailureThreshold: 1, Delay: time.Second, SuccessThreshold: 1, HalfOpenRequests: 2,
			Logger: slog.New(slog.DiscardHandler),
		})
		require.NoError(t, err)
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
		assert.Equal(t, http.StatusServiceUnavailable, serve(guarded, http.MethodGet).Code, "third request while 2 trials run")
		assert.EqualValues(t, 3, calls.Load(), "handler calls: want 1 + 2 trials")
		close(release)
		wg.Wait()
		assert.Equal(t, BreakerClosed, b.Stats().State, "state after successful trials")
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
	require.NoError(t, err)
	h := newStatusHandler(http.StatusInternalServerError)
	guarded := b.Handler(h)
	for range 3 {
		serve(guarded, http.MethodGet)
	}
	s := b.Stats()
	require.True(t, s.State == BreakerClosed && s.Failures == 0, "after 500s that are not failures Stats() = %+v, want closed, 0 failures", s)
	h.status.Store(http.StatusTooManyRequests)
	serve(guarded, http.MethodGet)
	serve(guarded, http.MethodGet)
	rr := serve(guarded, http.MethodGet)
	assert.Equal(t, http.StatusOK, rr.Code, "open breaker: want the fallback's status")
	assert.Equal(t, "fallback", rr.Body.String(), "open breaker: want the fallback's body")
	assert.EqualValues(t, 5, h.calls.Load(), "handler calls")
}

func TestBreakerStatsCounts(t *testing.T) {
	b, err := NewBreaker(BreakerOptions{})
	require.NoError(t, err)
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
	assert.True(t, s.State == BreakerClosed && s.Executions == 4 && s.Failures == 2 && s.Successes == 2 && s.Rejected == 0,
		"Stats() = %+v, want closed, 4 executions, 2 failures, 2 successes", s)
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
			require.NoError(t, err)
			rr := httptest.NewRecorder()
			got := func() (v any) {
				defer func() { v = recover() }()
				b.Handler(tc.handler).ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/p", nil))
				return nil
			}()
			assert.True(t, got == tc.wantPanic, "panic reaching the caller = %v, want %v", got, tc.wantPanic)
			if tc.wantStatus != 0 {
				assert.Equal(t, tc.wantStatus, rr.Code, "status")
			}
			if tc.wantStatus == http.StatusInternalServerError {
				assert.Empty(t, rr.Header().Get("Content-Length"), "500 kept the handler's Content-Length")
			}
			assert.Equal(t, BreakerOpen, b.Stats().State, "state after a panic: a panic is a failure")
			var panicLines []string
			for _, line := range logs.Lines() {
				if strings.Contains(line, "panic") {
					panicLines = append(panicLines, line)
				}
			}
			require.Len(t, panicLines, tc.wantLogLines, "panic log lines %q", panicLines)
			for _, line := range panicLines {
				assert.True(t, strings.Contains(line, LogKeyPanic+"=boom") && strings.Contains(line, LogKeyStack+"=") &&
					strings.Contains(line, LogKeyPath+"=/p"), "panic log line %q lacks the value, stack or path", line)
			}
		})
	}
}

func TestBreakerReleasesPermitOnGoexit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := NewBreaker(BreakerOptions{FailureThreshold: 1, Delay: time.Second, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
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
		assert.Equal(t, BreakerOpen, b.Stats().State, "state after a trial that called Goexit")
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
				require.NoError(t, err, "NewBreaker(%+v): want a breaker", tc.opts)
				require.NotNil(t, b, "NewBreaker(%+v): want a breaker", tc.opts)
				return
			}
			assert.ErrorIs(t, err, ErrInvalidOption, "NewBreaker(%+v)", tc.opts)
			assert.ErrorContains(t, err, tc.wantField, "NewBreaker(%+v): want the error naming the field", tc.opts)
		})
	}
}

func TestBreakerStateString(t *testing.T) {
	for s, want := range map[BreakerState]string{
		BreakerClosed: "closed", BreakerOpen: "open", BreakerHalfOpen: "half-open", BreakerState(7): "BreakerState(7)",
	} {
		assert.Equal(t, want, s.String(), "BreakerState(%d).String()", int(s))
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
		require.NoError(b, err)
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
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = log.New(io.Discard, "", 0)

	b, err := NewBreaker(BreakerOptions{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
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
		require.NoError(t, err)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			require.Failf(t, "request not cancelled", "client %d: got %s, want its own cancellation", i, resp.Status)
		}
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			require.Failf(t, "timed out", "client %d: the proxy did not return after the hang-up", i)
		}
	}
	s := b.Stats()
	assert.True(t, s.State == BreakerClosed && s.Failures == 0, "after 5 hang-ups Stats() = %+v, want closed with no failure", s)
	resp, err := client.Get(front.URL + "/")
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "next client: want 200 from the healthy upstream")
	assert.Empty(t, resp.Header.Get("Retry-After"), "next client: want 200 from the healthy upstream")
}

// TestBreakerHalfOpenTrialClientLeaves: a trial whose client hangs up says
// nothing about the handler; its permit goes to the next request instead of
// leaving the breaker half-open with no trial left to run.
func TestBreakerHalfOpenTrialClientLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := NewBreaker(BreakerOptions{FailureThreshold: 1, Delay: time.Second, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
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
		s := b.Stats()
		require.True(t, s.State == BreakerHalfOpen && s.Failures == 0 && s.Successes == 0,
			"after a trial whose client left Stats() = %+v, want half-open, nothing counted", s)
		h.status.Store(http.StatusOK)
		require.Equal(t, http.StatusOK, serve(guarded, http.MethodGet).Code, "next request: want the handler's 200 as a trial")
		assert.Equal(t, BreakerClosed, b.Stats().State, "state after a successful trial")
	})
}
