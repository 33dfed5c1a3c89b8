package middleware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/steadfast-go/steadfast/internal/testlog"
)

// flakyHandler fails its first failures attempts with status, each with a
// header and a body naming the attempt, then answers 200 "ok". It records
// the request body each attempt saw.
type flakyHandler struct {
	failures int
	status   int
	calls    atomic.Int64
	bodies   []string
}

func (h *flakyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(h.calls.Add(1))
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		h.bodies = append(h.bodies, string(b))
	}
	w.Header().Add("X-Attempt", strconv.Itoa(n))
	if n <= h.failures {
		w.Header().Set("X-Failed", "yes")
		w.WriteHeader(h.status)
		fmt.Fprintf(w, "attempt %d failed", n)
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "ok")
}

func newRetry(t *testing.T, opts RetryOptions) *Retry {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	rt, err := NewRetry(opts)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func TestRetryUntilSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newRetry(t, RetryOptions{InitialDelay: 100 * time.Millisecond})
		h := &flakyHandler{failures: 2, status: http.StatusServiceUnavailable}
		start := time.Now()
		rr := serve(rt.Handler(h), http.MethodGet)
		elapsed := time.Since(start)

		if rr.Code != http.StatusOK || rr.Body.String() != "ok" {
			t.Errorf("client got %d %q, want 200 %q and nothing of the failed attempts", rr.Code, rr.Body.String(), "ok")
		}
		if got := rr.Header(); got.Get("X-Failed") != "" || len(got["X-Attempt"]) != 1 || got.Get("X-Attempt") != "3" {
			t.Errorf("client headers %v, want X-Attempt 3 only", got)
		}
		if got := h.calls.Load(); got != 3 {
			t.Errorf("attempts = %d, want 3", got)
		}
		// Waits of 100 ms and 200 ms, each ±20%, on synctest's clock.
		if elapsed < 240*time.Millisecond || elapsed > 360*time.Millisecond {
			t.Errorf("retrying took %v, want 300ms ±20%%", elapsed)
		}
		if s := rt.Stats(); s.Retries != 2 || s.Exhausted != 0 {
			t.Errorf("Stats() = %+v, want 2 retries, 0 exhausted", s)
		}
	})
}

func TestRetryStopsAtMaxAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newRetry(t, RetryOptions{MaxAttempts: 4})
		h := &flakyHandler{failures: 100, status: http.StatusBadGateway}
		rr := serve(rt.Handler(h), http.MethodGet)

		if got := h.calls.Load(); got != 4 {
			t.Errorf("attempts = %d, want 4", got)
		}
		if rr.Code != http.StatusBadGateway || rr.Body.String() != "attempt 4 failed" {
			t.Errorf("client got %d %q, want the last attempt's 502 %q", rr.Code, rr.Body.String(), "attempt 4 failed")
		}
		if got := rr.Header()["X-Attempt"]; len(got) != 1 || got[0] != "4" {
			t.Errorf("client X-Attempt = %v, want [4]", got)
		}
		if s := rt.Stats(); s.Retries != 3 || s.Exhausted != 1 {
			t.Errorf("Stats() = %+v, want 3 retries, 1 exhausted", s)
		}
	})
}

