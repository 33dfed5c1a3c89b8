package healthhandler

import (
	"encoding/json"
	"net/http"
	"time"
)

// MediaType is the Content-Type of every report the [Handler] serves, from
// the IETF draft "Health Check Response Format for HTTP APIs".
const MediaType = "application/health+json"

// Report is the JSON document the Handler serves, after the draft. Clients
// may decode a response into it; ObservedValue then holds what
// encoding/json makes of a JSON value (float64, string, map, slice).
type Report struct {
	// Status is the whole service's status: pass, warn or fail.
	Status Status `json:"status"`
	// Version and ReleaseID come from [Options].
	Version   string `json:"version,omitempty"`
	ReleaseID string `json:"releaseId,omitempty"`
	// Output says why readiness fails ("draining", "not yet checked").
	Output string `json:"output,omitempty"`
	// ServiceID and Description come from [Options].
	ServiceID   string `json:"serviceId,omitempty"`
	Description string `json:"description,omitempty"`
	// Checks maps "component:measurement" keys to one result per
	// instance.
	Checks map[string][]CheckResult `json:"checks,omitempty"`
}

// CheckResult is one object of a check's array: one measurement of one
// instance.
type CheckResult struct {
	// ComponentID names the instance; only in detailed reports.
	ComponentID string `json:"componentId,omitempty"`
	// ComponentType is "component", "datastore" or "system" (see
	// [Observation.ComponentType]).
	ComponentType string `json:"componentType,omitempty"`
	// ObservedValue is the measured value ([Observation.Value]); absent
	// when the measurement has none, such as a failed round trip.
	ObservedValue any `json:"observedValue,omitempty"`
	// ObservedUnit is the value's unit, such as "ms"; absent when it has
	// none.
	ObservedUnit string `json:"observedUnit,omitempty"`
	// Status is this measurement's status: pass, warn or fail.
	Status Status `json:"status"`
	// Time is when the measurement was taken (RFC 3339), so a reader
	// sees how old it is.
	Time time.Time `json:"time"`
	// Output is the short public text when Status is not pass; detailed
	// reports add the specific error after it.
	Output string `json:"output,omitempty"`
}

// Indexes of the two views every body is built in.
const (
	viewPublic   = 0
	viewDetailed = 1
)

// snapshot is everything a request needs, encoded in advance: a request
// loads it atomically and writes bytes.
type snapshot struct {
	status    Status
	ready     bool
	full      [2][]byte
	fullCode  int
	readyBody [2][]byte
	readyCode int
}

// view is one check's contribution to a snapshot.
type view struct {
	rn     *runner
	obs    []Observation
	status Status
	at     time.Time
}

// build makes a snapshot from the runners' latest results. h.mu is held.
func (h *Handler) build() *snapshot {
	draining := h.draining.Load()
	overall, readyStatus := StatusPass, StatusPass
	pendingCritical := false
	views := make([]view, 0, len(h.runners))
	for _, rn := range h.runners {
		v := view{rn: rn}
		if res := rn.last.Load(); res != nil {
			v.obs, v.status, v.at = res.obs, res.status, res.at
		} else {
			v.obs, v.status, v.at = rn.pending(), StatusWarn, rn.added
			if rn.check.Critical {
				pendingCritical = true
			}
		}
		if rn.check.Critical {
			overall = worse(overall, v.status)
			readyStatus = worse(readyStatus, v.status)
		} else {
			overall = worse(overall, capWarn(v.status))
		}
		views = append(views, v)
	}

	s := &snapshot{status: overall, fullCode: code(overall)}
	readyOutput := ""
	switch {
	case draining:
		readyOutput = "draining"
	case pendingCritical:
		readyOutput = "not yet checked"
	case readyStatus == StatusFail:
		readyOutput = "critical check failing"
	}
	s.ready = readyOutput == ""
	if !s.ready {
		readyStatus = StatusFail
	}
	s.readyCode = code(readyStatus)
	for _, d := range []int{viewPublic, viewDetailed} {
		full := h.base(overall)
		ready := h.base(readyStatus)
		ready.Output = readyOutput
		for _, v := range views {
			for _, ob := range v.obs {
				cr := toResult(ob, v.at, d == viewDetailed)
				k := v.rn.check.key(ob.Measurement)
				full.Checks[k] = append(full.Checks[k], cr)
				if v.rn.check.Critical {
					ready.Checks[k] = append(ready.Checks[k], cr)
				}
			}
		}
		s.full[d] = encode(full)
		s.readyBody[d] = encode(ready)
	}
	return s
}

// capWarn caps a non-critical check's contribution at warn.
func capWarn(s Status) Status {
	if s == StatusFail {
		return StatusWarn
	}
	return s
}

func (h *Handler) base(st Status) Report {
	return Report{
		Status:      st,
		Version:     h.opts.Version,
		ReleaseID:   h.opts.ReleaseID,
		ServiceID:   h.opts.ServiceID,
		Description: h.opts.Description,
		Checks:      map[string][]CheckResult{},
	}
}

func toResult(ob Observation, at time.Time, withDetails bool) CheckResult {
	cr := CheckResult{
		ComponentType: ob.ComponentType,
		ObservedUnit:  ob.Unit,
		Status:        ob.Status,
		Time:          at.UTC().Truncate(time.Millisecond),
	}
	if ob.Value != nil {
		cr.ObservedValue = ob.Value
	}
	if ob.Status != StatusPass {
		cr.Output = ob.Output
	}
	if withDetails {
		cr.ComponentID = ob.ComponentID
		cr.Output = joinText(cr.Output, ob.Detail)
	}
	return cr
}

func code(s Status) int {
	if s == StatusFail {
		return http.StatusServiceUnavailable
	}
	return http.StatusOK
}

// encode marshals a report. Values were checked to encode when they were
// recorded, so it cannot fail; if it did, the body says fail without
// checks rather than nothing.
func encode(r Report) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(Report{Status: StatusFail, ServiceID: r.ServiceID, Output: "report not encodable"})
	}
	return append(b, '\n')
}

func joinText(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + ": " + b
}
