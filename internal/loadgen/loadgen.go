package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults used when an [Options] field is zero.
const (
	DefaultConnections = 8
	DefaultDuration    = time.Second
	DefaultTimeout     = 5 * time.Second
)

// ErrNotLoopback is returned by [Run] when a request names a host that is
// not a loopback IP literal.
var ErrNotLoopback = errors.New("loadgen: target is not a loopback address")

// Options configure a [Run]. The zero value is not enough on its own: URL
// or Request must say what to send. Every other zero field takes the
// default its comment names.
type Options struct {
	// URL is fetched with GET by every request when Request is nil. Its
	// host must be a loopback IP literal, such as 127.0.0.1.
	URL string

	// Request, if set, builds each request instead of URL: worker is the
	// worker's index (0 to Connections-1) and seq the request's number in
	// the run (0, 1, 2, ... across all workers), so a caller can vary the
	// URL per request. The request must carry ctx (or a context derived
	// from it) and its URL's host must be a loopback IP literal. An error
	// stops the run and is returned by [Run]. Request is called from the
	// workers concurrently.
	Request func(ctx context.Context, worker int, seq uint64) (*http.Request, error)

	// Connections is the number of workers, each with one keep-alive
	// connection, so also the most requests in flight at once. Zero means
	// [DefaultConnections] (8).
	Connections int

	// Duration is how long new requests are started. Requests in flight
	// when it ends are waited for. Zero means [DefaultDuration] (1 s),
	// unless Requests is set, in which case only Requests ends the run.
	Duration time.Duration

	// Requests caps the number of requests sent. Zero means no cap.
	Requests int

	// Rate, if above zero, paces the run: request number n is not started
	// before n/Rate seconds into the run, across all workers. A request
	// whose turn came while every worker was busy is sent late, not
	// dropped. Zero means as fast as the workers are answered.
	Rate float64

	// Timeout bounds one request, from sending it to reading the last byte
	// of its body. A request that runs out of it counts as an error. Zero
	// means [DefaultTimeout] (5 s).
	Timeout time.Duration

	// Classify, if set, labels each response (by its Cache-Status header,
	// say); [Result.Classes] counts the labels and each [Sample] keeps its
	// own. It is called from the workers concurrently, before the body is
	// read, and must not read the body.
	Classify func(resp *http.Response) string
}

// Sample is one request of a run.
type Sample struct {
	// Start is when it was sent, measured from the start of the run.
	Start time.Duration
	// Latency is the time from sending it to reading the last byte of the
	// response body, or to the error.
	Latency time.Duration
	// Status is the response's status code, or 0 when there was no
	// response (Err is set).
	Status int
	// Class is what [Options.Classify] said; empty without it.
	Class string
	// Err is true when the request got no complete response.
	Err bool
}

// Result summarises a run, or a window of one ([Result.Between]).
type Result struct {
	// Requests counts the requests that got a complete response, of any
	// status.
	Requests int
	// Errors counts the requests that got none: refused, reset, timed out.
	Errors int
	// Started is when the run began; each [Sample.Start] is measured from
	// it. A window from [Result.Between] keeps the run's Started.
	Started time.Time
	// Elapsed is the wall time of the run (or the window's length).
	Elapsed time.Duration
	// Throughput is Requests per second of Elapsed.
	Throughput float64
	// P50, P90, P99 and Max are latency percentiles (nearest rank) over
	// every request, answered or not.
	P50, P90, P99, Max time.Duration
	// Status counts responses by status code.
	Status map[int]int
	// Classes counts responses by [Options.Classify]'s label; nil without
	// it.
	Classes map[string]int
	// ErrorText counts errors by message, for at most 8 distinct messages
	// (others are counted in Errors only); empty in a window.
	ErrorText map[string]int
	// Samples holds every request, in the order they were sent.
	Samples []Sample
}

// ServerErrors counts responses with a 5xx status.
func (r Result) ServerErrors() int {
	n := 0
	for code, c := range r.Status {
		if code >= 500 && code <= 599 {
			n += c
		}
	}
	return n
}

// Between summarises the requests sent from from to to (measured from the
// start of the run, to exclusive). Its Elapsed is to-from.
func (r Result) Between(from, to time.Duration) Result {
	var in []Sample
	for _, s := range r.Samples {
		if s.Start >= from && s.Start < to {
			in = append(in, s)
		}
	}
	w := summarize(in, to-from, nil)
	w.Started = r.Started
	return w
}