func TestRetryMethodsAndStatuses(t *testing.T) {
	tests := []struct {
		name      string
		opts      RetryOptions
		method    string
		status    int
		wantCalls int64
	}{
		{"GET 503", RetryOptions{}, http.MethodGet, 503, 2},
		{"HEAD 502", RetryOptions{}, http.MethodHead, 502, 2},
		{"OPTIONS 504", RetryOptions{}, http.MethodOptions, 504, 2},
		{"PUT 503", RetryOptions{}, http.MethodPut, 503, 2},
		{"DELETE 503", RetryOptions{}, http.MethodDelete, 503, 2},
		{"POST never by default", RetryOptions{}, http.MethodPost, 503, 1},
		{"PATCH never by default", RetryOptions{}, http.MethodPatch, 503, 1},
		{"500 not retryable by default", RetryOptions{}, http.MethodGet, 500, 1},
		{"429 not retryable by default", RetryOptions{}, http.MethodGet, 429, 1},
		{"POST when listed", RetryOptions{Methods: []string{http.MethodPost}}, http.MethodPost, 503, 2},
		{"GET when not listed", RetryOptions{Methods: []string{http.MethodPost}}, http.MethodGet, 503, 1},
		{"500 when listed", RetryOptions{Statuses: []int{500}}, http.MethodGet, 500, 2},
		{"503 when not listed", RetryOptions{Statuses: []int{500}}, http.MethodGet, 503, 1},
		{"MaxAttempts 1", RetryOptions{MaxAttempts: 1}, http.MethodGet, 503, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rt := newRetry(t, tc.opts)
				h := &flakyHandler{failures: 1, status: tc.status}
				rr := serve(rt.Handler(h), tc.method)
				if got := h.calls.Load(); got != tc.wantCalls {
					t.Errorf("%s answered %d: attempts = %d, want %d", tc.method, tc.status, got, tc.wantCalls)
				}
				wantStatus := http.StatusOK
				if tc.wantCalls == 1 {
					wantStatus = tc.status
				}
				if rr.Code != wantStatus {
					t.Errorf("client status %d, want %d", rr.Code, wantStatus)
				}
			})
		})
	}
}

func TestRetryNotAfterCommit(t *testing.T) {
	tests := []struct {
		name     string
		opts     RetryOptions
		handler  http.HandlerFunc
		wantBody string
	}{
		{
			name: "flushed",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, "partial")
				w.(http.Flusher).Flush()
				_, _ = io.WriteString(w, " rest")
			},
			wantBody: "partial rest",
		},
		{
			name: "too large to hold",
			opts: RetryOptions{MaxHeldBytes: 4},
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, "0123456789")
			},
			wantBody: "0123456789",
		},
		{
			name: "Retry-After beyond MaxDelay",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Retry-After", "5")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, "later")
			},
			wantBody: "later",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rt := newRetry(t, tc.opts)
				var calls atomic.Int64
				rr := serve(rt.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					calls.Add(1)
					tc.handler(w, r)
				})), http.MethodGet)
				if calls.Load() != 1 {
					t.Errorf("attempts = %d, want 1", calls.Load())
				}
				if rr.Code != http.StatusServiceUnavailable || rr.Body.String() != tc.wantBody {
					t.Errorf("client got %d %q, want 503 %q", rr.Code, rr.Body.String(), tc.wantBody)
				}
			})
		})
	}
}

func TestRetryHonoursDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newRetry(t, RetryOptions{MaxAttempts: 10, InitialDelay: 60 * time.Millisecond})
		h := &flakyHandler{failures: 100, status: http.StatusServiceUnavailable}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		rr := httptest.NewRecorder()
		rt.Handler(h).ServeHTTP(rr, httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))
		elapsed := time.Since(start)

		// Attempt 1 at 0, a wait of 48-72 ms, attempt 2; the next wait
		// (96-144 ms) would end past the deadline, so retrying stops at once.
		if got := h.calls.Load(); got != 2 {
			t.Errorf("attempts = %d, want 2", got)
		}
		if elapsed >= 100*time.Millisecond {
			t.Errorf("answered after %v, at or past the 100ms deadline", elapsed)
		}
		if rr.Code != http.StatusServiceUnavailable || rr.Body.String() != "attempt 2 failed" {
			t.Errorf("client got %d %q, want the last failed response", rr.Code, rr.Body.String())
		}
	})
}

func TestRetryStopsWhenClientGoesAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newRetry(t, RetryOptions{InitialDelay: time.Second})
		h := &flakyHandler{failures: 100, status: http.StatusServiceUnavailable}
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(10*time.Millisecond, cancel)
		start := time.Now()
		rr := httptest.NewRecorder()
		rt.Handler(h).ServeHTTP(rr, httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))

		if got := h.calls.Load(); got != 1 {
			t.Errorf("attempts = %d, want 1", got)
		}
		if elapsed := time.Since(start); elapsed != 10*time.Millisecond {
			t.Errorf("answered after %v, want at the cancellation (10ms)", elapsed)
		}
		if rr.Code != http.StatusServiceUnavailable {
			t.Errorf("client status %d, want the held 503", rr.Code)
		}
	})
}

func TestRetryAfterSetsMinimumWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newRetry(t, RetryOptions{MaxDelay: 2 * time.Second, JitterFactor: 0.5})
		var calls atomic.Int64
		h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if calls.Add(1) == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok")
		})
		start := time.Now()
		rr := serve(rt.Handler(h), http.MethodGet)
		elapsed := time.Since(start)
		if rr.Body.String() != "ok" || calls.Load() != 2 {
			t.Fatalf("client got %q after %d attempts, want %q after 2", rr.Body.String(), calls.Load(), "ok")
		}
		// 1s stretched to 2s, then ±50%: between 1s and 3s.
		if elapsed < time.Second || elapsed > 3*time.Second {
			t.Errorf("waited %v, want at least the Retry-After of 1s (and at most 3s)", elapsed)
		}
	})
}

func TestRetryPanics(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name          string
		recoverPanics bool
		failures      int // attempts that panic with errBoom before one answers 200
		panicValue    any // what the failing attempts panic with; nil means errBoom
		wantCalls     int64
		wantStatus    int // 0: a panic reaches the caller
		wantPanicIs   any // compared with == or errors.Is against the panic reaching the caller
		wantLogLines  int
		afterCommit   bool // the panicking attempts write a body first
	}{
		{name: "retried away", failures: 1, wantCalls: 2, wantStatus: 200, wantLogLines: 1},
		{name: "every attempt panics", failures: 10, wantCalls: 3, wantPanicIs: errBoom, wantLogLines: 2},
		{name: "every attempt panics, recovered", recoverPanics: true, failures: 10, wantCalls: 3, wantStatus: 500, wantLogLines: 3},
		{name: "ErrAbortHandler passes on at once", recoverPanics: true, failures: 10, panicValue: http.ErrAbortHandler, wantCalls: 1, wantPanicIs: http.ErrAbortHandler},
		{name: "after commit passes on", failures: 10, afterCommit: true, wantCalls: 1, wantPanicIs: errBoom},
		{name: "after commit, recovered, aborts", recoverPanics: true, failures: 10, afterCommit: true, wantCalls: 1, wantPanicIs: http.ErrAbortHandler, wantLogLines: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var logs testlog.Buffer
				rt := newRetry(t, RetryOptions{RecoverPanics: tc.recoverPanics, Logger: logs.Text(slog.LevelInfo)})
				var calls atomic.Int64
				h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					if calls.Add(1) > int64(tc.failures) {
						_, _ = io.WriteString(w, "ok")
						return
					}
					w.Header().Set("X-Failed", "yes")
					if tc.afterCommit {
						_, _ = io.WriteString(w, "partial")
					}
					if tc.panicValue != nil {
						panic(tc.panicValue)
					}
					panic(errBoom)
				})
				rr := httptest.NewRecorder()
				got := func() (v any) {
					defer func() { v = recover() }()
					rt.Handler(h).ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/p", nil))
					return nil
				}()

				if calls.Load() != tc.wantCalls {
					t.Errorf("attempts = %d, want %d", calls.Load(), tc.wantCalls)
				}
				if tc.wantStatus == 0 {
					err, _ := got.(error)
					if got != tc.wantPanicIs && !errors.Is(err, tc.wantPanicIs.(error)) {
						t.Errorf("panic reaching the caller = %v, want %v", got, tc.wantPanicIs)
					}
				} else {
					if got != nil {
						t.Errorf("panic reaching the caller = %v, want none", got)
					}
					if rr.Code != tc.wantStatus {
						t.Errorf("client status %d, want %d", rr.Code, tc.wantStatus)
					}
					if rr.Header().Get("X-Failed") != "" {
						t.Errorf("a panicking attempt's header reached the client: %v", rr.Header())
					}
				}
				if pe, ok := got.(*panicError); ok && !strings.Contains(pe.Error(), "goroutine") {
					t.Errorf("passed-on panic %q lacks the original stack", pe.Error())
				}
				lines := logs.Lines()
				if len(lines) != tc.wantLogLines {
					t.Fatalf("log lines %q, want %d", lines, tc.wantLogLines)
				}
				for _, line := range lines {
					if !strings.Contains(line, LogKeyPanic+"=boom") || !strings.Contains(line, LogKeyStack+"=") {
						t.Errorf("panic log line %q lacks the value or stack", line)
					}
				}
			})
		})
	}
}

