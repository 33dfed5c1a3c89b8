package healthhandler

import "time"

// Stats is a snapshot of a [Handler], for programs that watch it without
// parsing reports or logs.
type Stats struct {
	// Status is the full report's status; Ready says whether readiness
	// passes; Draining whether [Handler.Drain] or Close was called.
	Status   Status
	Ready    bool
	Draining bool
	// Checks holds one entry per check, in the order they were added.
	Checks []CheckStats
}

// CheckStats describes one check.
type CheckStats struct {
	// Name is the check's [Check.Name].
	Name string
	// Critical is the check's [Check.Critical].
	Critical bool
	// Status is the latest result's status; empty before the first run
	// ended.
	Status Status
	// Runs counts ended runs; Failures those not pass; Timeouts those
	// cut off at the check's Timeout.
	Runs, Failures, Timeouts uint64
	// LastRun is when the latest run ended (Options.Now), so its age is
	// how old the result is; LastDuration is how long it took.
	LastRun      time.Time
	LastDuration time.Duration
	// LastError is the redacted text of the latest result's first failing
	// observation; empty when it passed.
	LastError string
	// Workers is the number of live workers the latest run counted, and
	// CountsWorkers whether it counted any: false for a check that counts
	// none (see [Check.WorkersMeasurement]), before its first run, and
	// when its latest run could not count them (Redis was unavailable).
	Workers       int
	CountsWorkers bool
}

// Stats returns a snapshot. It does no I/O and takes no lock held across
// a check.
func (h *Handler) Stats() Stats {
	s := h.snap.Load()
	h.mu.Lock()
	runners := h.runners
	h.mu.Unlock()
	st := Stats{Status: s.status, Ready: s.ready, Draining: h.draining.Load(), Checks: make([]CheckStats, 0, len(runners))}
	for _, rn := range runners {
		cs := CheckStats{
			Name: rn.check.Name, Critical: rn.check.Critical,
			Runs: rn.runs.Load(), Failures: rn.failures.Load(), Timeouts: rn.timeouts.Load(),
		}
		if res := rn.last.Load(); res != nil {
			cs.Status, cs.LastRun, cs.LastDuration, cs.LastError = res.status, res.at, res.took, res.detail
		}
		cs.Workers, cs.CountsWorkers = rn.liveWorkers()
		st.Checks = append(st.Checks, cs)
	}
	return st
}
