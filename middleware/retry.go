package middleware

import (
	"log/slog"
	"math"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/retrypolicy"

	"github.com/steadfast-go/steadfast/cachepolicy"
)

// Defaults of RetryOptions.
const (
	defaultMaxAttempts    = 3
	defaultInitialDelay   = 10 * time.Millisecond
	defaultMaxDelay       = time.Second
	defaultJitterFactor   = 0.2
	defaultMaxReplayBytes = 64 << 10
	defaultMaxHeldBytes   = defaultHoldLimit
)

// Read-only tables of RetryOptions defaults.
var (
	defaultRetryMethods  = []string{http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete}
	defaultRetryStatuses = []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}
)

// RetryOptions configures a [Retry]. The zero value works: up to 3 attempts
// of GET, HEAD, OPTIONS, PUT and DELETE requests answered 502, 503 or 504,
// waiting 10 ms, then 20 ms (each ±20%) between them.
type RetryOptions struct {
	// Name identifies the Retry in metrics ([Retry.Name]). Empty is
	// allowed.
	Name string

	// MaxAttempts is the most times the handler runs for one request,
	// the first attempt included. Zero means 3; 1 turns retrying off.
	MaxAttempts int

	// InitialDelay is the wait before the second attempt; each later wait
	// doubles, up to MaxDelay. Zero means 10 ms, or MaxDelay if that is
	// less.
	InitialDelay time.Duration

	// MaxDelay caps the wait between attempts. A failed response whose
	// Retry-After asks for a longer wait is not retried but sent as it is.
	// Zero means 1 second, or InitialDelay if that is more.
	MaxDelay time.Duration

	// JitterFactor varies each wait at random by up to this fraction, up or
	// down, so that clients that failed together do not retry together. It
	// must be less than 1. Zero means 0.2.
	JitterFactor float64

	// Methods are the request methods retried; they should be idempotent.
	// Nil means GET, HEAD, OPTIONS, PUT and DELETE.
	Methods []string

	// Statuses are the response statuses, 4xx or 5xx, that make an attempt
	// fail and be retried. Nil means 502, 503 and 504.
	Statuses []int

	// MaxReplayBytes is the largest request body read ahead into memory so
	// that it can be sent again to a later attempt. A request with a larger
	// body is not retried, unless it has a GetBody func. Zero means 64 KiB.
	MaxReplayBytes int64

	// MaxHeldBytes is the largest response body of a failed attempt kept in
	// memory, unsent, so that it can still be sent if no attempt succeeds.
	// A failed response that grows larger is sent as it is written, which
	// ends retrying. Zero means 64 KiB.
	MaxHeldBytes int

	// RecoverPanics turns a panic of the last attempt into a 500 response,
	// logged once with its stack. False lets it pass on, as a value whose
	// Error method shows the original panic and stack. Either way a panic
	// before anything was sent counts as a failed attempt and is retried;
	// a panic retried away is logged once, with its stack. A panic after
	// part of the response was sent is not retried: it passes on, or with
	// RecoverPanics aborts the connection. http.ErrAbortHandler always
	// passes on at once.
	RecoverPanics bool

	// Logger receives one line per recovered panic. Nil means slog.Default().
	Logger *slog.Logger
}

// RetryStats counts what a [Retry] did since it was made.
type RetryStats struct {
	// Succeeded counts the requests whose first attempt succeeded;
	// Recovered those that succeeded after a retry.
	Succeeded, Recovered uint64
	// Retries counts the attempts run after a failed one.
	Retries uint64
	// Exhausted counts the requests no attempt succeeded for, within the
	// attempts and time allowed: they got the last failed response, or a
	// panic.
	Exhausted uint64
}

