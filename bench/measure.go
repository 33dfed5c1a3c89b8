//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/steadfast-go/steadfast/internal/loadgen"
)

// target is one configuration under load.
type target struct {
	name string
	srv  *server
	// breaker reports the Redis breaker's state ("closed", "open", ...);
	// nil when the configuration has none.
	breaker func() string
	// stats returns the configuration's own counters (the Redis client's
	// and the cache's), for the JSON; nil when it has none.
	stats func() any
	// redis is the configuration's own redis-server; nil means the one
	// shared by the others.
	redis *redisProc
}

// redisOf returns t's redis-server: its own, or shared.
func (t target) redisOf(shared *redisProc) *redisProc {
	if t.redis != nil {
		return t.redis
	}
	return shared
}

// classify labels a response by its Cache-Status field.
func classify(resp *http.Response) string {
	cs := resp.Header.Get("Cache-Status")
	switch {
	case cs == "":
		return "none"
	case strings.Contains(cs, "hit"):
		return "hit"
	case strings.Contains(cs, "bypass"):
		return "bypass"
	}
	return "miss"
}

// cycling builds GET requests for base+prefix+N, N cycling through keys
// values. Each worker builds its requests once and reuses them, so the
// load generator allocates nothing for them during the run.
func cycling(base, prefix string, workers, keys int) func(ctx context.Context, worker int, seq uint64) (*http.Request, error) {
	cache := make([][]*http.Request, workers)
	return func(ctx context.Context, worker int, seq uint64) (*http.Request, error) {
		if cache[worker] == nil {
			cache[worker] = make([]*http.Request, keys)
		}
		k := int(seq % uint64(keys))
		if r := cache[worker][k]; r != nil {
			return r, nil
		}
		r, err := http.NewRequestWithContext(ctx, http.MethodGet, base+prefix+strconv.Itoa(k), nil)
		if err != nil {
			return nil, err
		}
		cache[worker][k] = r
		return r, nil
	}
}

