package middleware

import "sync/atomic"

// CacheStats counts what a [Cache] did since it was made.
type CacheStats struct {
	// Hits counts requests answered from a fresh entry.
	Hits uint64
	// StaleHits counts requests answered from a stale entry: within its
	// stale-while-revalidate window, or in place of a failed handler
	// within its stale-if-error window.
	StaleHits uint64
	// Misses counts requests that ran the handler because no entry could
	// be used.
	Misses uint64
	// Coalesced counts requests that waited for another request's run of
	// the handler for the same key instead of running it themselves.
	Coalesced uint64
	// Bypasses counts requests served without the cache because the
	// store was unavailable (an error, a timeout, an open breaker).
	Bypasses uint64
	// Skipped counts GET and HEAD requests served without the cache
	// because of the request itself (no-store, Authorization, Cookie, a
	// request body).
	Skipped uint64
	// Stored counts entries written to the store; StoreErrors the writes
	// and deletes that failed; Dropped the entries not written because the
	// write queue was full or closed.
	Stored, StoreErrors, Dropped uint64
	// DecodeErrors counts stored values that were not valid entries
	// (corrupt, truncated, foreign, with content the cache would never
	// store, or unsigned or forged under [CacheOptions.SigningKey]); each
	// was deleted and taken as a miss.
	DecodeErrors uint64
	// Refreshes counts background refreshes of stale entries started;
	// RefreshesSkipped the stale hits that started none because
	// MaxRefreshes were running already.
	Refreshes, RefreshesSkipped uint64
	// DroppedBytes is the size of the entries counted in Dropped because
	// the write queue had no room for them (QueueSize or QueueBytes).
	DroppedBytes uint64
	// LockTimeouts counts requests that stopped waiting for another
	// request's run of the handler after LockTimeout and ran their own.
	LockTimeouts uint64
	// Invalidations counts keys invalidated because an unsafe request
	// (POST, PUT, PATCH, DELETE...) succeeded. A delete that fails is
	// also counted in StoreErrors; until it succeeds (it is tried again
	// when the entry is next found), this process neither serves nor
	// stores a response made before the invalidation.
	Invalidations uint64
	// TooLarge counts complete responses not stored because their body
	// was over the policy's limit; NotStorable those not stored because of
	// their status or header (no-store, private, Set-Cookie, Vary: *...),
	// because the request asked for a part of them, or because they were
	// not complete (the client left, a write failed, a hijack).
	TooLarge, NotStorable uint64
}

// cacheCounters are CacheStats, updated with atomics only.
type cacheCounters struct {
	hits, staleHits, misses, coalesced, bypasses, skipped      atomic.Uint64
	stored, storeErrors, dropped, decodeErrors, refreshes, inv atomic.Uint64
	refreshesSkipped, droppedBytes, lockTimeouts               atomic.Uint64
	tooLarge, notStorable                                      atomic.Uint64
}

// Stats returns what the cache did so far. It does no I/O.
func (c *Cache) Stats() CacheStats {
	s := &c.stats
	return CacheStats{
		Hits:          s.hits.Load(),
		StaleHits:     s.staleHits.Load(),
		Misses:        s.misses.Load(),
		Coalesced:     s.coalesced.Load(),
		Bypasses:      s.bypasses.Load(),
		Skipped:       s.skipped.Load(),
		Stored:        s.stored.Load(),
		StoreErrors:   s.storeErrors.Load(),
		Dropped:       s.dropped.Load(),
		DecodeErrors:  s.decodeErrors.Load(),
		Refreshes:     s.refreshes.Load(),
		Invalidations: s.inv.Load(),
		TooLarge:      s.tooLarge.Load(),
		NotStorable:   s.notStorable.Load(),

		RefreshesSkipped: s.refreshesSkipped.Load(),
		DroppedBytes:     s.droppedBytes.Load(),
		LockTimeouts:     s.lockTimeouts.Load(),
	}
}
