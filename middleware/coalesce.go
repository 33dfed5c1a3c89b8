package middleware

import (
	"bytes"
	"context"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/steadfast-go/steadfast/cachepolicy"
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

	// landed is when the entry was in the store (or the write gave up);
	// zero before. Guarded by the flights' mutex.
	landed time.Time

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

// land records that f's entry is in the store (or will not be), and
// forgets f after flightLinger.
func (g *flights) land(key string, f *flight, linger time.Duration) {
	g.mu.Lock()
	f.landed = time.Now()
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

// forgetKey removes key's flight, running or finished, because the key
// was invalidated: requests that come later must not be answered from a
// run that started before. Waiters already in a running flight still get
// its answer (they came before the invalidation), and the writer drops its
// entry.
func (g *flights) forgetKey(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.m, key)
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

// fill answers a request that no entry could answer: it leads a flight
// for the key, joins one, or runs the handler alone.
//
// A request may lead only if its response can serve everybody: a GET
// without validators or Range (a HEAD gets no body, a conditional request
// may get a 304, a Range request a part). Others join a running flight if
// there is one and otherwise run the handler alone.
func (c *Cache) fill(w http.ResponseWriter, r *http.Request, next http.Handler, p *cachepolicy.Policy,
	key string, lookup time.Time, rd *cachepolicy.RequestDirectives, fallback *entry, fwd string,
) {
	if opensStream(r.Header) {
		// A WebSocket or an event stream lasts as long as its client
		// wants: nobody waits for it, and it waits for nobody.
		c.forward(w, r, next, p, key, fallback, fwd, nil)
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
	// a response a flight made within flightLinger is better than running
	// the handler once more: nothing would be stored anyway.
	now := c.now()
	if c.hfm.has(key, now) {
		// The key's last response could not be shared: no queue.
		c.forward(w, r, next, p, key, fallback, fwd, nil)
		return
	}
	usable := func(f *flight) bool {
		return (fwd == cachepolicy.FwdBypass || f.landed.IsZero() || lookup.Before(f.landed)) &&
			cachepolicy.Classify(f.e.life, f.e.storedAt, now, *rd) == cachepolicy.Fresh
	}
	f, leader := c.flights.join(key, lead, usable)
	switch {
	case f == nil:
		c.forward(w, r, next, p, key, fallback, fwd, nil)
	case leader:
		c.forward(w, r, next, p, key, fallback, fwd, f)
	default:
		c.await(w, r, next, p, key, fallback, fwd, f)
	}
}

// await answers a request from the flight it joined: the leader's
// response if it can be shared, the leader's panic, the stale entry if the
// leader failed, else a run of its own.
func (c *Cache) await(w http.ResponseWriter, r *http.Request, next http.Handler, p *cachepolicy.Policy,
	key string, fallback *entry, fwd string, f *flight,
) {
	c.stats.coalesced.Add(1)
	switch f.wait(r.Context(), c.lockTimeout) {
	case waitGone:
		return // the client is gone
	case waitTimeout:
		c.stats.lockTimeouts.Add(1)
		c.forward(w, r, next, p, key, fallback, fwd, nil)
		return
	}
	switch {
	case f.panicked:
		// The leader's panic, for net/http (or an outer recovery) to
		// handle per request, as it does the leader's.
		panic(f.panicVal)
	case f.e != nil:
		now := c.now()
		cs := cachepolicy.CacheStatus{Fwd: fwd, Collapsed: true}
		if fwd == cachepolicy.FwdBypass {
			cs.Detail = detailUnavailable
		}
		c.writeEntry(w, r, f.e, now, cs, true)
	case f.failed && fallback != nil:
		c.serveStale(w, r, fallback)
	default:
		c.forward(w, r, next, p, key, fallback, fwd, nil)
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
	c        *Cache
	r        *http.Request
	p        *cachepolicy.Policy
	key      string
	fallback *entry
	fwd      string
	f        *flight // nil when not coalesced
	stop     func()  // ends the flight's context

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
func (c *Cache) forward(w http.ResponseWriter, r *http.Request, next http.Handler, p *cachepolicy.Policy,
	key string, fallback *entry, fwd string, f *flight,
) {
	if fwd != cachepolicy.FwdBypass {
		c.stats.misses.Add(1)
	}
	ru := &run{c: c, r: r, p: p, key: key, fallback: fallback, fwd: fwd, f: f, now: c.now(), gen: c.inval.generation()}
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

// hold is the recorder's decision when the handler writes its status: a
// 5xx is held back when a stale entry can replace it; anything else gets
// its Cache-Status and is recorded only if it may be stored. A response a
// flight may share has its body buffered, not streamed, so that the
// handler never waits on the leader's client; one that may not be shared
// releases the waiters at once.
func (ru *run) hold(status int, h http.Header) bool {
	ru.decide(status, h)
	if ru.fallback != nil && status >= http.StatusInternalServerError {
		ru.held5xx = true
		return true
	}
	if !ru.decision.Store {
		// Nothing to keep when nothing will be stored.
		ru.rec.cfg.capture = false
		ru.unshare()
		return false
	}
	if ru.f != nil {
		ru.rec.bufferBody()
	}
	return false
}

// sent runs when the status went to the client's writer, with the header
// as middleware outside the cache left it after its own WriteHeader: the
// final header. What those middleware added (Set-Cookie, Cache-Control:
// private, Vary) counts as the handler's own would.
func (ru *run) sent(final http.Header) {
	if !ru.decided || !ru.decision.Store {
		return
	}
	committed := ru.vary
	d := cachepolicy.Storable(ru.r, ru.status, ru.c.decisionHeader(final, func(i int) bool {
		return ru.outerVaryLine(final, i) || i >= committed
	}), *ru.p, ru.now)
	if d.Store {
		return
	}
	ru.decision = d
	ru.rec.cfg.capture = false
	ru.rec.buffering = false // no body was written yet
	ru.unshare()
}

// cut runs when the body kept stops being the whole response, or stops
// being buffered (too large, a flush, a hijack, a failed write): it is
// then not shared, and not stored unless the cause was a flush (a
// response that then completes whole may still be stored).
func (ru *run) cut(reason string) {
	if reason != "flush" && ru.decided && ru.decision.Store {
		ru.decision.Store = false
	}
	ru.unshare()
}

// unshare releases the flight's waiters, to run the handler on their own,
// and remembers the key as one not to coalesce for a while. The handler's
// context is left alone: the leader's client still wants its response.
func (ru *run) unshare() {
	if ru.f == nil || ru.done {
		return
	}
	ru.c.hfm.add(ru.key, ru.c.now())
	ru.done = true
	ru.f.finish(nil, false, false, nil)
	ru.c.flights.forget(ru.key, ru.f)
}

// outerVaryLine reports whether h's Vary line i is one that middleware
// outside the cache set before the handler ran.
func (ru *run) outerVaryLine(h http.Header, i int) bool {
	prev := ru.before["Vary"]
	return i < len(prev) && i < len(h["Vary"]) && h["Vary"][i] == prev[i]
}

// decisionHeader returns the header the store decision reads: h, but
// with the names of [CacheOptions.OuterVary] taken out of the Vary lines
// that outer reports as set by middleware outside the cache.
func (c *Cache) decisionHeader(h http.Header, outer func(i int) bool) http.Header {
	lines := h["Vary"]
	if len(c.outerVary) == 0 || len(lines) == 0 {
		return h
	}
	kept := make([]string, 0, len(lines))
	changed := false
	for i, line := range lines {
		if outer(i) {
			if l := dropNames(line, c.outerVary); l != line {
				changed = true
				if l == "" {
					continue
				}
				line = l
			}
		}
		kept = append(kept, line)
	}
	if !changed {
		return h
	}
	v := maps.Clone(h)
	v["Vary"] = kept
	return v
}

// dropNames returns the comma-separated list line without the names
// (compared case-insensitively).
func dropNames(line string, names []string) string {
	var out []string
	changed := false
	for part := range strings.SplitSeq(line, ",") {
		name := strings.TrimSpace(part)
		if slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, name) }) {
			changed = true
			continue
		}
		if name != "" {
			out = append(out, name)
		}
	}
	if !changed {
		return line
	}
	return strings.Join(out, ", ")
}

// opensStream reports whether a request asks for a response that lasts
// as long as its client wants: a protocol upgrade (WebSocket) or an event
// stream.
func opensStream(h http.Header) bool {
	if len(h["Upgrade"]) > 0 {
		return true
	}
	for _, v := range h["Accept"] {
		if strings.Contains(strings.ToLower(v), "text/event-stream") {
			return true
		}
	}
	return false
}

// decide makes the store decision for the response's status and header
// and sets its Cache-Status. The decision reads the whole header, with
// what middleware outside the cache set before the handler ran: their
// Cache-Control, Set-Cookie and Vary count like the handler's (but for
// the Vary names of [CacheOptions.OuterVary]). Those fields are not
// stored (see fieldsOf): the middleware sets them again on every response.
func (ru *run) decide(status int, h http.Header) {
	ru.status, ru.vary = status, len(h["Vary"])
	d := cachepolicy.Storable(ru.r, status, ru.c.decisionHeader(h, func(i int) bool {
		return ru.outerVaryLine(h, i)
	}), *ru.p, ru.now)
	switch {
	case !d.Store:
	case len(ru.r.Header["Range"]) > 0:
		d = cachepolicy.StoreDecision{Reason: "range"}
	case tooLarge(h, ru.p):
		d = cachepolicy.StoreDecision{Reason: "too-large"}
	}
	ru.decision, ru.decided = d, true
	if d.Store {
		// The header as it goes to the client's writer: what an outer
		// wrapper changes after that is its own business.
		ru.header = h.Clone()
	}
	if ru.fwd == cachepolicy.FwdBypass {
		// The response may still be shared with waiters, never stored.
		h["Cache-Status"] = []string{statusBypassUnavailable}
		return
	}
	setCacheStatus(h, cachepolicy.CacheStatus{Fwd: ru.fwd, Stored: d.Store, Detail: d.Reason})
}

// tooLarge reports whether h announces a body over p's limit.
func tooLarge(h http.Header, p *cachepolicy.Policy) bool {
	cl := h["Content-Length"]
	if len(cl) == 0 {
		return false
	}
	n, err := strconv.ParseInt(cl[0], 10, 64)
	return err == nil && n > p.BodyLimit()
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

// whole reports whether the response the recorder kept is what the
// handler completed: the handler's context is still live (no client left,
// no deadline passed), every byte it wrote is in the copy, and the body is
// as long as any Content-Length it declared.
func (ru *run) whole(status int, h http.Header) bool {
	if ru.ctx.Err() != nil || !ru.rec.Complete() {
		return false
	}
	return lengthMatches(status, h, len(ru.rec.Body()))
}

// lengthMatches reports whether a body of n bytes agrees with the
// Content-Length of h, if any: every line must be the same valid length.
func lengthMatches(status int, h http.Header, n int) bool {
	cl := h["Content-Length"]
	if len(cl) == 0 || !bodyAllowed(status) {
		return true
	}
	for _, v := range cl {
		m, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || m != int64(n) {
			return false
		}
	}
	return true
}

// complete deals with the response once the handler returned: a held 5xx
// is replaced by the stale entry; a complete response that may be stored
// goes to the writer and, when coalesced, to the waiters.
func (ru *run) complete() {
	c, rec := ru.c, ru.rec
	w := rec.w
	rec.finish()
	if rec.Held() && ru.held5xx {
		c.recs.put(rec)
		ru.finish(nil, true, false, nil)
		c.serveStale(w, ru.r, ru.fallback)
		return
	}
	status := rec.Status()
	if status == 0 && !rec.Hijacked() {
		// No status and no byte: net/http sends 200 with the headers the
		// handler set, which finish has handed to the client's map.
		status = http.StatusOK
		ru.decide(status, w.Header())
	}
	var e *entry
	if ru.decided && ru.decision.Store && ru.whole(status, ru.header) {
		e = newEntry(ru.now, ru.decision.Lifetime, status, ru.header, ru.before, rec.Body())
	}
	ru.finish(e, status >= http.StatusInternalServerError, false, nil)
	// The waiters have their answer; now the leader's client gets the
	// body kept back for them, at its own pace.
	_ = rec.flushBuffer() // a client that went away is not an error here
	c.recs.put(rec)
	if e != nil {
		c.hfm.forget(ru.key)
	}
	if e != nil && ru.fwd == cachepolicy.FwdBypass {
		// Shared with the waiters that came while it ran; not stored.
		if ru.f != nil {
			c.flights.forget(ru.key, ru.f)
		}
		return
	}
	if e != nil {
		f, key := ru.f, ru.key
		j := writeJob{key: key, e: e, ttl: retention(e.life), gen: ru.gen}
		if f != nil {
			// Findable a little longer: a request whose lookup missed just
			// before the entry landed (its GET waited for a connection, say)
			// is answered from the flight instead of running the handler
			// again.
			j.done = func() { c.flights.land(key, f, c.linger) }
		}
		c.w.enqueue(j)
	}
}

// retention returns how long the store keeps an entry with lifetime l: as
// long as any use of it is possible, and never less than a millisecond
// (the store's unit).
func retention(l cachepolicy.Lifetime) time.Duration {
	return max(l.Retention(), time.Millisecond)
}

// newEntry builds the entry of a response the recorder kept, taking h,
// which must be the caller's own, and a copy of body; fields unchanged
// from before (the header as the handler got it) are left out. A
// body-bearing status gets a Content-Length, so that HEAD requests served
// from the entry announce the right length, and a response without Date
// gets one, so that Date and Age agree on hits.
func newEntry(storedAt time.Time, life cachepolicy.Lifetime, status int, h, before http.Header, body []byte) *entry {
	if _, ok := h["Content-Length"]; !ok && bodyAllowed(status) {
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{storedAt.UTC().Format(http.TimeFormat)}
	}
	return &entry{
		storedAt: storedAt,
		life:     life,
		status:   status,
		fields:   fieldsOf(h, before),
		body:     bytes.Clone(body),
	}
}

// bodyAllowed reports whether a response with the status may have a body.
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}
