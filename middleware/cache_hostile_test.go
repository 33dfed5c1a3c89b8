package middleware_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/handlers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

// Hostile clients, deadlines and outer middleware against a real
// redis-server: what is stored is what the handler completed, or nothing,
// and no client holds back another.

func TestCacheCutShortNeverStored(t *testing.T) {
	p := cachepolicy.Policy{TTL: time.Hour}

	t.Run("client leaves before the handler writes", func(t *testing.T) {
		e := newRealEnv(t, middleware.CacheOptions{})
		entered := make(chan struct{}, 1)
		h, done := returned(e.cache.Policy(p)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			entered <- struct{}{}
			<-r.Context().Done() // a well-behaved handler gives up
		})))
		srv := httptest.NewServer(h)
		defer srv.Close()
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/x", nil)
		req.Header.Set("Cache-Control", "no-cache")
		go func() { <-entered; cancel() }()
		_, err := srv.Client().Do(req)
		require.Error(t, err)
		recv(t, done, "the cache to return")
		assert.Zero(t, e.drained(), "an abandoned response was stored")
		assert.False(t, e.stored(srv.URL+"/x", p))
	})

	t.Run("client leaves mid-body", func(t *testing.T) {
		e := newRealEnv(t, middleware.CacheOptions{})
		entered := make(chan struct{}, 1)
		h, done := returned(e.cache.Policy(p)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10")
			_, _ = io.WriteString(w, "hello")
			entered <- struct{}{}
			<-r.Context().Done()
		})))
		srv := httptest.NewServer(h)
		defer srv.Close()
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/x", nil)
		go func() { <-entered; cancel() }()
		if resp, err := srv.Client().Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		recv(t, done, "the cache to return")
		assert.Zero(t, e.drained(), "a response cut short was stored")
		assert.False(t, e.stored(srv.URL+"/x", p))
	})

	t.Run("body shorter than its Content-Length", func(t *testing.T) {
		e := newRealEnv(t, middleware.CacheOptions{})
		h := e.cache.Policy(p)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", "10")
			_, _ = io.WriteString(w, "hello")
		}))
		do(h, "GET", "/x")
		assert.Zero(t, e.drained(), "a body shorter than announced was stored")
	})

	t.Run("http.TimeoutHandler around the cache", func(t *testing.T) {
		e := newRealEnv(t, middleware.CacheOptions{})
		var runs atomic.Int64
		late := make(chan struct{})
		inner, done := returned(e.cache.Policy(p)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if runs.Add(1) == 1 {
				<-r.Context().Done() // slow, and writes after its deadline
				<-late
			}
			_, _ = io.WriteString(w, "complete")
		})))
		h := http.TimeoutHandler(inner, 500*time.Millisecond, "timed out")
		slow := do(h, "GET", "/x")
		close(late)
		assert.Equal(t, http.StatusServiceUnavailable, slow.Code)
		// TimeoutHandler returns before the handler does: wait for it.
		recv(t, done, "the cache under TimeoutHandler to return")
		require.EqualValues(t, 1, runs.Load())
		next := do(h, "GET", "/x")
		assert.Equal(t, http.StatusOK, next.Code)
		assert.Equal(t, "complete", next.Body.String(), "a timed-out response was served")
		e.waitStored(1)
		assert.Equal(t, uint64(1), e.drained(), "only the complete response is stored")
		assert.Equal(t, "complete", do(h, "GET", "/x").Body.String())
	})

	t.Run("a refresh does not inherit the request's deadline", func(t *testing.T) {
		e := newRealEnv(t, middleware.CacheOptions{})
		swr := cachepolicy.Policy{TTL: time.Minute, StaleWhileRevalidate: time.Hour}
		var runs atomic.Int64
		release := make(chan struct{})
		h := e.cache.Policy(swr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := runs.Add(1)
			if n == 2 {
				select {
				case <-r.Context().Done():
					return // what a well-behaved handler does at its deadline
				case <-release:
				}
			}
			fmt.Fprintf(w, "run %d complete", n)
		}))
		do(h, "GET", "/x")
		e.waitStored(1)
		e.clock.Add(2 * time.Minute)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, newRequest("GET", "/x").WithContext(ctx))
		assert.Equal(t, "run 1 complete", rr.Body.String())
		assert.Contains(t, rr.Header().Get("Cache-Status"), "stale-while-revalidate")
		<-ctx.Done() // the request's deadline passed; the refresh goes on
		close(release)
		e.waitStored(1)
		assert.Equal(t, "run 2 complete", do(h, "GET", "/x").Body.String(), "the refresh stored a response cut short")
	})
}

