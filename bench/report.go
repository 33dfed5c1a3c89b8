//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// HitResult is one configuration's hit runs, merged.
type HitResult struct {
	Config     string  `json:"config"`
	Requests   int     `json:"requests"`
	Errors     int     `json:"errors"`
	Throughput float64 `json:"throughput_rps"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	// AllocsPerReq counts every allocation in the process over the runs
	// (load generator and net/http on both sides included) per request;
	// NetAllocsPerReq subtracts the harness baseline.
	AllocsPerReq    float64 `json:"allocs_per_req"`
	NetAllocsPerReq float64 `json:"net_allocs_per_req"`
	BytesPerReq     float64 `json:"bytes_per_req"`
	// CPUusPerReq is the process's CPU time (load generator, servers and
	// client included) per request; RedisCPUusPerReq redis-server's.
	CPUusPerReq      float64          `json:"cpu_us_per_req"`
	RedisCPUusPerReq float64          `json:"redis_cpu_us_per_req"`
	CmdsPerReq       float64          `json:"redis_cmds_per_req"`
	Cmds             map[string]int64 `json:"redis_cmds"`
	HitRatio         float64          `json:"hit_ratio"`
	Classes          map[string]int   `json:"classes"`
	Status           map[int]int      `json:"status"`
}

func hitResult(name string, m merged, baseline float64) HitResult {
	return HitResult{
		Config: name, Requests: m.Requests, Errors: m.Errors, Throughput: m.Throughput,
		P50ms: ms(m.P50), P99ms: ms(m.P99), MaxMs: ms(m.Max),
		AllocsPerReq: m.allocsPerReq(), NetAllocsPerReq: m.allocsPerReq() - baseline,
		BytesPerReq: m.bytesPerReq(),
		CPUusPerReq: us(m.cpuPerReq()), RedisCPUusPerReq: us(m.redisCPUPerReq()), CmdsPerReq: m.cmdsPerReq(), Cmds: m.Cmds,
		HitRatio: m.hitRatio(), Classes: m.Classes, Status: m.Status,
	}
}

// Paired compares steadfast with floor round by round: within a round the
// two ran back to back, so a ratio is not moved by the slower drifts of a
// shared machine's load, as the ratio of whole-run figures can be.
type Paired struct {
	// ThroughputRatios, P99Ratios and CPURatios are steadfast / floor per
	// round; CPU is the CPU time per request of this process and
	// redis-server together.
	ThroughputRatios []float64 `json:"throughput_ratios"`
	P99Ratios        []float64 `json:"p99_ratios"`
	CPURatios        []float64 `json:"cpu_per_req_ratios"`
	// MedianThroughput, MedianP99 and MedianCPU are their medians.
	MedianThroughput float64 `json:"median_throughput_ratio"`
	MedianP99        float64 `json:"median_p99_ratio"`
	MedianCPU        float64 `json:"median_cpu_per_req_ratio"`
}

func pairRounds(sf, fl []loadStats) *Paired {
	if len(sf) == 0 || len(sf) != len(fl) {
		return nil
	}
	p := &Paired{}
	for i := range sf {
		a, b := sf[i].res, fl[i].res
		if b.Throughput == 0 || b.P99 == 0 {
			return nil
		}
		p.ThroughputRatios = append(p.ThroughputRatios, a.Throughput/b.Throughput)
		p.P99Ratios = append(p.P99Ratios, float64(a.P99)/float64(b.P99))
		ca := perReq(float64(sf[i].cpu+sf[i].redisCPU), a.Requests)
		cb := perReq(float64(fl[i].cpu+fl[i].redisCPU), b.Requests)
		if cb > 0 {
			p.CPURatios = append(p.CPURatios, ca/cb)
		}
	}
	p.MedianThroughput, p.MedianP99, p.MedianCPU = median(p.ThroughputRatios), median(p.P99Ratios), median(p.CPURatios)
	return p
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Machine describes where the program ran.
type Machine struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model"`
	OS         string `json:"os"`
	Go         string `json:"go"`
	Redis      string `json:"redis"`
}

// Settings are the load settings of the run.
type Settings struct {
	Connections    int     `json:"connections"`
	RoundSeconds   float64 `json:"round_seconds"`
	Rounds         int     `json:"rounds"`
	URLs           int     `json:"urls"`
	OriginWorkMs   float64 `json:"origin_work_ms"`
	BodyBytes      int     `json:"body_bytes"`
	FaultSeconds   float64 `json:"fault_seconds"`
	OpTimeoutMs    float64 `json:"op_timeout_ms"`
	HarnessAllocs  float64 `json:"harness_allocs_per_req"`
	StampedeClient int     `json:"stampede_requests"`
}

// Target is one of the targets with the measured value.
type Target struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Met   bool   `json:"met"`
}

