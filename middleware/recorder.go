package middleware

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"slices"
)

// The recorder is the package's one http.ResponseWriter wrapper. Every
// middleware here hands it to the next handler, in one of three modes:
//
//   - Pass-through (hold == nil, capture == false): the response goes
//     straight to the client; the recorder only notes the status and how
//     many body bytes were written. Breaker uses this mode.
//   - Hold (hold != nil): the handler writes into a private header map.
//     When it commits to a final status, hold decides whether that response
//     is held back: a held response reaches neither the client nor the
//     client's header map; its body is buffered up to limit so that it can
//     still be sent later (sendHeld). A response that is not held is passed
//     through from then on. Retry uses this mode for failed attempts; Cache
//     uses it to keep a 5xx away from the client while it has a stale entry.
//   - Capture (capture == true): the body streamed to the client is also
//     copied, up to limit; past the limit the copy stops and Overflowed
//     reports it, while streaming goes on. Cache uses this mode to store
//     responses. Capture combines with hold. A capturing recorder may also
//     buffer the body (bufferBody): the status goes to the client, the body
//     only when flushBuffer is called, so the handler never waits on the
//     client; Cache does this while a response may be shared. A failed
//     write to the client marks the copy incomplete (Complete), never
//     silently shorter.
//
// Once a status line or a byte reached the client's writer (Committed), the
// response can no longer be held, replaced or retried.

// recorder is the package's http.ResponseWriter wrapper; see the modes above.
// Use it through a recorderPool:
//
//	rec := pool.get(w, cfg)   // a fresh recorder for w
//	next.ServeHTTP(rec, r)
//	rec.finish()              // hand over headers set without WriteHeader
//	... rec.Status(), rec.Held(), rec.sendHeld() ...
//	pool.put(rec)
//
// reset starts again on the same writer, for another attempt, as long as
// nothing was committed. A recorder serves one request at a time and is not
// safe for concurrent use, like any ResponseWriter.
type recorder struct {
	w   http.ResponseWriter
	cfg recorderConfig

	// own is the handler's header map while private is set: in hold mode,
	// until the response is committed. It starts as a copy of the client's
	// map so that the handler sees what outer middleware set.
	own     http.Header
	private bool

	status      int   // final status written, 0 if none yet
	wroteHeader bool  // a final status was written
	held        bool  // the response is held back
	committed   bool  // the status went to the client's writer, or the connection was hijacked
	hijacked    bool  // the handler took over the connection
	written     int64 // body bytes the handler wrote, held or not
	body        []byte
	overflow    bool // the body outgrew cfg.limit while held or captured
	// buffering: the status went to the client, but the body is kept
	// back in body until flushBuffer (see bufferBody).
	buffering bool
	writeErr  bool // a write to the client's writer failed
	wasCut    bool // cfg.cut was called
}

// The interfaces the recorder keeps. Pusher is left out: HTTP/2 server push
// is deprecated and http.ResponseController does not offer it.
var (
	_ http.ResponseWriter                       = (*recorder)(nil)
	_ http.Flusher                              = (*recorder)(nil)
	_ interface{ FlushError() error }           = (*recorder)(nil)
	_ http.Hijacker                             = (*recorder)(nil)
	_ io.ReaderFrom                             = (*recorder)(nil)
	_ io.StringWriter                           = (*recorder)(nil)
	_ interface{ Unwrap() http.ResponseWriter } = (*recorder)(nil)
)

// reset readies r to record a response written to w in the mode cfg. On a
// recorder already used for w, it drops the previous attempt, which must not
// have been committed.
func (r *recorder) reset(w http.ResponseWriter, cfg recorderConfig) {
	if cfg.limit <= 0 {
		cfg.limit = defaultHoldLimit
	}
	r.w = w
	r.cfg = cfg
	r.status = 0
	r.wroteHeader = false
	r.held = false
	r.committed = false
	r.hijacked = false
	r.written = 0
	r.body = r.body[:0]
	r.overflow = false
	r.buffering = false
	r.writeErr = false
	r.wasCut = false
	r.private = cfg.hold != nil
	if !r.private {
		return
	}
	if r.own == nil {
		r.own = make(http.Header)
	} else {
		clear(r.own)
	}
	for k, v := range w.Header() {
		// Clipped, so that an Add by the handler copies the slice instead
		// of writing into the array the client's map shares.
		r.own[k] = slices.Clip(v)
	}
}