// Retry runs an HTTP handler again when it fails. An attempt fails when it
// answers one of the retryable statuses, or panics, before anything of the
// response was sent. Its response is held back: the client never sees it,
// and its headers do not reach the client's header map. The next attempt
// comes after an exponential backoff with jitter, or after the response's
// Retry-After if that is longer; never after the request's context deadline.
// When no attempt succeeds, the client gets the last failed response.
//
// Requests are retried only when their method is one of the retryable ones
// and their body can be sent again (no body, a small one, or GetBody), and
// never once their client has left (the request's context is canceled).
// Responses that are sent (a status that is not retryable, a Flush, a
// hijack, a failed response too large to hold) end retrying.
//
// The attempts, backoff and jitter are failsafe-go's retry policy. The
// first attempt runs before failsafe's executor, which is entered only once
// it failed, so that a request that succeeds at once costs next to nothing.
//
// A Retry is safe for concurrent use. Make it with [NewRetry]; the zero value
// is not usable.
type Retry struct {
	name          string
	maxAttempts   int
	maxDelay      time.Duration
	jitterFactor  float64
	methods       []string
	statuses      []int
	maxReplay     int64
	recoverPanics bool
	logger        *slog.Logger

	hold      recorderConfig
	executor  failsafe.Executor[*retryRun]
	recorders recorderPool
	retries   atomic.Uint64
	exhausted atomic.Uint64
	succeeded atomic.Uint64
	recovered atomic.Uint64
}

// NewRetry returns a Retry configured by opts. The error wraps
// [ErrInvalidOption] and names the field when an option is out of range.
func NewRetry(opts RetryOptions) (*Retry, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	// A default gives way to the other delay when only one is set.
	initialDelay, maxDelay := opts.InitialDelay, opts.MaxDelay
	switch {
	case initialDelay == 0 && maxDelay == 0:
		initialDelay, maxDelay = defaultInitialDelay, defaultMaxDelay
	case initialDelay == 0:
		initialDelay = min(defaultInitialDelay, maxDelay)
	case maxDelay == 0:
		maxDelay = max(defaultMaxDelay, initialDelay)
	}
	if initialDelay > maxDelay {
		return nil, invalidOption("RetryOptions.InitialDelay %v is more than MaxDelay %v", initialDelay, maxDelay)
	}
	rt := &Retry{
		name:          opts.Name,
		maxAttempts:   orDefault(opts.MaxAttempts, defaultMaxAttempts),
		maxDelay:      maxDelay,
		jitterFactor:  orDefault(opts.JitterFactor, defaultJitterFactor),
		methods:       slices.Clone(opts.Methods),
		statuses:      slices.Clone(opts.Statuses),
		maxReplay:     orDefault(opts.MaxReplayBytes, defaultMaxReplayBytes),
		recoverPanics: opts.RecoverPanics,
		logger:        opts.Logger,
	}
	if rt.methods == nil {
		rt.methods = defaultRetryMethods
	}
	if rt.statuses == nil {
		rt.statuses = defaultRetryStatuses
	}
	if rt.logger == nil {
		rt.logger = slog.Default()
	}
	rt.hold = recorderConfig{
		hold:  rt.holds,
		limit: orDefault(opts.MaxHeldBytes, defaultMaxHeldBytes),
	}
	policy := retrypolicy.NewBuilder[*retryRun]().
		HandleIf(func(run *retryRun, _ error) bool { return run.failed() }).
		ReturnLastFailure().
		WithMaxAttempts(rt.maxAttempts).
		WithBackoff(initialDelay, maxDelay).
		WithJitterFactor(rt.jitterFactor).
		WithDelayFunc(rt.retryAfterDelay).
		OnRetryScheduled(rt.retryScheduled).
		Build()
	rt.executor = failsafe.With[*retryRun](policy)
	return rt, nil
}

