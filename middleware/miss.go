package middleware

import (
	"context"
	"net/http"
	"time"

	"github.com/steadfast-go/steadfast/cachepolicy"
)

// miss is a request's state on the miss path: built once in serve, when
// no entry could answer, and carried through fill, await and forward (and
// into the run of the handler) as net/http carries a *Request.
type miss struct {
	w        http.ResponseWriter
	r        *http.Request
	next     http.Handler
	p        *cachepolicy.Policy
	base     string                         // the URL's key
	key      string                         // the flight's: its variant's key if the URL has a variant index, else base
	lookup   time.Time                      // when the store lookup began (the runtime's clock)
	rd       *cachepolicy.RequestDirectives // r's Cache-Control
	fallback *entry                         // served if the handler fails; nil if none
	// validating, when set, is the stored response the handler is asked
	// to validate.
	validating *entry
	fwd        string // the Cache-Status fwd value
}

// fill answers a request that no entry could answer: it leads a flight
// for the key, joins one, or runs the handler alone.
//
// A request may lead only if its response can serve everybody: a GET
// without validators or Range (a HEAD gets no body, a conditional request
// may get a 304, a Range request a part). Others join a running flight if
// there is one and otherwise run the handler alone.
func (c *Cache) fill(m *miss) {
	r, key, fwd := m.r, m.key, m.fwd
	if opensStream(r.Header) {
		// A WebSocket or an event stream lasts as long as its client
		// wants: nobody waits for it, and it waits for nobody.
		c.forward(m, nil)
		return
	}
	lead := r.Method == http.MethodGet && !conditional(r.Header) &&
		len(r.Header["If-Match"]) == 0 && len(r.Header["If-Unmodified-Since"]) == 0 && len(r.Header["Range"]) == 0
	// A finished flight is used only if it is fresh for the request, as
	// if it had been found in the store, and, when the store answered,
	// only if the request's lookup began before the flight's entry landed
	// there (it missed the entry by a hair): a lookup that began later and
	// missed means the entry is gone (a restart, a flush), so the handler
	// runs and stores it again. When the store could not answer (bypass),
	// or could not take the flight's entry, a response a flight made within
	// flightLinger is better than running the handler once more: a burst
	// of requests that overwhelms the store runs the handler once.
	now := c.now()
	if c.hfm.has(key, now) {
		// The key's last response could not be shared: no queue.
		c.forward(m, nil)
		return
	}
	usable := func(f *flight) bool {
		return (fwd == cachepolicy.FwdBypass || f.landed.IsZero() || m.lookup.Before(f.landed)) &&
			cachepolicy.Classify(f.e.life, f.e.storedAt, now, *m.rd) == cachepolicy.Fresh &&
			sameVariant(f.e, m.base, r.Header)
	}
	f, leader := c.flights.join(key, lead, usable)
	switch {
	case f == nil:
		c.forward(m, nil)
	case leader:
		c.forward(m, f)
	default:
		c.await(m, f)
	}
}

// await answers a request from the flight it joined: the leader's
// response if it can be shared, the leader's panic, the stale entry if the
// leader failed, else a run of its own.
func (c *Cache) await(m *miss, f *flight) {
	c.stats.coalesced.Add(1)
	switch f.wait(m.r.Context(), c.lockTimeout) {
	case waitGone:
		return // the client is gone
	case waitTimeout:
		c.stats.lockTimeouts.Add(1)
		c.forward(m, nil)
		return
	}
	switch {
	case f.panicked:
		// The leader's panic, for net/http (or an outer recovery) to
		// handle per request, as it does the leader's.
		panic(f.panicVal)
	case f.e != nil && sameVariant(f.e, m.base, m.r.Header):
		now := c.now()
		cs := cachepolicy.CacheStatus{Fwd: m.fwd, Collapsed: true}
		if m.fwd == cachepolicy.FwdBypass {
			cs.Detail = detailUnavailable
		}
		c.writeEntry(m.w, m.r, f.e, now, cs, true)
	case f.failed && m.fallback != nil:
		c.serveStale(m.w, m.r, m.fallback)
	default:
		c.forward(m, nil)
	}
}

// serveStale answers r from a stale entry in place of a failed handler.
func (c *Cache) serveStale(w http.ResponseWriter, r *http.Request, e *entry) {
	c.stats.staleHits.Add(1)
	now := c.now()
	c.writeEntry(w, r, e, now, cachepolicy.CacheStatus{
		Hit: true, TTL: e.life.TTL(e.storedAt, now), Detail: "stale-if-error",
	}, false)
}

