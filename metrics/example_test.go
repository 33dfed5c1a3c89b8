package metrics_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/alicebob/miniredis/v2"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/metrics"
	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

// ExampleInstrument measures a cache on an OpenTelemetry meter provider;
// a program would give the provider a Prometheus or OTLP exporter as its
// reader instead of a ManualReader.
func ExampleInstrument() {
	mr, _ := miniredis.Run()
	defer mr.Close()
	rdb, _ := resilience.NewRedis(resilience.Config{Addr: mr.Addr()}, resilience.Options{Logger: quiet})
	defer rdb.Close()
	cache, _ := middleware.NewCache(rdb, middleware.CacheOptions{Logger: quiet})
	defer cache.Close()

	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background()) //nolint:errcheck // an example
	m, err := metrics.Instrument(provider, metrics.Sources{Redis: rdb, Cache: cache})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()

	mux := http.NewServeMux()
	mux.Handle("GET /items/{id}", cache.Policy(cachepolicy.Policy{TTL: time.Minute})(http.HandlerFunc(
		func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "item") })))
	mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/items/1", nil))

	var rm metricdata.ResourceMetrics
	_ = reader.Collect(context.Background(), &rm)
	for _, sm := range rm.ScopeMetrics {
		for _, x := range sm.Metrics {
			if sum, ok := x.Data.(metricdata.Sum[int64]); ok && x.Name == "steadfast.cache.lookups" {
				for _, p := range sum.DataPoints {
					route, _ := p.Attributes.Value("http.route")
					result, _ := p.Attributes.Value("result")
					fmt.Println(x.Name, route.AsString(), result.AsString(), p.Value)
				}
			}
		}
	}
	// Output:
	// steadfast.cache.lookups GET /items/{id} miss 1
}
