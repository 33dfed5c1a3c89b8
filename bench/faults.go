//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/steadfast-go/steadfast/internal/loadgen"
)

// faultRun is a load run with a fault switched on at pre and off at
// pre+dur; the run goes on for post after that.
type faultRun struct {
	res            loadgen.Result
	on, off        time.Duration // fault window, from res.Started
	opened, closed time.Duration // breaker seen open after on / closed again, from res.Started; zero: never
	states         []stateChange // every breaker state seen, from res.Started
	server         []serverSample
}

// at turns an offset from the run's start into a time.
func (fr faultRun) at(d time.Duration) time.Time { return fr.res.Started.Add(d) }

// phases are how long a fault run drives load before the fault (pre),
// while it lasts (dur) and after it (post).
type phases struct{ pre, dur, post time.Duration }

// underFault drives t for pre+dur+post, with server-side timing on, and
// calls faultOn at pre and faultOff at pre+dur.
func underFault(ctx context.Context, t target, conns int, w phases, faultOn, faultOff func() error) (faultRun, error) {
	type done struct {
		res loadgen.Result
		err error
	}
	ch := make(chan done, 1)
	t.srv.timer.start()
	started := time.Now()
	go func() {
		res, err := loadgen.Run(ctx, loadgen.Options{
			Request:     cycling(t.srv.url, itemPath, conns, keys),
			Connections: conns,
			Duration:    w.pre + w.dur + w.post,
			Timeout:     10 * time.Second,
			Classify:    classify,
		})
		ch <- done{res, err}
	}()
	wctx, stopWatch := context.WithCancel(ctx)
	var watch <-chan []stateChange
	if t.breaker != nil {
		watch = watchBreaker(wctx, t.breaker, started)
	}
	sleepCtx(ctx, w.pre)
	on := time.Now()
	errOn := faultOn()
	sleepCtx(ctx, w.dur)
	off := time.Now()
	errOff := faultOff()
	d := <-ch
	stopWatch()
	server := t.srv.timer.stop()
	var seen []stateChange
	if watch != nil {
		seen = <-watch
	}
	if err := errors.Join(d.err, errOn, errOff); err != nil {
		return faultRun{}, err
	}
	base := d.res.Started.Sub(started) // the run began a moment after started
	fr := faultRun{res: d.res, on: on.Sub(d.res.Started), off: off.Sub(d.res.Started), server: server}
	for i := range seen {
		seen[i].at -= base
	}
	fr.states = seen
	if fr.opened = firstSeen(seen, "open", fr.on); fr.opened > 0 {
		fr.closed = firstSeen(seen, "closed", fr.opened)
	}
	return fr, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// window summarises, from the client's side, the requests of a run that
// were in flight at some point in [from, to): sent before to, answered
// after from.
type window struct {
	n, serverErrors, errors int
	p50, p99, max           time.Duration
}

func inFlight(res loadgen.Result, from, to time.Duration) window {
	var w window
	var lat []time.Duration
	for _, s := range res.Samples {
		if s.Start >= to || s.Start+s.Latency < from {
			continue
		}
		lat = append(lat, s.Latency)
		switch {
		case s.Err:
			w.errors++
		case s.Status >= 500:
			w.serverErrors++
		}
	}
	slices.Sort(lat)
	w.n = len(lat)
	w.p50, w.p99 = loadgen.Percentile(lat, 0.5), loadgen.Percentile(lat, 0.99)
	if len(lat) > 0 {
		w.max = lat[len(lat)-1]
	}
	return w
}

// OutageResult is the outage scenario for one configuration: Redis killed
// under load.
type OutageResult struct {
	Config string `json:"config"`
	// Window names the requests the added latency is taken over: "breaker
	// open" (those that reached the server after the breaker was seen
	// open) or "redis down" (all while Redis was down).
	Window string `json:"window"`
	// Requests counts the requests in Window.
	Requests int `json:"requests"`
	// AddedP50ms and AddedP99ms are what the configuration's handler chain
	// added over the origin handler's own time, measured in the server for
	// the requests in Window.
	AddedP50ms float64 `json:"added_p50_ms"`
	AddedP99ms float64 `json:"added_p99_ms"`
	AddedMaxMs float64 `json:"added_max_ms"`
	// ClientP50ms and ClientP99ms are the latencies the load generator saw
	// for the requests in Window; ClientAddedP50ms and ClientAddedP99ms
	// subtract those of the origin configuration in the hit runs (taken at
	// another moment: on a shared machine, noisier than the server-side
	// figures).
	ClientP50ms      float64 `json:"client_p50_ms"`
	ClientP99ms      float64 `json:"client_p99_ms"`
	ClientAddedP50ms float64 `json:"client_added_p50_ms"`
	ClientAddedP99ms float64 `json:"client_added_p99_ms"`
	// DownMaxMs and DownP99ms cover every request in flight while Redis was
	// down, the moments before the breaker opened included, as the client
	// saw them.
	DownP99ms float64 `json:"down_p99_ms"`
	DownMaxMs float64 `json:"down_max_ms"`
	// BreakerOpenMs is how long after the kill the breaker was seen open;
	// zero without breaker.
	BreakerOpenMs float64 `json:"breaker_open_ms"`
	// ServerErrors counts 5xx responses over the whole run; Errors counts
	// requests without a response.
	ServerErrors int `json:"server_errors"`
	Errors       int `json:"errors"`
}

// outage kills Redis for w.dur after w.pre, and measures until it is
// restarted (w.post is not used).
func outage(ctx context.Context, rp *redisProc, t target, conns int, w phases, origin merged) (OutageResult, error) {
	fr, err := underFault(ctx, t, conns, phases{pre: w.pre, dur: w.dur},
		func() error { rp.kill(); return nil },
		func() error { return nil })
	if err != nil {
		return OutageResult{}, fmt.Errorf("outage %s: %w", t.name, err)
	}
	if err := rp.restart(ctx); err != nil {
		return OutageResult{}, err
	}
	end := fr.res.Elapsed + time.Second
	down := inFlight(fr.res, fr.on, end)
	r := OutageResult{
		Config: t.name, Window: "redis down",
		DownP99ms: ms(down.p99), DownMaxMs: ms(down.max),
		ServerErrors: fr.res.ServerErrors(), Errors: fr.res.Errors,
	}
	from := fr.on
	if t.breaker != nil {
		if fr.opened == 0 {
			return OutageResult{}, fmt.Errorf("outage %s: the breaker was never seen open", t.name)
		}
		r.Window = "breaker open"
		r.BreakerOpenMs = ms(fr.opened - fr.on)
		from = fr.opened
	}
	a := addedBetween(fr.server, fr.at(from), fr.at(end))
	r.Requests = a.n
	r.AddedP50ms, r.AddedP99ms, r.AddedMaxMs = ms(a.p50), ms(a.p99), ms(a.max)
	win := fr.res.Between(from, end)
	r.ClientP50ms, r.ClientP99ms = ms(win.P50), ms(win.P99)
	r.ClientAddedP50ms, r.ClientAddedP99ms = ms(win.P50-origin.P50), ms(win.P99-origin.P99)
	return r, nil
}

// HangResult is the hang scenario: Redis frozen with SIGSTOP under load.
type HangResult struct {
	Config string `json:"config"`
	// Requests counts the requests in flight at some moment of the hang;
	// the percentiles are the latencies the load generator saw for them.
	Requests int     `json:"requests"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
	// ServerP99ms and ServerMaxMs are the time in the handler chain,
	// origin included, measured in the server, for requests that reached
	// it during the hang.
	ServerP99ms float64 `json:"server_p99_ms"`
	ServerMaxMs float64 `json:"server_max_ms"`
	// BreakerOpenMs is how long after SIGSTOP the breaker was seen open,
	// BreakerClosedMs how long after SIGCONT it was seen closed again;
	// zero without breaker (or if it did not happen in the run).
	BreakerOpenMs   float64 `json:"breaker_open_ms"`
	BreakerClosedMs float64 `json:"breaker_closed_ms"`
	ServerErrors    int     `json:"server_errors"`
	Errors          int     `json:"errors"`
}

// hang freezes Redis for w.dur after w.pre, and measures 200 ms more
// after it continues (w.post is not used).
func hang(ctx context.Context, rp *redisProc, t target, conns int, w phases) (HangResult, error) {
	fr, err := underFault(ctx, t, conns, phases{pre: w.pre, dur: w.dur, post: 200 * time.Millisecond}, rp.stop, rp.cont)
	if err != nil {
		_ = rp.cont()
		return HangResult{}, fmt.Errorf("hang %s: %w", t.name, err)
	}
	win := inFlight(fr.res, fr.on, fr.off)
	srv := addedBetween(fr.server, fr.at(fr.on), fr.at(fr.off))
	r := HangResult{
		Config: t.name, Requests: win.n,
		P50ms: ms(win.p50), P99ms: ms(win.p99), MaxMs: ms(win.max),
		ServerP99ms: ms(srv.totalP99), ServerMaxMs: ms(srv.totalMax),
		ServerErrors: fr.res.ServerErrors(), Errors: fr.res.Errors,
	}
	if fr.opened > 0 {
		r.BreakerOpenMs = ms(fr.opened - fr.on)
	}
	if fr.closed > 0 {
		r.BreakerClosedMs = ms(fr.closed - fr.off)
	}
	return r, nil
}
