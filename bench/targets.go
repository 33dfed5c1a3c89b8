//go:build unix

package main

import (
	"fmt"
	"math"
)

// judge checks the targets against the report, for steadfast.
func judge(r *Report, c *configs) ([]Target, []string) {
	var ts []Target
	var notes []string
	add := func(name string, met bool, format string, args ...any) {
		ts = append(ts, Target{Name: name, Value: fmt.Sprintf(format, args...), Met: met})
	}
	sf, fl := r.hit("steadfast"), r.hit("floor")
	if sf != nil && fl != nil && r.Paired != nil {
		pr := r.Paired
		add("hit throughput ≥ 0.9 × `floor`", pr.MedianThroughput >= 0.9,
			"median of per-round ratios %.2f × (rounds %v; whole runs %.0f vs %.0f req/s = %.2f ×)",
			pr.MedianThroughput, roundAll(pr.ThroughputRatios, 100), sf.Throughput, fl.Throughput, sf.Throughput/fl.Throughput)
		add("hit p99 ≤ 1.2 × `floor` p99", pr.MedianP99 <= 1.2,
			"median of per-round ratios %.2f × (rounds %v; whole runs %s vs %s = %.2f ×)",
			pr.MedianP99, roundAll(pr.P99Ratios, 100), fmtMs(sf.P99ms), fmtMs(fl.P99ms), sf.P99ms/fl.P99ms)
		notes = append(notes, fmt.Sprintf("hit runs: steadfast used %.2f × floor's CPU per request, this process and redis-server together (median of per-round ratios %v): where CPU is the limit, the throughput ratio to expect is about %.2f ×; the measured one moves with what else the machine runs",
			pr.MedianCPU, roundAll(pr.CPURatios, 100), 1/pr.MedianCPU))
		if sf.HitRatio < 0.999 {
			notes = append(notes, fmt.Sprintf("steadfast's hit runs were %.1f%% hits, not all", 100*sf.HitRatio))
		}
	}
	if nr, fl := r.hit(nearName), r.hit("floor"); nr != nil && fl != nil && r.PairedNear != nil {
		pr := r.PairedNear
		add("`steadfast+near` hit throughput ≥ 2.0 × `floor`", pr.MedianThroughput >= 2.0,
			"median of per-round ratios %.2f × (rounds %v; whole runs %.0f vs %.0f req/s = %.2f ×)",
			pr.MedianThroughput, roundAll(pr.ThroughputRatios, 100), nr.Throughput, fl.Throughput, nr.Throughput/fl.Throughput)
		if ps := r.PairedStatic; ps != nil && ps.MedianThroughput > 0 {
			notes = append(notes, fmt.Sprintf("hit runs: the ceiling, `static` (a prebuilt body written with no cache work at all, in the same rounds), made %.2f × `floor` (median of per-round ratios %v); `steadfast+near` reached %.0f%% of it. No cache served from memory can pass that ratio in this harness, where the load generator and net/http share the machine's cores with the servers",
				ps.MedianThroughput, roundAll(ps.ThroughputRatios, 100), 100*pr.MedianThroughput/ps.MedianThroughput))
		}
	}
	if c := r.Coherence; c != nil {
		add(fmt.Sprintf("coherence: B sees A's PUT within %s, p99 (≥ 1,000 trials)", fmtMs(c.BoundMs)), c.P99ms <= c.BoundMs && c.Trials >= 1000 && c.Errors == 0 && c.Never == 0,
			"p99 %s over %d trials (p50 %s, max %s; %d errors, %d never within 1 s; %d left out: A's delete failed)",
			fmtMs(c.P99ms), c.Trials, fmtMs(c.P50ms), fmtMs(c.MaxMs), c.Errors, c.Never, c.DeleteFailed)
		add("coherence: no stale read after the bound", c.StaleAfterBound == 0,
			"%d of %d reads (B's very next GET was stale in %d trials)", c.StaleAfterBound, c.Reads, c.NextStale)
	}
	if o := find(r.Outage, nearName, func(o OutageResult) string { return o.Config }); o != nil {
		add("`steadfast+near` outage: zero 5xx", o.ServerErrors == 0, "%d", o.ServerErrors)
	}
	if rs := find(r.Resume, nearName, func(r ResumeResult) string { return r.Config }); rs != nil {
		add("`steadfast+near` resume: max ≤ 1 s", rs.TimedOut == 0 && rs.MaxMs <= 1000, "%s", resumeCell(rs))
	}
	if m := r.NearMemory; m != nil {
		notes = append(notes, fmt.Sprintf("memory: %d distinct keys of %d B read twice through the near cache at its defaults: it kept %d entries, %.1f MiB by go-redis's estimate (bound %.0f MiB); the live heap grew %.1f MiB, the process's RSS %.1f MiB (%.0f → %.0f MiB); %d hits",
			m.Keys, m.ValueBytes, m.Entries, float64(m.Bytes)/(1<<20), float64(m.MaxBytes)/(1<<20), m.HeapMiB, m.RSSMiB, m.RSSBeforeMiB, m.RSSAfterMiB, m.Hits))
	}
	if o := find(r.Outage, "steadfast", func(o OutageResult) string { return o.Config }); o != nil {
		add("outage, breaker open: added p99 ≤ 1 ms", o.AddedP99ms <= 1, "%s", fmtAdd(o.AddedP99ms))
		add("outage: zero 5xx", o.ServerErrors == 0, "%d", o.ServerErrors)
		notes = append(notes, fmt.Sprintf("outage: steadfast's breaker was seen open %s after the kill; the slowest request while Redis was down took %s",
			fmtMs(o.BreakerOpenMs), fmtMs(o.DownMaxMs)))
	}
	if h := find(r.Hang, "steadfast", func(h HangResult) string { return h.Config }); h != nil {
		limit := ms(c.opTimeout) + 5
		add(fmt.Sprintf("hang: p99 ≤ operation deadline + 5 ms (%s)", fmtMs(limit)), h.P99ms <= limit, "%s (max %s)", fmtMs(h.P99ms), fmtMs(h.MaxMs))
	}
	if rs := find(r.Resume, "steadfast", func(r ResumeResult) string { return r.Config }); rs != nil {
		add("resume: p50 ≤ 250 ms", rs.TimedOut == 0 && rs.P50ms <= 250, "%s", fmtMs(rs.P50ms))
		add("resume: max ≤ 1 s", rs.TimedOut == 0 && rs.MaxMs <= 1000, "%s", resumeCell(rs))
		notes = append(notes, fmt.Sprintf("resume: trials %v ms; breaker seen closed at %v ms after the first accepted connection; the prober notices by itself, the client's GET every 5 ms only observes",
			roundAll(rs.TrialsMs, 10), roundAll(rs.BreakerClosedMs, 10)))
	}
	if s := find(r.Stampede, "steadfast", func(s StampedeResult) string { return s.Config }); s != nil {
		add("stampede: origin runs once", s.OriginRuns == 1 && s.Errors == 0, "%d run(s), status %v, %d errors", s.OriginRuns, s.Status, s.Errors)
	}
	if h := r.Health; h != nil {
		add("health: ≤ 1 Redis ping per check interval", h.Pings <= h.MaxPings,
			"%d pings in %.2f s (interval %s: at most %d), for %d requests (%.0f/s)", h.Pings, h.WindowSeconds, fmtMs(h.IntervalMs), h.MaxPings, h.Requests, h.Achieved)
	}
	add("zero goroutines left after `Close`", r.Goroutines.Left == 0, "%d (before %d, after %d)", r.Goroutines.Left, r.Goroutines.Before, r.Goroutines.After)
	return ts, notes
}

// roundAll rounds every value to 1/scale.
func roundAll(v []float64, scale float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = math.Round(x*scale) / scale
	}
	return out
}
