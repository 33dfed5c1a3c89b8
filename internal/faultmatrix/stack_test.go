package faultmatrix

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

// Settings of the stack under test.
const (
	// work is the item's work: what the origin spends on every request.
	work = 5 * time.Millisecond
	// opTimeout is the resilience deadline of one Redis operation (the
	// library's default, set explicitly so the latency bound is visible).
	opTimeout = resilience.DefaultOpTimeout
	// cacheTTL keeps entries fresh for the whole phase.
	cacheTTL = time.Minute
	// healthInterval is how often the Redis health check runs: often
	// enough that a 1 s fault shows many times.
	healthInterval = 50 * time.Millisecond
	// detailsHeader set to 1 makes a /health request see details.
	detailsHeader = "X-Faultmatrix-Details"
	// controlPrefix starts the paths of control requests: the same origin
	// and work, without the cache.
	controlPrefix = "/control"
)

// stack is one application as a user would wire it: the guarded client,
// the cache on the item routes, /health, served on a loopback port.
type stack struct {
	rdb    *resilience.Redis
	cache  *middleware.Cache
	health *healthhandler.Handler
	origin *origin
	mon    *monitor
	srv    *httptest.Server
	policy cachepolicy.Policy
	prefix string
}

// newStack builds a stack that reaches Redis at addr with password, logs
// into log and keeps its entries under prefix.
//
// near turns the near cache on, at its defaults.
func newStack(t *testing.T, addr, password, prefix string, log *slog.Logger, near bool) *stack {
	t.Helper()
	return newStackFor(t, resilience.Config{Addr: addr, Password: password}, prefix, log, near)
}

// newStackFor is newStack for any configuration: Sentinel, Cluster.
func newStackFor(t *testing.T, cfg resilience.Config, prefix string, log *slog.Logger, near bool) *stack {
	t.Helper()
	return newStackWith(t, cfg, prefix, log, near, nil)
}

// newStackWith is newStackFor that, with rt, times every cached
// request's Redis operations into rt.
func newStackWith(t *testing.T, cfg resilience.Config, prefix string, log *slog.Logger, near bool, rt *redisTimer) *stack {
	t.Helper()
	opts := resilience.Options{Logger: log, OpTimeout: opTimeout}
	if near {
		opts.NearCache = &resilience.NearCacheOptions{}
	}
	rdb, err := resilience.NewRedis(cfg, opts)
	require.NoError(t, err, "NewRedis")
	var store middleware.Store = rdb
	if rt != nil {
		store = timedStore{rdb}
	}
	cache, err := middleware.NewCache(store, middleware.CacheOptions{KeyPrefix: prefix, Logger: log})
	if err != nil {
		_ = rdb.Close()
		require.NoError(t, err, "NewCache")
	}
	health, err := healthhandler.New(healthhandler.Options{
		ServiceID: "faultmatrix",
		// The suite is the operator: it reads the specific error; the
		// public view is checked to hold no host name.
		ShowDetails: func(r *http.Request) bool { return r.Header.Get(detailsHeader) == "1" },
		Logger:      log,
	})
	if err != nil {
		_ = cache.Close()
		_ = rdb.Close()
		require.NoError(t, err, "healthhandler.New")
	}
	redisCheck, err := healthhandler.Redis(rdb, healthhandler.RedisOptions{Interval: healthInterval})
	if err == nil {
		err = health.Add(redisCheck)
	}
	if err != nil {
		_ = health.Close()
		_ = cache.Close()
		_ = rdb.Close()
		require.NoError(t, err, "health.Add")
	}
	s := &stack{
		rdb:    rdb,
		cache:  cache,
		health: health,
		origin: newOrigin(work),
		mon:    newMonitor(),
		policy: cachepolicy.Policy{TTL: cacheTTL},
		prefix: prefix,
	}
	mux := http.NewServeMux()
	// All methods: the cache sees the POSTs that invalidate.
	cached := cache.Policy(s.policy)(s.origin)
	if rt != nil {
		cached = rt.wrap(cached)
	}
	mux.Handle("/items/", s.mon.wrap(cached))
	mux.Handle(controlPrefix+"/", s.mon.wrap(s.origin))
	mux.Handle("/health", health)
	mux.Handle("/health/", health)
	s.srv = httptest.NewServer(mux)
	return s
}

// keys returns the cache key of every resource's GET entry.
func (s *stack) keys() []string {
	var keys []string
	for _, res := range allResources() {
		req := httptest.NewRequest(http.MethodGet, "http://"+res.host+res.target(), nil)
		keys = append(keys, cachepolicy.Key(s.prefix, req, s.policy))
	}
	return keys
}

// close stops the server (waiting for requests in flight), then the
// health checks, the cache's writer, and the client and its prober.
func (s *stack) close() error {
	s.srv.Close()
	return errors.Join(s.health.Close(), s.cache.Close(), s.rdb.Close())
}

// waitNear waits until the stack's near cache serves: it does once Redis
// has shown it tracks keys and a heartbeat came back.
func waitNear(t *testing.T, s *stack) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !s.rdb.Stats().NearCache.Serving {
		if time.Now().After(deadline) {
			require.Failf(t, "near cache not serving before the fault", "%+v", s.rdb.Stats().NearCache)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