// Header returns the header map the handler writes: the private one while
// the response may still be held, else the client's. Once the response is
// committed, a map obtained before no longer reaches the client; set
// trailers through a fresh call to Header.
func (r *recorder) Header() http.Header {
	if r.private {
		return r.own
	}
	return r.w.Header()
}

// WriteHeader records the final status and either holds the response back
// or passes it on. Only the first final status counts; later calls are
// ignored, silently. Informational statuses (1xx other than 101, such as 103
// Early Hints) go to the client at once, with the handler's current headers,
// and do not count as the final status or commit the response.
func (r *recorder) WriteHeader(code int) {
	if r.wroteHeader || r.hijacked {
		return
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		r.writeInformational(code)
		return
	}
	r.wroteHeader = true
	r.status = code
	if r.cfg.hold != nil && r.cfg.hold(code, r.own) {
		r.held = true
		return
	}
	r.commitHeader()
}

// writeInformational sends a 1xx response. In hold mode the client's header
// map gets the handler's headers just for the 1xx and is restored after, so
// nothing of an attempt that may still be held leaks into the final response.
func (r *recorder) writeInformational(code int) {
	if !r.private {
		r.w.WriteHeader(code)
		return
	}
	h := r.w.Header()
	saved := h.Clone()
	replaceHeader(h, r.own)
	r.w.WriteHeader(code)
	replaceHeader(h, saved)
}

// commitHeader passes the final status, and in hold mode the handler's
// headers, to the client's writer.
func (r *recorder) commitHeader() {
	if r.private {
		replaceHeader(r.w.Header(), r.own)
		r.private = false
	}
	r.committed = true
	r.w.WriteHeader(r.status)
	if r.cfg.sent != nil {
		r.cfg.sent(r.w.Header())
	}
}

// bufferBody keeps the body back from the client, in the capture, until
// flushBuffer sends it: the status and header went (or go) to the client
// as usual, but the handler's writes never wait on the client. It is
// called by the hold decision of a capturing recorder. The body is sent
// early, and streaming goes on, when it outgrows the limit or the handler
// flushes; cfg.cut is told.
func (r *recorder) bufferBody() { r.buffering = true }

// flushBuffer sends the body kept back by bufferBody, and ends buffering.
func (r *recorder) flushBuffer() error {
	if !r.buffering {
		return nil
	}
	r.buffering = false
	if len(r.body) == 0 {
		return nil
	}
	if _, err := r.w.Write(r.body); err != nil {
		r.writeErr = true
		return err
	}
	return nil
}

// cutShort records that the kept body is no longer the whole response,
// or is no longer buffered, and tells cfg.cut once.
func (r *recorder) cutShort(reason string) {
	if r.wasCut {
		return
	}
	r.wasCut = true
	if r.cfg.cut != nil {
		r.cfg.cut(reason)
	}
}

// replaceHeader makes dst hold exactly the fields of src.
func replaceHeader(dst, src http.Header) {
	for k := range dst {
		if _, ok := src[k]; !ok {
			delete(dst, k)
		}
	}
	for k, v := range src {
		dst[k] = v
	}
}

// Write writes body bytes, after an implicit WriteHeader(http.StatusOK) if
// no status was written yet. A held response is buffered; if it would grow
// past the limit it is sent after all (the response is committed) and
// streaming goes on.
func (r *recorder) Write(p []byte) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	if r.held {
		if r.keepBack(p) {
			return len(p), nil
		}
		if err := r.sendHeld(); err != nil {
			r.writeErr = true
			return 0, err
		}
	}
	if r.buffering {
		if r.keepBack(p) {
			return len(p), nil
		}
		if err := r.flushBuffer(); err != nil {
			return 0, err
		}
	}
	n, err := r.w.Write(p)
	if err != nil && !r.writeErr {
		// What the client did not take is not what the handler wrote: the
		// copy kept is no longer the response.
		r.writeErr = true
		r.cutShort("write-error")
	}
	r.kept(p[:n])
	return n, err
}