func TestRetryComposesWithBreaker(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	t.Run("breaker outside", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b, err := NewBreaker(BreakerOptions{FailureThreshold: 2, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			rt := newRetry(t, RetryOptions{})
			h := &flakyHandler{failures: 100, status: http.StatusServiceUnavailable}
			guarded := b.Handler(rt.Handler(h))
			for range 3 {
				serve(guarded, http.MethodGet)
			}
			// Two requests of three attempts each, one outcome each; the
			// third request finds the breaker open.
			if got := h.calls.Load(); got != 6 {
				t.Errorf("attempts = %d, want 6", got)
			}
			if s := b.Stats(); s.State != BreakerOpen || s.Rejected != 1 {
				t.Errorf("breaker Stats() = %+v, want open with 1 rejected", s)
			}
		})
	})
	t.Run("retry outside", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b, err := NewBreaker(BreakerOptions{FailureThreshold: 2, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			rt := newRetry(t, RetryOptions{})
			h := &flakyHandler{failures: 100, status: http.StatusServiceUnavailable}
			rr := serve(rt.Handler(b.Handler(h)), http.MethodGet)
			// Each attempt counts; the third meets the open breaker, whose
			// Retry-After (10s) is beyond MaxDelay: its 503 is sent.
			if got := h.calls.Load(); got != 2 {
				t.Errorf("attempts reaching the handler = %d, want 2", got)
			}
			if rr.Code != http.StatusServiceUnavailable || !strings.Contains(rr.Body.String(), "circuit breaker open") {
				t.Errorf("client got %d %q, want the open breaker's 503", rr.Code, rr.Body.String())
			}
		})
	})
}

