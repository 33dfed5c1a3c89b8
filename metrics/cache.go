package metrics

import (
	"context"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/steadfast-go/steadfast/middleware"
)

// Attribute keys of the cache metrics.
const (
	keyRoute  = "http.route"
	keyResult = "result"
	keyReason = "reason"
)

// maxLookupSeries bounds the distinct (route, result, reason) label sets
// of the lookup counter. Routes are ServeMux patterns, so a program
// reaches it only with thousands of cached routes; past it, lookups are
// counted under the route "_other".
const maxLookupSeries = 2000

// otherRoute is the route label past maxLookupSeries.
const otherRoute = "_other"

// lookupCounter counts cache lookups by label set with atomics; an
// observable counter reports the counts when the provider collects. Its
// hot path is a sync.Map load and an atomic add: a synchronous OTel
// counter's Add costs several hundred nanoseconds, over the hit budget.
type lookupCounter struct {
	series sync.Map // middleware.Lookup -> *lookupSeries
	n      atomic.Int64
}

// lookupSeries is the count of one label set.
type lookupSeries struct {
	n   atomic.Int64
	set metric.ObserveOption
}

// record is the hook given to ObserveLookups.
func (l *lookupCounter) record(x middleware.Lookup) {
	l.get(x).n.Add(1)
}

func (l *lookupCounter) get(x middleware.Lookup) *lookupSeries {
	if v, ok := l.series.Load(x); ok {
		return v.(*lookupSeries) //nolint:forcetypeassert // only this type is stored
	}
	if l.n.Load() >= maxLookupSeries {
		x.Route = otherRoute
		if v, ok := l.series.Load(x); ok {
			return v.(*lookupSeries) //nolint:forcetypeassert // only this type is stored
		}
	}
	attrs := []attribute.KeyValue{
		attribute.String(keyRoute, x.Route),
		attribute.String(keyResult, string(x.Result)),
	}
	if x.Reason != "" {
		attrs = append(attrs, attribute.String(keyReason, x.Reason))
	}
	v, loaded := l.series.LoadOrStore(x, &lookupSeries{set: metric.WithAttributeSet(attribute.NewSet(attrs...))})
	if !loaded {
		l.n.Add(1)
	}
	return v.(*lookupSeries) //nolint:forcetypeassert // only this type is stored
}

// observe reports every count to o.
func (l *lookupCounter) observe(o metric.Observer, c metric.Int64Observable) {
	l.series.Range(func(_, v any) bool {
		s := v.(*lookupSeries) //nolint:forcetypeassert // only this type is stored
		o.ObserveInt64(c, s.n.Load(), s.set)
		return true
	})
}

// instrumentCache measures the cache: lookups by route (hook), the rest
// from its Stats.
func (m *Metrics) instrumentCache(meter metric.Meter, src Sources) error {
	cache := src.Cache
	if cache == nil {
		return nil
	}
	in := &instruments{meter: meter}
	lookups := in.counter("steadfast.cache.lookups", "{request}",
		"GET and HEAD requests the cache handled, by route, result (hit, stale, miss, bypass) and bypass reason.")
	stores := in.counter("steadfast.cache.stores", "{response}",
		"Responses the cache stored or did not, by outcome: stored, dropped (write queue full), error, too_large, not_storable.")
	coalesced := in.counter("steadfast.cache.coalesced", "{request}",
		"Requests that waited for another request's run of the handler instead of running it.")
	refreshes := in.counter("steadfast.cache.refreshes", "{refresh}",
		"Background refreshes of stale entries started (stale-while-revalidate).")
	invalidations := in.counter("steadfast.cache.invalidations", "{key}",
		"Entries invalidated by a successful unsafe request.")
	corrupt := in.counter("steadfast.cache.decode_errors", "{entry}",
		"Stored values that were not valid entries; each was deleted and taken as a miss.")
	if in.err != nil {
		return in.err
	}
	outcome := func(v string) metric.ObserveOption {
		return metric.WithAttributeSet(attribute.NewSet(attribute.String(keyOutcome, v)))
	}
	stored, dropped, failed := outcome("stored"), outcome("dropped"), outcome("error")
	tooLarge, notStorable := outcome("too_large"), outcome("not_storable")
	lc := &lookupCounter{}
	err := m.register(meter, func(_ context.Context, o metric.Observer) error {
		lc.observe(o, lookups)
		s := cache.Stats()
		o.ObserveInt64(stores, count(s.Stored), stored)
		o.ObserveInt64(stores, count(s.Dropped), dropped)
		o.ObserveInt64(stores, count(s.StoreErrors), failed)
		o.ObserveInt64(stores, count(s.TooLarge), tooLarge)
		o.ObserveInt64(stores, count(s.NotStorable), notStorable)
		o.ObserveInt64(coalesced, count(s.Coalesced))
		o.ObserveInt64(refreshes, count(s.Refreshes))
		o.ObserveInt64(invalidations, count(s.Invalidations))
		o.ObserveInt64(corrupt, count(s.DecodeErrors))
		return nil
	}, lookups, stores, coalesced, refreshes, invalidations, corrupt)
	if err != nil {
		return err
	}
	cache.ObserveLookups(lc.record)
	m.hooked(func() { cache.ObserveLookups(nil) })
	return nil
}
