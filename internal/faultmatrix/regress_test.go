package faultmatrix

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/internal/faultproxy"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/internal/testlog"
)

// Focused regression tests for the contract violations the matrix found,
// one per bug of bugs_test.go. Each skips while its bug is open.

// TestInvalidationDuringOutage: a POST answered while Redis does not
// answer must still keep the old entry from being served once Redis is
// back. Open bug: bugInvalidationLost.
func TestInvalidationDuringOutage(t *testing.T) {
	skipIfOpen(t, bugInvalidationLost)
	srv := redistest.Start(t, redistest.Options{})
	p, err := faultproxy.New(srv.Addr(), faultproxy.Options{})
	require.NoError(t, err)
	defer func() { _ = p.Close() }()
	st := startStack(t, p.Addr(), "")
	defer closeStack(t, st)
	res := resource{host: "a.example", path: "/items/1"}

	send(t, st, http.MethodGet, res) // miss, stored
	waitFor(t, "the entry stored", func() bool { return st.cache.Stats().Stored >= 1 })
	_, cs := send(t, st, http.MethodGet, res)
	require.True(t, cacheStatusHas(cs, "hit"), "second GET: Cache-Status %q, want a hit", cs)

	p.SetMode(faultproxy.Blackhole)
	body, _ := send(t, st, http.MethodPost, res)
	problem, v := checkOrigin(http.MethodPost, res, body)
	require.Empty(t, problem, "POST while Redis hangs (version %d, want 1)", v)
	require.Equal(t, int64(1), v, "POST while Redis hangs: version")
	p.SetMode(faultproxy.Pass)
	p.CloseConns()

	// Once the cache reads Redis again, the entry of version 0 must be gone.
	deadline := time.Now().Add(5 * time.Second)
	for {
		body, cs := send(t, st, http.MethodGet, res)
		if !cacheStatusHas(cs, "fwd=bypass") {
			problem, _, _ := checkBody(http.MethodGet, res, 1, body)
			require.Empty(t, problem, "first GET served from the cache after the outage [Cache-Status %q]", cs)
			return
		}
		require.False(t, time.Now().After(deadline), "the cache still bypasses Redis 5 s after it came back (Cache-Status %q)", cs)
		time.Sleep(10 * time.Millisecond)
	}
}

// TestInvalidationRacesMiss: a GET whose handler read the resource
// before a POST changed it must not get its older response stored after
// the POST's invalidation. Open bug: bugInvalidationRace.
func TestInvalidationRacesMiss(t *testing.T) {
	skipIfOpen(t, bugInvalidationRace)
	srv := redistest.Start(t, redistest.Options{})
	st := startStack(t, srv.Addr(), "")
	defer closeStack(t, st)
	res := resource{host: "a.example", path: "/items/2"}

	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	st.origin.setGate(func(*http.Request) {
		once.Do(func() { close(entered); <-release })
	})
	first := make(chan string, 1)
	go func() {
		body, _, _ := trySend(t, st, http.MethodGet, res)
		first <- body
	}()
	<-entered // the GET read version 0 and is held
	body, _ := send(t, st, http.MethodPost, res)
	problem, v := checkOrigin(http.MethodPost, res, body)
	require.Empty(t, problem, "POST (version %d, want 1)", v)
	require.Equal(t, int64(1), v, "POST: version")
	require.Equal(t, uint64(1), st.cache.Stats().Invalidations, "Invalidations after the POST")
	close(release)
	problem, v = checkOrigin(http.MethodGet, res, <-first)
	require.Empty(t, problem, "held GET (version %d, want 0: it read before the POST)", v)
	require.Equal(t, int64(0), v, "held GET: version, want 0: it read before the POST")
	// Close drains the write queue: whatever the held GET queued is now
	// in Redis. The cache still serves hits after Close.
	require.NoError(t, st.cache.Close())
	body, cs := send(t, st, http.MethodGet, res)
	problem, _, _ = checkBody(http.MethodGet, res, 1, body)
	require.Empty(t, problem, "GET after the POST completed [Cache-Status %q]", cs)
}

