package middleware_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/middleware"
)

// versioned is a resource whose GET can be held after it read the
// version, as a slow database read would be.
type versioned struct {
	version atomic.Int64
	hold    atomic.Pointer[chan struct{}] // when set, the next GET waits on it
	read    chan struct{}                 // a held GET read its version
}

func newVersioned() *versioned {
	v := &versioned{read: make(chan struct{}, 1)}
	v.version.Store(1)
	return v
}

func (v *versioned) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut {
		v.version.Add(1)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	n := v.version.Load()
	if g := v.hold.Swap(nil); g != nil {
		v.read <- struct{}{}
		<-*g
	}
	fmt.Fprintf(w, "v%d", n)
}

// holdNext makes the next GET wait, after reading, until the returned
// func is called.
func (v *versioned) holdNext() (release func()) {
	g := make(chan struct{})
	v.hold.Store(&g)
	return func() { close(g) }
}

// A GET sent after a PUT returned never joins a run that started before
// it: it gets the new version.
func TestInvalidationEndsRunningFlight(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	v := newVersioned()
	h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(v)
	release := v.holdNext()
	slow := make(chan string, 1)
	go func() { slow <- do(h, "GET", "/items/1").Body.String() }()
	<-v.read // the slow GET read v1 and leads a flight

	require.Equal(t, http.StatusNoContent, do(h, "PUT", "/items/1").Code)
	after := make(chan string, 1)
	go func() { after <- do(h, "GET", "/items/1").Body.String() }()
	var got string
	select {
	case got = <-after:
	case <-time.After(10 * time.Second):
		got = "(still waiting: it joined the run that began before the PUT)"
	}
	release()
	assert.Equal(t, "v1", <-slow, "the GET that came before the PUT")
	assert.Equal(t, "v2", got, "a GET sent after the PUT returned")
}

// A stale-while-revalidate refresh that read the resource before a PUT
// never stores its older response after it.
func TestInvalidationBeatsRunningRefresh(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	v := newVersioned()
	h := e.cache.Policy(cachepolicy.Policy{TTL: 10 * time.Second, StaleWhileRevalidate: time.Minute})(v)
	require.Equal(t, "v1", do(h, "GET", "/items/1").Body.String())
	e.waitStored(1)

	e.clock.Add(11 * time.Second) // stale: the next hit starts a refresh
	release := v.holdNext()
	require.Contains(t, do(h, "GET", "/items/1").Header().Get("Cache-Status"), "stale-while-revalidate")
	<-v.read // the refresh read v1

	require.Equal(t, http.StatusNoContent, do(h, "PUT", "/items/1").Code)
	require.Equal(t, "v2", do(h, "GET", "/items/1").Body.String())
	e.waitStored(1) // v2
	dropped := e.cache.Stats().Dropped
	release()
	require.Eventually(t, func() bool { return e.cache.Stats().Dropped > dropped }, 10*time.Second, time.Millisecond,
		"the refresh's older response was not dropped")
	rr := do(h, "GET", "/items/1")
	assert.Equal(t, "v2", rr.Body.String(), "Cache-Status %q", rr.Header().Get("Cache-Status"))
}

// blockingSetStore holds the first Set until released, standing in for a
// write that waits for a connection while an invalidation goes by.
type blockingSetStore struct {
	middleware.Store
	entered, release chan struct{}
	first            atomic.Bool
}

func (s *blockingSetStore) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if s.first.CompareAndSwap(false, true) {
		close(s.entered)
		<-s.release
	}
	return s.Store.Set(ctx, key, val, ttl)
}

// A write already on its way when the key is invalidated, landing after
// the invalidation's delete, is deleted again: the old version is never
// served, not even after the invalidation record is forgotten.
func TestInvalidationBeatsWriteInFlight(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	store := &blockingSetStore{Store: e.rdb, entered: make(chan struct{}), release: make(chan struct{})}
	cache, err := middleware.NewCache(store, middleware.CacheOptions{Logger: quiet, Now: e.clock.Now})
	require.NoError(t, err)
	v := newVersioned()
	h := cache.Policy(cachepolicy.Policy{TTL: time.Hour})(v)

	require.Equal(t, "v1", do(h, "GET", "/items/1").Body.String())
	<-store.entered // the v1 write waits
	require.Equal(t, http.StatusNoContent, do(h, "PUT", "/items/1").Code)
	close(store.release)
	require.NoError(t, cache.Close()) // drains the writer

	// A fresh cache (no invalidation record, as after a restart or the
	// record's grace) must not find v1 in Redis.
	fresh, err := middleware.NewCache(e.rdb, middleware.CacheOptions{Logger: quiet, Now: e.clock.Now})
	require.NoError(t, err)
	defer fresh.Close()
	rr := do(fresh.Policy(cachepolicy.Policy{TTL: time.Hour})(v), "GET", "/items/1")
	assert.Equal(t, "v2", rr.Body.String(), "Cache-Status %q", rr.Header().Get("Cache-Status"))
}
