package middleware

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
)

func TestRetryReplaysBody(t *testing.T) {
	const payload = "payload"
	tests := []struct {
		name      string
		opts      RetryOptions
		request   func() *http.Request
		wantCalls int
	}{
		{
			name:      "buffered",
			request:   func() *http.Request { return httptest.NewRequest(http.MethodPut, "/", strings.NewReader(payload)) },
			wantCalls: 2,
		},
		{
			name: "unknown length, buffered",
			request: func() *http.Request {
				r := httptest.NewRequest(http.MethodPut, "/", io.MultiReader(strings.NewReader(payload)))
				r.ContentLength = -1
				return r
			},
			wantCalls: 2,
		},
		{
			name:      "known length over MaxReplayBytes",
			opts:      RetryOptions{MaxReplayBytes: 4},
			request:   func() *http.Request { return httptest.NewRequest(http.MethodPut, "/", strings.NewReader(payload)) },
			wantCalls: 1,
		},
		{
			name: "unknown length over MaxReplayBytes",
			opts: RetryOptions{MaxReplayBytes: 4},
			request: func() *http.Request {
				r := httptest.NewRequest(http.MethodPut, "/", io.MultiReader(strings.NewReader(payload)))
				r.ContentLength = -1
				return r
			},
			wantCalls: 1,
		},
		{
			name: "GetBody, over MaxReplayBytes",
			opts: RetryOptions{MaxReplayBytes: 4},
			request: func() *http.Request {
				r := httptest.NewRequest(http.MethodPut, "/", strings.NewReader(payload))
				r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(payload)), nil }
				return r
			},
			wantCalls: 2,
		},
		{
			name: "GetBody fails",
			request: func() *http.Request {
				r := httptest.NewRequest(http.MethodPut, "/", strings.NewReader(payload))
				r.GetBody = func() (io.ReadCloser, error) { return nil, errors.New("gone") }
				return r
			},
			wantCalls: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rt := newRetry(t, tc.opts)
				h := &flakyHandler{failures: 1, status: http.StatusServiceUnavailable}
				rr := httptest.NewRecorder()
				rt.Handler(h).ServeHTTP(rr, tc.request())
				assert.EqualValues(t, tc.wantCalls, h.calls.Load(), "attempts")
				for i, b := range h.bodies {
					assert.Equal(t, payload, b, "attempt %d read body", i+1)
				}
				wantStatus := http.StatusOK
				if tc.wantCalls == 1 {
					wantStatus = http.StatusServiceUnavailable
				}
				assert.Equal(t, wantStatus, rr.Code, "client status")
			})
		})
	}
}
