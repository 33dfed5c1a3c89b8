package metrics

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/steadfast-go/steadfast/middleware"
)

// Attribute keys of the breaker and retry metrics.
const (
	keyBreaker = "breaker"
	keyTo      = "to"
	keyRetry   = "retry"
	keyOutcome = "outcome"
	keyAttempt = "attempt"
)

// breakerInstruments are shared by the Redis guard's breaker and the
// handler breakers, told apart by the breaker label.
type breakerInstruments struct {
	state       metric.Int64ObservableGauge
	transitions metric.Int64ObservableCounter
	rejected    metric.Int64ObservableCounter
}

func newBreakerInstruments(in *instruments) breakerInstruments {
	return breakerInstruments{
		state: in.gauge("steadfast.breaker.state", "",
			"Circuit breaker state: 0 closed, 1 open, 2 half-open."),
		transitions: in.counter("steadfast.breaker.transitions", "{transition}",
			"Circuit breaker state changes, by the state entered."),
		rejected: in.counter("steadfast.breaker.rejected", "{request}",
			"Calls a circuit breaker turned away without trying."),
	}
}

// breakerAttrs are one breaker's prebuilt attribute sets.
type breakerAttrs struct {
	name                     metric.ObserveOption
	toOpen, toHalf, toClosed metric.ObserveOption
}

func newBreakerAttrs(name string) breakerAttrs {
	n := attribute.String(keyBreaker, name)
	to := func(s string) metric.ObserveOption {
		return metric.WithAttributeSet(attribute.NewSet(n, attribute.String(keyTo, s)))
	}
	return breakerAttrs{
		name:     metric.WithAttributeSet(attribute.NewSet(n)),
		toOpen:   to("open"),
		toHalf:   to("half-open"),
		toClosed: to("closed"),
	}
}

// breakerState is a state's gauge value; resilience.State and
// middleware.BreakerState share the encoding 0 closed, 1 open, 2
// half-open.
func breakerState(s int) int64 { return int64(s) }

// breakerCounts are what the breaker metrics read of a breaker's stats:
// the fields [resilience.Stats] and [middleware.BreakerStats] share.
type breakerCounts struct {
	state                              int
	opens, halfOpens, closes, rejected uint64
}

func (bi breakerInstruments) observe(o metric.Observer, a breakerAttrs, c breakerCounts) {
	o.ObserveInt64(bi.state, breakerState(c.state), a.name)
	o.ObserveInt64(bi.transitions, count(c.opens), a.toOpen)
	o.ObserveInt64(bi.transitions, count(c.halfOpens), a.toHalf)
	o.ObserveInt64(bi.transitions, count(c.closes), a.toClosed)
	o.ObserveInt64(bi.rejected, count(c.rejected), a.name)
}

// instrumentBreakers measures the handler breakers from their Stats.
func (m *Metrics) instrumentBreakers(meter metric.Meter, src Sources) error {
	if len(src.Breakers) == 0 {
		return nil
	}
	in := &instruments{meter: meter}
	bi := newBreakerInstruments(in)
	if in.err != nil {
		return in.err
	}
	breakers := append([]*middleware.Breaker(nil), src.Breakers...)
	attrs := make([]breakerAttrs, len(breakers))
	for i, b := range breakers {
		attrs[i] = newBreakerAttrs(b.Name())
	}
	return m.register(meter, func(_ context.Context, o metric.Observer) error {
		for i, b := range breakers {
			s := b.Stats()
			bi.observe(o, attrs[i], breakerCounts{state: int(s.State), opens: s.Opens, halfOpens: s.HalfOpens, closes: s.Closes, rejected: s.Rejected})
		}
		return nil
	}, bi.state, bi.transitions, bi.rejected)
}

// instrumentRetries measures the handler retries from their Stats.
func (m *Metrics) instrumentRetries(meter metric.Meter, src Sources) error {
	if len(src.Retries) == 0 {
		return nil
	}
	in := &instruments{meter: meter}
	attempts := in.counter("steadfast.retry.attempts", "{attempt}",
		"Attempts of retried handlers: the first of each request, and each retry.")
	requests := in.counter("steadfast.retry.requests", "{request}",
		"Requests through a retry, by outcome: succeeded at once, recovered by a retry, exhausted.")
	if in.err != nil {
		return in.err
	}
	type retryAttrs struct{ first, retry, succeeded, recovered, exhausted metric.ObserveOption }
	retries := append([]*middleware.Retry(nil), src.Retries...)
	attrs := make([]retryAttrs, len(retries))
	for i, rt := range retries {
		n := attribute.String(keyRetry, rt.Name())
		with := func(k, v string) metric.ObserveOption {
			return metric.WithAttributeSet(attribute.NewSet(n, attribute.String(k, v)))
		}
		attrs[i] = retryAttrs{
			first: with(keyAttempt, "first"), retry: with(keyAttempt, "retry"),
			succeeded: with(keyOutcome, "succeeded"), recovered: with(keyOutcome, "recovered"), exhausted: with(keyOutcome, "exhausted"),
		}
	}
	return m.register(meter, func(_ context.Context, o metric.Observer) error {
		for i, rt := range retries {
			s, a := rt.Stats(), attrs[i]
			o.ObserveInt64(attempts, count(s.Succeeded+s.Recovered+s.Exhausted), a.first)
			o.ObserveInt64(attempts, count(s.Retries), a.retry)
			o.ObserveInt64(requests, count(s.Succeeded), a.succeeded)
			o.ObserveInt64(requests, count(s.Recovered), a.recovered)
			o.ObserveInt64(requests, count(s.Exhausted), a.exhausted)
		}
		return nil
	}, attempts, requests)
}
