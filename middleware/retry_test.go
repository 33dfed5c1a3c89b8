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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	require.NoError(t, err)
	return rt
}

func TestRetryUntilSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newRetry(t, RetryOptions{InitialDelay: 100 * time.Millisecond})
		h := &flakyHandler{failures: 2, status: http.StatusServiceUnavailable}
		start := time.Now()
		rr := serve(rt.Handler(h), http.MethodGet)
		elapsed := time.Since(start)

		assert.Equal(t, http.StatusOK, rr.Code, "client status: want nothing of the failed attempts")
		assert.Equal(t, "ok", rr.Body.String(), "client body: want nothing of the failed attempts")
		got := rr.Header()
		assert.Empty(t, got.Get("X-Failed"), "client headers %v, want X-Attempt 3 only", got)
		assert.Equal(t, []string{"3"}, got["X-Attempt"], "client headers %v, want X-Attempt 3 only", got)
		assert.EqualValues(t, 3, h.calls.Load(), "attempts")
		// Waits of 100 ms and 200 ms, each ±20%, on synctest's clock.
		assert.True(t, elapsed >= 240*time.Millisecond && elapsed <= 360*time.Millisecond, "retrying took %v, want 300ms ±20%%", elapsed)
		s := rt.Stats()
		assert.True(t, s.Retries == 2 && s.Exhausted == 0, "Stats() = %+v, want 2 retries, 0 exhausted", s)
	})
}

func TestRetryStopsAtMaxAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := newRetry(t, RetryOptions{MaxAttempts: 4})
		h := &flakyHandler{failures: 100, status: http.StatusBadGateway}
		rr := serve(rt.Handler(h), http.MethodGet)

		assert.EqualValues(t, 4, h.calls.Load(), "attempts")
		assert.Equal(t, http.StatusBadGateway, rr.Code, "client status: want the last attempt's")
		assert.Equal(t, "attempt 4 failed", rr.Body.String(), "client body: want the last attempt's")
		assert.Equal(t, []string{"4"}, rr.Header()["X-Attempt"], "client X-Attempt")
		s := rt.Stats()
		assert.True(t, s.Retries == 3 && s.Exhausted == 1, "Stats() = %+v, want 3 retries, 1 exhausted", s)
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
				assert.EqualValues(t, tc.wantCalls, h.calls.Load(), "%s answered %d: attempts", tc.method, tc.status)
				wantStatus := http.StatusOK
				if tc.wantCalls == 1 {
					wantStatus = tc.status
				}
				assert.Equal(t, wantStatus, rr.Code, "client status")
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
				assert.EqualValues(t, 1, calls.Load(), "attempts")
				assert.Equal(t, http.StatusServiceUnavailable, rr.Code, "client status")
				assert.Equal(t, tc.wantBody, rr.Body.String(), "client body")
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
		assert.EqualValues(t, 2, h.calls.Load(), "attempts")
		assert.Less(t, elapsed, 100*time.Millisecond, "answered at or past the 100ms deadline")
		assert.Equal(t, http.StatusServiceUnavailable, rr.Code, "client status: want the last failed response")
		assert.Equal(t, "attempt 2 failed", rr.Body.String(), "client body: want the last failed response")
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

		assert.EqualValues(t, 1, h.calls.Load(), "attempts")
		assert.Equal(t, 10*time.Millisecond, time.Since(start), "answered after, want at the cancellation")
		assert.Equal(t, http.StatusServiceUnavailable, rr.Code, "client status: want the held 503")
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
		require.Equal(t, "ok", rr.Body.String(), "client body after %d attempts", calls.Load())
		require.EqualValues(t, 2, calls.Load(), "attempts")
		// 1s stretched to 2s, then ±50%: between 1s and 3s.
		assert.True(t, elapsed >= time.Second && elapsed <= 3*time.Second, "waited %v, want at least the Retry-After of 1s (and at most 3s)", elapsed)
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

				assert.EqualValues(t, tc.wantCalls, calls.Load(), "attempts")
				if tc.wantStatus == 0 {
					err, _ := got.(error)
					assert.True(t, got == tc.wantPanicIs || errors.Is(err, tc.wantPanicIs.(error)),
						"panic reaching the caller = %v, want %v", got, tc.wantPanicIs)
				} else {
					assert.Nil(t, got, "panic reaching the caller")
					assert.Equal(t, tc.wantStatus, rr.Code, "client status")
					assert.Empty(t, rr.Header().Get("X-Failed"), "a panicking attempt's header reached the client: %v", rr.Header())
				}
				if pe, ok := got.(*panicError); ok {
					assert.Contains(t, pe.Error(), "goroutine", "passed-on panic lacks the original stack")
				}
				lines := logs.Lines()
				require.Len(t, lines, tc.wantLogLines, "log lines %q", lines)
				for _, line := range lines {
					assert.True(t, strings.Contains(line, LogKeyPanic+"=boom") && strings.Contains(line, LogKeyStack+"="),
						"panic log line %q lacks the value or stack", line)
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
			require.NoError(t, err)
			rt := newRetry(t, RetryOptions{})
			h := &flakyHandler{failures: 100, status: http.StatusServiceUnavailable}
			guarded := b.Handler(rt.Handler(h))
			for range 3 {
				serve(guarded, http.MethodGet)
			}
			// Two requests of three attempts each, one outcome each; the
			// third request finds the breaker open.
			assert.EqualValues(t, 6, h.calls.Load(), "attempts")
			s := b.Stats()
			assert.True(t, s.State == BreakerOpen && s.Rejected == 1, "breaker Stats() = %+v, want open with 1 rejected", s)
		})
	})
	t.Run("retry outside", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b, err := NewBreaker(BreakerOptions{FailureThreshold: 2, Logger: quiet})
			require.NoError(t, err)
			rt := newRetry(t, RetryOptions{})
			h := &flakyHandler{failures: 100, status: http.StatusServiceUnavailable}
			rr := serve(rt.Handler(b.Handler(h)), http.MethodGet)
			// Each attempt counts; the third meets the open breaker, whose
			// Retry-After (10s) is beyond MaxDelay: its 503 is sent.
			assert.EqualValues(t, 2, h.calls.Load(), "attempts reaching the handler")
			assert.Equal(t, http.StatusServiceUnavailable, rr.Code, "client status: want the open breaker's 503")
			assert.Contains(t, rr.Body.String(), "circuit breaker open", "client body: want the open breaker's")
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
				require.NoError(t, err, "NewRetry(%+v): want a Retry", tc.opts)
				require.NotNil(t, rt, "NewRetry(%+v): want a Retry", tc.opts)
				return
			}
			assert.ErrorIs(t, err, ErrInvalidOption, "NewRetry(%+v)", tc.opts)
			assert.ErrorContains(t, err, tc.wantField, "NewRetry(%+v): want the error naming the field", tc.opts)
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
			require.Equal(t, tc.wantOK, ok, "retryAfter(%q) ok", tc.value)
			if tc.approx {
				d := tc.want - got
				assert.True(t, d >= 0 && d <= 2*time.Second, "retryAfter(%q) = %v, want about %v", tc.value, got, tc.want)
			} else {
				assert.Equal(t, tc.want, got, "retryAfter(%q)", tc.value)
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
		assert.False(t, wait < 0 || (!ok && wait != 0), "retryAfter(%q) = %v, %t; want a wait of 0 or more, 0 when not ok", s, wait, ok)
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
		require.NoError(b, err)
		runBench(b, rt.Handler(http.HandlerFunc(benchHandler)))
	})
	// Not in the budget: the cost of one retry through failsafe's executor,
	// with a wait of about a nanosecond.
	b.Run("retried-once", func(b *testing.B) {
		rt, err := NewRetry(RetryOptions{InitialDelay: time.Nanosecond, MaxDelay: time.Nanosecond})
		require.NoError(b, err)
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
		assert.EqualValues(t, 1, calls.Load(), "attempts for a client that left")
		s := rt.Stats()
		assert.True(t, s.Retries == 0 && s.Exhausted == 0, "Stats() = %+v, want no retry and nothing exhausted", s)
	})
}
