package middleware

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Hit-for-miss: how long a key whose response could not be shared is
// remembered, and how many keys are.
const (
	hitForMissTTL  = 5 * time.Second
	hitForMissKeys = 4096
)

// hitForMiss remembers, for a short time, keys whose last response could
// not be shared, so that requests for them run the handler at once instead
// of queueing behind one another. It is bounded: the least recently used
// key is forgotten first. Safe for concurrent use.
type hitForMiss struct {
	keys *lru.Cache[string, time.Time] // key -> until when it is remembered
}

func newHitForMiss() *hitForMiss {
	keys, _ := lru.New[string, time.Time](hitForMissKeys) // errs only for a size <= 0
	return &hitForMiss{keys: keys}
}

// add remembers key until now+hitForMissTTL.
func (h *hitForMiss) add(key string, now time.Time) { h.keys.Add(key, now.Add(hitForMissTTL)) }

// has reports whether key is remembered at now.
func (h *hitForMiss) has(key string, now time.Time) bool {
	until, ok := h.keys.Get(key)
	if ok && !now.Before(until) {
		h.keys.Remove(key)
		return false
	}
	return ok
}

// forget forgets key: its response was shareable after all.
func (h *hitForMiss) forget(key string) { h.keys.Remove(key) }
