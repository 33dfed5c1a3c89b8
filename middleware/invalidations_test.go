package middleware

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// isStale is the second result of invalidations.stale.
func isStale(_ time.Time, stale bool) bool { return stale }

func TestInvalidations(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var iv invalidations
	require.False(t, isStale(iv.stale("k", t0, t0)), "empty record: an entry is stale")
	iv.add("k", t0)
	assert.True(t, isStale(iv.stale("k", t0.Add(-time.Second), t0)), "entry stored before the invalidation is not stale")
	assert.False(t, isStale(iv.stale("k", t0.Add(time.Second), t0)), "entry stored after the invalidation is stale")
	assert.False(t, isStale(iv.stale("other", t0.Add(-time.Second), t0)), "another key's entry is stale")

	// Pending deletes are remembered however long it takes.
	late := t0.Add(24 * time.Hour)
	assert.True(t, isStale(iv.stale("k", t0.Add(-time.Second), late)), "pending invalidation forgotten after a day")
	// Once deleted, the record lasts the grace period, then goes.
	iv.deleted("k", t0, late)
	assert.True(t, isStale(iv.stale("k", t0.Add(-time.Second), late.Add(invalidationGrace/2))), "invalidation forgotten within its grace period")
	assert.False(t, isStale(iv.stale("k", t0.Add(-time.Second), late.Add(2*invalidationGrace))), "invalidation remembered past its grace period")
	// The next invalidation removes the forgotten record.
	iv.add("other", late.Add(2*invalidationGrace))
	assert.EqualValues(t, 1, iv.n.Load(), "keys the record holds after expiry and one add")
	assert.False(t, iv.made("k", 0), "a forgotten record still refuses writes")
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
	assert.True(t, iv.made("a", gen), "a run before the second invalidation is not refused")
	at, stale := iv.stale("a", t0, t0.Add(time.Second))
	assert.True(t, stale && at.Equal(t0.Add(time.Second)), "stale = %v at %v, want true at %v", stale, at, t0.Add(time.Second))
	iv.add("b", t0)
	iv.add("c", t0) // full: the oldest pending one ("a", re-added first) goes
	assert.False(t, isStale(iv.stale("a", t0, t0)), "the oldest pending record was kept past the limit")
	for _, k := range []string{"b", "c"} {
		assert.True(t, isStale(iv.stale(k, t0.Add(-time.Second), t0)), "record %q evicted", k)
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
	require.LessOrEqual(t, iv.n.Load(), int64(maxInvalidations), "keys the record holds")
	// Deleted records go first: every pending one is still there.
	for i := 1; i < maxInvalidations+10; i += 2 {
		require.True(t, isStale(iv.stale(strconv.Itoa(i), t0.Add(-time.Second), t0)), "pending invalidation %d evicted while deleted ones remained", i)
	}
}