// Report is everything the program measured; it is written as JSON.
type Report struct {
	Command    string      `json:"command"`
	Machine    Machine     `json:"machine"`
	Settings   Settings    `json:"settings"`
	Hit        []HitResult `json:"hit"`
	Paired     *Paired     `json:"paired,omitempty"`
	PairedNear *Paired     `json:"paired_near,omitempty"`
	// PairedStatic compares static, the ceiling (a prebuilt body, no
	// cache), with floor.
	PairedStatic *Paired          `json:"paired_static,omitempty"`
	Coherence    *CoherenceResult `json:"coherence,omitempty"`
	NearMemory   *NearMemResult   `json:"near_memory,omitempty"`
	Outage       []OutageResult   `json:"outage"`
	Hang         []HangResult     `json:"hang"`
	Resume       []ResumeResult   `json:"resume"`
	Topology     []TopologyResult `json:"topology,omitempty"`
	Stampede     []StampedeResult `json:"stampede"`
	Health       *HealthResult    `json:"health,omitempty"`
	Goroutines   GoroutineResult  `json:"goroutines"`
	Targets      []Target         `json:"targets"`
	Notes        []string         `json:"notes,omitempty"`
	Seconds      float64          `json:"seconds"`
}

// GoroutineResult compares the goroutine count before the configurations
// were built with the count after all of them were closed.
type GoroutineResult struct {
	Before int `json:"before"`
	After  int `json:"after"`
	Left   int `json:"left"`
}

