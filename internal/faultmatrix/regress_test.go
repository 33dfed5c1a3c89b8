package faultmatrix

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steadfast-go/steadfast/internal/faultproxy"
	"github.com/steadfast-go/steadfast/internal/redistest"
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
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	st := startStack(t, p.Addr(), "")
	defer closeStack(t, st)
	res := resource{host: "a.example", path: "/items/1"}

	send(t, st, http.MethodGet, res) // miss, stored
	waitFor(t, "the entry stored", func() bool { return st.cache.Stats().Stored >= 1 })
	if _, cs := send(t, st, http.MethodGet, res); !cacheStatusHas(cs, "hit") {
		t.Fatalf("second GET: Cache-Status %q, want a hit", cs)
	}

	p.SetMode(faultproxy.Blackhole)
	body, _ := send(t, st, http.MethodPost, res)
	if problem, v := checkOrigin(http.MethodPost, res, body); problem != "" || v != 1 {
		t.Fatalf("POST while Redis hangs: %s (version %d, want 1)", problem, v)
	}
	p.SetMode(faultproxy.Pass)
	p.CloseConns()

	// Once the cache reads Redis again, the entry of version 0 must be gone.
	deadline := time.Now().Add(5 * time.Second)
	for {
		body, cs := send(t, st, http.MethodGet, res)
		if !cacheStatusHas(cs, "fwd=bypass") {
			if problem, _, _ := checkBody(http.MethodGet, res, 1, body); problem != "" {
				t.Fatalf("first GET served from the cache after the outage: %s [Cache-Status %q]", problem, cs)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cache still bypasses Redis 5 s after it came back (Cache-Status %q)", cs)
		}
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
		body, _ := send(t, st, http.MethodGet, res)
		first <- body
	}()
	<-entered // the GET read version 0 and is held
	body, _ := send(t, st, http.MethodPost, res)
	if problem, v := checkOrigin(http.MethodPost, res, body); problem != "" || v != 1 {
		t.Fatalf("POST: %s (version %d, want 1)", problem, v)
	}
	if n := st.cache.Stats().Invalidations; n != 1 {
		t.Fatalf("Invalidations after the POST = %d, want 1", n)
	}
	close(release)
	if problem, v := checkOrigin(http.MethodGet, res, <-first); problem != "" || v != 0 {
		t.Fatalf("held GET: %s (version %d, want 0: it read before the POST)", problem, v)
	}
	// Close drains the write queue: whatever the held GET queued is now
	// in Redis. The cache still serves hits after Close.
	if err := st.cache.Close(); err != nil {
		t.Fatal(err)
	}
	body, cs := send(t, st, http.MethodGet, res)
	if problem, _, _ := checkBody(http.MethodGet, res, 1, body); problem != "" {
		t.Fatalf("GET after the POST completed: %s [Cache-Status %q]", problem, cs)
	}
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
				if time.Now().After(deadline) {
					t.Fatalf("/health after 3 s of failing writes (%d store errors): %s; want warn with %q", st.cache.Stats().StoreErrors, h, tc.want)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// startStack is newStack for a focused test, waiting until Redis answered
// and the health check ran once.
func startStack(t *testing.T, addr, password string) *stack {
	t.Helper()
	logs := &logBuffer{}
	st := newStack(t, addr, password, "reg:", logs.logger(), false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.rdb.WaitReady(ctx); err != nil {
		closeStack(t, st)
		t.Fatalf("redis not ready: %v", err)
	}
	if err := st.health.WaitChecked(ctx); err != nil {
		closeStack(t, st)
		t.Fatalf("health not checked: %v", err)
	}
	return st
}

func closeStack(t *testing.T, st *stack) {
	t.Helper()
	if err := st.close(); err != nil {
		t.Errorf("closing the stack: %v", err)
	}
}

// send makes one request for res and returns the body and Cache-Status.
func send(t *testing.T, st *stack, method string, res resource) (body, cacheStatus string) {
	t.Helper()
	req, err := http.NewRequest(method, st.srv.URL+res.target(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = res.host
	resp, err := st.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, res.id(), err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, res.id(), err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: status %d", method, res.id(), resp.StatusCode)
	}
	return string(b), resp.Header.Get("Cache-Status")
}

// health returns the detailed /health report.
func health(t *testing.T, st *stack) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, st.srv.URL+"/health", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(detailsHeader, "1")
	resp, err := st.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	return string(b)
}

func mustCommand(t *testing.T, srv *redistest.Server, args ...string) {
	t.Helper()
	if _, err := srv.Command(args...); err != nil {
		t.Fatalf("redis %v: %v", args, err)
	}
}

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
