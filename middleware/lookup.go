package middleware

import (
	"errors"
	"io/fs"
	"net/http"
	"time"

	"github.com/steadfast-go/steadfast/cachepolicy"
)

// serve handles a request under policy p.
//
// Hit path budget, on top of the store's Get: at most 10 µs of CPU and 40
// allocations (BenchmarkCacheHit shows it). The key is appended into a
// stack buffer (one allocation for its string), the entry is decoded in
// place (three allocations, body not copied), stored header values are
// put into the response's map without copying, and Age and Cache-Status
// are formatted with strconv, not fmt.
func (c *Cache) serve(w http.ResponseWriter, r *http.Request, next http.Handler, p *cachepolicy.Policy) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		c.serveOther(w, r, next, p)
		return
	}
	rd := cachepolicy.ParseRequest(r.Header)
	if fwd, reason := skip(r, &rd, p); reason != "" {
		c.stats.skipped.Add(1)
		c.observe(r, LookupBypass, reason)
		setCacheStatus(w.Header(), cachepolicy.CacheStatus{Fwd: fwd, Detail: reason})
		next.ServeHTTP(w, r)
		return
	}

	var kb [128]byte
	key := string(cachepolicy.AppendKey(kb[:0], c.prefix, r, *p))
	lookup := time.Now() // the runtime's clock: this orders real events
	val, err := c.store.Get(r.Context(), key)
	flightKey, missFwd := key, cachepolicy.FwdURIMiss
	if err == nil && isIndex(val) {
		// The URL has variants: one more round trip, for the one r selects.
		var vkey string
		if vkey, val, err = c.lookupVariant(r.Context(), key, val, r.Header); vkey != "" {
			flightKey, missFwd = vkey, cachepolicy.FwdVaryMiss
		}
	}
	now := c.now()
	var e entry
	found := false
	switch {
	case err == nil:
		if e, err = decodeEntry(val, flightKey, c.signKey, now); err != nil {
			// Deleted now rather than queued, so that the delete cannot
			// overtake the write of the response about to be made.
			c.stats.decodeErrors.Add(1)
			if c.store.Del(r.Context(), flightKey) != nil {
				c.stats.storeErrors.Add(1)
			}
		} else if at, stale := c.inval.stale(key, e.storedAt, now); stale {
			// Stored before this process invalidated the key, whose
			// delete failed or was overtaken: a miss, and deleted now.
			c.deleteInvalidated(r, key, at)
		} else {
			found = true
		}
	case errors.Is(err, fs.ErrNotExist):
	case r.Context().Err() != nil:
		return // the client is gone (or out of time): nobody to answer
	default:
		// Redis cannot answer. Nothing is stored, but concurrent requests
		// for the key still run the handler once between them: an outage
		// (or a pool too small for a burst) must not turn into a stampede.
		c.stats.bypasses.Add(1)
		c.observe(r, LookupBypass, detailUnavailable)
		c.fill(&miss{
			w: w, r: r, next: next, p: p, base: key, key: flightKey, lookup: lookup, rd: &rd,
			fwd: cachepolicy.FwdBypass,
		})
		return
	}

	state := cachepolicy.Expired
	if found {
		state = cachepolicy.Classify(e.life, e.storedAt, now, rd)
	}
	switch state {
	case cachepolicy.Fresh:
		c.stats.hits.Add(1)
		c.observe(r, LookupHit, "")
		c.writeEntry(w, r, &e, now, cachepolicy.CacheStatus{Hit: true, TTL: e.life.TTL(e.storedAt, now)}, false)
		return
	case cachepolicy.StaleRevalidate:
		c.stats.staleHits.Add(1)
		c.observe(r, LookupStale, "")
		stale := e // a copy escapes to the refresh; e stays on the stack
		c.refresh(&miss{w: w, r: r, next: next, p: p, base: key, key: flightKey}, &stale)
		c.writeEntry(w, r, &e, now, cachepolicy.CacheStatus{
			Hit: true, TTL: e.life.TTL(e.storedAt, now), Detail: "stale-while-revalidate",
		}, false)
		return
	}

	fwd := missFwd
	switch {
	case rd.NoCache || (rd.HasMaxAge && rd.MaxAge <= 0):
		fwd = cachepolicy.FwdRequest
	case found:
		fwd = cachepolicy.FwdStale
	}
	c.observe(r, LookupMiss, "")
	if rd.OnlyIfCached {
		// RFC 9111 5.2.1.7: no stored response may be used, so 504.
		setCacheStatus(w.Header(), cachepolicy.CacheStatus{Fwd: fwd, Detail: "only-if-cached"})
		http.Error(w, http.StatusText(http.StatusGatewayTimeout), http.StatusGatewayTimeout)
		return
	}
	var fallback, validating *entry
	if found {
		// A copy escapes to the miss path; e stays on the hit path's stack.
		stored := new(entry)
		*stored = e
		if state == cachepolicy.StaleIfErrorOnly {
			fallback = stored // served if the handler fails
		}
		if stored.validators().Any() {
			// Stale, or to be validated before use: ask the handler
			// whether it changed (RFC 9111 4.3.1); a 304 renews it.
			validating = stored
		}
	}
	c.fill(&miss{
		w: w, r: r, next: next, p: p, base: key, key: flightKey, lookup: lookup, rd: &rd,
		fallback: fallback, validating: validating, fwd: fwd,
	})
}
