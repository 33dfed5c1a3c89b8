package metrics

import (
	"errors"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/metric"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

// ScopeName is the instrumentation scope of every instrument this package
// makes: the meter's name.
const ScopeName = "github.com/steadfast-go/steadfast/metrics"

// RedisBreakerName is the breaker label of the guarded Redis client's
// breaker, beside those of [middleware.Breaker]s.
const RedisBreakerName = "redis"

// ErrInvalidOption is wrapped by the error of [Instrument] when it cannot
// use what it is given: a nil MeterProvider, a nil breaker or retry, or
// sources that cannot be told apart in the metrics. The message names the
// field ("metrics: Sources.Breakers[1]: name "api" already taken: invalid
// option").
var ErrInvalidOption = errors.New("invalid option")

// Sources are the parts of a program to measure. Every field is optional:
// what is nil or empty is not measured.
type Sources struct {
	// Redis is the guarded client: operation durations, the pool, and its
	// breaker (labelled [RedisBreakerName]).
	Redis *resilience.Redis
	// Cache is the response cache: lookups by route and result, stores by
	// outcome, coalesced requests, refreshes, invalidations.
	Cache *middleware.Cache
	// Health is the health handler: each check's status and duration,
	// and the live workers of worker checks.
	Health *healthhandler.Handler
	// Breakers are handler breakers, labelled by their
	// [middleware.BreakerOptions.Name], which must be unique (and not
	// [RedisBreakerName] when Redis is set).
	Breakers []*middleware.Breaker
	// Retries are handler retries, labelled by their
	// [middleware.RetryOptions.Name], which must be unique.
	Retries []*middleware.Retry
}

// Metrics is the instrumentation [Instrument] set up. Close removes it.
// It is safe for concurrent use.
type Metrics struct {
	mu      sync.Mutex
	regs    []metric.Registration
	unhooks []func()
}

// Instrument makes the instruments of every source on a meter of mp and
// starts reporting: observable instruments read the sources' Stats when
// mp collects, and the Redis and Cache hooks ([resilience.Redis.ObserveOps],
// [middleware.Cache.ObserveLookups]) record per-event values. It replaces
// any observer already set on those hooks. Call Close to stop.
//
// The error wraps [ErrInvalidOption] when mp is nil, a breaker or retry is
// nil, or two breakers or two retries share a name; or it wraps what mp
// returned when it refused an instrument.
func Instrument(mp metric.MeterProvider, src Sources) (*Metrics, error) {
	if mp == nil {
		return nil, fmt.Errorf("metrics: Instrument of a nil MeterProvider: %w", ErrInvalidOption)
	}
	if err := src.validate(); err != nil {
		return nil, err
	}
	meter := mp.Meter(ScopeName)
	m := &Metrics{}
	steps := []func(metric.Meter, Sources) error{
		m.instrumentRedis, m.instrumentCache, m.instrumentHealth, m.instrumentBreakers, m.instrumentRetries,
	}
	for _, step := range steps {
		if err := step(meter, src); err != nil {
			_ = m.Close()
			return nil, err
		}
	}
	return m, nil
}

// validate checks that every breaker and retry has a label of its own.
func (src Sources) validate() error {
	seen := map[string]bool{}
	if src.Redis != nil {
		seen[RedisBreakerName] = true
	}
	if err := uniqueNames("Breakers", src.Breakers, seen); err != nil {
		return err
	}
	return uniqueNames("Retries", src.Retries, map[string]bool{})
}

// uniqueNames checks that every item of the Sources field named field is
// set and has a name not in seen, which it adds.
func uniqueNames[T interface {
	comparable
	Name() string
}](field string, items []T, seen map[string]bool) error {
	var none T
	for i, it := range items {
		if it == none {
			return fmt.Errorf("metrics: Sources.%s[%d] is nil: %w", field, i, ErrInvalidOption)
		}
		if seen[it.Name()] {
			return fmt.Errorf("metrics: Sources.%s[%d]: name %q already taken: %w", field, i, it.Name(), ErrInvalidOption)
		}
		seen[it.Name()] = true
	}
	return nil
}

// Close stops reporting: it unregisters the callbacks and removes the
// hooks Instrument set. The instruments stay with the meter provider,
// which no longer gets values for them. Close is safe to call more than
// once.
func (m *Metrics) Close() error {
	m.mu.Lock()
	regs, unhooks := m.regs, m.unhooks
	m.regs, m.unhooks = nil, nil
	m.mu.Unlock()
	var errs []error
	for _, r := range regs {
		if err := r.Unregister(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, u := range unhooks {
		u()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("metrics close: %w", err)
	}
	return nil
}

// register registers cb for instruments and keeps the registration for
// Close.
func (m *Metrics) register(meter metric.Meter, cb metric.Callback, instruments ...metric.Observable) error {
	reg, err := meter.RegisterCallback(cb, instruments...)
	if err != nil {
		return fmt.Errorf("metrics: register callback: %w", err)
	}
	m.mu.Lock()
	m.regs = append(m.regs, reg)
	m.mu.Unlock()
	return nil
}

// hooked keeps a hook's removal for Close.
func (m *Metrics) hooked(unhook func()) {
	m.mu.Lock()
	m.unhooks = append(m.unhooks, unhook)
	m.mu.Unlock()
}

// instruments collects the first error of a run of instrument creations,
// so that the makers read as a list.
type instruments struct {
	meter metric.Meter
	err   error
}

func (in *instruments) note(name string, err error) {
	if err != nil && in.err == nil {
		in.err = fmt.Errorf("metrics: instrument %s: %w", name, err)
	}
}

// The makers of each kind of instrument, by the meter's method for it.

func (in *instruments) counter(name, unit, desc string) metric.Int64ObservableCounter {
	return instrument[metric.Int64ObservableCounterOption](in, in.meter.Int64ObservableCounter, name,
		metric.WithUnit(unit), metric.WithDescription(desc))
}

func (in *instruments) upDown(name, unit, desc string) metric.Int64ObservableUpDownCounter {
	return instrument[metric.Int64ObservableUpDownCounterOption](in, in.meter.Int64ObservableUpDownCounter, name,
		metric.WithUnit(unit), metric.WithDescription(desc))
}

func (in *instruments) gauge(name, unit, desc string) metric.Int64ObservableGauge {
	return instrument[metric.Int64ObservableGaugeOption](in, in.meter.Int64ObservableGauge, name,
		metric.WithUnit(unit), metric.WithDescription(desc))
}

func (in *instruments) floatGauge(name, unit, desc string) metric.Float64ObservableGauge {
	return instrument[metric.Float64ObservableGaugeOption](in, in.meter.Float64ObservableGauge, name,
		metric.WithUnit(unit), metric.WithDescription(desc))
}

// instrument makes the instrument name with mk, one of the meter's
// methods, and notes its error. O is mk's option type, given by the
// caller: Go cannot infer it from metric.InstrumentOption values.
func instrument[O, T any](in *instruments, mk func(string, ...O) (T, error), name string, opts ...O) T {
	t, err := mk(name, opts...)
	in.note(name, err)
	return t
}

// count converts a Stats counter for an Int64 instrument.
func count[T uint64 | uint32 | int](v T) int64 {
	if uint64(v) > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}
