package middleware

import (
	"net/http"
	"sync"
)

// defaultHoldLimit is the body size a held or captured response may reach
// when the owner has no limit of its own.
const defaultHoldLimit = 64 << 10

// maxPooledBody is the largest body buffer a recorder keeps when it goes back
// to its pool; larger buffers are left to the garbage collector so that one
// big response does not pin memory for the life of the process.
const maxPooledBody = 256 << 10

// recorderConfig says what a recorder does besides passing the response
// through. Its zero value is the pass-through mode.
type recorderConfig struct {
	// hold reports, when the handler writes its final status, whether the
	// response is held back. It sees the status and the handler's headers.
	// Nil means never hold; the handler then writes the client's header map
	// directly, which is the cheap path.
	hold func(status int, h http.Header) bool

	// capture keeps a copy of the body sent to the client, up to limit.
	capture bool

	// limit is the most body bytes kept, whether held or captured.
	// Zero means defaultHoldLimit.
	limit int

	// sent, if set, is called right after the final status went to the
	// client's writer, with the client's header map as the writers
	// outside left it: the final header, for the cache's store decision.
	sent func(h http.Header)

	// cut, if set, is called once when the copy kept of the body stops
	// being the whole of what the handler wrote, or the body stops being
	// buffered: reason is "too-large" (the body outgrew limit), "flush",
	// "hijack" or "write-error" (the client's writer failed).
	cut func(reason string)
}

// recorderPool recycles recorders, and their header maps and body buffers,
// between requests. Its zero value is ready to use. Each middleware instance
// owns one, so the package has no pool of its own.
type recorderPool struct {
	pool sync.Pool
}

// get returns a recorder writing to w in the mode cfg.
func (p *recorderPool) get(w http.ResponseWriter, cfg recorderConfig) *recorder {
	r, _ := p.pool.Get().(*recorder)
	if r == nil {
		r = new(recorder)
	}
	r.reset(w, cfg)
	return r
}

// put returns r to the pool. The handler it was given to must have returned:
// like net/http, the package does not allow a ResponseWriter to be used after
// ServeHTTP returns.
func (p *recorderPool) put(r *recorder) {
	if cap(r.body) > maxPooledBody {
		r.body = nil
	}
	clear(r.own) // drop references to header values
	r.w = nil
	r.cfg = recorderConfig{}
	p.pool.Put(r)
}
