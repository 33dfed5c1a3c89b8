package middleware_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/internal/testlog"
	"github.com/steadfast-go/steadfast/middleware"
)

func TestCacheWriteQueueFull(t *testing.T) {
	var logs testlog.Buffer
	setting := make(chan string, 10)
	unblock := make(chan struct{})
	var stored atomic.Int64
	store := &fakeStore{SetFunc: func(_ context.Context, key string, _ []byte, _ time.Duration) error {
		setting <- key
		<-unblock
		stored.Add(1)
		return nil
	}}
	cache, err := middleware.NewCache(store, middleware.CacheOptions{QueueSize: 1, Workers: 1, Logger: logs.Text(slog.LevelInfo)})
	require.NoError(t, err)
	h := cache.Policy(cachepolicy.Policy{TTL: time.Minute})(&origin{})

	do(h, "GET", "/a")
	<-setting // the worker is busy with /a
	for _, path := range []string{"/b", "/c", "/d"} {
		// Each returns at once although nothing can be written: /b waits
		// in the queue, /c and /d are dropped.
		rr := do(h, "GET", path)
		assert.Equal(t, http.StatusOK, rr.Code)
	}
	assert.EqualValues(t, 2, cache.Stats().Dropped)
	close(unblock)
	require.NoError(t, cache.Close())
	assert.EqualValues(t, 2, stored.Load(), "queued entries were not written by Close")
	assert.EqualValues(t, 2, cache.Stats().Stored)
	assert.Equal(t, 1, strings.Count(logs.String(), "queue full"), "log lines:\n%s", logs.String())
}

func TestCacheCloseBoundsDrain(t *testing.T) {
	// A store that does not answer holds Close only until the drain
	// timeout; the write in progress is cancelled and the queued rest is
	// dropped. Under synctest the timeout passes at once.
	synctest.Test(t, testCloseBoundsDrain)
}

func testCloseBoundsDrain(t *testing.T) {
	setting := make(chan struct{}, 10)
	unblock := make(chan struct{})
	store := &fakeStore{SetFunc: func(ctx context.Context, _ string, _ []byte, _ time.Duration) error {
		setting <- struct{}{}
		select {
		case <-ctx.Done():
		case <-unblock:
		}
		return ctx.Err()
	}}
	cache, err := middleware.NewCache(store, middleware.CacheOptions{Workers: 1, Logger: quiet})
	require.NoError(t, err)
	h := cache.Policy(cachepolicy.Policy{TTL: time.Minute})(&origin{})
	for _, p := range []string{"/a", "/b", "/c"} {
		do(h, "GET", p)
	}
	<-setting
	require.NoError(t, cache.Close())
	close(unblock)
	s := cache.Stats()
	assert.EqualValues(t, 1, s.StoreErrors, "stats %+v", s)
	assert.EqualValues(t, 2, s.Dropped, "stats %+v", s)
	require.NoError(t, cache.Close(), "second Close")
}
