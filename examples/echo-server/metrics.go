package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// prometheusProvider is an OpenTelemetry meter provider whose metrics are
// served in Prometheus's text format: OpenTelemetry's Prometheus exporter
// is the provider's reader, on a registry of the program's own (not
// client_golang's process-wide default).
type prometheusProvider struct {
	*sdkmetric.MeterProvider
	handler http.Handler // GET /metrics
}

func newPrometheusProvider() (*prometheusProvider, error) {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	return &prometheusProvider{
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter)),
		handler:       promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	}, nil
}

// Close shuts the provider down.
func (p *prometheusProvider) Close() error {
	if err := p.Shutdown(context.Background()); err != nil {
		return fmt.Errorf("meter provider shutdown: %w", err)
	}
	return nil
}
