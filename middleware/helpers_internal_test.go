package middleware

// Helpers the tests of Breaker, Retry and their benchmarks share.

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// serve runs one request through h and returns what the client got.
func serve(h http.Handler, method string) *httptest.ResponseRecorder {
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(method, "/upstream", nil))
	return rr
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