// rawGet sends a GET for target over a fresh connection to srv, whose
// receive buffer is small, and returns the connection unread.
func rawGet(t *testing.T, srv *httptest.Server, target string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	conn := c.(*net.TCPConn)
	require.NoError(t, conn.SetReadBuffer(4096))
	_, err = fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, srv.Listener.Addr())
	require.NoError(t, err)
	return conn
}

func TestCacheClientDisconnectMidBody(t *testing.T) {
	const size = 4 << 20
	p := cachepolicy.Policy{TTL: time.Hour, MaxBodyBytes: 8 << 20}
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	for _, tc := range []struct {
		name   string
		header string // a request header that changes the miss path
	}{
		{name: "coalesced"},
		{name: "alone", header: "If-None-Match: \"other\"\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newRealEnv(t, middleware.CacheOptions{})
			h, done := returned(e.cache.Policy(p)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				for chunk := range slices.Chunk(body, 8<<10) {
					if _, err := w.Write(chunk); err != nil {
						return // the client is gone: stop, as handlers do
					}
				}
			})))
			srv := httptest.NewServer(h)
			defer srv.Close()
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			require.NoError(t, err)
			conn := c.(*net.TCPConn)
			require.NoError(t, conn.SetReadBuffer(4096))
			_, err = fmt.Fprintf(conn, "GET /x HTTP/1.1\r\nHost: %s\r\n%s\r\n", srv.Listener.Addr(), tc.header)
			require.NoError(t, err)
			_, err = io.ReadFull(conn, make([]byte, 100))
			require.NoError(t, err)
			require.NoError(t, conn.SetLinger(0)) // a reset, not a polite close
			require.NoError(t, conn.Close())
			recv(t, done, "the cache to return")
			e.drained()
			hit := do(h, "GET", srv.URL+"/x") // the same host: it is part of the key
			if strings.Contains(hit.Header().Get("Cache-Status"), "hit") {
				assert.Equal(t, size, hit.Body.Len(), "a truncated body was stored")
				assert.True(t, bytes.Equal(body, hit.Body.Bytes()), "the stored body differs")
			}
		})
	}
}

