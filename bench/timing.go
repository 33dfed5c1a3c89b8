//go:build unix

package main

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/steadfast-go/steadfast/internal/loadgen"
)

// Server-side timing: while a fault scenario runs, each request's time in
// the handler chain is recorded, with the time spent in the origin
// handler, so that what a configuration adds over the origin is measured
// where it happens, without the load generator and the scheduler of a
// shared machine in the way. Off, it costs one atomic load per request.

type timingKey struct{}

// reqTiming collects the origin's time for one request.
type reqTiming struct{ origin time.Duration }

// serverSample is one timed request.
type serverSample struct {
	at            time.Time
	total, origin time.Duration
}

// timer wraps a server's handler and records serverSamples while on.
type timer struct {
	next    http.Handler
	on      atomic.Bool
	mu      sync.Mutex
	samples []serverSample
}

func (t *timer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !t.on.Load() {
		t.next.ServeHTTP(w, r)
		return
	}
	rt := &reqTiming{}
	start := time.Now()
	t.next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), timingKey{}, rt)))
	s := serverSample{at: start, total: time.Since(start), origin: rt.origin}
	t.mu.Lock()
	t.samples = append(t.samples, s)
	t.mu.Unlock()
}

// start clears the samples and turns timing on.
func (t *timer) start() {
	t.mu.Lock()
	t.samples = t.samples[:0]
	t.mu.Unlock()
	t.on.Store(true)
}

// stop turns timing off and returns the samples.
func (t *timer) stop() []serverSample {
	t.on.Store(false)
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.samples)
}

// timeOrigin adds the time from now to the returned func's call to the
// request's origin time, when the request is timed.
func timeOrigin(r *http.Request) func() {
	rt, ok := r.Context().Value(timingKey{}).(*reqTiming)
	if !ok {
		return func() {}
	}
	start := time.Now()
	return func() { rt.origin += time.Since(start) }
}

// added summarises what the handler chain added over the origin for the
// samples that started in [from, to).
type added struct {
	n                  int
	p50, p99, max      time.Duration
	totalP99, totalMax time.Duration
}

func addedBetween(samples []serverSample, from, to time.Time) added {
	var add, tot []time.Duration
	for _, s := range samples {
		if s.at.Before(from) || !s.at.Before(to) {
			continue
		}
		add = append(add, s.total-s.origin)
		tot = append(tot, s.total)
	}
	slices.Sort(add)
	slices.Sort(tot)
	a := added{n: len(add), p50: loadgen.Percentile(add, 0.5), p99: loadgen.Percentile(add, 0.99),
		totalP99: loadgen.Percentile(tot, 0.99)}
	if len(add) > 0 {
		a.max, a.totalMax = add[len(add)-1], tot[len(tot)-1]
	}
	return a
}