// run is one run of the handler on the miss path, by a flight's leader or
// a request on its own.
type run struct {
	c    *Cache
	miss             // the request's state (r, p, key, fallback, fwd, ...)
	f    *flight     // nil when not coalesced
	stop func()      // ends the flight's context
	h304 http.Header // the header of the validating 304, held back

	rec      *recorder
	ctx      context.Context // the handler's
	before   http.Header     // the client's header before the handler ran
	header   http.Header     // the response's header, if it may be stored
	now      time.Time
	gen      uint64 // the invalidation generation when the run began
	decision cachepolicy.StoreDecision
	decided  bool
	status   int  // the status decided on
	vary     int  // how many Vary lines the header had when committed
	held5xx  bool // a 5xx is held back, to be replaced by the fallback
	done     bool // the flight's outcome is set
}

// forward runs next for r through a recorder that streams the response to
// the client and keeps a copy, up to the policy's body limit, of a response
// that may be stored. With a fallback (a stale entry within its
// stale-if-error window), a 5xx is held back and the stale entry served
// instead. f, when set, is the flight r leads.
//
// With m.validating set, the handler gets a conditional request made from
// its validators; a 304 is held back and answered with the stored
// response, updated from the 304 (see revalidated).
func (c *Cache) forward(m *miss, f *flight) {
	w, r, next, p := m.w, m.r, m.next, m.p
	if m.fwd != cachepolicy.FwdBypass {
		c.stats.misses.Add(1)
	}
	ru := &run{c: c, miss: *m, f: f, now: c.now(), gen: c.inval.generation()}
	if h := w.Header(); len(h) > 0 {
		ru.before = h.Clone() // what outer middleware set is not stored
	}
	req := r
	if f != nil {
		var ctx context.Context
		ctx, ru.stop = f.start(r.Context())
		defer ru.stop()
		req = r.WithContext(ctx)
	}
	if m.validating != nil {
		req = req.Clone(req.Context())
		m.validating.validators().SetConditional(req.Header)
	}
	ru.ctx = req.Context()
	ru.rec = c.recs.get(w, recorderConfig{hold: ru.hold, capture: true, limit: bodyLimit(p), sent: ru.sent, cut: ru.cut})
	if !ru.serve(next, req) {
		return // the handler panicked, or called runtime.Goexit
	}
	ru.complete()
}

// bodyLimit returns p's body limit as an int.
func bodyLimit(p *cachepolicy.Policy) int {
	return int(min(p.BodyLimit(), int64(^uint(0)>>1)))
}

// serve runs next and reports whether it returned. A panic is dealt with
// in the deferred call, narrowly around next.ServeHTTP, so that a panic
// passed on keeps the stack of where it started.
func (ru *run) serve(next http.Handler, req *http.Request) (returned bool) {
	defer func() {
		if !returned {
			ru.panicked(recover())
		}
	}()
	next.ServeHTTP(ru.rec, req)
	return true
}

// panicked handles a panic of the handler, v being the recovered value
// (nil for runtime.Goexit). Waiters get the same panic, unless the panic
// is answered with the stale entry (Policy.StaleIfErrorOnPanic) or is
// http.ErrAbortHandler (the leader's response was abandoned: waiters run
// their own).
func (ru *run) panicked(v any) {
	switch {
	case v == nil:
		ru.finish(nil, false, false, nil)
	case v == http.ErrAbortHandler:
		ru.finish(nil, false, false, nil)
		panic(v)
	case ru.fallback != nil && ru.p.StaleIfErrorOnPanic && !ru.rec.Committed():
		logPanic(ru.c.log, ru.r, v)
		ru.finish(nil, true, false, nil)
		// Whatever the handler wrote went to the recorder's own header
		// map and buffer, never to the client.
		w := ru.rec.w
		ru.c.recs.put(ru.rec)
		ru.c.serveStale(w, ru.r, ru.fallback)
	default:
		ru.finish(nil, false, true, v)
		panic(v)
	}
}

// finish sets the flight's outcome, once. A flight with a shared entry
// stays findable until the entry is stored. The flight's context ends
// when forward returns.
func (ru *run) finish(e *entry, failed, panicked bool, v any) {
	if ru.f == nil || ru.done {
		return
	}
	ru.done = true
	ru.f.finish(e, failed, panicked, v)
	if e == nil {
		ru.c.flights.forget(ru.key, ru.f)
	}
}