func TestNewRetryOptions(t *testing.T) {
	tests := []struct {
		name      string
		opts      RetryOptions
		wantField string // "" means valid
	}{
		{"zero value", RetryOptions{}, ""},
		{"all set", RetryOptions{MaxAttempts: 5, InitialDelay: time.Millisecond, MaxDelay: time.Second, JitterFactor: 0.5,
			Methods: []string{"GET", "PROPFIND"}, Statuses: []int{429, 503}, MaxReplayBytes: 1, MaxHeldBytes: 1}, ""},
		{"negative MaxAttempts", RetryOptions{MaxAttempts: -1}, "MaxAttempts"},
		{"negative InitialDelay", RetryOptions{InitialDelay: -1}, "InitialDelay"},
		{"negative MaxDelay", RetryOptions{MaxDelay: -1}, "MaxDelay"},
		{"InitialDelay over MaxDelay", RetryOptions{InitialDelay: 2 * time.Second, MaxDelay: time.Second}, "InitialDelay"},
		{"only InitialDelay, over the default MaxDelay", RetryOptions{InitialDelay: 2 * time.Second}, ""},
		{"only MaxDelay, under the default InitialDelay", RetryOptions{MaxDelay: time.Millisecond}, ""},
		{"JitterFactor 1", RetryOptions{JitterFactor: 1}, "JitterFactor"},
		{"negative JitterFactor", RetryOptions{JitterFactor: -0.1}, "JitterFactor"},
		{"empty Methods", RetryOptions{Methods: []string{}}, "Methods"},
		{"bad method", RetryOptions{Methods: []string{"GET "}}, "Methods"},
		{"empty method", RetryOptions{Methods: []string{""}}, "Methods"},
		{"empty Statuses", RetryOptions{Statuses: []int{}}, "Statuses"},
		{"2xx status", RetryOptions{Statuses: []int{200}}, "Statuses"},
		{"600 status", RetryOptions{Statuses: []int{600}}, "Statuses"},
		{"negative MaxReplayBytes", RetryOptions{MaxReplayBytes: -1}, "MaxReplayBytes"},
		{"negative MaxHeldBytes", RetryOptions{MaxHeldBytes: -1}, "MaxHeldBytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt, err := NewRetry(tc.opts)
			if tc.wantField == "" {
				if err != nil || rt == nil {
					t.Fatalf("NewRetry(%+v) = %v, %v; want a Retry", tc.opts, rt, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), tc.wantField) {
				t.Errorf("NewRetry(%+v) error = %v, want ErrInvalidOption naming %s", tc.opts, err, tc.wantField)
			}
		})
	}
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Now()
	tests := []struct {
		value  string
		want   time.Duration
		wantOK bool
		approx bool // the date form is relative to now
	}{
		{"", 0, false, false},
		{"0", 0, true, false},
		{"3", 3 * time.Second, true, false},
		{" 2 ", 2 * time.Second, true, false},
		{"-1", 0, false, false},
		{"1.5", 0, false, false},
		{"soon", 0, false, false},
		{"99999999999999999999", 0, false, false},
		{"9223372036854775807", time.Duration(1<<63 - 1), true, false},
		{now.Add(time.Hour).UTC().Format(http.TimeFormat), time.Hour, true, true},
		{now.Add(-time.Hour).UTC().Format(http.TimeFormat), 0, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			h := http.Header{}
			if tc.value != "" {
				h.Set("Retry-After", tc.value)
			}
			got, ok := retryAfter(h)
			if ok != tc.wantOK {
				t.Fatalf("retryAfter(%q) ok = %t, want %t", tc.value, ok, tc.wantOK)
			}
			if tc.approx {
				if d := tc.want - got; d < 0 || d > 2*time.Second {
					t.Errorf("retryAfter(%q) = %v, want about %v", tc.value, got, tc.want)
				}
			} else if got != tc.want {
				t.Errorf("retryAfter(%q) = %v, want %v", tc.value, got, tc.want)
			}
		})
	}
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "-5", "Wed, 21 Oct 2015 07:28:00 GMT", "", "1e9", "18446744073709551616"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		wait, ok := retryAfter(http.Header{"Retry-After": {s}})
		if wait < 0 || (!ok && wait != 0) {
			t.Errorf("retryAfter(%q) = %v, %t; want a wait of 0 or more, 0 when not ok", s, wait, ok)
		}
	})
}

// BenchmarkRetry measures the cost Retry adds when the first attempt
// succeeds: compare "first-attempt-ok" with "bare". Budget: under 2 µs and
// 20 allocations added.
func BenchmarkRetry(b *testing.B) {
	b.Run("bare", func(b *testing.B) {
		runBench(b, http.HandlerFunc(benchHandler))
	})
	b.Run("first-attempt-ok", func(b *testing.B) {
		rt, err := NewRetry(RetryOptions{})
		if err != nil {
			b.Fatal(err)
		}
		runBench(b, rt.Handler(http.HandlerFunc(benchHandler)))
	})
	// Not in the budget: the cost of one retry through failsafe's executor,
	// with a wait of about a nanosecond.
	b.Run("retried-once", func(b *testing.B) {
		rt, err := NewRetry(RetryOptions{InitialDelay: time.Nanosecond, MaxDelay: time.Nanosecond})
		if err != nil {
			b.Fatal(err)
		}
		fail := false
		runBench(b, rt.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if fail = !fail; fail {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			benchHandler(w, r)
		})))
	})
}

func TestRetryNotForAClientThatLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newRetry(t, RetryOptions{})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var calls atomic.Int64
		// As httputil.ReverseProxy does: its client hangs up during the
		// attempt, the upstream request is canceled, the answer is 502.
		h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			calls.Add(1)
			cancel()
			w.WriteHeader(http.StatusBadGateway)
		})
		rr := httptest.NewRecorder()
		rt.Handler(h).ServeHTTP(rr, httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))
		if got := calls.Load(); got != 1 {
			t.Errorf("attempts for a client that left = %d, want 1", got)
		}
		if s := rt.Stats(); s.Retries != 0 || s.Exhausted != 0 {
			t.Errorf("Stats() = %+v, want no retry and nothing exhausted", s)
		}
	})
}
