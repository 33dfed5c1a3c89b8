//go:build unix

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

// coherenceBound is the bound: a write on one server is seen by
// the other's next GET within it.
const coherenceBound = 10 * time.Millisecond

// coherenceWatch is how long after a PUT the other server is watched for
// a stale read: past the bound, so that a read going back to the old
// version after it would be seen.
const coherenceWatch = coherenceBound + 5*time.Millisecond

// CoherenceResult is the coherence scenario: two replica processes (see
// runReplica), each with its own Redis client and near cache, on one
// Redis that also holds their data. A PUT on A changes the data and
// invalidates the GET; then B is read in a loop.
type CoherenceResult struct {
	Trials int `json:"trials"`
	// P50ms, P99ms, MaxMs: from the end of the PUT on A to the start of
	// the first GET on B that showed the new version (0 when B's very next
	// GET did).
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// NextStale counts trials where B's first GET after the PUT still
	// showed the old version.
	NextStale int `json:"next_stale"`
	// StaleAfterBound counts GETs on B started more than the bound after
	// the PUT that showed the old version (the target is zero).
	StaleAfterBound int     `json:"stale_after_bound"`
	BoundMs         float64 `json:"bound_ms"`
	// Reads counts the GETs made on B, NearHits how many B's near cache
	// answered.
	Reads    int    `json:"reads"`
	NearHits uint64 `json:"near_hits"`
	Errors   int    `json:"errors"`
	// Never counts trials where B did not show the new version within a
	// second (their time counts as a second); DeleteFailed trials where
	// A's invalidating delete itself failed, which are left out.
	Never        int `json:"never"`
	DeleteFailed int `json:"delete_failed"`
}

// nearServer is one replica of the coherence scenario.
type nearServer struct {
	rdb   *resilience.Redis
	cache *middleware.Cache
	srv   *server
}

// newNearServer serves o behind a near-cached steadfast at /v/{id}, GET
// and PUT (a PUT invalidates the GET), and the counters at
// replicaStatsPath.
func newNearServer(name, addr string, o http.Handler, logger *slog.Logger) (*nearServer, error) {
	rdb, err := resilience.NewRedis(resilience.Config{Addr: addr}, resilience.Options{Logger: logger, NearCache: &resilience.NearCacheOptions{}})
	if err != nil {
		return nil, err
	}
	cache, err := middleware.NewCache(rdb, middleware.CacheOptions{Logger: logger})
	if err != nil {
		return nil, errors.Join(err, rdb.Close())
	}
	wrap := cache.Policy(cachepolicy.Policy{})
	mux := http.NewServeMux()
	mux.Handle("GET /v/{id}", wrap(o))
	mux.Handle("PUT /v/{id}", wrap(o))
	mux.HandleFunc("GET "+replicaStatsPath, func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(replicaStats{NearHits: rdb.Stats().NearCache.Hits, StoreErrors: cache.Stats().StoreErrors})
	})
	s, err := serve(name, mux)
	if err != nil {
		return nil, errors.Join(err, cache.Close(), rdb.Close())
	}
	s.closers = append(s.closers, cache.Close, rdb.Close)
	if err := waitNearServing(rdb); err != nil {
		return nil, errors.Join(err, s.close())
	}
	return &nearServer{rdb: rdb, cache: cache, srv: s}, nil
}

