package middleware

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/failsafe-go/failsafe-go"
)

// retryRun is one request's state once its first attempt failed.
type retryRun struct {
	rt   *Retry
	next http.Handler
	w    http.ResponseWriter
	req  *http.Request // the first attempt's request
	body replayBody
	rec  *recorder

	recovered *panicError // the last attempt panicked before anything was sent
	stop      bool        // the body could not be had again: no more attempts
	cancel    context.CancelFunc
}

// failed reports whether the last attempt failed in a way worth retrying:
// not when its client has left.
func (run *retryRun) failed() bool {
	return !run.stop && !clientGone(run.req) && (run.recovered != nil || run.rec.Held())
}

// retry hands a request whose first attempt failed to failsafe's executor,
// then answers with the outcome of the last attempt.
func (rt *Retry) retry(run *retryRun) {
	ctx, cancel := context.WithCancel(run.req.Context())
	defer cancel()
	run.cancel = cancel
	// Errors mean the executor stopped early (canceled, deadline); the
	// outcome of the last attempt is in run either way.
	_, _ = rt.executor.WithContext(ctx).GetWithExecution(run.execute)

	rec := run.rec
	switch failed := run.recovered != nil || rec.Held(); {
	case failed && !clientGone(run.req):
		rt.exhausted.Add(1)
	case !failed:
		rt.recovered.Add(1)
	}
	switch {
	case run.recovered != nil:
		if !rt.recoverPanics {
			panic(run.recovered)
		}
		logPanic(rt.logger, run.req, run.recovered)
		// Nothing was sent and the handler's headers are in the
		// recorder's own map: the client's map is as it came in.
		http.Error(run.w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
	case rec.Held():
		_ = rec.sendHeld() // a write error means the client is gone
	default:
		rec.finish()
	}
	rt.recorders.put(rec)
}

// execute is the func failsafe's executor runs for each attempt.
func (run *retryRun) execute(exec failsafe.Execution[*retryRun]) (*retryRun, error) {
	if exec.IsFirstAttempt() {
		return run, nil // it ran before the executor was needed; report how it went
	}
	req, err := run.body.request(run.req)
	if err != nil {
		run.stop = true
		return run, nil
	}
	if run.recovered != nil {
		// The panic is swallowed by the attempt that replaces it: its one
		// log line.
		logPanic(run.rt.logger, run.req, run.recovered)
		run.recovered = nil
	}
	run.rt.retries.Add(1)
	run.rec.reset(run.w, run.rt.hold) // drops the failed attempt's response
	run.recovered = run.rt.attempt(run.next, run.rec, req)
	return run, nil
}

// retryAfterDelay is the policy's DelayFunc: a failed response's Retry-After
// sets the wait, stretched so that jitter can only lengthen it. Without one
// (-1) the policy's backoff applies.
func (rt *Retry) retryAfterDelay(exec failsafe.ExecutionAttempt[*retryRun]) time.Duration {
	run := exec.LastResult()
	if run == nil || !run.rec.Held() {
		return -1
	}
	wait, ok := retryAfter(run.rec.ResponseHeader())
	if !ok || wait <= 0 {
		return -1
	}
	return time.Duration(float64(wait) / (1 - rt.jitterFactor))
}

// retryScheduled is called with the wait before the next attempt. If the
// wait would reach the request's deadline, retrying stops at once: the
// executor's wait ends and the last failed response is sent.
func (rt *Retry) retryScheduled(e failsafe.ExecutionScheduledEvent[*retryRun]) {
	run := e.LastResult()
	if deadline, ok := run.req.Context().Deadline(); ok && time.Until(deadline) <= e.Delay {
		run.cancel()
	}
}

// retryAfter reads a Retry-After header: a number of seconds or an HTTP
// date. ok is false if there is none or it cannot be read.
func retryAfter(h http.Header) (wait time.Duration, ok bool) {
	v := h["Retry-After"]
	if len(v) == 0 {
		return 0, false
	}
	s := strings.TrimSpace(v[0])
	if secs, err := strconv.ParseUint(s, 10, 63); err == nil {
		if secs > uint64(math.MaxInt64/int64(time.Second)) {
			return time.Duration(math.MaxInt64), true
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(s); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}