// validate checks the options that have no default to fall back on.
func (o *RetryOptions) validate() error {
	switch {
	case o.MaxAttempts < 0:
		return invalidOption("RetryOptions.MaxAttempts %d is negative", o.MaxAttempts)
	case o.InitialDelay < 0:
		return invalidOption("RetryOptions.InitialDelay %v is negative", o.InitialDelay)
	case o.MaxDelay < 0:
		return invalidOption("RetryOptions.MaxDelay %v is negative", o.MaxDelay)
	case o.JitterFactor < 0 || o.JitterFactor >= 1 || math.IsNaN(o.JitterFactor):
		return invalidOption("RetryOptions.JitterFactor %v is not in [0, 1)", o.JitterFactor)
	case o.Methods != nil && len(o.Methods) == 0:
		return invalidOption("RetryOptions.Methods is empty (nil means the default)")
	case o.Statuses != nil && len(o.Statuses) == 0:
		return invalidOption("RetryOptions.Statuses is empty (nil means the default)")
	case o.MaxReplayBytes < 0:
		return invalidOption("RetryOptions.MaxReplayBytes %d is negative", o.MaxReplayBytes)
	case o.MaxHeldBytes < 0:
		return invalidOption("RetryOptions.MaxHeldBytes %d is negative", o.MaxHeldBytes)
	}
	for _, m := range o.Methods {
		if !cachepolicy.IsToken(m) {
			return invalidOption("RetryOptions.Methods holds %q, not a token", m)
		}
	}
	for _, s := range o.Statuses {
		if s < 400 || s > 599 {
			return invalidOption("RetryOptions.Statuses holds %d, not a 4xx or 5xx", s)
		}
	}
	return nil
}

// Handler returns next run with retries. The method value rt.Handler is a
// func(http.Handler) http.Handler. With MaxAttempts 1 it returns next.
//
// A request that cannot be retried (its method is not in Methods, or its
// body is too large to replay) goes to next as it is, with no wrapper and no
// panic recovery. A request body read ahead for replay is handed to each
// attempt in a shallow copy of the request; the request itself is not
// changed.
func (rt *Retry) Handler(next http.Handler) http.Handler {
	if rt.maxAttempts == 1 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !slices.Contains(rt.methods, r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		first, body, ok := rt.replayable(r)
		if !ok {
			next.ServeHTTP(w, first)
			return
		}
		// Hot path. Budget on top of next, when the first attempt succeeds:
		// under 2 µs and 20 allocations per request (a body read ahead for
		// replay adds its own). BenchmarkRetry measures it; the recorder and
		// its header map are pooled, and failsafe's executor is not entered.
		rec := rt.recorders.get(w, rt.hold)
		pe := rt.attempt(next, rec, first)
		if pe == nil && (!rec.Held() || clientGone(first)) {
			// Done, or the client left: nobody waits for another attempt,
			// and a failure caused by the hang-up says nothing.
			if rec.Held() {
				_ = rec.sendHeld() // a write error means the client is gone
			} else {
				rt.succeeded.Add(1)
			}
			rec.finish()
			rt.recorders.put(rec)
			return
		}
		rt.retry(&retryRun{rt: rt, next: next, w: w, req: first, body: body, rec: rec, recovered: pe})
	})
}

// holds is the recorder's hold decision: an attempt fails, and its response
// is held back, when its status is retryable and any Retry-After it carries
// is within MaxDelay.
func (rt *Retry) holds(status int, h http.Header) bool {
	if !slices.Contains(rt.statuses, status) {
		return false
	}
	wait, ok := retryAfter(h)
	return !ok || wait <= rt.maxDelay
}

// attempt runs next once, writing to rec. It returns the panic of next if
// it panicked before anything was sent, so the attempt can be retried; the
// recover covers next.ServeHTTP only. A panic after something was sent
// passes on from the deferred call, keeping its stack.
func (rt *Retry) attempt(next http.Handler, rec *recorder, r *http.Request) (pe *panicError) {
	returned := false
	defer func() {
		if returned {
			return
		}
		v := recover()
		switch {
		case v == nil: // runtime.Goexit: nothing to recover
		case v == http.ErrAbortHandler:
			panic(v)
		case rec.Committed():
			if !rt.recoverPanics {
				panic(v)
			}
			logPanic(rt.logger, r, v)
			panic(http.ErrAbortHandler) // part of the response went out: abort the connection
		default:
			pe = asPanicError(v)
		}
	}()
	next.ServeHTTP(rec, r)
	returned = true
	return nil
}

// Stats returns what the Retry did so far.
func (rt *Retry) Stats() RetryStats {
	return RetryStats{
		Succeeded: rt.succeeded.Load(), Recovered: rt.recovered.Load(),
		Retries: rt.retries.Load(), Exhausted: rt.exhausted.Load(),
	}
}