func TestCacheOuterMiddlewareHeaders(t *testing.T) {
	p := cachepolicy.Policy{TTL: time.Hour}
	invoices := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "invoices of %s", r.Header.Get("X-Tenant"))
	})
	tenant := func(set func(h http.Header)) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				set(w.Header())
				next.ServeHTTP(w, r)
			})
		}
	}
	for _, tc := range []struct {
		name   string
		policy cachepolicy.Policy
		set    func(h http.Header)
		stored bool
	}{
		{name: "outer private", policy: p, set: func(h http.Header) {
			h.Set("Cache-Control", "private")
			h.Add("Vary", "X-Tenant")
		}},
		{name: "outer no-store", policy: p, set: func(h http.Header) { h.Set("Cache-Control", "no-store") }},
		// Stored as a variant keyed by the tenant's value: B still gets B's.
		{name: "outer Vary not keyed", policy: p, set: func(h http.Header) { h.Add("Vary", "X-Tenant") }, stored: true},
		{name: "outer Vary keyed", policy: cachepolicy.Policy{TTL: time.Hour, KeyHeaders: []string{"X-Tenant"}},
			set: func(h http.Header) { h.Add("Vary", "X-Tenant") }, stored: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newRealEnv(t, middleware.CacheOptions{})
			h := tenant(tc.set)(e.cache.Policy(tc.policy)(invoices))
			a := do(h, "GET", "/invoices", "X-Tenant", "A")
			assert.Equal(t, "invoices of A", a.Body.String())
			assert.Equal(t, map[bool]uint64{true: 1, false: 0}[tc.stored], e.drained())
			b := do(h, "GET", "/invoices", "X-Tenant", "B")
			assert.Equal(t, "invoices of B", b.Body.String(), "tenant B got tenant A's invoices")
		})
	}

	// A session middleware sets a cookie, before the handler runs or when
	// the status is written, and the handler renders a token for it.
	token := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "csrf token for %s", r.Header.Get("X-Visitor"))
	})
	before := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.SetCookie(w, &http.Cookie{Name: "session", Value: r.Header.Get("X-Visitor")})
			next.ServeHTTP(w, r)
		})
	}
	atHeader := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(&cookieAtHeader{ResponseWriter: w, value: r.Header.Get("X-Visitor")}, r)
		})
	}
	for name, session := range map[string]func(http.Handler) http.Handler{
		"session cookie set before": before, "session cookie set at WriteHeader": atHeader,
	} {
		t.Run(name, func(t *testing.T) {
			e := newRealEnv(t, middleware.CacheOptions{})
			h := session(e.cache.Policy(p)(token))
			v1 := do(h, "GET", "/form", "X-Visitor", "1")
			assert.Equal(t, "csrf token for 1", v1.Body.String())
			assert.Zero(t, e.drained(), "a response with an outer Set-Cookie was stored")
			v2 := do(h, "GET", "/form", "X-Visitor", "2")
			assert.Equal(t, "csrf token for 2", v2.Body.String(), "visitor 2 got visitor 1's token")
			assert.Equal(t, []string{"session=2"}, v2.Header().Values("Set-Cookie"))
		})
	}
}

// cookieAtHeader is an outer middleware's writer that sets a cookie when
// the status is written.
type cookieAtHeader struct {
	http.ResponseWriter
	value string
	wrote bool
}

