package middleware

import "net/http"

// Buffering reports whether the body is still kept back from the client
// (see bufferBody): it is whole in Body unless Overflowed.
func (r *recorder) Buffering() bool { return r.buffering }

// Complete reports whether Body is the whole body the handler wrote,
// nothing of it lost: it was captured or held without overflow, every
// write to the client's writer succeeded, and the connection was not
// hijacked.
func (r *recorder) Complete() bool {
	return !r.overflow && !r.writeErr && !r.hijacked && int64(len(r.body)) == r.written
}

// finish is called once the handler returned. If the handler set headers
// but never wrote a status or a byte, the headers are handed to the client's
// map, as net/http would send them with its implicit 200; the status is left
// for the outer handler to write. A held response stays held.
func (r *recorder) finish() {
	if r.private && !r.wroteHeader && !r.hijacked {
		replaceHeader(r.w.Header(), r.own)
		r.private = false
	}
}

// Status returns the final status the handler wrote, or 0 if it wrote none
// (net/http then sends 200).
func (r *recorder) Status() int { return r.status }

// Committed reports whether the response, or part of it, went to the
// client's writer, or the connection was hijacked: it can no longer be
// held, replaced or retried.
func (r *recorder) Committed() bool { return r.committed }

// Held reports whether the response is held back: written by the handler,
// not sent to the client.
func (r *recorder) Held() bool { return r.held }

// Hijacked reports whether the handler took over the connection.
func (r *recorder) Hijacked() bool { return r.hijacked }

// Written returns the number of body bytes the handler wrote.
func (r *recorder) Written() int64 { return r.written }

// Body returns the body kept: the buffered body of a held response, or the
// captured copy of a streamed one. It is complete unless Overflowed. The
// slice is reused after the recorder goes back to its pool.
func (r *recorder) Body() []byte { return r.body }

// Overflowed reports whether the body outgrew the limit, so that Body is
// only its beginning (capture), or a held response had to be sent (hold).
func (r *recorder) Overflowed() bool { return r.overflow }

// ResponseHeader returns the header map of the final response: the held
// one while Held, else the client's. It is not a copy; clone it to keep it.
func (r *recorder) ResponseHeader() http.Header {
	if r.private {
		return r.own
	}
	return r.w.Header()
}
