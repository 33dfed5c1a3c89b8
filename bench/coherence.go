//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// CoherenceResult is the coherence scenario: two servers, each with its
// own Redis client and near cache, on one Redis, over one origin (as two
// replicas over one database). A PUT on A changes the origin's version
// and invalidates the GET; then B is read in a loop.
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

// versioned is the coherence scenario's origin: GET shows a version per
// id, PUT makes a new one.
type versioned struct {
	mu  sync.Mutex
	ver map[string]int
}

func (v *versioned) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	v.mu.Lock()
	if r.Method == http.MethodPut {
		v.ver[id]++
	}
	n := v.ver[id]
	v.mu.Unlock()
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = fmt.Fprintf(w, "%s v%d\n", id, n)
}

// nearServer is one replica of the coherence scenario.
type nearServer struct {
	rdb   *resilience.Redis
	cache *middleware.Cache
	srv   *server
}

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

func coherence(ctx context.Context, addr string, trials int, logger *slog.Logger) (CoherenceResult, error) {
	res := CoherenceResult{Trials: trials, BoundMs: ms(coherenceBound)}
	o := &versioned{ver: map[string]int{}}
	a, err := newNearServer("coherence-a", addr, o, logger)
	if err != nil {
		return res, err
	}
	defer func() { _ = a.srv.close() }()
	b, err := newNearServer("coherence-b", addr, o, logger)
	if err != nil {
		return res, err
	}
	defer func() { _ = b.srv.close() }()

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

	hits0 := b.rdb.Stats().NearCache.Hits
	lat := make([]time.Duration, 0, trials)
	// Trials whose delete failed are left out and made up for, up to
	// twice as many attempts again.
	for i := 0; len(lat) < trials && i < 3*trials; i++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		id := strconv.Itoa(i % 64)
		path := "/v/" + id
		// B holds the current version, as a hit (so in its near cache).
		var cur int
		primed := false
		// The first GET misses and stores in the background: a few
		// milliseconds.
		for pstart := time.Now(); time.Since(pstart) < 2*time.Second; {
			body, cs, err := call(http.MethodGet, b.srv.url+path)
			if err != nil {
				return res, err
			}
			if strings.Contains(cs, "; hit") {
				cur, primed = version(body), true
				break
			}
		}
		if !primed {
			return res, fmt.Errorf("coherence: %s not a hit on B within 2 s", path)
		}
		failed0 := a.cache.Stats().StoreErrors
		if _, _, err := call(http.MethodPut, a.srv.url+path); err != nil {
			return res, err
		}
		t0 := time.Now()
		if a.cache.Stats().StoreErrors != failed0 {
			// A's delete of the entry failed (its deadline passed on a
			// loaded machine): Redis still holds the old response, for B
			// and everyone, near cache or not. Not a near-cache trial.
			res.DeleteFailed++
			continue
		}
		seen := time.Duration(-1)
		for first := true; ; first = false {
			start := time.Since(t0)
			if seen >= 0 && start > coherenceWatch {
				break
			}
			if start > time.Second {
				res.Never++
				seen = start
				break
			}
			body, _, err := call(http.MethodGet, b.srv.url+path)
			res.Reads++
			if err != nil {
				res.Errors++
				continue
			}
			switch v := version(body); {
			case v != cur:
				if seen < 0 {
					seen = start
					if first {
						seen = 0
					}
				}
			default:
				if first {
					res.NextStale++
				}
				if start > coherenceBound {
					res.StaleAfterBound++
				}
			}
		}
		lat = append(lat, seen)
	}
	res.NearHits = b.rdb.Stats().NearCache.Hits - hits0
	if len(lat) == 0 {
		return res, errors.New("coherence: no trial completed")
	}
	res.Trials = len(lat)
	slices.Sort(lat)
	res.P50ms, res.P99ms, res.MaxMs = ms(quantile(lat, 0.50)), ms(quantile(lat, 0.99)), ms(lat[len(lat)-1])
	return res, nil
}

// quantile of sorted values, nearest rank.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
