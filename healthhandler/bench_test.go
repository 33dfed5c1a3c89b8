package healthhandler_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/healthhandler"
)

// discardWriter is a ResponseWriter that keeps nothing but its header map,
// so the benchmark measures the handler alone.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

var _ http.ResponseWriter = (*discardWriter)(nil)

// BenchmarkServeHTTP is the cost of one /health request: an atomic load of
// the encoded report and one Write, whatever the checks do. Budget: the
// header values' five small allocations and nothing else, well under a
// microsecond.
func BenchmarkServeHTTP(b *testing.B) {
	h, err := healthhandler.New(healthhandler.Options{Logger: discard(), ShowDetails: showDetails})
	require.NoError(b, err)
	defer h.Close()
	for _, c := range goldenChecks("warn") {
		require.NoError(b, h.Add(c), "Add(%q)", c.Name)
	}
	require.NoError(b, h.WaitChecked(b.Context()))
	for _, path := range []string{"/health", "/health/ready", "/health/live"} {
		b.Run(path, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
		})
	}
}
