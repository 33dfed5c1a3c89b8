package middleware

import (
	"sync"
	"sync/atomic"
	"time"
)

// Limits of the invalidation record.
const (
	// invalidationGrace is how long an invalidation is remembered after
	// its delete succeeded: long enough for a miss that started before it
	// (a slow handler, a queued write) to finish and be refused.
	invalidationGrace = time.Minute
	// maxInvalidations bounds the record. Past it, records whose delete
	// succeeded are forgotten first, then the oldest.
	maxInvalidations = 10_000
)

// invalidations remembers, per key, when this process last invalidated
// it, so that an entry stored before then is never served or written
// again, even when the delete itself failed (Redis was down: the old entry
// is still there when it comes back) or a miss that started before the
// invalidation wrote its older response after the delete.
//
// It sees this process's invalidations only; another process's stale
// entries live until their delete succeeds or their TTL ends. Safe for
// concurrent use; a hit costs one atomic load while it is empty.
type invalidations struct {
	n   atomic.Int64  // len(m), read without the lock
	gen atomic.Uint64 // counts invalidations: orders them against runs
	mu  sync.Mutex
	m   map[string]invalidation
}

type invalidation struct {
	at        time.Time // when the key was invalidated
	gen       uint64    // the invalidation's number (see generation)
	deletedAt time.Time // when its delete succeeded; zero while pending
}

// add records that key was invalidated at now.
func (iv *invalidations) add(key string, now time.Time) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	if iv.m == nil {
		iv.m = make(map[string]invalidation)
	}
	if _, ok := iv.m[key]; !ok && len(iv.m) >= maxInvalidations {
		iv.evict(now)
	}
	iv.m[key] = invalidation{at: now, gen: iv.gen.Add(1)}
	iv.n.Store(int64(len(iv.m)))
}

// deleted records that the store no longer holds an entry of key written
// before the invalidation at at.
func (iv *invalidations) deleted(key string, at, now time.Time) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	if rec, ok := iv.m[key]; ok && !rec.at.After(at) && rec.deletedAt.IsZero() {
		rec.deletedAt = now
		iv.m[key] = rec
	}
}

// stale reports whether an entry of key made at storedAt predates the
// key's last invalidation, and if so when that was.
func (iv *invalidations) stale(key string, storedAt, now time.Time) (time.Time, bool) {
	if iv.n.Load() == 0 {
		return time.Time{}, false
	}
	iv.mu.Lock()
	defer iv.mu.Unlock()
	rec, ok := iv.m[key]
	if !ok {
		return time.Time{}, false
	}
	if !rec.deletedAt.IsZero() && now.Sub(rec.deletedAt) > invalidationGrace {
		delete(iv.m, key)
		iv.n.Store(int64(len(iv.m)))
		return time.Time{}, false
	}
	return rec.at, storedAt.Before(rec.at)
}

// generation numbers the invalidations made so far. A run of the handler
// takes it before it starts; its response predates a later invalidation of
// its key (see made), however close the two are in time.
func (iv *invalidations) generation() uint64 { return iv.gen.Load() }

// made reports whether a response of key from a run that started at
// generation gen predates the key's last invalidation.
func (iv *invalidations) made(key string, gen uint64) bool {
	if iv.n.Load() == 0 {
		return false
	}
	iv.mu.Lock()
	defer iv.mu.Unlock()
	rec, ok := iv.m[key]
	return ok && rec.gen > gen
}

// evict makes room: first every record past its grace, then, if none was,
// one record whose delete succeeded, then the oldest. Called with mu held.
func (iv *invalidations) evict(now time.Time) {
	var victim string
	var oldest time.Time
	doneVictim := ""
	for k, rec := range iv.m {
		if !rec.deletedAt.IsZero() {
			if now.Sub(rec.deletedAt) > invalidationGrace {
				delete(iv.m, k)
				continue
			}
			doneVictim = k
		}
		if victim == "" || rec.at.Before(oldest) {
			victim, oldest = k, rec.at
		}
	}
	if len(iv.m) < maxInvalidations {
		return
	}
	if doneVictim != "" {
		victim = doneVictim
	}
	delete(iv.m, victim)
}
