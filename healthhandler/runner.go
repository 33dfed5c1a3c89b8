package healthhandler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// result is one run's outcome as the report shows it.
type result struct {
	obs     []Observation // normalised: statuses, outputs and redaction done
	status  Status        // worst of obs
	at      time.Time     // Options.Now when the run ended
	took    time.Duration // how long the run took
	detail  string        // first non-pass detail, for logs and Stats
	timeout bool
}

// runner owns one check's goroutine and its latest result.
type runner struct {
	h     *Handler
	check Check
	added time.Time
	last  atomic.Pointer[result] // nil until the first run ended
	first chan struct{}          // closed when the first result is in

	runs, failures, timeouts atomic.Uint64
	workers                  atomic.Int64 // live workers of the latest run plus one; 0: none counted

	panicking bool // the latest run panicked; only the loop's goroutine uses it
}

type outcome struct {
	obs []Observation
	err error
	// panicked holds what Run panicked with, and stack where; nil if it
	// did not.
	panicked any
	stack    []byte
}

// loop runs the check at once, then every Interval, until the Handler
// closes. The next run starts Interval after the previous one started, or
// at once if that one took longer.
func (rn *runner) loop() {
	defer rn.h.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-rn.h.done:
			return
		case <-timer.C:
		}
		start := time.Now()
		if !rn.runOnce(ctx, cancel) {
			return
		}
		timer.Reset(max(rn.check.Interval-time.Since(start), 0))
	}
}

// runOnce runs the check in a goroutine of its own so that a run that
// ignores its context is still reported failing at its timeout. It returns
// false when the Handler closed meanwhile; cancel then ends the run, and
// Close waits for it.
func (rn *runner) runOnce(ctx context.Context, cancel context.CancelFunc) bool {
	rctx, rcancel := context.WithTimeout(ctx, rn.check.Timeout)
	defer rcancel()
	// Size one: a run abandoned at its timeout can still deliver and exit.
	res := make(chan outcome, 1)
	rn.h.wg.Add(1)
	go func() {
		defer rn.h.wg.Done()
		res <- rn.call(rctx)
	}()
	start := time.Now()
	select {
	case o := <-res:
		rn.record(o, time.Since(start), false)
		return true
	case <-rctx.Done():
	case <-rn.h.done:
		cancel()
		return false
	}
	rn.record(outcome{err: fmt.Errorf("no result within %v", rn.check.Timeout)}, time.Since(start), true)
	// Wait for the run that overran before starting another, so that runs
	// of a hanging dependency never pile up. Its late result is dropped.
	select {
	case <-res:
		return true
	case <-rn.h.done:
		cancel()
		return false
	}
}

// call runs the check, turning a panic into a failure.
func (rn *runner) call(ctx context.Context) (o outcome) {
	defer func() {
		if v := recover(); v != nil {
			o = outcome{err: errors.New("check panicked"), panicked: v, stack: debug.Stack()}
		}
	}()
	obs, err := rn.check.Run(ctx)
	return outcome{obs: obs, err: err}
}

// record turns an outcome into the check's latest result, publishes the
// new report and announces a change of the check's status.
func (rn *runner) record(o outcome, took time.Duration, timeout bool) {
	res := &result{at: rn.h.now(), took: took, timeout: timeout}
	obs := o.obs
	if timeout || o.panicked != nil {
		obs = rn.failedShape()
	}
	if o.panicked != nil && !rn.panicking {
		// Once per run of panics: the stack is the same every time.
		rn.h.log.Error("health check panicked",
			slog.String(logKeyCheck, rn.check.Name),
			slog.String(logKeyPanic, redact(fmt.Sprint(o.panicked))),
			slog.String(logKeyStack, string(o.stack)))
	}
	rn.panicking = o.panicked != nil
	rn.noteWorkers(obs, timeout || o.panicked != nil)
	res.obs = rn.normalise(obs, o.err, timeout)
	res.status = StatusPass
	for _, ob := range res.obs {
		res.status = worse(res.status, ob.Status)
		if res.detail == "" && ob.Status != StatusPass {
			res.detail = ob.Detail
		}
	}
	rn.runs.Add(1)
	if res.status != StatusPass {
		rn.failures.Add(1)
	}
	if timeout {
		rn.timeouts.Add(1)
	}
	prev := rn.last.Swap(res)
	overall := rn.h.publish()
	if prev == nil {
		close(rn.first)
	}
	var from Status
	if prev != nil {
		from = prev.status
	}
	if from != res.status {
		rn.h.changed(Change{
			Check: rn.check.Name, Critical: rn.check.Critical,
			From: from, To: res.status, Overall: overall,
			At: res.at, Detail: res.detail,
		})
	}
}

// failedShape keeps the report's keys stable when a run gave nothing: the
// previous run's keys and instances without values, or one under Name.
func (rn *runner) failedShape() []Observation {
	prev := rn.last.Load()
	if prev == nil {
		return nil
	}
	obs := make([]Observation, len(prev.obs))
	for i, p := range prev.obs {
		obs[i] = Observation{Measurement: p.Measurement, ComponentType: p.ComponentType, ComponentID: p.ComponentID}
	}
	return obs
}

// normalise fills defaults, applies err, and redacts every text.
func (rn *runner) normalise(obs []Observation, err error, timeout bool) []Observation {
	if len(obs) == 0 {
		obs = []Observation{{}}
	}
	out := make([]Observation, len(obs))
	for i, ob := range obs {
		if ob.ComponentType == "" {
			ob.ComponentType = rn.check.ComponentType
		}
		switch ob.Status {
		case StatusPass, StatusWarn, StatusFail:
		case "":
			ob.Status = StatusPass
			if err != nil {
				ob.Status = StatusFail
			}
		default:
			ob.Detail = joinText("unknown status "+string(ob.Status), ob.Detail)
			ob.Status = StatusFail
		}
		if err != nil && ob.Status != StatusPass && ob.Detail == "" {
			ob.Detail = err.Error()
		}
		switch {
		case timeout:
			ob.Output = rn.check.Name + " check timed out"
		case ob.Status == StatusWarn && ob.Output == "":
			ob.Output = rn.check.Name + " check warning"
		case ob.Status == StatusFail && ob.Output == "":
			ob.Output = rn.check.Name + " check failed"
		}
		ob.Output = redact(ob.Output)
		ob.Detail = redact(ob.Detail)
		ob.ComponentID = redact(ob.ComponentID)
		ob.Value, ob.Detail = freeze(ob.Value, ob.Detail)
		out[i] = ob
	}
	return out
}

// freeze encodes a value once, when it is recorded, so that the report
// never aliases the check's data and never fails to encode. Credentials in
// it are scrubbed (a string value is redacted like any text); a value that
// cannot be encoded is dropped, and Detail says so.
func freeze(v any, detail string) (any, string) {
	if v == nil {
		return nil, detail
	}
	if s, ok := v.(string); ok {
		v = redact(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, joinText(detail, "observed value not encodable")
	}
	b = []byte(scrub(string(b)))
	if !json.Valid(b) {
		return nil, joinText(detail, "observed value not encodable")
	}
	return json.RawMessage(b), detail
}

// pending is what a check shows before its first run ended.
func (rn *runner) pending() []Observation {
	return []Observation{{
		ComponentType: rn.check.ComponentType,
		Status:        StatusWarn,
		Output:        "not yet checked",
	}}
}
