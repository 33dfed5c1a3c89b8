package middleware

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
)

// replayBody gives each attempt after the first a fresh request body.
type replayBody struct {
	buf      []byte // the body read ahead, if buffered
	buffered bool
	getBody  func() (io.ReadCloser, error) // the request's GetBody, if set
}

// replayable prepares r for retries. It returns the request for the first
// attempt, how to get the body again, and whether the request may be
// retried at all. A body without GetBody is read ahead, up to
// MaxReplayBytes; a larger one goes to the handler whole, unretried.
func (rt *Retry) replayable(r *http.Request) (*http.Request, replayBody, bool) {
	switch {
	case r.Body == nil || r.Body == http.NoBody:
		return r, replayBody{}, true
	case r.GetBody != nil:
		return r, replayBody{getBody: r.GetBody}, true
	case r.ContentLength > rt.maxReplay:
		return r, replayBody{}, false
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, rt.maxReplay+1))
	first := r.WithContext(r.Context()) // a shallow copy; r is not changed
	if err != nil || int64(len(buf)) > rt.maxReplay {
		// Too large, or the read failed: the handler gets what was read
		// followed by the rest (or the same error again).
		first.Body = readCloser{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		return first, replayBody{}, false
	}
	first.Body = io.NopCloser(bytes.NewReader(buf))
	return first, replayBody{buf: buf, buffered: true}, true
}

// request returns a copy of r with a fresh body for another attempt.
func (b replayBody) request(r *http.Request) (*http.Request, error) {
	var body io.ReadCloser
	switch {
	case b.getBody != nil:
		var err error
		if body, err = b.getBody(); err != nil {
			return nil, fmt.Errorf("get body: %w", err)
		}
	case b.buffered:
		body = io.NopCloser(bytes.NewReader(b.buf))
	default:
		return r, nil
	}
	again := r.WithContext(r.Context())
	again.Body = body
	return again, nil
}

// readCloser joins a reader and the closer of the body it reads.
type readCloser struct {
	io.Reader
	io.Closer
}