// warm requests every key until it is a cache hit (or, for a target
// without cache, once).
func warm(ctx context.Context, t target, prefix string, keys int) error {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	for k := range keys {
		url := t.srv.url + prefix + strconv.Itoa(k)
		deadline := time.Now().Add(3 * time.Second)
		for {
			resp, err := get(ctx, client, url)
			if err != nil {
				return fmt.Errorf("warm %s: %w", t.name, err)
			}
			c := classify(resp)
			if c == "hit" || c == "none" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("warm %s: %s never became a cache hit (last: %s)", t.name, url, resp.Header.Get("Cache-Status"))
			}
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

// settle brings t back to its steady state before a fault scenario:
// every key cached, the pool's connections used (a Redis restart leaves
// dead ones behind, which fail once each), the breaker closed.
func settle(ctx context.Context, t target, conns int) error {
	for range 3 {
		if err := warm(ctx, t, itemPath, keys); err != nil {
			return err
		}
		if _, err := loadgen.Run(ctx, hitLoad(t, conns, 200*time.Millisecond)); err != nil {
			return fmt.Errorf("settle %s: %w", t.name, err)
		}
		if t.breaker == nil || waitFor(ctx, 3*time.Second, func() bool { return t.breaker() == "closed" }) {
			return warm(ctx, t, itemPath, keys)
		}
	}
	return fmt.Errorf("settle %s: the breaker stays %s", t.name, t.breaker())
}

// get sends one GET and reads the body.
func get(ctx context.Context, c *http.Client, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	return resp, err
}

// loadStats is a measured load run: the load generator's result plus what
// the process and Redis did meanwhile.
type loadStats struct {
	res loadgen.Result
	// mallocs and bytes are runtime.MemStats deltas over the run: the whole
	// process, so the load generator and net/http on both sides included.
	mallocs, bytes uint64
	// cmds is the change in Redis calls per command over the run.
	cmds map[string]int64
	// cpu is the process's CPU time (user and system) over the run;
	// redisCPU is redis-server's.
	cpu, redisCPU time.Duration
	// window is the time between the two Redis snapshots, at least as
	// long as the run, over which cmds was counted.
	window time.Duration
}

func (s loadStats) allocsPerReq() float64 {
	return perReq(float64(s.mallocs), s.res.Requests)
}

func perReq(v float64, n int) float64 {
	if n == 0 {
		return 0
	}
	return v / float64(n)
}

// measure runs load with opts and records allocations and Redis commands
// around it. rp may be nil (Redis not counted).
func measure(ctx context.Context, rp *redisProc, opts loadgen.Options) (loadStats, error) {
	var before, after map[string]int64
	var rcpu0, rcpu1 time.Duration
	t0 := time.Now()
	if rp != nil {
		var err error
		if before, rcpu0, err = rp.stats(); err != nil {
			return loadStats{}, err
		}
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := processCPU()
	res, err := loadgen.Run(ctx, opts)
	cpu1 := processCPU()
	runtime.ReadMemStats(&m1)
	if err != nil {
		return loadStats{}, err
	}
	s := loadStats{res: res, mallocs: m1.Mallocs - m0.Mallocs, bytes: m1.TotalAlloc - m0.TotalAlloc, cpu: cpu1 - cpu0}
	if rp != nil {
		if after, rcpu1, err = rp.stats(); err != nil {
			return loadStats{}, err
		}
		s.cmds = commandDelta(before, after)
		s.redisCPU = rcpu1 - rcpu0
	}
	s.window = time.Since(t0)
	return s, nil
}

// processCPU returns the user and system CPU time the process used so
// far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// merged summarises several runs of one configuration as one.
type merged struct {
	Requests   int
	Errors     int
	Elapsed    time.Duration
	Throughput float64
	P50, P99   time.Duration
	Max        time.Duration
	Mallocs    uint64
	Bytes      uint64
	CPU        time.Duration
	RedisCPU   time.Duration
	Cmds       map[string]int64
	Classes    map[string]int
	Status     map[int]int
}

func merge(runs []loadStats) merged {
	m := merged{Cmds: map[string]int64{}, Classes: map[string]int{}, Status: map[int]int{}}
	var lat []time.Duration
	for _, r := range runs {
		m.Requests += r.res.Requests
		m.Errors += r.res.Errors
		m.Elapsed += r.res.Elapsed
		m.Mallocs += r.mallocs
		m.Bytes += r.bytes
		m.CPU += r.cpu
		m.RedisCPU += r.redisCPU
		for k, v := range r.cmds {
			m.Cmds[k] += v
		}
		for k, v := range r.res.Classes {
			m.Classes[k] += v
		}
		for k, v := range r.res.Status {
			m.Status[k] += v
		}
		for _, s := range r.res.Samples {
			lat = append(lat, s.Latency)
		}
	}
	slices.Sort(lat)
	m.P50 = loadgen.Percentile(lat, 0.50)
	m.P99 = loadgen.Percentile(lat, 0.99)
	if len(lat) > 0 {
		m.Max = lat[len(lat)-1]
	}
	if m.Elapsed > 0 {
		m.Throughput = float64(m.Requests) / m.Elapsed.Seconds()
	}
	return m
}

func (m merged) allocsPerReq() float64 { return perReq(float64(m.Mallocs), m.Requests) }
func (m merged) bytesPerReq() float64  { return perReq(float64(m.Bytes), m.Requests) }
func (m merged) cmdsPerReq() float64   { return perReq(float64(sumCalls(m.Cmds)), m.Requests) }
func (m merged) cpuPerReq() time.Duration {
	return time.Duration(perReq(float64(m.CPU), m.Requests))
}
func (m merged) redisCPUPerReq() time.Duration {
	return time.Duration(perReq(float64(m.RedisCPU), m.Requests))
}
func (m merged) hitRatio() float64 { return perReq(float64(m.Classes["hit"]), m.Requests) }

// stateChange is a breaker state seen at an offset from some start.
type stateChange struct {
	at    time.Duration
	state string
}

// watchBreaker polls state every half millisecond until ctx ends and
// returns, through the channel, every change it saw (the first entry is
// the state at the start).
func watchBreaker(ctx context.Context, state func() string, start time.Time) <-chan []stateChange {
	out := make(chan []stateChange, 1)
	go func() {
		var seen []stateChange
		tick := time.NewTicker(500 * time.Microsecond)
		defer tick.Stop()
		for {
			if s := state(); len(seen) == 0 || seen[len(seen)-1].state != s {
				seen = append(seen, stateChange{at: time.Since(start), state: s})
			}
			select {
			case <-ctx.Done():
				out <- seen
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// firstSeen returns the offset of the first change to state at or after
// from, or zero.
func firstSeen(changes []stateChange, state string, from time.Duration) time.Duration {
	for _, c := range changes {
		if c.state == state && c.at >= from {
			return c.at
		}
	}
	return 0
}