// Run sends load as opts say and returns what happened. It returns early
// with ctx's error when ctx ends, with [ErrNotLoopback] when a request
// targets another host, and with the error of [Options.Request]; the
// Result then covers the requests made so far. Failed requests are not
// errors of Run: they are counted in the Result.
func Run(ctx context.Context, opts Options) (Result, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return Result{}, err
	}
	transport := newTransport(o.Connections)
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport: transport,
		Timeout:   o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		start    = time.Now()
		deadline time.Time
		next     atomic.Uint64
		wg       sync.WaitGroup
		errOnce  sync.Once
		runErr   error
		workers  = make([]worker, o.Connections)
	)
	if o.Duration > 0 {
		deadline = start.Add(o.Duration)
	}
	fail := func(err error) {
		errOnce.Do(func() { runErr = err; stop() })
	}
	for i := range workers {
		w := &workers[i]
		w.id, w.o, w.client, w.start = i, &o, client, start
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.loop(runCtx, &next, deadline); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if runErr == nil && ctx.Err() != nil {
		runErr = ctx.Err()
	}

	n := 0
	for i := range workers {
		n += len(workers[i].samples)
	}
	all := make([]Sample, 0, n)
	errText := map[string]int{}
	for i := range workers {
		all = append(all, workers[i].samples...)
		for msg, c := range workers[i].errText {
			if _, ok := errText[msg]; ok || len(errText) < maxErrorTexts {
				errText[msg] += c
			}
		}
	}
	sortByStart(all)
	res := summarize(all, elapsed, errText)
	res.Started = start
	return res, runErr
}

const maxErrorTexts = 8

func (o Options) withDefaults() (Options, error) {
	if o.Connections < 0 || o.Duration < 0 || o.Requests < 0 || o.Rate < 0 || o.Timeout < 0 {
		return o, errors.New("loadgen: Options.Connections, Duration, Requests, Rate and Timeout must not be negative")
	}
	if o.Request == nil {
		if o.URL == "" {
			return o, errors.New("loadgen: Options.URL and Options.Request are both empty")
		}
		req, err := http.NewRequest(http.MethodGet, o.URL, nil)
		if err != nil {
			return o, fmt.Errorf("loadgen: Options.URL: %w", err)
		}
		if err := checkLoopback(req); err != nil {
			return o, err
		}
	}
	if o.Connections == 0 {
		o.Connections = DefaultConnections
	}
	if o.Duration == 0 && o.Requests == 0 {
		o.Duration = DefaultDuration
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	return o, nil
}

// newTransport keeps at most one connection per worker, all kept alive,
// and dials loopback addresses only.
func newTransport(conns int) *http.Transport {
	d := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, fmt.Errorf("loadgen: dial %q: %w", addr, err)
			}
			if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
				return nil, fmt.Errorf("dial %q: %w", addr, ErrNotLoopback)
			}
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

func checkLoopback(req *http.Request) error {
	if req.URL == nil {
		return fmt.Errorf("request without URL: %w", ErrNotLoopback)
	}
	ip, err := netip.ParseAddr(req.URL.Hostname())
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("host %q: %w", req.URL.Host, ErrNotLoopback)
	}
	return nil
}

// worker sends requests one after another and keeps its own samples, so
// that recording takes no lock.
type worker struct {
	id      int
	o       *Options
	client  *http.Client
	start   time.Time
	samples []Sample
	errText map[string]int
	fixed   *http.Request // reused when Options.Request is nil
}

func (w *worker) loop(ctx context.Context, next *atomic.Uint64, deadline time.Time) error {
	var pace *time.Timer
	defer func() {
		if pace != nil {
			pace.Stop()
		}
	}()
	for {
		if ctx.Err() != nil {
			return nil
		}
		seq := next.Add(1) - 1
		if w.o.Requests > 0 && seq >= uint64(w.o.Requests) {
			return nil
		}
		if w.o.Rate > 0 {
			due := w.start.Add(time.Duration(float64(seq) / w.o.Rate * float64(time.Second)))
			if !deadline.IsZero() && !due.Before(deadline) {
				return nil
			}
			if wait := time.Until(due); wait > 0 {
				if pace == nil {
					pace = time.NewTimer(wait)
				} else {
					pace.Reset(wait)
				}
				select {
				case <-ctx.Done():
					return nil
				case <-pace.C:
				}
			}
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return nil
		}
		req, err := w.request(ctx, seq)
		if err != nil {
			return err
		}
		w.send(req)
	}
}

func (w *worker) request(ctx context.Context, seq uint64) (*http.Request, error) {
	if w.o.Request == nil {
		if w.fixed == nil {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.o.URL, nil)
			if err != nil {
				return nil, fmt.Errorf("loadgen: %w", err)
			}
			w.fixed = req
		}
		return w.fixed, nil
	}
	req, err := w.o.Request(ctx, w.id, seq)
	if err != nil {
		return nil, fmt.Errorf("loadgen: request %d: %w", seq, err)
	}
	if err := checkLoopback(req); err != nil {
		return nil, err
	}
	return req, nil
}

func (w *worker) send(req *http.Request) {
	t0 := time.Now()
	s := Sample{Start: t0.Sub(w.start)}
	resp, err := w.client.Do(req)
	if err == nil {
		if w.o.Classify != nil {
			s.Class = w.o.Classify(resp)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		if cerr := resp.Body.Close(); err == nil {
			err = cerr
		}
		s.Status = resp.StatusCode
	}
	s.Latency = time.Since(t0)
	if err != nil {
		s.Status, s.Err = 0, true
		if req.Context().Err() == nil { // not the run being stopped
			if w.errText == nil {
				w.errText = map[string]int{}
			}
			if msg := err.Error(); len(w.errText) < maxErrorTexts || w.errText[msg] > 0 {
				w.errText[msg]++
			}
		}
	}
	w.samples = append(w.samples, s)
}
