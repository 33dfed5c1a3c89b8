package middleware

import (
	"bytes"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/steadfast-go/steadfast/cachepolicy"
)

// entry is a stored response. A decoded entry shares its body with the
// value it was decoded from, and its field names and values with one
// string made for the whole header block.
type entry struct {
	storedAt time.Time
	life     cachepolicy.Lifetime
	status   int
	fields   []field // canonical names, sorted
	body     []byte

	// variant is set, not encoded, on an entry made from a response that
	// says Vary beyond the policy's key headers, for the writer and for
	// coalesced waiters. A pointer keeps the entry small on the hit path.
	variant *variantOf
}

// variantOf says which variant of its URL an entry is.
type variantOf struct {
	names []string // the request fields it varies on
	key   string   // its variant key
}

// field is one header field of an entry.
type field struct {
	name   string
	values []string
}

// get returns the first value of the named field (canonical name), or "".
func (e *entry) get(name string) string {
	for i := range e.fields {
		if e.fields[i].name == name && len(e.fields[i].values) > 0 {
			return e.fields[i].values[0]
		}
	}
	return ""
}

// validators returns the entry's ETag and Last-Modified.
func (e *entry) validators() cachepolicy.Validators {
	return cachepolicy.Validators{ETag: e.get("Etag"), LastModified: e.get("Last-Modified")}
}

// header returns the entry's fields as a new header map whose value
// slices are shared with the entry.
func (e *entry) header() http.Header {
	h := make(http.Header, len(e.fields))
	for _, f := range e.fields {
		h[f.name] = f.values
	}
	return h
}

