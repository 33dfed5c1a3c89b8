package middleware

import (
	"net/http"
	"sync/atomic"
)

// LookupResult is what the cache made of one GET or HEAD request, for
// [Lookup]. The set is closed, so that it can label a metric.
type LookupResult string

// The results of a [Lookup].
const (
	// LookupHit: answered from a fresh entry.
	LookupHit LookupResult = "hit"
	// LookupStale: answered from a stale entry, within its
	// stale-while-revalidate window, while a background refresh runs.
	LookupStale LookupResult = "stale"
	// LookupMiss: no entry could answer; the handler runs (or the request
	// waits for a run of it by another request). A stale entry may still
	// answer later, in place of a failed handler (stale-if-error).
	LookupMiss LookupResult = "miss"
	// LookupBypass: the cache was not used, for [Lookup.Reason].
	LookupBypass LookupResult = "bypass"
)

// Lookup is the outcome of one GET or HEAD request a [Cache] handled, for
// [Cache.ObserveLookups]. It holds nothing of the request but its route:
// no key, no URL, no header.
type Lookup struct {
	// Route is the [http.ServeMux] pattern the request matched
	// (r.Pattern), such as "GET /items/{id}": set when the cache wraps a
	// route's handler ([Cache.Policy]), empty when it wraps a whole mux
	// ([Cache.Handler]), which routes only after the cache has run.
	Route string
	// Result is what the cache made of the request.
	Result LookupResult
	// Reason says why a bypass bypassed: "redis-unavailable" (the store
	// erred, timed out, or its breaker is open), "no-store" (the request
	// asked for it), "authorization", "cookie", "request-body" (a GET
	// with a body), or "invalid-policy". It is empty for the other
	// results.
	Reason string
}

// reasonTooLarge is the store decision's reason for a body over the limit.
const reasonTooLarge = "too-large"

// lookupObserver holds the func set by ObserveLookups.
type lookupObserver = atomic.Pointer[func(Lookup)]

// ObserveLookups makes fn be called once per GET or HEAD request the cache
// handled, as soon as it knows the result (before the response is
// written), on the request's goroutine: a metrics adapter counts results
// by route from here. fn must be quick and must not block; it is called
// concurrently. A later call replaces fn; nil removes it. With no fn the
// cost is one atomic load per request.
func (c *Cache) ObserveLookups(fn func(Lookup)) {
	if fn == nil {
		c.onLookup.Store(nil)
		return
	}
	c.onLookup.Store(&fn)
}

// observe reports a lookup to the func set by ObserveLookups, if any.
func (c *Cache) observe(r *http.Request, res LookupResult, reason string) {
	if fn := c.onLookup.Load(); fn != nil {
		(*fn)(Lookup{Route: r.Pattern, Result: res, Reason: reason})
	}
}

// Name returns the breaker's [BreakerOptions.Name].
func (b *Breaker) Name() string { return b.name }

// Name returns the Retry's [RetryOptions.Name].
func (rt *Retry) Name() string { return rt.name }

// breakerTransitions count a breaker's changes into each state.
type breakerTransitions struct {
	opens, halfOpens, closes atomic.Uint64
}

// count counts a change into to.
func (t *breakerTransitions) count(to BreakerState) {
	switch to {
	case BreakerOpen:
		t.opens.Add(1)
	case BreakerHalfOpen:
		t.halfOpens.Add(1)
	case BreakerClosed:
		t.closes.Add(1)
	}
}

// countNotStored counts why a complete response that went to the handler
// (not a bypass) was not stored.
func (c *Cache) countNotStored(ru *run, rec *recorder) {
	switch {
	case !ru.decided:
	case rec.Overflowed(), ru.decision.Reason == reasonTooLarge:
		c.stats.tooLarge.Add(1)
	default:
		c.stats.notStorable.Add(1)
	}
}
