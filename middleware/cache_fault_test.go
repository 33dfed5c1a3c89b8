package middleware_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

// faultEnv is a cache on a real redis-server that tests kill, pause and
// restart.
type faultEnv struct {
	*env
	srv     *redistest.Server
	changes chan resilience.StateChange
	h       http.Handler
	o       *origin
}

func newFaultEnv(t *testing.T) *faultEnv {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{})
	changes := make(chan resilience.StateChange, 64)
	rdb, err := resilience.NewRedis(resilience.Config{Addr: srv.Addr()}, resilience.Options{
		Logger: quiet,
		// Long enough for a loaded machine to answer a healthy Redis, short
		// enough for a hung one to cost little.
		OpTimeout:        250 * time.Millisecond,
		FailureThreshold: 2,
		BreakerDelay:     time.Hour, // only the prober closes the breaker
		ProbeInterval:    10 * time.Millisecond,
		ProbeMaxInterval: 50 * time.Millisecond,
		OnStateChange: func(c resilience.StateChange) {
			select {
			case changes <- c:
			default: // never block Redis operations; 64 changes is more than a test makes
			}
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	e := &env{t: t, rdb: rdb, clock: newClock()}
	e.store = &signalStore{Store: rdb, sets: make(chan string, 64)}
	e.cache, err = middleware.NewCache(e.store, middleware.CacheOptions{Logger: quiet, Now: e.clock.Now})
	require.NoError(t, err)
	// Each request here comes alone, right after a fault: none is to be
	// answered from a flight that finished before it.
	middleware.SetFlightLinger(e.cache, 0)
	t.Cleanup(func() { _ = e.cache.Close() })
	o := &origin{}
	return &faultEnv{env: e, srv: srv, changes: changes, o: o,
		h: e.cache.Policy(cachepolicy.Policy{TTL: time.Hour})(o)}
}

// waitState waits for the breaker to enter state.
func (f *faultEnv) waitState(state resilience.State) {
	f.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case c := <-f.changes:
			if c.To == state {
				return
			}
		case <-deadline:
			require.Failf(f.t, "timed out", "breaker did not become %v; state %v", state, f.rdb.State())
		}
	}
}

// prime stores the entry for /x and checks that it is served.
func (f *faultEnv) prime() {
	f.t.Helper()
	do(f.h, "GET", "/x")
	f.waitStored(1)
	require.Equal(f.t, "steadfast; hit; ttl=3600", do(f.h, "GET", "/x").Header().Get("Cache-Status"))
}

// failUntilOpen sends requests while Redis is down until the breaker
// opens; every one must be served by the handler, marked as a bypass.
func (f *faultEnv) failUntilOpen() {
	f.t.Helper()
	for i := 0; f.rdb.State() != resilience.StateOpen; i++ {
		require.Less(f.t, i, 50, "breaker did not open")
		rr := do(f.h, "GET", "/x")
		require.Equal(f.t, http.StatusOK, rr.Code)
		require.Equal(f.t, "steadfast; fwd=bypass; detail=redis-unavailable", rr.Header().Get("Cache-Status"))
	}
	f.waitState(resilience.StateOpen)
}

// assertNoNetwork checks that, with the breaker open, requests are served
// at once by the handler without a single Redis operation.
func (f *faultEnv) assertNoNetwork() {
	f.t.Helper()
	before := f.rdb.Stats()
	runs := f.o.runs.Load()
	for range 10 {
		rr := do(f.h, "GET", "/x")
		assert.Equal(f.t, http.StatusOK, rr.Code)
		assert.Equal(f.t, "steadfast; fwd=bypass; detail=redis-unavailable", rr.Header().Get("Cache-Status"))
	}
	after := f.rdb.Stats()
	assert.Equal(f.t, before.Ops, after.Ops, "Redis operations with the breaker open")
	assert.Equal(f.t, before.Rejected+10, after.Rejected, "rejected without a network call")
	assert.Equal(f.t, runs+10, f.o.runs.Load(), "handler runs")
}

func TestCacheFaultRedisKilled(t *testing.T) {
	f := newFaultEnv(t)
	f.prime()
	f.srv.Kill()
	f.failUntilOpen()
	f.assertNoNetwork()
	select {
	case key := <-f.store.sets:
		require.Failf(t, "stored while Redis was down", "the cache tried to store %s while Redis was down", key)
	default:
	}
	assert.Positive(t, f.cache.Stats().Bypasses)
}

func TestCacheFaultRedisHung(t *testing.T) {
	f := newFaultEnv(t)
	f.prime()
	f.srv.Pause()
	// Each request waits at most one operation deadline, then is served
	// by the handler; once the breaker opens, none waits at all.
	f.failUntilOpen()
	f.assertNoNetwork()

	f.srv.Resume()
	f.waitState(resilience.StateClosed)
	rr := do(f.h, "GET", "/x")
	assert.Equal(t, "steadfast; hit; ttl=3600", rr.Header().Get("Cache-Status"), "caching did not resume")
	assert.Equal(t, "run 1", rr.Body.String())
}

func TestCacheFaultRedisRestarted(t *testing.T) {
	f := newFaultEnv(t)
	f.prime()
	f.srv.Kill()
	f.failUntilOpen()

	f.srv.Restart() // empty: the entry is gone
	f.waitState(resilience.StateClosed)
	rr := do(f.h, "GET", "/x")
	assert.Equal(t, "steadfast; fwd=uri-miss; stored", rr.Header().Get("Cache-Status"), "caching did not resume")
	f.waitStored(1)
	hit := do(f.h, "GET", "/x")
	assert.Equal(t, "steadfast; hit; ttl=3600", hit.Header().Get("Cache-Status"))
	assert.Equal(t, rr.Body.String(), hit.Body.String())
}
