package metrics

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/steadfast-go/steadfast/healthhandler"
)

// keyCheck is the attribute key of a health check's name.
const keyCheck = "check"

// statusValue is a health status's gauge value: 0 pass, 1 warn, 2 fail.
func statusValue(s healthhandler.Status) int64 {
	switch s {
	case healthhandler.StatusPass:
		return 0
	case healthhandler.StatusWarn:
		return 1
	}
	return 2
}

// instrumentHealth measures the health handler from its Stats: the
// overall status, each check's status and last duration, and the live
// workers each worker check counted. A check that has not run yet, and a
// worker check whose last run could not count, report nothing.
func (m *Metrics) instrumentHealth(meter metric.Meter, src Sources) error {
	h := src.Health
	if h == nil {
		return nil
	}
	in := &instruments{meter: meter}
	overall := in.gauge("steadfast.health.status", "",
		"The health report's status: 0 pass, 1 warn, 2 fail.")
	status := in.gauge("steadfast.health.check.status", "",
		"Each health check's latest status: 0 pass, 1 warn, 2 fail.")
	duration := in.floatGauge("steadfast.health.check.duration", "s",
		"How long each health check's latest run took.")
	workers := in.gauge("steadfast.health.workers", "{worker}",
		"Live workers counted by each worker check (heartbeats, Celery, asynq).")
	if in.err != nil {
		return in.err
	}
	// Check names are fixed once added; their sets are built on first
	// sight. Two readers may collect at once: mu guards the map.
	var mu sync.Mutex
	sets := map[string]metric.ObserveOption{}
	return m.register(meter, func(_ context.Context, o metric.Observer) error {
		mu.Lock()
		defer mu.Unlock()
		s := h.Stats()
		o.ObserveInt64(overall, statusValue(s.Status))
		for _, c := range s.Checks {
			if c.Status == "" {
				continue
			}
			set, ok := sets[c.Name]
			if !ok {
				set = metric.WithAttributeSet(attribute.NewSet(attribute.String(keyCheck, c.Name)))
				sets[c.Name] = set
			}
			o.ObserveInt64(status, statusValue(c.Status), set)
			o.ObserveFloat64(duration, c.LastDuration.Seconds(), set)
			if c.CountsWorkers {
				o.ObserveInt64(workers, int64(c.Workers), set)
			}
		}
		return nil
	}, overall, status, duration, workers)
}
