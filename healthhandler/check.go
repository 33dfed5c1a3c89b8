package healthhandler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults used when a [Check] field is zero.
const (
	DefaultInterval = 10 * time.Second
	DefaultTimeout  = 2 * time.Second
)

// Component types of the draft, for [Observation.ComponentType].
const (
	ComponentTypeComponent = "component"
	ComponentTypeDatastore = "datastore"
	ComponentTypeSystem    = "system"
)

// Status is a health status as the draft spells it: pass, warn or fail.
type Status string

// The statuses, from best to worst.
const (
	StatusPass Status = "pass"
	StatusWarn Status = "warn"
	StatusFail Status = "fail"
)

func (s Status) rank() int {
	switch s {
	case StatusPass:
		return 0
	case StatusWarn:
		return 1
	}
	return 2
}

func worse(a, b Status) Status {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// Check is one health check: what to run and how often. Register it with
// [Handler.Add]; the Handler then runs it in a goroutine of its own, at
// once and every Interval after that, each run bounded by Timeout.
// [Redis] and [Workers] build ready-made ones.
type Check struct {
	// Name is the component name: the part of the report's keys before
	// the colon ("redis" in "redis:responseTime"). It must be unique in a
	// Handler, non-empty, and hold no colon.
	Name string

	// Critical says the service cannot do its work without this
	// dependency: its failure makes the report "fail" (HTTP 503) and the
	// service not ready. A non-critical check that fails only makes the
	// report "warn" (HTTP 200), as for Redis used as a cache.
	Critical bool

	// Interval is the time from the start of one run to the start of the
	// next. Zero means [DefaultInterval] (10 s).
	Interval time.Duration

	// Timeout bounds one run: its context is cancelled then, and the
	// check is reported failing even if Run has not returned. The next run
	// starts only once Run has returned. Zero means [DefaultTimeout] (2 s).
	Timeout time.Duration

	// ComponentType is used for observations that set none. Empty means
	// [ComponentTypeComponent].
	ComponentType string

	// Run measures the dependency. It returns the observations to report
	// (nil is fine: one observation under Name is made up) and an error
	// that, when not nil, fails every observation that does not set its
	// own Status; the error's text is shown only to callers allowed to see
	// details. Run must honour ctx. A panic in Run is recovered, logged
	// once with its stack, and reported as a failure.
	Run func(ctx context.Context) ([]Observation, error)

	// WorkersMeasurement names the measurement whose value (an int; the
	// sum over instances) is the number of live workers, as the worker
	// checks ([Workers] and the Celery and asynq ones) set it; it feeds
	// [CheckStats.Workers]. Empty means the check counts no workers.
	WorkersMeasurement string

	// err is set by constructors such as [Redis] given bad input, and
	// returned by [Handler.Add].
	err error
}

// newCheck is the Check the ready-made constructors start from; they add
// Run, or the error Add reports.
func newCheck(name string, critical bool, interval, timeout time.Duration, componentType string) Check {
	return Check{Name: name, Critical: critical, Interval: interval, Timeout: timeout, ComponentType: componentType}
}

// orName returns name, or fallback when name is empty.
func orName(name, fallback string) string {
	if name == "" {
		return fallback
	}
	return name
}

// Observation is one measurement of a check: one object of the report's
// array under the key "Name:Measurement". Several observations with the
// same Measurement (one per instance, told apart by ComponentID) share the
// key's array.
type Observation struct {
	// Measurement is the part of the key after the colon, such as
	// "responseTime". Empty means the key is the check's Name alone.
	Measurement string
	// ComponentType is "component", "datastore" or "system". Empty means
	// the check's ComponentType.
	ComponentType string
	// ComponentID identifies the instance, such as a host and port. It
	// is shown only to callers allowed to see details.
	ComponentID string
	// Value is the observed value: a number, string, object or array,
	// encoded as JSON. Nil leaves observedValue out.
	Value any
	// Unit is the value's unit, such as "ms". Empty leaves it out.
	Unit string
	// Status is this measurement's status. Empty means pass, or fail
	// when Run returned an error.
	Status Status
	// Output is a short text for everyone, such as "redis unavailable";
	// it must name no host and hold no error text. It is shown only when
	// Status is not pass. Empty means a generic text.
	Output string
	// Detail is the specific text (an error, instance names) for callers
	// allowed to see details, shown after Output, and alone even when
	// Status is pass (the IDs a count is made of, say). It is cut to its
	// first line, and URLs and key=value pairs in it have their
	// credentials replaced by "***".
	Detail string
}

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

func (c Check) key(measurement string) string {
	if measurement == "" {
		return c.Name
	}
	return c.Name + ":" + measurement
}

func validate(c Check) (Check, error) {
	if c.err != nil {
		return c, c.err
	}
	switch {
	case c.Name == "":
		return c, errors.New("healthhandler: Check.Name is empty")
	case strings.Contains(c.Name, ":"):
		return c, fmt.Errorf("healthhandler: Check.Name %q holds a colon", c.Name)
	case c.Run == nil:
		return c, fmt.Errorf("healthhandler: check %q: Run is nil", c.Name)
	case c.Interval < 0, c.Timeout < 0:
		return c, fmt.Errorf("healthhandler: check %q: Interval (%v) and Timeout (%v) must not be negative", c.Name, c.Interval, c.Timeout)
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ComponentType == "" {
		c.ComponentType = ComponentTypeComponent
	}
	return c, nil
}