func (c *cookieAtHeader) WriteHeader(code int) {
	if !c.wrote {
		c.wrote = true
		http.SetCookie(c.ResponseWriter, &http.Cookie{Name: "session", Value: c.value})
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *cookieAtHeader) Write(p []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	return c.ResponseWriter.Write(p)
}

func TestCacheOuterCompression(t *testing.T) {
	p := cachepolicy.Policy{TTL: time.Hour}
	page := strings.Repeat("a compressible page. ", 200)
	pageHandler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, page)
	})

	t.Run("OuterVary names the compressor's header", func(t *testing.T) {
		e := newRealEnv(t, middleware.CacheOptions{OuterVary: []string{"Accept-Encoding"}})
		h := handlers.CompressHandler(e.cache.Policy(p)(pageHandler))
		gz := do(h, "GET", "/page", "Accept-Encoding", "gzip")
		assert.Equal(t, "gzip", gz.Header().Get("Content-Encoding"))
		assert.Equal(t, page, gunzip(t, gz.Body.Bytes()))
		assert.Equal(t, "steadfast; fwd=uri-miss; stored", gz.Header().Get("Cache-Status"))
		e.waitStored(1)

		plain := do(h, "GET", "/page")
		assert.Contains(t, plain.Header().Get("Cache-Status"), "hit")
		assert.Empty(t, plain.Header().Get("Content-Encoding"), "a compressed body was stored")
		assert.Equal(t, page, plain.Body.String())
		assert.Equal(t, []string{"Accept-Encoding"}, plain.Header().Values("Vary"))

		gz = do(h, "GET", "/page", "Accept-Encoding", "gzip, deflate")
		assert.Contains(t, gz.Header().Get("Cache-Status"), "hit")
		assert.Equal(t, "gzip", gz.Header().Get("Content-Encoding"))
		assert.Equal(t, page, gunzip(t, gz.Body.Bytes()))
	})

	t.Run("without OuterVary the outer Vary is honoured", func(t *testing.T) {
		// The response is stored as a variant on Accept-Encoding, keyed
		// by the value the cache sees: gorilla's compressor removes
		// Accept-Encoding from the request before the cache, so every
		// client shares the one identity variant, compressed per client
		// outside.
		e := newRealEnv(t, middleware.CacheOptions{})
		h := handlers.CompressHandler(e.cache.Policy(p)(pageHandler))
		gz := do(h, "GET", "/page", "Accept-Encoding", "gzip")
		assert.Equal(t, "steadfast; fwd=uri-miss; stored", gz.Header().Get("Cache-Status"))
		e.waitStored(2) // the variant, then the URL's variant index
		plain := do(h, "GET", "/page")
		assert.Contains(t, plain.Header().Get("Cache-Status"), "hit")
		assert.Empty(t, plain.Header().Get("Content-Encoding"))
		assert.Equal(t, page, plain.Body.String())
		gz = do(h, "GET", "/page", "Accept-Encoding", "gzip")
		assert.Contains(t, gz.Header().Get("Cache-Status"), "hit")
		assert.Equal(t, page, gunzip(t, gz.Body.Bytes()))
	})

	t.Run("OuterVary does not excuse the handler's own Vary", func(t *testing.T) {
		e := newRealEnv(t, middleware.CacheOptions{OuterVary: []string{"Accept-Encoding"}})
		h := e.cache.Policy(p)(&origin{set: header("Vary", "Accept-Encoding")})
		rr := do(h, "GET", "/page", "Accept-Encoding", "gzip")
		assert.Equal(t, "steadfast; fwd=uri-miss; stored", rr.Header().Get("Cache-Status"), "stored as a variant")
		e.waitStored(2)
		rr = do(h, "GET", "/page")
		assert.Equal(t, "steadfast; fwd=vary-miss; stored", rr.Header().Get("Cache-Status"))
	})
}

func gunzip(t *testing.T, b []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	require.NoError(t, err)
	out, err := io.ReadAll(zr)
	require.NoError(t, err)
	return string(out)
}

// blockingFirst is a handler whose first run signals started, then waits
// for header before it calls set and writes its status, and for finish
// before it writes its body; later runs answer at once.
type blockingFirst struct {
	runs                    atomic.Int64
	started, header, finish chan struct{}
	set                     func(w http.ResponseWriter)
}

func newBlockingFirst(set func(w http.ResponseWriter)) *blockingFirst {
	return &blockingFirst{started: make(chan struct{}), header: make(chan struct{}), finish: make(chan struct{}), set: set}
}

func (b *blockingFirst) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	n := b.runs.Add(1)
	if n == 1 {
		close(b.started)
		<-b.header
	}
	if b.set != nil {
		b.set(w)
	}
	w.WriteHeader(http.StatusOK)
	if n == 1 {
		<-b.finish
	}
	fmt.Fprintf(w, "run %d", n)
}

