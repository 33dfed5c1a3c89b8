//go:build unix

package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/steadfast-go/steadfast/internal/loadgen"
)

// keys is how many distinct URLs the hit runs cycle through.
const keys = 64

// StampedeResult is the stampede scenario: concurrent requests for one
// cold URL, sent at once over connections opened beforehand.
type StampedeResult struct {
	Config     string      `json:"config"`
	Requests   int         `json:"requests"`
	OriginRuns int         `json:"origin_runs"`
	Status     map[int]int `json:"status"`
	// Classes counts responses by Cache-Status: hit, miss, bypass, none.
	Classes map[string]int `json:"classes"`
	Errors  int            `json:"errors"`
	MaxMs   float64        `json:"max_ms"`
	// Before and After are the configuration's own counters around the
	// burst; absent when it has none.
	Before any `json:"stats_before,omitempty"`
	After  any `json:"stats_after,omitempty"`
}

func stampede(ctx context.Context, t target, o *origin, n int, run int) (StampedeResult, error) {
	tr := &http.Transport{MaxIdleConns: n, MaxIdleConnsPerHost: n, MaxConnsPerHost: n, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	defer tr.CloseIdleConnections()

	// Open n connections first, so that the burst is not spread out by
	// dialling.
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, _ = get(ctx, client, t.srv.url+rawPath+strconv.Itoa(i)) })
	}
	wg.Wait()

	path := coldPath + "stampede-" + strconv.Itoa(run)
	var before any
	if t.stats != nil {
		before = t.stats()
	}
	start := make(chan struct{})
	var mu sync.Mutex
	r := StampedeResult{Config: t.name, Requests: n, Status: map[int]int{}, Classes: map[string]int{}}
	var slowest time.Duration
	for range n {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			resp, err := get(ctx, client, t.srv.url+path)
			d := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			slowest = max(slowest, d)
			if err != nil {
				r.Errors++
				return
			}
			r.Status[resp.StatusCode]++
			r.Classes[classify(resp)]++
		})
	}
	close(start)
	wg.Wait()
	r.OriginRuns = o.coldRuns(path)
	r.MaxMs = ms(slowest)
	if t.stats != nil {
		r.Before, r.After = before, t.stats()
	}
	return r, nil
}

// HealthResult is the health scenario: /health requested at a fixed rate.
type HealthResult struct {
	Config string `json:"config"`
	// Rate and Seconds are the load asked for; Requests and Achieved what
	// it came to (requests, and requests per second).
	Rate     float64 `json:"rate"`
	Seconds  float64 `json:"seconds"`
	Requests int     `json:"requests"`
	Achieved float64 `json:"achieved_rate"`
	// Pings counts Redis PINGs over WindowSeconds, the run and the Redis
	// snapshots around it; MaxPings is one per check interval in that
	// window, plus one when checks fall at both ends.
	Pings         int64       `json:"pings"`
	WindowSeconds float64     `json:"window_seconds"`
	PingsPerSec   float64     `json:"pings_per_sec"`
	IntervalMs    float64     `json:"check_interval_ms"`
	MaxPings      int64       `json:"max_pings"`
	Status        map[int]int `json:"status"`
	P99ms         float64     `json:"p99_ms"`
}

func health(ctx context.Context, rp *redisProc, h healthTarget, rate float64, dur time.Duration) (HealthResult, error) {
	t, interval := h.t, h.interval
	s, err := measure(ctx, rp, loadgen.Options{
		URL: t.srv.url + h.path, Connections: 8, Rate: rate, Duration: dur,
	})
	if err != nil {
		return HealthResult{}, fmt.Errorf("health %s: %w", t.name, err)
	}
	pings := s.cmds["ping"]
	return HealthResult{
		Config: t.name, Rate: rate, Seconds: dur.Seconds(),
		Requests: s.res.Requests, Achieved: s.res.Throughput,
		Pings: pings, WindowSeconds: s.window.Seconds(), PingsPerSec: float64(pings) / s.window.Seconds(),
		IntervalMs: ms(interval), MaxPings: int64(s.window/interval) + 1,
		Status: s.res.Status, P99ms: ms(s.res.P99),
	}, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
