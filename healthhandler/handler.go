package healthhandler

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// ErrClosed is returned by [Handler.Add] and [Handler.WaitChecked] after
// [Handler.Close].
var ErrClosed = errors.New("healthhandler: closed")

// Log attribute keys used by this package.
const (
	logKeyCheck    = "check"
	logKeyFrom     = "from"
	logKeyTo       = "to"
	logKeyOverall  = "overall"
	logKeyCritical = "critical"
	logKeyError    = "error"
	logKeyPanic    = "panic"
	logKeyStack    = "stack"
	logKeyService  = "service"
)

// Options configure a [Handler]. The zero value is ready to use: a report
// with checks and statuses only, no details for anyone.
type Options struct {
	// ServiceID, Version, ReleaseID and Description are copied into every
	// report ("serviceId", "version", "releaseId", "description"), with
	// any credentials in them scrubbed. Empty ones are left out. They must
	// be valid UTF-8.
	ServiceID, Version, ReleaseID, Description string

	// ShowDetails says whether a request may see details: error texts,
	// instance names, host names and user names ("componentId"), worker
	// ids. It is called once per request and must be fast, such as
	// [BearerToken] or a check of a header set by an authenticating proxy.
	// Do not decide on the remote address alone: behind a reverse proxy or
	// a sidecar on the same host every request comes from loopback. Nil
	// means nobody sees details: reports carry statuses, figures and short
	// generic texts only. Credentials and stack traces are never shown to
	// anyone.
	ShowDetails func(*http.Request) bool

	// Logger receives one line per change of a check's status and one
	// when draining starts, never one per request. Nil means
	// slog.Default().
	Logger *slog.Logger

	// OnChange, if set, is called once per change of a check's status,
	// after the new report is in place, from the check's goroutine. Calls
	// for one check come in order; calls for different checks may run at
	// the same time. It must not block.
	OnChange func(Change)

	// Now tells the time written into reports ("time"). Nil means
	// time.Now. Intervals and timeouts use the runtime's clock regardless.
	Now func() time.Time
}

// Change is one change of a check's status, for [Options.OnChange].
type Change struct {
	// Check is the check's Name; Critical is its Critical.
	Check    string
	Critical bool
	// From is the status before (empty for the check's first result),
	// To the status now.
	From, To Status
	// Overall is the report's status after the change.
	Overall Status
	// At is when the run that caused the change ended (Options.Now).
	At time.Time
	// Detail is the redacted text of the first failing observation; empty
	// when To is pass. Like the report's details, it may name hosts.
	Detail string
}

// Handler serves a service's health: the full report, liveness and
// readiness (see the package documentation for paths and statuses). Checks
// added with [Handler.Add] run in goroutines the Handler owns; requests only
// read their latest results, encoded in advance, and never wait.
//
// Build one with [New]; the zero value is not usable. A Handler is safe for
// concurrent use. Close stops its checks.
type Handler struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	live []byte

	mu      sync.Mutex // guards runners and closed; building a snapshot holds it (no I/O)
	runners []*runner
	closed  bool

	draining atomic.Bool
	snap     atomic.Pointer[snapshot]
	done     chan struct{}
	wg       sync.WaitGroup
}

// New returns a Handler with no checks; add them with [Handler.Add]. Until
// a check is added the report says pass and the service is ready. It fails
// only when an Options text is not valid UTF-8, with an error wrapping
// [ErrInvalidOption].
func New(opts Options) (*Handler, error) {
	for name, v := range map[string]string{
		"ServiceID": opts.ServiceID, "Version": opts.Version,
		"ReleaseID": opts.ReleaseID, "Description": opts.Description,
	} {
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("healthhandler: Options.%s is not valid UTF-8: %w", name, ErrInvalidOption)
		}
	}
	for _, v := range []*string{&opts.ServiceID, &opts.Version, &opts.ReleaseID, &opts.Description} {
		*v = scrub(*v)
	}
	h := &Handler{opts: opts, log: opts.Logger, now: opts.Now, done: make(chan struct{})}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.now == nil {
		h.now = time.Now
	}
	live := h.base(StatusPass)
	live.Checks = nil
	h.live = encode(live)
	h.publish()
	return h, nil
}

// Add registers a check and starts running it at once, then every
// Interval, until [Handler.Close]. Until its first run ends the check shows
// "warn" with output "not yet checked", and a critical one keeps the
// service not ready. Add returns an error naming the field when the check
// is invalid (empty or duplicate Name, nil Run, negative durations, or
// built by [Redis] or [Workers] from invalid input), wrapping
// [ErrInvalidOption], and [ErrClosed] after Close.
func (h *Handler) Add(c Check) error {
	c, err := validate(c)
	if err != nil {
		return err
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrClosed
	}
	for _, rn := range h.runners {
		if rn.check.Name == c.Name {
			h.mu.Unlock()
			return fmt.Errorf("healthhandler: check %q added twice: %w", c.Name, ErrInvalidOption)
		}
	}
	rn := &runner{h: h, check: c, added: h.now(), first: make(chan struct{})}
	h.runners = append(h.runners, rn)
	h.snap.Store(h.build())
	h.wg.Add(1)
	h.mu.Unlock()
	go rn.loop()
	return nil
}

