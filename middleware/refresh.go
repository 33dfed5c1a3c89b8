package middleware

import (
	"context"
	"net/http"

	"github.com/steadfast-go/steadfast/cachepolicy"
)

// refresh starts the background refresh of the stale entry at m.key (the
// flight's key; m.base is the URL's), for m.r, unless one is running already,
// MaxRefreshes are, or the cache is closed. The handler runs with a copy
// of r stripped of the client's validators, Range and Cache-Control, made
// conditional on stale's own validators if it has any (a 304 renews
// stale), as a GET, with r's context values but neither its
// cancellation nor its deadline: it has a deadline of its own,
// refreshTimeout, and ends early only when the cache is closed. The
// header w has before the entry is written (what middleware outside the
// cache set) counts in the store decision, as on a miss.
func (c *Cache) refresh(m *miss, stale *entry) {
	w, r, key := m.w, m.r, m.key
	c.refreshMu.Lock()
	if _, running := c.refreshing[key]; running || c.closed {
		c.refreshMu.Unlock()
		return
	}
	if len(c.refreshing) >= c.maxRefresh {
		c.refreshMu.Unlock()
		c.stats.refreshesSkipped.Add(1)
		return
	}
	c.refreshing[key] = struct{}{}
	c.refreshWG.Add(1)
	c.refreshMu.Unlock()
	c.stats.refreshes.Add(1)

	// The request's values, not its end or its deadline: the client has
	// its answer. The refresh ends with Close, or after refreshTimeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), refreshTimeout)
	stop := context.AfterFunc(c.ctx, cancel)
	req := r.Clone(ctx)
	req.Method = http.MethodGet
	req.Body, req.ContentLength = http.NoBody, 0
	for _, name := range refreshDropped {
		delete(req.Header, name)
	}
	stale.validators().SetConditional(req.Header)
	var before http.Header
	if h := w.Header(); len(h) > 0 {
		before = h.Clone()
	}
	go func() {
		defer func() {
			stop()
			cancel()
			c.refreshMu.Lock()
			delete(c.refreshing, key)
			c.refreshMu.Unlock()
			c.refreshWG.Done()
		}()
		c.runRefresh(m.base, req, before, m.next, m.p, stale)
	}()
}

// refreshDropped are the request fields a refresh leaves out, so that the
// handler answers with a whole, storable response.
var refreshDropped = []string{
	"Cache-Control", "If-Match", "If-Modified-Since", "If-None-Match", "If-Range",
	"If-Unmodified-Since", "Pragma", "Range",
}

// runRefresh runs next for a refresh and queues its response if it may be
// stored and the handler completed it: it returned, within the refresh's
// deadline, having written the whole body it announced. before is the
// header middleware outside the cache set on the request that started the
// refresh; a 304 that validates stale queues stale updated from it. A
// panic is logged and goes no further: there is no client, and a panic in
// this goroutine would end the process.
func (c *Cache) runRefresh(base string, req *http.Request, before http.Header, next http.Handler, p *cachepolicy.Policy,
	stale *entry,
) {
	sink := refreshSink{h: before.Clone()}
	rec := c.recs.get(&sink, recorderConfig{capture: true, limit: bodyLimit(p)})
	returned := false
	defer func() {
		if !returned {
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				logPanic(c.log, req, v)
			}
		}
	}()
	// Taken before the handler runs, as for a miss: an invalidation that
	// comes while it runs must find this response older than itself.
	now, gen := c.now(), c.inval.generation()
	next.ServeHTTP(rec, req)
	returned = true

	rec.finish()
	status := rec.Status()
	if status == 0 {
		status = http.StatusOK
	}
	h := sink.Header()
	var e *entry
	if status == http.StatusNotModified {
		if req.Context().Err() == nil && stale.validators().Selects(h) {
			if u, ok := updatedEntry(stale, ownFields(h, before), req, base, p, now); ok {
				e = u
			}
		}
	} else if d := cachepolicy.Storable(req, status, c.decisionHeader(h, func(i int) bool {
		return i < len(before["Vary"]) && h["Vary"][i] == before["Vary"][i]
	}), *p, now); d.Store && req.Context().Err() == nil && rec.Complete() && lengthMatches(status, h, len(rec.Body())) {
		e = newEntry(now, &d, status, h, before, rec.Body()) // the sink's header is ours
		if len(d.Vary) > 0 {
			e.variant = &variantOf{d.Vary, variantKey(base, req.Header, d.Vary)}
		}
	}
	if e != nil {
		c.w.enqueue(writeJob{key: base, e: e, ttl: retention(e.life), gen: gen, maxVariants: p.VariantLimit()})
	}
	c.recs.put(rec)
}

// refreshSink is where a background refresh writes: there is no client,
// so the recorder in front of it keeps what is to be stored and the rest
// is dropped. It is not a wrapper, and has nothing to flush or hijack.
type refreshSink struct {
	h http.Header
}

// Header returns the response's header map.
func (d *refreshSink) Header() http.Header {
	if d.h == nil {
		d.h = make(http.Header)
	}
	return d.h
}

// Write drops p.
func (*refreshSink) Write(p []byte) (int, error) { return len(p), nil }

// WriteHeader drops the status; the recorder keeps it.
func (*refreshSink) WriteHeader(int) {}
