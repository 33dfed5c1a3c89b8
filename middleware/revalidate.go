package middleware

import (
	"net/http"
	"slices"
	"time"

	"github.com/steadfast-go/steadfast/cachepolicy"
)

// Revalidation (RFC 9111 section 4.3): a stored response that is stale, or
// that said no-cache, or that the client asked to have validated, and that
// has a validator (ETag or Last-Modified), is not fetched again whole: the
// handler gets the request made conditional on the stored validators
// (If-None-Match, else If-Modified-Since), and a 304 renews the stored
// response: its header is updated from the 304 (RFC 9111 section 3.2),
// its freshness computed again, the update stored, and the client answered
// from it (a 304 when its own validators match). Any other answer is a
// miss's answer: a 200 replaces the entry, a 5xx may be replaced by the
// stale one within its stale-if-error window.

// revalidated answers the client after the handler said 304 to the
// conditional request of a run with validating set: from the stored
// response updated by the 304, or, when the 304 is about another
// representation (its ETag differs), from a second, unconditional run.
func (ru *run) revalidated(w http.ResponseWriter) {
	c, old := ru.c, ru.validating
	if !old.validators().Selects(ru.h304) {
		ru.finish(nil, false, false, nil)
		m := ru.miss
		m.w, m.validating = w, nil
		c.forward(&m, nil)
		return
	}
	e, stored := updatedEntry(old, ownFields(ru.h304, ru.before), ru.r, ru.base, ru.p, ru.now)
	ru.finish(e, false, false, nil)
	cs := cachepolicy.CacheStatus{Fwd: ru.fwd, FwdStatus: http.StatusNotModified, Stored: stored}
	if ru.fwd == cachepolicy.FwdBypass {
		cs.Stored, cs.Detail = false, detailUnavailable
	}
	c.writeEntry(w, ru.r, e, c.now(), cs, true)
	if stored && ru.fwd != cachepolicy.FwdBypass {
		ru.store(e)
	} else if ru.f != nil {
		c.flights.forget(ru.key, ru.f)
	}
}

// ownFields returns the fields of h, a 304's header, that the handler
// set: those not in before (the header outer middleware set before the
// handler ran) with the same values. Without before, it is h.
func ownFields(h, before http.Header) http.Header {
	if before == nil {
		return h
	}
	own := make(http.Header, len(h))
	for name, values := range h {
		if prev, ok := before[name]; !ok || !slices.Equal(prev, values) {
			own[name] = values
		}
	}
	return own
}

// updatedEntry returns the stored response old updated from own, the
// fields the handler set on a 304 that validated it (see ownFields),
// stored at now: its fields replaced by the 304's, its freshness decided
// again as for a response to r. store is false when the updated response
// may not be stored (the 304 said no-store, say): it answers this request,
// and is not written.
func updatedEntry(old *entry, own http.Header, r *http.Request, base string, p *cachepolicy.Policy,
	now time.Time,
) (e *entry, store bool) {
	merged := cachepolicy.UpdateHeader(old.header(), own)
	get := *r // shallow copy: the decision is about the GET the entry serves
	get.Method = http.MethodGet
	d := cachepolicy.Storable(&get, old.status, merged, *p, now)
	e = newEntry(now, &d, old.status, merged, nil, old.body)
	if d.Store && len(d.Vary) > 0 {
		e.variant = &variantOf{d.Vary, variantKey(base, r.Header, d.Vary)}
	}
	return e, d.Store
}