func writeJSON(path string, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

func (r *Report) hit(name string) *HitResult {
	for i := range r.Hit {
		if r.Hit[i].Config == name {
			return &r.Hit[i]
		}
	}
	return nil
}

func find[T any](list []T, name string, config func(T) string) *T {
	for i := range list {
		if config(list[i]) == name {
			return &list[i]
		}
	}
	return nil
}

// writeMarkdown prints the tables.
func writeMarkdown(w io.Writer, r *Report) {
	p := func(format string, args ...any) { _, _ = fmt.Fprintf(w, format, args...) }
	s := r.Settings
	p("Command: `%s`\n\n", r.Command)
	p("Machine: %d CPUs (GOMAXPROCS %d), %s, %s, %s, redis-server %s.\n\n",
		r.Machine.CPUs, r.Machine.GOMAXPROCS, r.Machine.CPUModel, r.Machine.OS, r.Machine.Go, r.Machine.Redis)
	p("Load: %d keep-alive connections, closed loop, %d × %gs per configuration (rounds interleaved), %d URLs; origin %g ms of work + %d B JSON, `Cache-Control: public, max-age=60`.\n\n",
		s.Connections, s.Rounds, s.RoundSeconds, s.URLs, s.OriginWorkMs, s.BodyBytes)

	p("| config | req/s | p50 | p99 | allocs/req (all) | allocs/req (net) | Redis cmds/req | CPU µs/req (process + Redis) | hits |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, h := range r.Hit {
		p("| `%s` | %.0f | %s | %s | %.1f | %.1f | %.2f | %.0f + %.0f | %.0f%% |\n", h.Config, h.Throughput,
			fmtMs(h.P50ms), fmtMs(h.P99ms), h.AllocsPerReq, h.NetAllocsPerReq, h.CmdsPerReq, h.CPUusPerReq, h.RedisCPUusPerReq, 100*h.HitRatio)
	}
	p("\nallocs/req (all) counts every allocation in the process during the runs, divided by requests: the load generator and net/http client and server run in the same process. (net) subtracts %.1f allocs/req, the same load against a handler that writes a prebuilt body. CPU µs/req is the CPU time per request of this process (load generator and servers included) and of redis-server.\n\n", s.HarnessAllocs)

	dash := "—"
	cell := func(ok bool, f string, args ...any) string {
		if !ok {
			return dash
		}
		return fmt.Sprintf(f, args...)
	}
	cfg := func(name string) (fo *OutageResult, so *OutageResult, fh, sh *HangResult, fr, sr *ResumeResult, fs, ss *StampedeResult) {
		return find(r.Outage, "floor", func(o OutageResult) string { return o.Config }),
			find(r.Outage, name, func(o OutageResult) string { return o.Config }),
			find(r.Hang, "floor", func(o HangResult) string { return o.Config }),
			find(r.Hang, name, func(o HangResult) string { return o.Config }),
			find(r.Resume, "floor", func(o ResumeResult) string { return o.Config }),
			find(r.Resume, name, func(o ResumeResult) string { return o.Config }),
			find(r.Stampede, "floor", func(o StampedeResult) string { return o.Config }),
			find(r.Stampede, name, func(o StampedeResult) string { return o.Config })
	}
	fo, so, fh, sh, fr, sr, fs, ss := cfg("steadfast")
	_, no, _, nh, _, nr, _, ns := cfg(nearName)
	p("| scenario | measure | `floor` | `steadfast` | `%s` |\n|---|---|---:|---:|---:|\n", nearName)
	p("| outage: Redis killed under load | added p50 / p99 over the origin handler, in the server (%s) | %s | %s | %s |\n",
		outageWindows(fo, so, no),
		cell(fo != nil, "%s / %s", fmtAdd(orZero(fo).AddedP50ms), fmtAdd(orZero(fo).AddedP99ms)),
		cell(so != nil, "%s / %s", fmtAdd(orZero(so).AddedP50ms), fmtAdd(orZero(so).AddedP99ms)),
		cell(no != nil, "%s / %s", fmtAdd(orZero(no).AddedP50ms), fmtAdd(orZero(no).AddedP99ms)))
	p("| | client p99 / max while down, 5xx | %s | %s | %s |\n",
		cell(fo != nil, "%s / %s, %d", fmtMs(orZero(fo).DownP99ms), fmtMs(orZero(fo).DownMaxMs), orZero(fo).ServerErrors),
		cell(so != nil, "%s / %s, %d", fmtMs(orZero(so).DownP99ms), fmtMs(orZero(so).DownMaxMs), orZero(so).ServerErrors),
		cell(no != nil, "%s / %s, %d", fmtMs(orZero(no).DownP99ms), fmtMs(orZero(no).DownMaxMs), orZero(no).ServerErrors))
	p("| hang: Redis SIGSTOPped under load | p99 / max | %s | %s | %s |\n",
		cell(fh != nil, "%s / %s", fmtMs(orZero(fh).P99ms), fmtMs(orZero(fh).MaxMs)),
		cell(sh != nil, "%s / %s", fmtMs(orZero(sh).P99ms), fmtMs(orZero(sh).MaxMs)),
		cell(nh != nil, "%s / %s", fmtMs(orZero(nh).P99ms), fmtMs(orZero(nh).MaxMs)))
	p("| resume: Redis restarted | first accepted connection → first hit, p50 / max of %d | %s | %s | %s |\n",
		max(len(orZero(sr).TrialsMs), len(orZero(fr).TrialsMs)), resumeCell(fr), resumeCell(sr), resumeCell(nr))
	p("| stampede: %d concurrent requests, one cold URL | origin runs | %s | %s | %s |\n", s.StampedeClient,
		cell(fs != nil, "%d", orZero(fs).OriginRuns), cell(ss != nil, "%d", orZero(ss).OriginRuns), cell(ns != nil, "%d", orZero(ns).OriginRuns))
	if h := r.Health; h != nil {
		p("| health: `/health` at %.0f req/s for %.0f s | Redis PINGs/s (check interval %s) | %s | %.2f | %s |\n",
			h.Rate, h.Seconds, fmtMs(h.IntervalMs), dash, h.PingsPerSec, dash)
	}
	if c := r.Coherence; c != nil {
		p("| coherence: PUT on A, then GETs on B (%d trials) | end of PUT → B shows it, p50 / p99 / max; stale reads after %s | %s | %s | %s / %s / %s; %d |\n",
			c.Trials, fmtMs(c.BoundMs), dash, dash, fmtMs(c.P50ms), fmtMs(c.P99ms), fmtMs(c.MaxMs), c.StaleAfterBound)
	}
	if m := r.NearMemory; m != nil {
		p("| memory: %d distinct keys of %d B, read twice | near cache entries, MiB (bound); heap / RSS growth | %s | %s | %d, %.1f (%.0f); +%.1f / +%.1f MiB |\n",
			m.Keys, m.ValueBytes, dash, dash, m.Entries, float64(m.Bytes)/(1<<20), float64(m.MaxBytes)/(1<<20), m.HeapMiB, m.RSSMiB)
	}
	p("| whole run | goroutines left after `Close` | %s | %d | |\n\n", dash, r.Goroutines.Left)

	if len(r.Targets) > 0 {
		p("| target | measured | met |\n|---|---|:-:|\n")
		for _, t := range r.Targets {
			met := "yes"
			if !t.Met {
				met = "**no**"
			}
			p("| %s | %s | %s |\n", t.Name, t.Value, met)
		}
		p("\n")
	}
	topologyMarkdown(p, r.Topology)
	for _, n := range r.Notes {
		p("- %s\n", n)
	}
}

// orZero returns *p, or a zero value when p is nil, so that a missing
// row prints as a dash without nil checks at every cell.
func orZero[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}

func outageWindows(rs ...*OutageResult) string {
	var parts []string
	for _, o := range rs {
		if o != nil {
			parts = append(parts, "`"+o.Config+"`: "+o.Window)
		}
	}
	return strings.Join(parts, "; ")
}

func resumeCell(r *ResumeResult) string {
	if r == nil {
		return "—"
	}
	mx := fmtMs(r.MaxMs)
	if r.TimedOut > 0 {
		mx = fmt.Sprintf("> %s (%d of %d never)", fmtMs(ms(resumeLimit)), r.TimedOut, len(r.TrialsMs))
	}
	return fmt.Sprintf("%s / %s", fmtMs(r.P50ms), mx)
}

// fmtMs prints milliseconds with sensible precision.
func fmtMs(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func fmtAdd(v float64) string {
	if v < 0 {
		return "−" + fmtMs(-v)
	}
	return "+" + fmtMs(v)
}
