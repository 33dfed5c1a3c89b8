package middleware

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/steadfast-go/steadfast/cachepolicy"
)

// hold is the recorder's decision when the handler writes its status: a
// 5xx is held back when a stale entry can replace it; anything else gets
// its Cache-Status and is recorded only if it may be stored. A response a
// flight may share has its body buffered, not streamed, so that the
// handler never waits on the leader's client; one that may not be shared
// releases the waiters at once.
func (ru *run) hold(status int, h http.Header) bool {
	if status == http.StatusNotModified && ru.validating != nil {
		ru.h304 = h.Clone()
		return true
	}
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
		// A Vary the outer middleware added makes the entry a variant on
		// those fields too: it must reach only requests with their values.
		ru.decision.Vary = d.Vary
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
	case len(ru.r.Header["Range"]) > 0 && ru.validating == nil: // a validation asks for the whole
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
	cs := cachepolicy.CacheStatus{Fwd: ru.fwd, Stored: d.Store, Detail: d.Reason}
	if ru.validating != nil {
		cs.FwdStatus = status
	}
	setCacheStatus(h, cs)
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
	if rec.Held() && ru.h304 != nil {
		c.recs.put(rec)
		ru.revalidated(w)
		return
	}
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
		e = newEntry(ru.now, &ru.decision, status, ru.header, ru.before, rec.Body())
		if len(ru.decision.Vary) > 0 {
			e.variant = &variantOf{ru.decision.Vary, variantKey(ru.base, ru.r.Header, ru.decision.Vary)}
		}
	} else if ru.fwd != cachepolicy.FwdBypass {
		c.countNotStored(ru, rec)
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
		ru.store(e)
	}
}

// store queues e, the run's entry, for the writer.
func (ru *run) store(e *entry) {
	c, f, key := ru.c, ru.f, ru.key
	j := writeJob{key: ru.base, e: e, ttl: retention(e.life), gen: ru.gen, maxVariants: ru.p.VariantLimit()}
	if f != nil {
		// Findable a little longer: a request whose lookup missed just
		// before the entry landed (its GET waited for a connection, say)
		// is answered from the flight instead of running the handler
		// again.
		j.done = func(stored bool) { c.flights.land(key, f, c.linger, stored) }
	}
	c.w.enqueue(j)
}

// skip says why a GET or HEAD request is not handled by the cache at all,
// with the fwd value for its Cache-Status, or returns an empty reason.
func skip(r *http.Request, rd *cachepolicy.RequestDirectives, p *cachepolicy.Policy) (fwd, reason string) {
	switch {
	case hasBody(r):
		// A "fat GET": what the handler answers may depend on the body,
		// which is not in the key.
		return cachepolicy.FwdBypass, "request-body"
	case rd.NoStore:
		return cachepolicy.FwdRequest, "no-store"
	case len(r.Header["Authorization"]) > 0 && !p.AllowAuthorization:
		return cachepolicy.FwdBypass, "authorization"
	case len(r.Header["Cookie"]) > 0 && !p.AllowCookies:
		return cachepolicy.FwdBypass, "cookie"
	}
	return "", ""
}

// hasBody reports whether r carries a body: a Content-Length above zero,
// or a body of unknown length (chunked), as net/http's server sets them.
func hasBody(r *http.Request) bool {
	return r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody)
}
