//go:build unix

package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/internal/redisproc"
	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

// TopologyResult is a failover scenario of steadfast on Sentinel or
// Cluster: from the new master being known (to Sentinel, or as the slot's
// master in the cluster) to the first cache hit seen by a client polling
// every 5 ms.
type TopologyResult struct {
	Scenario string    `json:"scenario"`
	TrialsMs []float64 `json:"trials_ms"`
	P50ms    float64   `json:"p50_ms"`
	MaxMs    float64   `json:"max_ms"`
	TimedOut int       `json:"timed_out"`
	// Skipped says why the scenario did not run (a program missing).
	Skipped string `json:"skipped,omitempty"`
}

func (r *TopologyResult) finish() {
	var done []float64
	for _, v := range r.TrialsMs {
		if v >= 0 {
			done = append(done, v)
		} else {
			r.TimedOut++
		}
	}
	slices.Sort(done)
	if len(done) > 0 {
		r.P50ms, r.MaxMs = done[(len(done)-1)/2], done[len(done)-1]
	}
	if r.TimedOut > 0 {
		r.MaxMs = -1
	}
}

// topologyRuns runs the Sentinel and the Cluster scenarios, trials
// failovers each.
func topologyRuns(ctx context.Context, work time.Duration, trials int, logger *slog.Logger, progress func(string, ...any)) []TopologyResult {
	var out []TopologyResult
	progress("sentinel: %d failovers (SENTINEL FAILOVER and kill -9, alternating)", trials)
	out = append(out, sentinelResume(ctx, work, trials, logger))
	progress("cluster: %d kills of a master with a replica", trials)
	out = append(out, clusterResume(ctx, work, trials, logger))
	return out
}

// watch serves steadfast on cfg and polls one URL; it returns the server,
// the observer, the URL and a stop function.
func watch(ctx context.Context, work time.Duration, cfg resilience.Config, logger *slog.Logger) (*steadfastServer, *observer, string, func(), error) {
	sf, err := serveSteadfastFor("steadfast", newOrigin(work), cfg, nil, logger)
	if err != nil {
		return nil, nil, "", nil, err
	}
	url := sf.srv.url + itemPath + "topology"
	octx, stop := context.WithCancel(ctx)
	obs := &observer{}
	var wg sync.WaitGroup
	wg.Go(func() { obs.run(octx, url) })
	return sf, obs, url, func() { stop(); wg.Wait(); _ = sf.srv.close() }, nil
}

// firstHit waits up to resumeLimit for the first hit after t0, in ms (-1
// when none came).
func firstHit(ctx context.Context, obs *observer, t0 time.Time) float64 {
	deadline := t0.Add(resumeLimit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if hit, ok := obs.firstHitAfter(t0); ok {
			return ms(hit.Sub(t0))
		}
		time.Sleep(500 * time.Microsecond)
	}
	return -1
}

func sentinelResume(ctx context.Context, work time.Duration, trials int, logger *slog.Logger) TopologyResult {
	r := TopologyResult{Scenario: "Sentinel: SENTINEL FAILOVER / kill -9 of the master"}
	if _, err := exec.LookPath("redis-sentinel"); err != nil {
		r.Skipped = "redis-sentinel not found"
		return r
	}
	st, err := redisproc.StartSentinel(ctx, redisproc.SentinelOptions{})
	if err != nil {
		r.Skipped = err.Error()
		return r
	}
	defer func() { _ = st.Close() }()
	_, obs, _, stop, err := watch(ctx, work, resilience.Config{Topology: resilience.TopologySentinel, MasterName: st.Name, Addrs: st.SentinelAddrs()}, logger)
	if err != nil {
		r.Skipped = err.Error()
		return r
	}
	defer stop()
	sleepCtx(ctx, time.Second)
	for trial := range trials {
		old, err := st.MasterAddr(ctx)
		if err != nil {
			r.Skipped = err.Error()
			return r
		}
		if trial%2 == 1 {
			st.Node(old).Kill()
		} else {
			for range 200 {
				if err = st.Failover(ctx); err == nil {
					break
				}
				sleepCtx(ctx, 50*time.Millisecond)
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, known, err := st.WaitNewMaster(wctx, old)
		cancel()
		if err != nil {
			r.TrialsMs = append(r.TrialsMs, -1)
			continue
		}
		r.TrialsMs = append(r.TrialsMs, firstHit(ctx, obs, known))
		if trial%2 == 1 {
			_ = st.Node(old).Restart(ctx)
		}
		sleepCtx(ctx, 500*time.Millisecond)
	}
	r.finish()
	return r
}

func clusterResume(ctx context.Context, work time.Duration, trials int, logger *slog.Logger) TopologyResult {
	r := TopologyResult{Scenario: "Cluster: kill -9 of the master of the polled key"}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		r.Skipped = "redis-cli not found"
		return r
	}
	for range trials {
		func() {
			c, err := redisproc.StartCluster(ctx, redisproc.ClusterOptions{})
			if err != nil {
				r.Skipped = err.Error()
				return
			}
			defer func() { _ = c.Close() }()
			_, obs, url, stop, err := watch(ctx, work, resilience.Config{Topology: resilience.TopologyCluster, Addrs: c.Addrs()[:2]}, logger)
			if err != nil {
				r.Skipped = err.Error()
				return
			}
			defer stop()
			slot := redisproc.Slot(cachepolicy.Key(middleware.DefaultCacheKeyPrefix, httptest.NewRequest("GET", url, nil), cachepolicy.Policy{}))
			sleepCtx(ctx, time.Second)
			victim, err := c.MasterFor(ctx, slot, "")
			if err != nil {
				r.Skipped = err.Error()
				return
			}
			c.Node(victim).Kill()
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, promoted, err := c.WaitPromoted(wctx, slot, victim)
			cancel()
			if err != nil {
				r.TrialsMs = append(r.TrialsMs, -1)
				return
			}
			r.TrialsMs = append(r.TrialsMs, firstHit(ctx, obs, promoted))
		}()
		if r.Skipped != "" {
			return r
		}
	}
	r.finish()
	return r
}

// topologyMarkdown writes the scenarios' table.
func topologyMarkdown(p func(string, ...any), rs []TopologyResult) {
	if len(rs) == 0 {
		return
	}
	p("\n| topology scenario | new master known → first hit, p50 / max | trials (ms) |\n|---|---:|---|\n")
	for _, r := range rs {
		if r.Skipped != "" {
			p("| %s | skipped: %s | |\n", r.Scenario, r.Skipped)
			continue
		}
		trials := make([]string, len(r.TrialsMs))
		for i, v := range r.TrialsMs {
			trials[i] = fmt.Sprintf("%.1f", v)
		}
		p("| %s | %s / %s | %s |\n", r.Scenario, fmtMs(r.P50ms), fmtMs(r.MaxMs), strings.Join(trials, " "))
	}
}
