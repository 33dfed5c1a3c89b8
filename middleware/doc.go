// Package middleware holds the net/http middleware of steadfast: [Cache], a
// response cache in Redis that fails open; [Breaker], a circuit breaker
// around a handler; and [Retry], which runs a handler again when it fails.
// Breaker and Retry are built on failsafe-go.
//
// Each middleware is a type made once, by a constructor that checks its
// options and returns an error, with a Handler method of the usual
// func(http.Handler) http.Handler shape:
//
//	breaker, err := middleware.NewBreaker(middleware.BreakerOptions{})
//	if err != nil { ... }
//	retry, err := middleware.NewRetry(middleware.RetryOptions{})
//	if err != nil { ... }
//	mux.Handle("GET /upstream", breaker.Handler(retry.Handler(upstream)))
//
// The zero value of every options struct works. The middlewares compose in
// any order: with Breaker outside Retry the breaker sees one outcome per
// request; with Retry outside Breaker every attempt counts, and an open
// breaker's 503 ends retrying unless its Retry-After is within the retry's
// MaxDelay. Breaker and Retry answer a failure with a 5xx (an open breaker
// with a 503, an exhausted retry with the last failed response, a 5xx with
// the default Statuses), so a Cache outside them with a stale-if-error
// window serves its stale entry instead.
//
// All of them hand the next handler the same http.ResponseWriter wrapper,
// which keeps http.Flusher, http.Hijacker and io.ReaderFrom working and has
// an Unwrap method for http.ResponseController. A response held back (a
// failed attempt, a 5xx the cache may replace) is sent after all when the
// handler flushes it or it outgrows the memory limit.
//
// Panics: a handler's panic passes on unless the options ask for recovery
// (RecoverPanics), in which case the client gets a 500 and the panic is
// logged once, with its stack. Retry retries a panic like a failed status;
// one it passes on after its last attempt carries the original stack in its
// Error text. [http.ErrAbortHandler] always passes on. A panic after part of
// the response was sent cannot become a 500; with recovery on it aborts the
// connection, as net/http does.
//
// Logging: the middlewares log state changes (a breaker opening, half-opening,
// closing) and recovered panics, one line each, never a line per request. The
// attribute keys are the LogKey constants. Stats methods and callbacks report
// the same events to programs.
package middleware