func TestCacheWaitersReleasedWhenUnshareable(t *testing.T) {
	p := cachepolicy.Policy{TTL: time.Hour, MaxBodyBytes: 1 << 10}
	for _, tc := range []struct {
		name string
		set  func(w http.ResponseWriter)
	}{
		{name: "no-store", set: func(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }},
		{name: "private", set: func(w http.ResponseWriter) { w.Header().Set("Cache-Control", "private") }},
		{name: "set-cookie", set: func(w http.ResponseWriter) { w.Header().Set("Set-Cookie", "a=b") }},
		{name: "too large", set: func(w http.ResponseWriter) { w.Header().Set("Content-Length", "5000") }},
		{name: "status", set: func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) }},
		{name: "flush", set: func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush() //nolint:errcheck // a recorder can flush
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newRealEnv(t, middleware.CacheOptions{LockTimeout: time.Minute})
			o := newBlockingFirst(tc.set)
			h := e.cache.Policy(p)(o)
			leader := make(chan *httptest.ResponseRecorder, 1)
			go func() { leader <- do(h, "GET", "/x") }()
			recv(t, o.started, "the leader")
			waiter := make(chan *httptest.ResponseRecorder, 1)
			go func() { waiter <- do(h, "GET", "/x") }()
			require.Eventually(t, func() bool { return e.cache.Stats().Coalesced == 1 }, 10*time.Second, time.Millisecond)
			close(o.header)
			// The leader's handler still runs; the waiter runs its own.
			w := recv(t, waiter, "the waiter to be released")
			assert.NotContains(t, w.Body.String(), "run 1")
			assert.NotContains(t, w.Header().Get("Cache-Status"), "collapsed")

			// Hit-for-miss: while the leader still runs, a request for the
			// key does not queue behind it.
			third := make(chan *httptest.ResponseRecorder, 1)
			go func() { third <- do(h, "GET", "/x") }()
			recv(t, third, "a request after an unshareable response")
			assert.EqualValues(t, 1, e.cache.Stats().Coalesced, "a request queued behind an unshareable key")

			close(o.finish)
			assert.Contains(t, recv(t, leader, "the leader").Body.String(), "run 1")
		})
	}
}

func TestCacheLockTimeout(t *testing.T) {
	e := newRealEnv(t, middleware.CacheOptions{LockTimeout: 50 * time.Millisecond})
	o := newBlockingFirst(nil)
	h := e.cache.Policy(cachepolicy.Policy{TTL: time.Hour})(o)
	leader := make(chan *httptest.ResponseRecorder, 1)
	go func() { leader <- do(h, "GET", "/x") }()
	recv(t, o.started, "the leader")
	waiter := make(chan *httptest.ResponseRecorder, 1)
	go func() { waiter <- do(h, "GET", "/x") }()
	w := recv(t, waiter, "the waiter to give up waiting")
	assert.Equal(t, "run 2", w.Body.String())
	assert.EqualValues(t, 1, e.cache.Stats().LockTimeouts)
	close(o.header)
	close(o.finish)
	assert.Equal(t, "run 1", recv(t, leader, "the leader").Body.String())
}

func TestCacheStreamsNeverCoalesced(t *testing.T) {
	for name, hdr := range map[string][]string{
		"upgrade":      {"Upgrade", "websocket", "Connection", "Upgrade"},
		"event stream": {"Accept", "text/event-stream"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newRealEnv(t, middleware.CacheOptions{LockTimeout: time.Minute})
			o := newBlockingFirst(nil)
			h := e.cache.Policy(cachepolicy.Policy{TTL: time.Hour})(o)
			first := make(chan *httptest.ResponseRecorder, 1)
			go func() { first <- do(h, "GET", "/stream", hdr...) }()
			recv(t, o.started, "the first stream")
			second := make(chan *httptest.ResponseRecorder, 1)
			go func() { second <- do(h, "GET", "/stream", hdr...) }()
			assert.Equal(t, "run 2", recv(t, second, "the second stream").Body.String())
			assert.Zero(t, e.cache.Stats().Coalesced)
			close(o.header)
			close(o.finish)
			recv(t, first, "the first stream")
		})
	}
}

