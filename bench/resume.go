//go:build unix

package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"
)

// ResumeResult is the resume scenario: Redis restarted after an outage,
// timed from its first accepted connection to the first cache hit seen by
// a client polling every 5 ms.
type ResumeResult struct {
	Config string `json:"config"`
	// TrialsMs holds each trial's time to the first hit; -1 when none came
	// within the limit.
	TrialsMs []float64 `json:"trials_ms"`
	P50ms    float64   `json:"p50_ms"`
	MaxMs    float64   `json:"max_ms"`
	// BreakerClosedMs holds, per trial, when the breaker was seen closed,
	// from the first accepted connection; empty without breaker.
	BreakerClosedMs []float64 `json:"breaker_closed_ms,omitempty"`
	TimedOut        int       `json:"timed_out"`
}

// resumeLimit is how long a trial waits for the first hit.
const resumeLimit = 5 * time.Second

// observer sends one GET every 5 ms and keeps the times of the hits.
type observer struct {
	mu   sync.Mutex
	hits []time.Time
}

func (o *observer) run(ctx context.Context, url string) {
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		resp, err := get(ctx, client, url)
		if err == nil && classify(resp) == "hit" {
			at := time.Now()
			o.mu.Lock()
			o.hits = append(o.hits, at)
			o.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// firstHitAfter returns the first hit seen after t.
func (o *observer) firstHitAfter(t time.Time) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, h := range o.hits {
		if h.After(t) {
			return h, true
		}
	}
	return time.Time{}, false
}

func resume(ctx context.Context, rp *redisProc, t target, trials int) (ResumeResult, error) {
	r := ResumeResult{Config: t.name}
	octx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	obs := &observer{}
	wg.Go(func() { obs.run(octx, t.srv.url+itemPath+"resume") })
	defer func() { stop(); wg.Wait() }()

	for trial := range trials {
		rp.kill()
		if t.breaker != nil {
			if !waitFor(ctx, 3*time.Second, func() bool { return t.breaker() == "open" }) {
				return r, fmt.Errorf("resume %s: the breaker did not open after the kill", t.name)
			}
		}
		// Down for 300 to 800 ms, spread over the trials, so that the
		// restart falls at different points of the prober's back-off.
		sleepCtx(ctx, 300*time.Millisecond+time.Duration(trial*137%500)*time.Millisecond)

		accepted := make(chan time.Time, 1)
		actx, cancelAccept := context.WithTimeout(ctx, 5*time.Second)
		go func() {
			at, _ := rp.waitAccepting(actx)
			accepted <- at
		}()
		if err := rp.launch(); err != nil {
			cancelAccept()
			return r, err
		}
		t0 := <-accepted
		cancelAccept()
		if t0.IsZero() {
			return r, fmt.Errorf("resume %s: redis-server did not accept connections", t.name)
		}
		var closedAt time.Time
		hit, ok := time.Time{}, false
		deadline := t0.Add(resumeLimit)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			if t.breaker != nil && closedAt.IsZero() && t.breaker() == "closed" {
				closedAt = time.Now()
			}
			if hit, ok = obs.firstHitAfter(t0); ok {
				break
			}
			time.Sleep(500 * time.Microsecond)
		}
		if ok {
			r.TrialsMs = append(r.TrialsMs, ms(hit.Sub(t0)))
		} else {
			r.TrialsMs = append(r.TrialsMs, -1)
			r.TimedOut++
		}
		if t.breaker != nil {
			c := -1.0
			if !closedAt.IsZero() {
				c = ms(closedAt.Sub(t0))
			}
			r.BreakerClosedMs = append(r.BreakerClosedMs, c)
		}
	}
	var done []float64
	for _, v := range r.TrialsMs {
		if v >= 0 {
			done = append(done, v)
		}
	}
	slices.Sort(done)
	if len(done) > 0 {
		r.P50ms = done[(len(done)-1)/2]
		r.MaxMs = done[len(done)-1]
	}
	if r.TimedOut > 0 {
		r.MaxMs = -1
	}
	if err := rp.restart(ctx); err != nil {
		return r, err
	}
	return r, nil
}

// waitFor polls cond every half millisecond for at most limit.
func waitFor(ctx context.Context, limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if cond() {
			return true
		}
		time.Sleep(500 * time.Microsecond)
	}
	return cond()
}
