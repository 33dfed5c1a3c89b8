package middleware

import (
	"context"
	"net/http"
	"time"

	"github.com/steadfast-go/steadfast/cachepolicy"
)

// unsafeMethod reports whether a request with the method may change the
// resource: anything but GET, HEAD, OPTIONS and TRACE.
func unsafeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// serveOther handles a request whose method is not answered from the
// cache: unsafe ones run the handler and, if they succeed, invalidate the
// GET entry of their URL under p; others (OPTIONS, TRACE) pass through
// untouched.
func (c *Cache) serveOther(w http.ResponseWriter, r *http.Request, next http.Handler, p *cachepolicy.Policy) {
	if !unsafeMethod(r.Method) {
		next.ServeHTTP(w, r)
		return
	}
	w.Header()["Cache-Status"] = []string{statusMethod}
	rec := c.recs.get(w, recorderConfig{})
	next.ServeHTTP(rec, r) // a panic passes on: nothing to invalidate
	rec.finish()
	status, hijacked := rec.Status(), rec.Hijacked()
	c.recs.put(rec)
	if status == 0 && !hijacked {
		status = http.StatusOK
	}
	if cachepolicy.Invalidates(r.Method, status) {
		c.invalidate(r, p)
	}
}

// invalidate deletes the GET entry for r's URL under p, synchronously, so
// that the client's next GET sees the change. Only the variant r's own
// key headers select is deleted: the others cannot be listed without
// another round trip on every hit, and live until their TTL.
func (c *Cache) invalidate(r *http.Request, p *cachepolicy.Policy) {
	get := *r // shallow copy: the key of the same URL's GET
	get.Method = http.MethodGet
	key := cachepolicy.Key(c.prefix, &get, *p)
	// Recorded first: should the delete fail, or a miss that started
	// earlier write after it, this process still never serves or stores
	// the old response again.
	at := c.now()
	c.inval.add(key, at)
	c.flights.forgetKey(key) // and its variants' flights
	c.stats.inv.Add(1)
	c.deleteInvalidated(r, key, at)
}

// deleteInvalidated deletes key's entry, invalidated at at. It must happen
// even if the client left as soon as it had its answer; the store's own
// deadline bounds it. A failure is counted, and the delete is tried again
// when the entry is next found.
func (c *Cache) deleteInvalidated(r *http.Request, key string, at time.Time) {
	if err := c.store.Del(context.WithoutCancel(r.Context()), key); err != nil {
		c.stats.storeErrors.Add(1)
		return
	}
	c.inval.deleted(key, at, c.now())
}