func coherence(ctx context.Context, addr string, trials int) (CoherenceResult, error) {
	res := CoherenceResult{Trials: trials, BoundMs: ms(coherenceBound)}
	a, err := startReplica(ctx, addr)
	if err != nil {
		return res, err
	}
	defer func() { _ = a.close() }()
	b, err := startReplica(ctx, addr)
	if err != nil {
		return res, err
	}
	defer func() { _ = b.close() }()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	call := func(method, url string) (string, string, error) {
		req, err := http.NewRequestWithContext(ctx, method, url, nil)
		if err != nil {
			return "", "", err
		}
		// One Host for both, as replicas behind one load balancer see:
		// the cache key holds the host.
		req.Host = "coherence.test"
		resp, err := client.Do(req)
		if err != nil {
			return "", "", err
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s %s: HTTP %d", method, url, resp.StatusCode)
		}
		return strings.TrimSpace(string(body)), resp.Header.Get("Cache-Status"), err
	}
	version := func(body string) int {
		_, v, _ := strings.Cut(body, " v")
		n, _ := strconv.Atoi(v)
		return n
	}
	// primed makes path a hit on B, and returns the version B holds.
	primed := func(path string) (int, error) {
		// The first GET misses and stores in the background: a few
		// milliseconds.
		for start := time.Now(); time.Since(start) < 2*time.Second; {
			body, cs, err := call(http.MethodGet, b.url+path)
			if err != nil {
				return 0, err
			}
			if strings.Contains(cs, "; hit") {
				return version(body), nil
			}
		}
		return 0, fmt.Errorf("coherence: %s not a hit on B within 2 s", path)
	}

	bs0, err := b.stats(ctx, client)
	if err != nil {
		return res, err
	}
	lat := make([]time.Duration, 0, trials)
	// Trials whose delete failed are left out and made up for, up to
	// twice as many attempts again.
	for i := 0; len(lat) < trials && i < 3*trials; i++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		path := "/v/" + strconv.Itoa(i%64)
		cur, err := primed(path)
		if err != nil {
			return res, err
		}
		as0, err := a.stats(ctx, client)
		if err != nil {
			return res, err
		}
		if _, _, err := call(http.MethodPut, a.url+path); err != nil {
			return res, err
		}
		t0 := time.Now()
		tr := trial{seen: -1}
		for first := true; ; first = false {
			start := time.Since(t0)
			if tr.seen >= 0 && start > coherenceWatch {
				break
			}
			if start > time.Second {
				tr.never, tr.seen = true, start
				break
			}
			body, _, err := call(http.MethodGet, b.url+path)
			tr.reads++
			if err != nil {
				tr.errors++
				continue
			}
			tr.observe(version(body) != cur, first, start)
		}
		as1, err := a.stats(ctx, client)
		if err != nil {
			return res, err
		}
		if as1.StoreErrors != as0.StoreErrors {
			// A's delete of the entry failed (its deadline passed on a
			// loaded machine): Redis still holds the old response, for B
			// and everyone, near cache or not. Not a near-cache trial.
			res.DeleteFailed++
			continue
		}
		res.add(tr)
		lat = append(lat, tr.seen)
	}
	bs1, err := b.stats(ctx, client)
	if err != nil {
		return res, err
	}
	res.NearHits = bs1.NearHits - bs0.NearHits
	if len(lat) == 0 {
		return res, errors.New("coherence: no trial completed")
	}
	res.Trials = len(lat)
	slices.Sort(lat)
	res.P50ms, res.P99ms, res.MaxMs = ms(quantile(lat, 0.50)), ms(quantile(lat, 0.99)), ms(lat[len(lat)-1])
	return res, nil
}

// trial is what B showed after one PUT on A.
type trial struct {
	seen                       time.Duration // when B first showed the new version; -1: not yet
	reads, errors              int
	nextStale, staleAfterBound int
	never                      bool
}

// observe records a GET on B that started at start after the PUT, first
// whether it was the first, fresh whether it showed the new version.
func (t *trial) observe(fresh, first bool, start time.Duration) {
	if fresh {
		if t.seen < 0 {
			t.seen = start
			if first {
				t.seen = 0
			}
		}
		return
	}
	if first {
		t.nextStale++
	}
	if start > coherenceBound {
		t.staleAfterBound++
	}
}

// add counts a kept trial.
func (r *CoherenceResult) add(t trial) {
	r.Reads += t.reads
	r.Errors += t.errors
	r.NextStale += t.nextStale
	r.StaleAfterBound += t.staleAfterBound
	if t.never {
		r.Never++
	}
}

// quantile of sorted values, nearest rank.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
