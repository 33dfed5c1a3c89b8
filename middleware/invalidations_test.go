package middleware

import (
	"strconv"
	"testing"
	"time"
)

func TestInvalidations(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var iv invalidations
	if _, stale := iv.stale("k", t0, t0); stale {
		t.Fatal("empty record: an entry is stale")
	}
	iv.add("k", t0)
	if _, stale := iv.stale("k", t0.Add(-time.Second), t0); !stale {
		t.Error("entry stored before the invalidation is not stale")
	}
	if _, stale := iv.stale("k", t0.Add(time.Second), t0); stale {
		t.Error("entry stored after the invalidation is stale")
	}
	if _, stale := iv.stale("other", t0.Add(-time.Second), t0); stale {
		t.Error("another key's entry is stale")
	}

	// Pending deletes are remembered however long it takes.
	late := t0.Add(24 * time.Hour)
	if _, stale := iv.stale("k", t0.Add(-time.Second), late); !stale {
		t.Error("pending invalidation forgotten after a day")
	}
	// Once deleted, the record lasts the grace period, then goes.
	iv.deleted("k", t0, late)
	if _, stale := iv.stale("k", t0.Add(-time.Second), late.Add(invalidationGrace/2)); !stale {
		t.Error("invalidation forgotten within its grace period")
	}
	if _, stale := iv.stale("k", t0.Add(-time.Second), late.Add(2*invalidationGrace)); stale {
		t.Error("invalidation remembered past its grace period")
	}
	// The next invalidation removes the forgotten record.
	iv.add("other", late.Add(2*invalidationGrace))
	if n := iv.n.Load(); n != 1 {
		t.Errorf("record holds %d keys after expiry and one add, want 1", n)
	}
	if iv.made("k", 0) {
		t.Error("a forgotten record still refuses writes")
	}
}

// An invalidation of a key already recorded keeps it recorded throughout:
// the record is replaced, never removed first.
func TestInvalidationsReAdd(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	iv := newInvalidations(2)
	iv.add("a", t0)
	iv.deleted("a", t0, t0)
	gen := iv.generation()
	iv.add("a", t0.Add(time.Second))
	if !iv.made("a", gen) {
		t.Error("a run before the second invalidation is not refused")
	}
	if at, stale := iv.stale("a", t0, t0.Add(time.Second)); !stale || !at.Equal(t0.Add(time.Second)) {
		t.Errorf("stale = %v at %v, want true at %v", stale, at, t0.Add(time.Second))
	}
	iv.add("b", t0)
	iv.add("c", t0) // full: the oldest pending one ("a", re-added first) goes
	if _, stale := iv.stale("a", t0, t0); stale {
		t.Error("the oldest pending record was kept past the limit")
	}
	for _, k := range []string{"b", "c"} {
		if _, stale := iv.stale(k, t0.Add(-time.Second), t0); !stale {
			t.Errorf("record %q evicted", k)
		}
	}
}

func TestInvalidationsBounded(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	iv := newInvalidations(0)
	for i := range maxInvalidations + 10 {
		at := t0.Add(time.Duration(i) * time.Millisecond)
		iv.add(strconv.Itoa(i), at)
		if i%2 == 0 {
			iv.deleted(strconv.Itoa(i), at, at)
		}
	}
	if n := iv.n.Load(); n > maxInvalidations {
		t.Fatalf("record holds %d keys, want at most %d", n, maxInvalidations)
	}
	// Deleted records go first: every pending one is still there.
	for i := 1; i < maxInvalidations+10; i += 2 {
		if _, stale := iv.stale(strconv.Itoa(i), t0.Add(-time.Second), t0); !stale {
			t.Fatalf("pending invalidation %d evicted while deleted ones remained", i)
		}
	}
}
