package faultproxy

import (
	"context"
	"net"
	"sync"
	"time"
)

// throttleSlice is the most bytes written in one go on a throttled link,
// so that connections sharing it take turns.
const throttleSlice = 16 << 10

// throttleSlack is how far behind its schedule a link may fall and catch
// up at once: timers that fire late on a loaded machine do not lower the
// rate below the one asked for.
const throttleSlack = 20 * time.Millisecond

// link paces one direction of traffic, shared by every connection of a
// [Proxy], to a rate in bytes per second: a slow shared network. Each
// write books the time its bytes take on the link after those booked
// before it.
type link struct {
	rate int64 // bytes per second; zero means unlimited

	mu   sync.Mutex
	next time.Time // guarded by mu: when the link is free
}

// write sends p to w at the link's pace. It stops early, with ctx's error,
// when ctx ends (the proxy closes).
func (l *link) write(ctx context.Context, w net.Conn, p []byte) error {
	if l.rate <= 0 {
		_, err := w.Write(p)
		return err
	}
	for len(p) > 0 {
		n := min(len(p), throttleSlice)
		l.mu.Lock()
		start := l.next
		if earliest := time.Now().Add(-throttleSlack); start.Before(earliest) {
			start = earliest
		}
		l.next = start.Add(time.Duration(int64(n) * int64(time.Second) / l.rate))
		wait := time.Until(l.next)
		l.mu.Unlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		if _, err := w.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}
