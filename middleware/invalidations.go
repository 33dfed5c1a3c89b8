package middleware

import (
	"container/list"
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
	// succeeded are forgotten first (the longest done first), then the
	// oldest pending one.
	maxInvalidations = 10_000
)

// invalidations remembers, per key, when this process last invalidated
// it, so that an entry stored before then is never served or written
// again, even when the delete itself failed (Redis was down: the old entry
// is still there when it comes back) or a miss that started before the
// invalidation wrote its older response after the delete.
//
// It sees this process's invalidations only; another process's stale
// entries live until their delete succeeds or their TTL ends.
//
// The hit path (stale, made) reads a lock-free map and never waits for
// the bookkeeping of add and deleted, which take mu: two lists in the
// order records must go (deletes done, by when; deletes pending, by when
// they were made) make an eviction O(1). A record past its grace reads as
// forgotten at once and is removed by a later add.
//
// Safe for concurrent use; the zero value is an empty record bounded by
// maxInvalidations. A hit costs one atomic load while it is empty.
type invalidations struct {
	n   atomic.Int64  // number of records, read without the lock
	gen atomic.Uint64 // counts invalidations: orders them against runs
	// recs maps key to *invalidation, an immutable record: the hit path's
	// lock-free view. Written only with mu held.
	recs sync.Map

	mu      sync.Mutex
	limit   int                      // most records kept; zero is maxInvalidations
	nodes   map[string]*list.Element // key -> its element in pending or done
	pending list.List                // of *invalidation, by at: deletes not done yet
	done    list.List                // of *invalidation, by deletedAt: deletes done
}

type invalidation struct {
	key       string
	at        time.Time // when the key was invalidated
	gen       uint64    // the invalidation's number (see generation)
	deletedAt time.Time // when its delete succeeded; zero while pending
}

// newInvalidations returns an empty record that keeps at most limit keys
// (zero: maxInvalidations).
func newInvalidations(limit int) *invalidations {
	return &invalidations{limit: limit}
}

// add records that key was invalidated at now.
func (iv *invalidations) add(key string, now time.Time) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	if iv.nodes == nil {
		iv.nodes = make(map[string]*list.Element)
	}
	iv.prune(now)
	if el, ok := iv.nodes[key]; ok {
		// Replaced below in recs, never deleted from it: the hit path
		// must not see the key unrecorded in between.
		iv.list(el).Remove(el)
	} else if limit := iv.max(); len(iv.nodes) >= limit {
		// Full: the delete done longest ago goes first, else the oldest
		// pending record.
		if el := iv.done.Front(); el != nil {
			iv.remove(el)
		} else {
			iv.remove(iv.pending.Front())
		}
	}
	rec := &invalidation{key: key, at: now, gen: iv.gen.Add(1)}
	iv.nodes[key] = iv.pending.PushBack(rec)
	iv.recs.Store(key, rec)
	iv.n.Store(int64(len(iv.nodes)))
}

// deleted records that the store no longer holds an entry of key written
// before the invalidation at at.
func (iv *invalidations) deleted(key string, at, now time.Time) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	el, ok := iv.nodes[key]
	if !ok {
		return
	}
	rec := el.Value.(*invalidation)
	if rec.at.After(at) || !rec.deletedAt.IsZero() {
		return
	}
	iv.pending.Remove(el)
	done := *rec
	done.deletedAt = now
	iv.nodes[key] = iv.done.PushBack(&done)
	iv.recs.Store(key, &done)
	iv.prune(now)
}

// stale reports whether an entry of key made at storedAt predates the
// key's last invalidation, and if so when that was. It takes no lock.
func (iv *invalidations) stale(key string, storedAt, now time.Time) (time.Time, bool) {
	if iv.n.Load() == 0 {
		return time.Time{}, false
	}
	v, ok := iv.recs.Load(key)
	if !ok {
		return time.Time{}, false
	}
	rec := v.(*invalidation)
	if rec.forgotten(now) {
		return time.Time{}, false
	}
	return rec.at, storedAt.Before(rec.at)
}

// generation numbers the invalidations made so far. A run of the handler
// takes it before it starts; its response predates a later invalidation of
// its key (see made), however close the two are in time.
func (iv *invalidations) generation() uint64 { return iv.gen.Load() }

// made reports whether a response of key from a run that started at
// generation gen predates the key's last invalidation. It takes no lock.
func (iv *invalidations) made(key string, gen uint64) bool {
	if iv.n.Load() == 0 {
		return false
	}
	v, ok := iv.recs.Load(key)
	return ok && v.(*invalidation).gen > gen
}

// forgotten reports whether the record's grace after its delete is over.
func (rec *invalidation) forgotten(now time.Time) bool {
	return !rec.deletedAt.IsZero() && now.Sub(rec.deletedAt) > invalidationGrace
}

// max returns the most records kept.
func (iv *invalidations) max() int {
	if iv.limit > 0 {
		return iv.limit
	}
	return maxInvalidations
}

// prune removes the records past their grace: the front of done, which is
// ordered by deletedAt. Each record is removed once, so the cost is O(1)
// per add, amortised. Called with mu held.
func (iv *invalidations) prune(now time.Time) {
	for el := iv.done.Front(); el != nil && el.Value.(*invalidation).forgotten(now); el = iv.done.Front() {
		iv.remove(el)
	}
	iv.n.Store(int64(len(iv.nodes)))
}

// list returns the list el is in. Called with mu held.
func (iv *invalidations) list(el *list.Element) *list.List {
	if el.Value.(*invalidation).deletedAt.IsZero() {
		return &iv.pending
	}
	return &iv.done
}

// remove forgets the record of el. Called with mu held.
func (iv *invalidations) remove(el *list.Element) {
	rec := el.Value.(*invalidation)
	iv.list(el).Remove(el)
	delete(iv.nodes, rec.key)
	iv.recs.Delete(rec.key)
}