// unstored lists the response fields an entry never keeps: hop-by-hop
// fields (RFC 9110 7.6.1), framing fields other than a Content-Length
// equal to the body's length, and the fields the cache writes itself on
// every response it serves. Names starting with "Proxy-" and the trailer
// prefix are never kept either.
var unstored = []string{
	"Age", "Cache-Status", "Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// storedField reports whether a response field with the name (any case)
// may be kept in an entry: an HTTP token that is neither hop-by-hop nor
// written by the cache itself.
func storedField(name string) bool {
	if !validFieldName(name) {
		return false
	}
	name = textproto.CanonicalMIMEHeaderKey(name)
	return !slices.Contains(unstored, name) && !strings.HasPrefix(name, "Proxy-") &&
		!strings.HasPrefix(name, http.TrailerPrefix)
}

// validFieldName reports whether name is a non-empty HTTP token (RFC 9110
// 5.6.2).
func validFieldName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// storableStatus reports whether an entry may hold the status: a final
// one (200-599) other than 206 Partial Content and 304 Not Modified,
// which the cache answers from a stored 200 but never stores. It is
// [cachepolicy.StorableStatus], the bound of every policy.
func storableStatus(status int) bool { return cachepolicy.StorableStatus(status) }

// fieldsOf returns the fields of h that an entry keeps, sorted by name,
// leaving out those that are in before with the same values: fields that
// outer middleware set before the handler ran (a request id, say) belong
// to that one request, and are set again on every request served. Fields
// that Connection names are hop-by-hop too, and left out, as are those
// keep does not store (see [cachepolicy.NewFieldFilter]: the fields of a
// qualified private or no-cache). The value slices are shared with h.
func fieldsOf(h, before http.Header, keep cachepolicy.FieldFilter) []field {
	fs := make([]field, 0, len(h))
	for name, values := range h {
		if len(values) == 0 || !storedField(name) || connectionNames(h, name) || !keep.Stored(name) {
			continue
		}
		if prev, ok := before[name]; ok && slices.Equal(prev, values) {
			continue
		}
		fs = append(fs, field{name: name, values: values})
	}
	slices.SortFunc(fs, func(a, b field) int { return strings.Compare(a.name, b.name) })
	return fs
}

// connectionNames reports whether a Connection field of h names the field
// name (RFC 9110 7.6.1), making it hop-by-hop.
func connectionNames(h http.Header, name string) bool {
	for _, line := range h["Connection"] {
		for _, opt := range strings.Split(line, ",") {
			if strings.EqualFold(strings.TrimSpace(opt), name) {
				return true
			}
		}
	}
	return false
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
// gets one, so that Date and Age agree on hits. d is the store decision:
// its Lifetime, and its Fields filter (the fields of a qualified private
// or no-cache are left out).
func newEntry(storedAt time.Time, d *cachepolicy.StoreDecision, status int, h, before http.Header, body []byte) *entry {
	if _, ok := h["Content-Length"]; !ok && bodyAllowed(status) {
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{storedAt.UTC().Format(http.TimeFormat)}
	}
	return &entry{
		storedAt: storedAt,
		life:     d.Lifetime,
		status:   status,
		fields:   fieldsOf(h, before, d.Fields),
		body:     bytes.Clone(body),
	}
}

// bodyAllowed reports whether a response with the status may have a body.
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// setCacheStatus sets the Cache-Status field of h.
func setCacheStatus(h http.Header, s cachepolicy.CacheStatus) {
	h["Cache-Status"] = []string{s.String()}
}

// writeEntry answers r from e: a 304 when r's validators match a stored
// 200, a 206 (or 416) when r asks for a range of a stored 200, else the
// stored status, header and body (no body for HEAD). Age is the entry's
// current age: the age it was stored with plus the time since. A shared
// entry (one other requests use too) gets copies of its header values.
func (c *Cache) writeEntry(w http.ResponseWriter, r *http.Request, e *entry, now time.Time, cs cachepolicy.CacheStatus, shared bool) {
	notModified := e.status == http.StatusOK && conditional(r.Header) &&
		cachepolicy.NotModified(r, e.get("Etag"), e.get("Last-Modified"))
	var part cachepolicy.ByteRange
	ranged := cachepolicy.RangeIgnored
	if !notModified && e.status == http.StatusOK && len(r.Header["Range"]) > 0 {
		part, ranged = cachepolicy.SelectRange(r, int64(len(e.body)), e.get("Etag"), e.get("Last-Modified"), e.get("Date"), now)
	}
	h := w.Header()
	for i := range e.fields {
		f := &e.fields[i]
		if notModified && (f.name == "Content-Length" || f.name == "Content-Type" || f.name == "Content-Encoding") {
			continue
		}
		if ranged != cachepolicy.RangeIgnored && f.name == "Content-Length" {
			continue
		}
		if shared {
			h[f.name] = slices.Clone(f.values)
		} else {
			h[f.name] = f.values
		}
	}
	var buf [24]byte
	vs := make([]string, 2)
	vs[0] = string(strconv.AppendInt(buf[:0], int64(e.life.CurrentAge(e.storedAt, now)/time.Second), 10))
	vs[1] = cs.String()
	h["Age"], h["Cache-Status"] = vs[0:1:1], vs[1:2:2]
	switch {
	case notModified:
		w.WriteHeader(http.StatusNotModified)
		return
	case ranged == cachepolicy.RangePartial:
		h["Content-Range"] = []string{part.ContentRange(int64(len(e.body)))}
		h["Content-Length"] = []string{strconv.FormatInt(part.Length, 10)}
		w.WriteHeader(http.StatusPartialContent)
		_, _ = w.Write(e.body[part.Start : part.Start+part.Length])
		return
	case ranged == cachepolicy.RangeUnsatisfiable:
		h["Content-Range"] = []string{"bytes */" + strconv.Itoa(len(e.body))}
		h["Content-Length"] = []string{"0"}
		delete(h, "Content-Type")
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	}
	w.WriteHeader(e.status)
	if r.Method != http.MethodHead && len(e.body) > 0 {
		_, _ = w.Write(e.body) // a client that went away is not an error here
	}
}

// conditional reports whether a request header holds a validator that
// could turn a stored 200 into a 304.
func conditional(h http.Header) bool {
	return len(h["If-None-Match"]) > 0 || len(h["If-Modified-Since"]) > 0
}
