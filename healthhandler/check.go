package healthhandler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrInvalidOption is wrapped by every error this package, and its
// readers healthhandler/celery and healthhandler/asynq, return for an
// invalid option or check: [New], [Handler.Add] and the constructors of
// ready-made checks. The error names the field, in the form
// "healthhandler: WorkersOptions.PruneAfter (1s) is shorter than TTL
// (1m0s): invalid option" (prefixed "celery: " or "asynq: " by the
// readers).
var ErrInvalidOption = errors.New("invalid option")

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
	// checks ([Workers] and those of healthhandler/celery and
	// healthhandler/asynq) set it; it feeds [CheckStats.Workers]. Empty
	// means the check counts no workers.
	WorkersMeasurement string
}

// newCheck is the Check [Redis] and [Workers] start from; they add Run.
func newCheck(name string, critical bool, interval, timeout time.Duration, componentType string) Check {
	return Check{Name: name, Critical: critical, Interval: interval, Timeout: timeout, ComponentType: componentType}
}

// Observation is one measurement of a check: one object of the report's
// array under the key "Name:Measurement". Several observations with the
// same Measurement (one per instance, told apart by ComponentID) share the
// key's array.
type Observation struct {
	// Measurement is the part of the key after the colon, such as
	// "responseTime". Empty means the key is the check's Name alone.
	Measurement string
	// ComponentType is [ComponentTypeComponent], [ComponentTypeDatastore]
	// or [ComponentTypeSystem]. Empty means the check's ComponentType.
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

func (c Check) key(measurement string) string {
	if measurement == "" {
		return c.Name
	}
	return c.Name + ":" + measurement
}

// validate checks c and fills its defaults.
func validate(c Check) (Check, error) {
	switch {
	case c.Name == "":
		return c, fmt.Errorf("healthhandler: Check.Name is empty: %w", ErrInvalidOption)
	case strings.Contains(c.Name, ":"):
		return c, fmt.Errorf("healthhandler: Check.Name %q holds a colon: %w", c.Name, ErrInvalidOption)
	case c.Run == nil:
		return c, fmt.Errorf("healthhandler: check %q: Run is nil: %w", c.Name, ErrInvalidOption)
	case c.Interval < 0, c.Timeout < 0:
		return c, fmt.Errorf("healthhandler: check %q: Interval (%v) and Timeout (%v) must not be negative: %w", c.Name, c.Interval, c.Timeout, ErrInvalidOption)
	}
	c.Interval = cmp.Or(c.Interval, DefaultInterval)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	c.ComponentType = cmp.Or(c.ComponentType, ComponentTypeComponent)
	return c, nil
}
