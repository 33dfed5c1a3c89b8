package middleware_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

// A review of the fixes for issue 14 as an anonymous client: each test
// here failed on the code before its fix. They use only names that
// existed then, so that they can be run against an older tree as well.

// reviewCache returns a cache on a redis-server started for the test.
func reviewCache(t *testing.T) *middleware.Cache {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{})
	rdb, err := resilience.NewRedis(resilience.Config{Addr: srv.Addr()}, resilience.Options{
		Logger: quiet, OpTimeout: 10 * time.Second, DialTimeout: 10 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := middleware.NewCache(rdb, middleware.CacheOptions{Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// resetAfterRead sends a GET for target to addr with extra header lines,
// reads what arrives within a short time (up to 100 bytes), then resets
// the connection: a client that leaves mid-body.
func resetAfterRead(t *testing.T, addr, target, header string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	conn := c.(*net.TCPConn)
	require.NoError(t, conn.SetReadBuffer(4096))
	_, err = fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", target, addr, header)
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
	_, _ = io.ReadFull(conn, make([]byte, 100)) // the body, or nothing yet: either way, leave
	require.NoError(t, conn.SetLinger(0))       // a reset, not a polite close
	require.NoError(t, conn.Close())
}

// TestCacheResetMidBodyNeverStoresPart: a handler that ignores its write
// errors and its context, and returns normally after writing its whole
// body, while its client reset the connection after 100 bytes. The next
// client gets a miss or the whole body, never part of it as a hit.
func TestCacheResetMidBodyNeverStoresPart(t *testing.T) {
	const size = 512 << 10
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	p := cachepolicy.Policy{TTL: time.Hour, MaxBodyBytes: 1 << 20}
	for _, length := range []bool{false, true} {
		for _, timeout := range []bool{false, true} {
			for _, header := range []string{"", "If-None-Match: \"other\"\r\n"} {
				name := fmt.Sprintf("content-length=%v/timeout-handler=%v/conditional=%v", length, timeout, header != "")
				t.Run(name, func(t *testing.T) {
					cache := reviewCache(t)
					returned := make(chan struct{}, 4)
					var runs atomic.Int32
					handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if length {
							w.Header().Set("Content-Length", strconv.Itoa(size))
						}
						first := runs.Add(1) == 1
						for i := 0; i < size; i += 8 << 10 {
							if i == size/2 && first {
								// Half way: wait until the client is gone (at
								// most a few seconds), then go on regardless.
								select {
								case <-r.Context().Done():
								case <-time.After(5 * time.Second):
								}
							}
							_, _ = w.Write(body[i : i+8<<10]) // errors ignored
						}
					})
					cached := cache.Policy(p)(handler)
					inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						defer func() { returned <- struct{}{} }()
						cached.ServeHTTP(w, r)
					})
					var h http.Handler = inner
					if timeout {
						h = http.TimeoutHandler(inner, 20*time.Second, "timeout")
					}
					srv := httptest.NewServer(h)
					defer srv.Close()
					resetAfterRead(t, srv.Listener.Addr().String(), "/x", header)
					recv(t, returned, "the cache to return")
					require.NoError(t, cache.Close()) // what was queued is written

					// The next client, on the same host (the host is in the key).
					res, err := srv.Client().Get(srv.URL + "/x")
					require.NoError(t, err)
					got, err := io.ReadAll(res.Body)
					require.NoError(t, res.Body.Close())
					require.NoError(t, err)
					status := res.Header.Get("Cache-Status")
					t.Logf("second client: %s, %d bytes, %d runs", status, len(got), runs.Load())
					if strings.Contains(status, "hit") {
						assert.Equal(t, size, len(got), "a truncated body was stored and served")
					}
					// Whatever was answered, it is the whole body.
					assert.True(t, bytes.Equal(body, got), "the body differs from the handler's")
				})
			}
		}
	}
}

// TestCacheHeadNeverStoresTheGetEntry: a HEAD shares the GET's key, but
// its response has no body, so it must never become the entry a GET is
// answered from: not first, not with no-cache over a good entry, not when
// the handler writes nothing for HEAD.
func TestCacheHeadNeverStoresTheGetEntry(t *testing.T) {
	p := cachepolicy.Policy{TTL: time.Hour}
	for _, tc := range []struct {
		name   string
		before bool // a GET stores the entry first
		header []string
	}{
		{name: "head first"},
		{name: "head with no-cache over an entry", before: true, header: []string{"Cache-Control", "no-cache"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := reviewCache(t)
			srv := httptest.NewServer(cache.Policy(p)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodHead {
					return // nothing for HEAD: net/http sends 200 without a length
				}
				_, _ = io.WriteString(w, "the whole body")
			})))
			defer srv.Close()
			send := func(method string, header ...string) string {
				req, err := http.NewRequest(method, srv.URL+"/x", nil)
				require.NoError(t, err)
				for i := 0; i+1 < len(header); i += 2 {
					req.Header.Set(header[i], header[i+1])
				}
				res, err := srv.Client().Do(req)
				require.NoError(t, err)
				b, err := io.ReadAll(res.Body)
				require.NoError(t, res.Body.Close())
				require.NoError(t, err)
				return string(b)
			}
			if tc.before {
				require.Equal(t, "the whole body", send(http.MethodGet))
			}
			send(http.MethodHead, tc.header...)
			require.NoError(t, cache.Close()) // what was queued is written
			assert.Equal(t, "the whole body", send(http.MethodGet), "a HEAD's empty response became the GET's entry")
		})
	}
}