func TestCacheSlowLeaderClientPacesNobody(t *testing.T) {
	const size = 1 << 20
	e := newRealEnv(t, middleware.CacheOptions{LockTimeout: time.Minute})
	body := bytes.Repeat([]byte("x"), size)
	started, proceed := make(chan struct{}), make(chan struct{})
	var runs atomic.Int64
	h, done := returned(e.cache.Policy(cachepolicy.Policy{TTL: time.Hour, MaxBodyBytes: 2 << 20})(
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if runs.Add(1) == 1 {
				close(started)
				<-proceed
			}
			for chunk := range slices.Chunk(body, 64<<10) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		})))
	srv := httptest.NewServer(h)
	defer srv.Close()

	leader := rawGet(t, srv, "/big") // never read
	recv(t, started, "the leader's handler")
	type result struct {
		n      int
		status string
		err    error
	}
	waiter := make(chan result, 1)
	go func() {
		resp, err := srv.Client().Get(srv.URL + "/big")
		if err != nil {
			waiter <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		waiter <- result{n: len(b), status: resp.Header.Get("Cache-Status"), err: err}
	}()
	require.Eventually(t, func() bool { return e.cache.Stats().Coalesced == 1 }, 10*time.Second, time.Millisecond)
	close(proceed)
	r := recv(t, waiter, "the waiter, while the leader's client reads nothing")
	require.NoError(t, r.err)
	assert.Equal(t, size, r.n)
	assert.Contains(t, r.status, "collapsed")
	assert.EqualValues(t, 1, runs.Load())

	// The leader's client gets its response, at its own pace.
	resp, err := http.ReadResponse(bufio.NewReader(leader), nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, leader.Close())
	recv(t, done, "the leader's request")
}

func TestCacheRefreshesBounded(t *testing.T) {
	e := newRealEnv(t, middleware.CacheOptions{MaxRefreshes: 2})
	release := make(chan struct{})
	var blocking atomic.Bool
	h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute, StaleWhileRevalidate: time.Hour})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if blocking.Load() {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}
			_, _ = io.WriteString(w, "page")
		}))
	const keys = 5
	for i := range keys {
		do(h, "GET", fmt.Sprintf("/k%d", i))
	}
	e.waitStored(keys)
	e.clock.Add(2 * time.Minute)
	blocking.Store(true)
	for i := range keys {
		rr := do(h, "GET", fmt.Sprintf("/k%d", i))
		assert.Equal(t, "page", rr.Body.String())
		assert.Contains(t, rr.Header().Get("Cache-Status"), "stale-while-revalidate")
	}
	s := e.cache.Stats()
	assert.EqualValues(t, 2, s.Refreshes, "refreshes started")
	assert.EqualValues(t, keys-2, s.RefreshesSkipped, "stale hits past the bound")
	assert.EqualValues(t, keys, s.StaleHits)
	close(release)
}

// gateStore holds every Set until its gate is closed.
type gateStore struct {
	middleware.Store
	gate chan struct{}
}

func (g *gateStore) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	<-g.gate
	return g.Store.Set(ctx, key, val, ttl)
}

func TestCacheWriteQueueBoundedInBytes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	rdb, err := resilience.NewRedis(resilience.Config{Addr: srv.Addr()}, resilience.Options{Logger: quiet, OpTimeout: 10 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	store := &gateStore{Store: rdb, gate: make(chan struct{})}
	cache, err := middleware.NewCache(store, middleware.CacheOptions{
		Logger: quiet, Workers: 1, QueueBytes: 100 << 10,
	})
	require.NoError(t, err)
	body := strings.Repeat("b", 40<<10)
	h := cache.Policy(cachepolicy.Policy{TTL: time.Hour})(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, body)
	}))
	for i := range 6 {
		do(h, "GET", fmt.Sprintf("/big%d", i))
	}
	s := cache.Stats()
	assert.EqualValues(t, 4, s.Dropped, "entries past the byte bound")
	assert.GreaterOrEqual(t, s.DroppedBytes, uint64(4*len(body)))
	close(store.gate)
	require.NoError(t, cache.Close())
	assert.EqualValues(t, 2, cache.Stats().Stored)
}
