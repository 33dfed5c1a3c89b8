package resilience

import "sync"

// maxLargeKeys bounds how many keys [largeValues] remembers.
const maxLargeKeys = 4096

// largeValues remembers the size of values a Get found too large to arrive
// within OpTimeout, so that the next Get of the key gets a deadline that
// fits its size (OpTimeout plus the size at MinTransferRate) instead of
// failing again after moving part of it. It holds at most maxLargeKeys
// keys; when full, an arbitrary one makes room. Safe for concurrent use;
// the zero value is ready.
type largeValues struct {
	mu    sync.Mutex
	sizes map[string]int64 // guarded by mu
}

// size returns the remembered size of key's value, or 0.
func (l *largeValues) size(key string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sizes[key]
}

// note remembers n as the size of key's value; n of LargeValue or less
// forgets the key.
func (l *largeValues) note(key string, n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n <= LargeValue {
		delete(l.sizes, key)
		return
	}
	if l.sizes == nil {
		l.sizes = make(map[string]int64)
	}
	if _, ok := l.sizes[key]; !ok && len(l.sizes) >= maxLargeKeys {
		for k := range l.sizes {
			delete(l.sizes, k)
			break
		}
	}
	l.sizes[key] = n
}