// TestHealthShowsWriteFailures: a server that answers PING but refuses
// every write is a failing Redis, and /health must say so, with the
// error. Open bug: bugHealthBlindToWrites.
func TestHealthShowsWriteFailures(t *testing.T) {
	skipIfOpen(t, bugHealthBlindToWrites)
	tests := []struct {
		name   string
		inject func(t *testing.T, srv *redistest.Server) (clearFault func())
		want   string
	}{
		{
			name: "read-only replica",
			inject: func(t *testing.T, srv *redistest.Server) func() {
				master := redistest.Start(t, redistest.Options{})
				mustCommand(t, srv, "REPLICAOF", "127.0.0.1", strconv.Itoa(master.Port()))
				return func() { mustCommand(t, srv, "REPLICAOF", "NO", "ONE") }
			},
			want: "READONLY",
		},
		{
			name: "out of memory",
			inject: func(t *testing.T, srv *redistest.Server) func() {
				mustCommand(t, srv, "CONFIG", "SET", "maxmemory-policy", "noeviction")
				mustCommand(t, srv, "CONFIG", "SET", "maxmemory", "1")
				return func() { mustCommand(t, srv, "CONFIG", "SET", "maxmemory", "0") }
			},
			want: "OOM",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{})
			st := startStack(t, srv.Addr(), "")
			defer closeStack(t, st)
			clearFault := tc.inject(t, srv)
			defer clearFault()

			// Misses make the cache write, and every write fails.
			deadline := time.Now().Add(3 * time.Second)
			for i := 0; ; i++ {
				send(t, st, http.MethodGet, resource{host: "a.example", path: "/items/0", query: "n=" + string(rune('a'+i%26))})
				h := health(t, st)
				if strings.Contains(h, `"status":"warn"`) && strings.Contains(h, tc.want) {
					return
				}
				require.False(t, time.Now().After(deadline),
					"/health after 3 s of failing writes (%d store errors): %s; want warn with %q", st.cache.Stats().StoreErrors, h, tc.want)
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// startStack is newStack for a focused test, waiting until Redis answered
// and the health check ran once.
func startStack(t *testing.T, addr, password string) *stack {
	t.Helper()
	var logs testlog.Buffer
	st := newStack(t, addr, password, "reg:", logs.Text(slog.LevelDebug), false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.rdb.WaitReady(ctx); err != nil {
		closeStack(t, st)
		require.NoError(t, err, "redis not ready")
	}
	if err := st.health.WaitChecked(ctx); err != nil {
		closeStack(t, st)
		require.NoError(t, err, "health not checked")
	}
	return st
}

func closeStack(t *testing.T, st *stack) {
	t.Helper()
	assert.NoError(t, st.close(), "closing the stack")
}

// send makes one request for res and returns the body and Cache-Status.
// It stops the test when the request fails.
func send(t *testing.T, st *stack, method string, res resource) (body, cacheStatus string) {
	t.Helper()
	body, cacheStatus, ok := trySend(t, st, method, res)
	if !ok {
		t.FailNow()
	}
	return body, cacheStatus
}

// trySend is send for any goroutine: a failed request fails the test and
// returns ok false.
func trySend(t *testing.T, st *stack, method string, res resource) (body, cacheStatus string, ok bool) {
	t.Helper()
	req, err := http.NewRequest(method, st.srv.URL+res.target(), nil)
	if !assert.NoError(t, err) {
		return "", "", false
	}
	req.Host = res.host
	resp, err := st.srv.Client().Do(req)
	if !assert.NoError(t, err, "%s %s", method, res.id()) {
		return "", "", false
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if !assert.NoError(t, err, "%s %s: reading the body", method, res.id()) ||
		!assert.Equal(t, http.StatusOK, resp.StatusCode, "%s %s: status", method, res.id()) {
		return "", "", false
	}
	return string(b), resp.Header.Get("Cache-Status"), true
}

// health returns the detailed /health report.
func health(t *testing.T, st *stack) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, st.srv.URL+"/health", nil)
	require.NoError(t, err)
	req.Header.Set(detailsHeader, "1")
	resp, err := st.srv.Client().Do(req)
	require.NoError(t, err, "GET /health")
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "GET /health")
	return string(b)
}

func mustCommand(t *testing.T, srv *redistest.Server, args ...string) {
	t.Helper()
	_, err := srv.Command(args...)
	require.NoError(t, err, "redis %v", args)
}

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			require.Failf(t, "timed out", "waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
