package metrics

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

// BenchmarkHooks measures the two per-event hooks alone, as one cache hit
// calls them: one lookup and one GET. Budget: 100 ns and no allocation for
// both together (see BenchmarkHitOverhead). sdk-record is what recording
// the duration straight into the SDK's histogram would cost instead.
func BenchmarkHooks(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	meter := mp.Meter(ScopeName)
	h, err := meter.Float64Histogram("ops")
	require.NoError(b, err)
	lc := &lookupCounter{}
	ops := newOpRecorder(h)
	ops.start()
	defer ops.close()
	lookup := middleware.Lookup{Route: "GET /items/{id}", Result: middleware.LookupHit}
	op := resilience.Op{Name: "get", Outcome: resilience.OpOK, Duration: 300 * time.Microsecond}

	b.Run("lookup", func(b *testing.B) {
		b.ReportAllocs()
		start := cpuTime()
		for b.Loop() {
			lc.record(lookup)
		}
		reportCPU(b, start)
	})
	b.Run("op", func(b *testing.B) {
		b.ReportAllocs()
		start := cpuTime()
		for b.Loop() {
			ops.record(op)
		}
		reportCPU(b, start)
	})
	b.Run("sdk-record", func(b *testing.B) {
		opts := ops.known[0][0]
		ctx := context.Background()
		b.ReportAllocs()
		start := cpuTime()
		for b.Loop() {
			h.Record(ctx, op.Duration.Seconds(), opts...)
		}
		reportCPU(b, start)
	})
	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		start := cpuTime()
		for b.Loop() {
			lc.record(lookup)
			ops.record(op)
		}
		reportCPU(b, start)
	})
}