// keepBack appends p to the body kept back from the client (held or
// buffered) and reports true when it fits the limit; otherwise it marks the
// body overflowed and cut short, and reports false.
func (r *recorder) keepBack(p []byte) bool {
	if len(r.body)+len(p) <= r.cfg.limit {
		r.body = append(r.body, p...)
		r.written += int64(len(p))
		return true
	}
	r.overflow = true
	r.cutShort("too-large")
	return false
}

// WriteString is Write for a string; it saves a copy when the client's
// writer has its own WriteString and nothing is held or captured.
func (r *recorder) WriteString(s string) (int, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	if sw, ok := r.w.(io.StringWriter); ok && !r.held && !r.cfg.capture {
		n, err := sw.WriteString(s)
		r.written += int64(n)
		if err != nil {
			r.writeErr = true
		}
		return n, err
	}
	return r.Write([]byte(s))
}

// kept accounts for p, just sent to the client, and captures it if asked.
func (r *recorder) kept(p []byte) {
	r.written += int64(len(p))
	if !r.cfg.capture || r.overflow {
		return
	}
	if len(r.body)+len(p) > r.cfg.limit {
		r.overflow = true
		r.cutShort("too-large")
		return
	}
	r.body = append(r.body, p...)
}

// ReadFrom copies src to the response. It hands src to the client's writer
// (and its sendfile or splice path) when nothing is held or captured;
// otherwise the bytes go through Write.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if !r.wroteHeader {
		r.WriteHeader(http.StatusOK)
	}
	if rf, ok := r.w.(io.ReaderFrom); ok && !r.held && !r.cfg.capture && !r.hijacked {
		n, err := rf.ReadFrom(src)
		r.written += n
		if err != nil {
			r.writeErr = true // possibly the source's; either way, not whole
		}
		return n, err
	}
	return io.Copy(writeOnly{r}, src)
}

// writeOnly hides the recorder's ReadFrom from io.Copy, which would
// otherwise call it back.
type writeOnly struct{ r *recorder }

func (w writeOnly) Write(p []byte) (int, error) { return w.r.Write(p) }

// Flush sends what the handler wrote so far to the client. See FlushError.
func (r *recorder) Flush() {
	_ = r.FlushError() // http.Flusher has no way to report it
}

// FlushError sends what the handler wrote so far to the client, after an
// implicit WriteHeader(http.StatusOK) if no status was written yet. A flush
// means the handler wants its bytes on the wire: a held response is sent
// (committed) first, so it can no longer be retried or replaced. The error
// is http.ErrNotSupported, wrapped, when the client's writer cannot flush.
func (r *recorder) FlushError() error {
	if !r.wroteHeader && !r.hijacked {
		r.WriteHeader(http.StatusOK)
	}
	if r.held || r.buffering {
		r.cutShort("flush")
	}
	if err := r.sendHeld(); err != nil {
		r.writeErr = true
		return err
	}
	if err := r.flushBuffer(); err != nil {
		return err
	}
	switch f := r.w.(type) {
	case interface{ FlushError() error }:
		return f.FlushError()
	case http.Flusher:
		f.Flush()
		return nil
	}
	return http.NewResponseController(r.w).Flush()
}

// Hijack lets the handler take over the connection, through the client's
// writer as http.ResponseController reaches it. After a hijack the response
// counts as committed; a held response is dropped.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(r.w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	r.cutShort("hijack")
	r.buffering = false
	r.hijacked = true
	r.committed = true
	r.held = false
	r.private = false
	return conn, brw, nil
}

// Unwrap returns the client's writer, for http.ResponseController. Writing
// to it directly bypasses the recorder, and holding with it.
func (r *recorder) Unwrap() http.ResponseWriter {
	return r.w
}

// sendHeld sends a held response to the client: headers, status and the
// buffered body. It does nothing if no response is held.
func (r *recorder) sendHeld() error {
	if !r.held {
		return nil
	}
	r.held = false
	r.commitHeader()
	if len(r.body) == 0 {
		return nil
	}
	_, err := r.w.Write(r.body)
	return err
}