// WaitChecked blocks until every check added so far has a result, or ctx
// ends. It is for start-up and tests; requests never need it. It returns
// [ErrClosed] if the Handler closes first.
func (h *Handler) WaitChecked(ctx context.Context) error {
	h.mu.Lock()
	runners := h.runners
	h.mu.Unlock()
	for _, rn := range runners {
		select {
		case <-rn.first:
			continue
		default:
		}
		select {
		case <-rn.first:
		case <-h.done:
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("health check %q not run yet: %w", rn.check.Name, ctx.Err())
		}
	}
	return nil
}

// Drain makes readiness fail from now on ("/ready" answers 503 with output
// "draining") while the full report and liveness go on as before. Call it
// when shutdown starts, before http.Server.Shutdown, so that load
// balancers stop sending traffic first. Drain is idempotent.
func (h *Handler) Drain() {
	if h.draining.Swap(true) {
		return
	}
	h.publish()
	h.log.Info("health: draining; readiness fails from now on", slog.String(logKeyService, h.opts.ServiceID))
}

// Close stops every check's goroutine and waits for them, cancelling runs
// in progress. Afterwards the Handler keeps serving the last results, and
// readiness fails as after [Handler.Drain]. Close is safe to call more than
// once; it always returns nil.
func (h *Handler) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	h.draining.Store(true)
	close(h.done)
	h.wg.Wait()
	h.publish()
	return nil
}

// publish builds and stores a new snapshot; it returns its status.
func (h *Handler) publish() Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.build()
	h.snap.Store(s)
	return s.status
}

// changed logs a change and calls OnChange. A check's first result is
// logged only when it is not pass.
func (h *Handler) changed(c Change) {
	if c.From != "" || c.To != StatusPass {
		level := slog.LevelInfo
		if c.To != StatusPass {
			level = slog.LevelWarn
		}
		attrs := []slog.Attr{
			slog.String(logKeyCheck, c.Check), slog.Bool(logKeyCritical, c.Critical),
			slog.String(logKeyFrom, string(c.From)), slog.String(logKeyTo, string(c.To)),
			slog.String(logKeyOverall, string(c.Overall)),
		}
		if c.Detail != "" {
			attrs = append(attrs, slog.String(logKeyError, c.Detail))
		}
		h.log.LogAttrs(context.Background(), level, "health check status changed", attrs...)
	}
	if h.opts.OnChange != nil {
		h.opts.OnChange(c)
	}
}

// ServeHTTP serves the full report, liveness or readiness by the last
// segment of the request path: ".../live" is liveness, ".../ready" is
// readiness, any other path the full report. So one Handler mounted at
// both "/health" and "/health/" serves /health, /health/live and
// /health/ready. Each view answers GET and HEAD with a [Report] in JSON,
// Content-Type [MediaType]; other methods get 405.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimSuffix(r.URL.Path, "/")
	switch p[strings.LastIndexByte(p, '/')+1:] {
	case "live":
		h.serveLive(w, r)
	case "ready":
		h.serveReady(w, r)
	default:
		s := h.snap.Load()
		write(w, r, s.fullCode, s.full[h.view(r)])
	}
}

// Live returns the liveness handler: 200 and status pass whenever the
// process serves HTTP. It checks no dependency, so a failing Redis never
// gets a healthy process restarted.
func (h *Handler) Live() http.Handler { return http.HandlerFunc(h.serveLive) }

// Ready returns the readiness handler: the critical checks only; 200 when
// every one of them has run and none fails, else 503 with status fail. It
// fails from [Handler.Drain] on.
func (h *Handler) Ready() http.Handler { return http.HandlerFunc(h.serveReady) }

func (h *Handler) serveLive(w http.ResponseWriter, r *http.Request) {
	write(w, r, http.StatusOK, h.live)
}

func (h *Handler) serveReady(w http.ResponseWriter, r *http.Request) {
	s := h.snap.Load()
	write(w, r, s.readyCode, s.readyBody[h.view(r)])
}

// BearerToken returns a func for [Options.ShowDetails] that lets a request
// see details when it carries "Authorization: Bearer <token>", compared in
// constant time. An empty token returns nil: nobody sees details. Serve
// the health endpoint over TLS, or only on a private network, when the
// token travels with it.
func BearerToken(token string) func(*http.Request) bool {
	if token == "" {
		return nil
	}
	want := []byte(token)
	return func(r *http.Request) bool {
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return false
		}
		return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) == 1
	}
}

func (h *Handler) view(r *http.Request) int {
	if h.opts.ShowDetails != nil && h.opts.ShowDetails(r) {
		return viewDetailed
	}
	return viewPublic
}

// write answers GET and HEAD with body; other methods get 405. It is the
// whole cost of a request: setting four headers and one Write (see
// BenchmarkServeHTTP).
func write(w http.ResponseWriter, r *http.Request, code int, body []byte) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	hdr.Set("Content-Type", MediaType)
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body) // the client went away: nothing to do
	}
}
