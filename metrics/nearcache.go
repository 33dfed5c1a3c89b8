package metrics

import (
	"go.opentelemetry.io/otel/metric"

	"github.com/steadfast-go/steadfast/resilience"
)

// nearInstruments measure the guarded client's near cache
// ([resilience.NearCacheStats]); nothing is reported while it is off.
type nearInstruments struct {
	serving                     metric.Int64ObservableGauge
	entries, bytes              metric.Int64ObservableUpDownCounter
	hits, misses, invalidations metric.Int64ObservableCounter
	flushes, pauses             metric.Int64ObservableCounter
}

func newNearInstruments(in *instruments) nearInstruments {
	return nearInstruments{
		serving: in.gauge("steadfast.redis.near_cache.serving", "",
			"Whether the near cache serves hits from process memory now: 1 or 0."),
		entries: in.upDown("steadfast.redis.near_cache.entries", "{entry}", "Entries the near cache holds."),
		bytes:   in.upDown("steadfast.redis.near_cache.size", "By", "Bytes the near cache holds."),
		hits:    in.counter("steadfast.redis.near_cache.hits", "{read}", "Reads served from process memory."),
		misses:  in.counter("steadfast.redis.near_cache.misses", "{read}", "Reads that looked in the near cache and went to Redis."),
		invalidations: in.counter("steadfast.redis.near_cache.invalidations", "{key}",
			"Keys Redis said were changed, expired or evicted."),
		flushes: in.counter("steadfast.redis.near_cache.flushes", "{flush}", "FLUSHALL and FLUSHDB pushes."),
		pauses: in.counter("steadfast.redis.near_cache.pauses", "{pause}",
			"Times the near cache was flushed and stopped serving because Redis stopped answering."),
	}
}

func (n nearInstruments) all() []metric.Observable {
	return []metric.Observable{n.serving, n.entries, n.bytes, n.hits, n.misses, n.invalidations, n.flushes, n.pauses}
}

func (n nearInstruments) observe(o metric.Observer, s resilience.NearCacheStats) {
	if !s.Enabled {
		return
	}
	serving := int64(0)
	if s.Serving {
		serving = 1
	}
	o.ObserveInt64(n.serving, serving)
	o.ObserveInt64(n.entries, int64(s.Entries))
	o.ObserveInt64(n.bytes, s.Bytes)
	o.ObserveInt64(n.hits, count(s.Hits))
	o.ObserveInt64(n.misses, count(s.Misses))
	o.ObserveInt64(n.invalidations, count(s.Invalidations))
	o.ObserveInt64(n.flushes, count(s.Flushes))
	o.ObserveInt64(n.pauses, count(s.Pauses))
}
