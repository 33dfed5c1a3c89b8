package middleware

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// fullInvalidations returns a record holding n keys ("k0"...), every
// other one with its delete done, so that each further add evicts.
func fullInvalidations(n int, t0 time.Time) *invalidations {
	iv := newInvalidations(n)
	for i := range n {
		key := "k" + strconv.Itoa(i)
		iv.add(key, t0)
		if i%2 == 0 {
			iv.deleted(key, t0, t0)
		}
	}
	return iv
}

var benchRecordSizes = []int{10_000, 100_000}

// BenchmarkInvalidationsAdd measures an invalidation when the record is
// full: each one evicts a record. Budget: O(1), well under a
// microsecond, whatever the record's size.
func BenchmarkInvalidationsAdd(b *testing.B) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, n := range benchRecordSizes {
		b.Run("keys="+strconv.Itoa(n), func(b *testing.B) {
			iv := fullInvalidations(n, t0)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				iv.add("new"+strconv.Itoa(i), t0) // a new key: every add evicts
				i++
			}
		})
	}
}

// BenchmarkInvalidationsHitDuringAdds measures the hit path's look-up
// (stale) while another goroutine invalidates keys as fast as it can on a
// full record: a hit must not wait for invalidation bookkeeping.
func BenchmarkInvalidationsHitDuringAdds(b *testing.B) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, n := range benchRecordSizes {
		b.Run("keys="+strconv.Itoa(n), func(b *testing.B) {
			iv := fullInvalidations(n, t0)
			var stop atomic.Bool
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; !stop.Load(); i++ {
					iv.add("churn"+strconv.Itoa(i), t0) // new keys: each evicts
				}
			}()
			b.ReportAllocs()
			for b.Loop() {
				iv.stale("k1", t0.Add(-time.Second), t0)
			}
			b.StopTimer()
			stop.Store(true)
			<-done
		})
	}
}
