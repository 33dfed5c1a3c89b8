package middleware

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Coalescing: concurrent misses for one key run the handler once. The first
// request (the leader) runs it and streams to its own client as usual;
// requests that come while it runs (waiters) wait for it and are answered
// from its response when that response may be shared.
//
// This is singleflight's idea, written for requests rather than taken from
// golang.org/x/sync/singleflight, because a request needs three things that
// package does not give:
//
//   - a waiter must be able to stop waiting when its own client goes away
//     (singleflight.Do cannot be abandoned);
//   - the work must stop when nobody wants it any more, but not merely
//     because the leader's client went away while others still wait: the
//     handler runs under a context that is cancelled only when the leader
//     and every waiter are gone (or the handler returned), and that keeps
//     the leader's deadline and values;
//   - a leader's panic must reach each waiter as the same panic value, so
//     that net/http's per-request recovery treats it as the leader's own
//     (singleflight wraps it in a private error type, and DoChan crashes
//     the process on a panic).
//
// Waiters never wait longer than they must: they are released, to run the
// handler on their own, as soon as the leader's response is known not to
// be shareable (at its header: no-store, private, Set-Cookie, too large,
// a status that is not stored; or later, when its body outgrows the limit
// or the handler flushes), and after CacheOptions.LockTimeout in any case.
// The leader's body is buffered, not streamed, while it may be shared, so
// that its handler never waits on the leader's client: how fast that
// client reads never paces the others. A key whose response was not
// shareable is remembered for hitForMissTTL (hit-for-miss, as Varnish
// calls it), and requests for it are not coalesced meanwhile. Requests
// that open a stream (Upgrade, Accept: text/event-stream) are never
// coalesced.
//
// A flight whose response was shared stays findable until the background
// writer has stored the entry (or given up), so requests arriving in the
// short gap between the handler's end and the entry landing in Redis are
// answered from it too, instead of running the handler again.

// flightLinger is how long a flight whose entry was stored stays findable:
// more than any lookup that could have missed the entry takes (a store
// operation's deadline is tens of milliseconds).
const flightLinger = time.Second

// flights is the set of flights in progress, by cache key.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

// flight is one run of the handler for a key.
type flight struct {
	done chan struct{} // closed when the outcome is set

	// The outcome, written before done is closed and read after.
	e        *entry // the shareable response; nil if there is none
	panicked bool   // the handler panicked with panicVal
	panicVal any
	failed   bool // the handler failed (5xx or a recovered panic)

	// landed is when the entry was in the store; zero before, and for
	// good when the write failed or was dropped: a lookup that misses
	// then has not missed an entry that was there and went (a restart, a
	// flush), only one that never landed. settled is set when the write
	// ended either way. Both are guarded by the flights' mutex.
	landed  time.Time
	settled bool

	// refs counts the leader's client and the waiters still interested;
	// the work is cancelled when it drops to zero before done.
	mu     sync.Mutex
	refs   int
	cancel context.CancelFunc
}

// join returns the flight for key and whether the caller must lead it. A
// caller that may not lead (lead false) gets nil when there is no flight
// to wait for. A finished flight (kept until its entry is stored) is
// joined only when usable accepts it; otherwise a caller that may
// lead starts a new flight.
func (g *flights) join(key string, lead bool, usable func(*flight) bool) (f *flight, leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f = g.m[key]; f != nil {
		joinable := true
		select {
		case <-f.done:
			joinable = f.e != nil && usable(f)
		default:
		}
		if joinable {
			f.mu.Lock()
			f.refs++ // dropped by wait
			f.mu.Unlock()
			return f, false
		}
	}
	if !lead {
		return nil, false
	}
	if g.m == nil {
		g.m = make(map[string]*flight)
	}
	f = &flight{done: make(chan struct{}), refs: 1}
	g.m[key] = f
	return f, true
}

// land records that the write of f's entry ended, stored or not, and
// forgets f after linger.
func (g *flights) land(key string, f *flight, linger time.Duration, stored bool) {
	g.mu.Lock()
	if stored {
		f.landed = time.Now()
	}
	f.settled = true
	g.mu.Unlock()
	// The timer holds no goroutine until it fires.
	time.AfterFunc(linger, func() { g.forget(key, f) })
}

// forget removes f, if it is still the flight for key.
func (g *flights) forget(key string, f *flight) {
	g.mu.Lock()
	if g.m[key] == f {
		delete(g.m, key)
	}
	g.mu.Unlock()
}

// forgetKey removes the flights of key and of its variants (keys that
// start with key and "~"), running or finished, because the key was
// invalidated: requests that come later must not be answered from a run
// that started before. Waiters already in a running flight still get its
// answer (they came before the invalidation), and the writer drops its
// entry.
func (g *flights) forgetKey(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.m, key)
	for k := range g.m {
		if len(k) > len(key) && k[len(key)] == '~' && strings.HasPrefix(k, key) {
			delete(g.m, k)
		}
	}
}

// start returns the context the leader runs the handler with: parent's
// values and deadline, but cancelled only when every interested client is
// gone, or by the returned stop, which the leader calls when the handler
// returned.
func (f *flight) start(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	f.mu.Lock() // a waiter may already be releasing
	f.cancel = cancel
	f.mu.Unlock()
	cancelDeadline := context.CancelFunc(func() {})
	if d, ok := parent.Deadline(); ok {
		ctx, cancelDeadline = context.WithDeadline(ctx, d)
	}
	unwatch := context.AfterFunc(parent, f.release)
	return ctx, func() {
		unwatch()
		cancelDeadline()
		cancel()
	}
}

// release drops one interested client; the last one cancels the work.
func (f *flight) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refs--
	if f.refs == 0 && f.cancel != nil {
		f.cancel()
	}
}

// Outcomes of a wait.
const (
	waitDone    = iota // the flight's outcome is set
	waitGone           // the waiter's context ended
	waitTimeout        // the lock timeout passed first
)

// wait blocks until the flight's outcome is set, ctx ends or timeout
// passes, and says which; the waiter is no longer interested after it.
func (f *flight) wait(ctx context.Context, timeout time.Duration) int {
	defer f.release()
	select {
	case <-f.done:
		return waitDone
	default:
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-f.done:
		return waitDone
	case <-ctx.Done():
		return waitGone
	case <-t.C:
		return waitTimeout
	}
}

// finish sets the outcome and wakes the waiters. It must be called exactly
// once, by the leader, whatever happened to the handler: when the handler
// returned, or as soon as its response is known not to be shareable.
func (f *flight) finish(e *entry, failed, panicked bool, panicVal any) {
	f.e, f.failed, f.panicked, f.panicVal = e, failed, panicked, panicVal
	close(f.done)
}
