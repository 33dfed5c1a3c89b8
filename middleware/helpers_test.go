package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

// The guarded client is what users hand to NewCache.
var _ middleware.Store = (*resilience.Redis)(nil)

// fakeStore is a Store whose methods are set per test.
type fakeStore struct {
	GetFunc func(ctx context.Context, key string) ([]byte, error)
	SetFunc func(ctx context.Context, key string, val []byte, ttl time.Duration) error
	DelFunc func(ctx context.Context, keys ...string) error
}

var _ middleware.Store = (*fakeStore)(nil)

func (f *fakeStore) Get(ctx context.Context, key string) ([]byte, error) {
	if f.GetFunc == nil {
		return nil, fmt.Errorf("fake get: %w", fs.ErrNotExist)
	}
	return f.GetFunc(ctx, key)
}

func (f *fakeStore) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if f.SetFunc == nil {
		return nil
	}
	return f.SetFunc(ctx, key, val, ttl)
}

func (f *fakeStore) Del(ctx context.Context, keys ...string) error {
	if f.DelFunc == nil {
		return nil
	}
	return f.DelFunc(ctx, keys...)
}

// signalStore passes operations on to a real store and reports every Set
// that returned, so tests wait for the background writer on a signal.
type signalStore struct {
	middleware.Store
	sets chan string
}

func (s *signalStore) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	err := s.Store.Set(ctx, key, val, ttl)
	s.sets <- key
	return err
}

// clock is a settable time for CacheOptions.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a cache on miniredis, through the guarded client, with a
// settable clock.
type env struct {
	t     *testing.T
	mr    *miniredis.Miniredis
	rdb   *resilience.Redis
	store *signalStore
	clock *clock
	cache *middleware.Cache
}

var quiet = slog.New(slog.DiscardHandler)

func newEnv(t *testing.T, opts middleware.CacheOptions) *env {
	t.Helper()
	mr := miniredis.RunT(t)
	// Generous deadlines: the tests run a thousand concurrent requests on
	// a loaded machine, where a connection can take long to be accepted,
	// and Redis faults are cache_fault_test.go's subject.
	rdb, err := resilience.NewRedis(resilience.Config{Addr: mr.Addr()}, resilience.Options{
		Logger: quiet, OpTimeout: 10 * time.Second, DialTimeout: 10 * time.Second, PoolSize: 64,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	e := &env{t: t, mr: mr, rdb: rdb, clock: newClock()}
	e.store = &signalStore{Store: rdb, sets: make(chan string, 4096)}
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	if opts.LockTimeout == 0 {
		// Coalescing tests queue many goroutines on a loaded machine;
		// the lock timeout has tests of its own.
		opts.LockTimeout = time.Minute
	}
	e.cache, err = middleware.NewCache(e.store, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.cache.Close() })
	return e
}

// waitStored waits until the background writer has written n entries.
func (e *env) waitStored(n int) {
	e.t.Helper()
	deadline := time.After(10 * time.Second)
	for range n {
		select {
		case <-e.store.sets:
		case <-deadline:
			require.Failf(e.t, "timed out", "waiting for the cache to store an entry; stats %+v", e.cache.Stats())
		}
	}
}

// newRealEnv is newEnv on a redis-server started for the test.
func newRealEnv(t *testing.T, opts middleware.CacheOptions) *env {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{})
	rdb, err := resilience.NewRedis(resilience.Config{Addr: srv.Addr()}, resilience.Options{
		Logger: quiet, OpTimeout: 10 * time.Second, DialTimeout: 10 * time.Second, PoolSize: 16,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	e := &env{t: t, rdb: rdb, clock: newClock()}
	e.store = &signalStore{Store: rdb, sets: make(chan string, 4096)}
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	e.cache, err = middleware.NewCache(e.store, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.cache.Close() })
	return e
}

// drained closes the cache, so that every entry it queued is written (or
// dropped), and returns how many it stored. The cache still serves.
func (e *env) drained() uint64 {
	e.t.Helper()
	require.NoError(e.t, e.cache.Close())
	return e.cache.Stats().Stored
}

// stored reports whether Redis holds an entry for a GET of target, an
// absolute URL when the request went to a real server (the host is part of
// the key).
func (e *env) stored(target string, p cachepolicy.Policy) bool {
	e.t.Helper()
	_, err := e.rdb.Get(context.Background(), key(target, p))
	if errors.Is(err, resilience.ErrNotFound) {
		return false
	}
	require.NoError(e.t, err)
	return true
}

// returned wraps h so that each return of h.ServeHTTP is signalled.
func returned(h http.Handler) (http.Handler, chan struct{}) {
	done := make(chan struct{}, 16)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { done <- struct{}{} }()
		h.ServeHTTP(w, r)
	}), done
}

// recv waits for a value on ch, at most 10 seconds.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		require.Failf(t, "timed out", "waiting for %s", what)
		panic("unreachable")
	}
}

// key returns the cache key of a GET of target under p with the default
// prefix.
func key(target string, p cachepolicy.Policy, header ...string) string {
	return cachepolicy.Key(middleware.DefaultCacheKeyPrefix, newRequest("GET", target, header...), p)
}

func newRequest(method, target string, header ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

// do runs one request through h.
func do(h http.Handler, method, target string, header ...string) *httptest.ResponseRecorder {
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, newRequest(method, target, header...))
	return rr
}

// origin is a handler that counts its runs and answers with a body that
// names the run, after letting set shape the response.
type origin struct {
	runs atomic.Int64
	set  func(w http.ResponseWriter, r *http.Request)
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := o.runs.Add(1)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if o.set != nil {
		o.set(w, r)
	}
	fmt.Fprintf(w, "run %d", n)
}

func header(kv ...string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(kv); i += 2 {
			w.Header().Add(kv[i], kv[i+1])
		}
	}
}

// normalized returns p as rules hold it, for computing keys in tests.
func normalized(p cachepolicy.Policy) cachepolicy.Policy {
	r, err := cachepolicy.NewRules(map[string]cachepolicy.Policy{"/": p})
	if err != nil {
		panic(err)
	}
	got, _ := r.For(httptest.NewRequest("GET", "/", nil))
	return got
}
