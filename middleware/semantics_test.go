package middleware_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
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

// The HTTP semantics of issue 17, end to end as a user fronting an
// arbitrary origin deploys the cache: client -> httptest server ->
// middleware.Cache -> httputil.ReverseProxy -> test origin, with a real
// redis-server behind the cache.

// countingStore counts Gets, to check round trips per request.
type countingStore struct {
	*signalStore
	gets atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, key string) ([]byte, error) {
	s.gets.Add(1)
	return s.signalStore.Get(ctx, key)
}

// proxyEnv is one cache in front of a reverse proxy to an origin whose
// handler a test sets.
type proxyEnv struct {
	t      *testing.T
	clock  *clock
	store  *countingStore
	cache  *middleware.Cache
	front  *httptest.Server
	runs   atomic.Int64
	origin atomic.Pointer[http.HandlerFunc]
	// seen is the request header of the origin's last run.
	seen atomic.Pointer[http.Header]
}

// semanticsRedis starts the redis-server the subtests of one test share.
func semanticsRedis(t *testing.T) *resilience.Redis {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{})
	rdb, err := resilience.NewRedis(resilience.Config{Addr: srv.Addr()}, resilience.Options{
		Logger: quiet, OpTimeout: 5 * time.Second, DialTimeout: 5 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// newProxyEnv returns a cache with policy p in front of a reverse proxy;
// keys get a prefix of their own, so subtests share one Redis.
func newProxyEnv(t *testing.T, rdb *resilience.Redis, p cachepolicy.Policy) *proxyEnv {
	t.Helper()
	e := &proxyEnv{t: t, clock: &clock{t: time.Now().UTC().Truncate(time.Second)}}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.runs.Add(1)
		h := r.Header.Clone()
		e.seen.Store(&h)
		// The origin's clock is the cache's: Date and Age agree with it.
		w.Header().Set("Date", e.clock.Now().Format(http.TimeFormat))
		(*e.origin.Load())(w, r)
	}))
	t.Cleanup(origin.Close)
	target, err := url.Parse(origin.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = nil

	e.store = &countingStore{signalStore: &signalStore{Store: rdb, sets: make(chan string, 256)}}
	e.cache, err = middleware.NewCache(e.store, middleware.CacheOptions{
		KeyPrefix: strings.ReplaceAll(t.Name(), "/", ":") + ":", Logger: quiet, Now: e.clock.Now,
	})
	require.NoError(t, err)
	middleware.SetFlightLinger(e.cache, 0) // each request is answered by Redis or the origin
	e.front = httptest.NewServer(e.cache.Policy(p)(proxy))
	t.Cleanup(func() {
		e.front.Close()
		_ = e.cache.Close()
	})
	return e
}

// serve sets the origin's handler.
func (e *proxyEnv) serve(f http.HandlerFunc) { e.origin.Store(&f) }

// get sends a GET (or the method in header[0] when it is "HEAD") through
// the front server and returns the response with its body read.
func (e *proxyEnv) get(header ...string) (*http.Response, string) {
	e.t.Helper()
	method := http.MethodGet
	if len(header)%2 == 1 {
		method, header = header[0], header[1:]
	}
	req, err := http.NewRequest(method, e.front.URL+"/r", nil)
	require.NoError(e.t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	client := *e.front.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	require.NoError(e.t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	require.NoError(e.t, resp.Body.Close())
	return resp, string(body)
}

// stored waits for n writes to Redis.
func (e *proxyEnv) stored(n int) {
	e.t.Helper()
	for range n {
		select {
		case <-e.store.sets:
		case <-time.After(10 * time.Second):
			require.Failf(e.t, "timed out", "waiting for a write; stats %+v", e.cache.Stats())
		}
	}
}

func TestSemanticsAge(t *testing.T) {
	rdb := semanticsRedis(t)
	e := newProxyEnv(t, rdb, cachepolicy.Policy{})
	e.serve(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Age", "30")
		_, _ = io.WriteString(w, "aged")
	})
	resp, _ := e.get()
	assert.Equal(t, "30", resp.Header.Get("Age"), "the miss passes the origin's Age on")
	e.stored(1)
	e.clock.Add(3 * time.Second)
	resp, body := e.get()
	assert.Equal(t, "aged", body)
	assert.Equal(t, "33", resp.Header.Get("Age"), "initial age plus resident time (RFC 9111 4.2.3)")
	assert.Equal(t, "steadfast; hit; ttl=567", resp.Header.Get("Cache-Status"))

	// The request's max-age compares with the current age, 33 s.
	resp, _ = e.get("Cache-Control", "max-age=32")
	assert.NotEqual(t, "steadfast; hit; ttl=567", resp.Header.Get("Cache-Status"))
	assert.EqualValues(t, 2, e.runs.Load(), "max-age=32 refused a 33 s old response")
	e.stored(1)
	resp, _ = e.get("Cache-Control", "max-age=40")
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit", "max-age=40 accepts it")
	assert.EqualValues(t, 2, e.runs.Load())
}

func TestSemanticsExpiresStrict(t *testing.T) {
	rdb := semanticsRedis(t)
	for _, tc := range []struct {
		expires string
		stored  bool
	}{
		{expires: "Thu, 18  Aug  2050 02:01:18 GMT"},
		{expires: "Thu, 18 Aug 2050 2:01:18 GMT"},
		{expires: "0"},
		{expires: "Thu, 18 Aug 2050 02:01:18 GMT", stored: true},
		{expires: "Thursday, 18-Aug-50 02:01:18 GMT", stored: true},
		{expires: "Thu Aug 18 02:01:18 2050", stored: true},
	} {
		t.Run(tc.expires, func(t *testing.T) {
			e := newProxyEnv(t, rdb, cachepolicy.Policy{})
			e.serve(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Expires", tc.expires)
				_, _ = io.WriteString(w, "x")
			})
			resp, _ := e.get()
			if !tc.stored {
				assert.Equal(t, "steadfast; fwd=uri-miss; detail=no-freshness", resp.Header.Get("Cache-Status"))
				return
			}
			assert.Equal(t, "steadfast; fwd=uri-miss; stored", resp.Header.Get("Cache-Status"))
			e.stored(1)
			resp, _ = e.get()
			assert.Contains(t, resp.Header.Get("Cache-Status"), "steadfast; hit")
		})
	}
}

func TestSemanticsFieldsNeverStored(t *testing.T) {
	rdb := semanticsRedis(t)
	e := newProxyEnv(t, rdb, cachepolicy.Policy{})
	e.serve(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", `max-age=60, private="X-User", no-cache="X-Token"`)
		w.Header().Set("Proxy-Authentication-Info", "nextnonce=1")
		w.Header().Set("X-User", "alice")
		w.Header().Set("X-Token", "t1")
		w.Header().Set("X-Kept", "yes")
		_, _ = io.WriteString(w, "fields")
	})
	resp, _ := e.get()
	assert.Equal(t, "alice", resp.Header.Get("X-User"), "the miss itself is the origin's answer")
	e.stored(1)
	resp, body := e.get()
	assert.Equal(t, "fields", body)
	assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
	assert.Equal(t, "yes", resp.Header.Get("X-Kept"))
	for _, name := range []string{"Proxy-Authentication-Info", "X-User", "X-Token"} {
		assert.Empty(t, resp.Header.Values(name), "%s was stored and replayed", name)
	}
}

func TestSemanticsValidation(t *testing.T) {
	rdb := semanticsRedis(t)

	t.Run("304 renews a stale entry", func(t *testing.T) {
		e := newProxyEnv(t, rdb, cachepolicy.Policy{})
		etag := `"v1"`
		e.serve(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Etag", etag)
			w.Header().Set("Cache-Control", "max-age=10")
			if r.Header.Get("If-None-Match") == etag {
				w.Header().Set("X-Updated", "yes")
				w.WriteHeader(http.StatusNotModified)
				return
			}
			_, _ = io.WriteString(w, "body "+etag)
		})
		e.get()
		e.stored(1)
		e.clock.Add(20 * time.Second)
		resp, body := e.get()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, `body "v1"`, body, "the stored body")
		assert.Equal(t, "yes", resp.Header.Get("X-Updated"), "the 304's field")
		assert.Equal(t, "steadfast; fwd=stale; fwd-status=304; stored", resp.Header.Get("Cache-Status"))
		assert.Equal(t, `"v1"`, (*e.seen.Load()).Get("If-None-Match"), "the conditional request")
		e.stored(1)
		resp, _ = e.get()
		assert.Equal(t, "steadfast; hit; ttl=10", resp.Header.Get("Cache-Status"), "freshness renewed")
		assert.Equal(t, "yes", resp.Header.Get("X-Updated"), "the updated header was stored")
		assert.EqualValues(t, 2, e.runs.Load())

		// A conditional client of a stale entry gets a 304.
		e.clock.Add(20 * time.Second)
		resp, body = e.get("If-None-Match", `"v1"`)
		assert.Equal(t, http.StatusNotModified, resp.StatusCode)
		assert.Empty(t, body)
		e.stored(1)

		// A 200 replaces the entry.
		etag = `"v2"`
		e.clock.Add(20 * time.Second)
		resp, body = e.get()
		assert.Equal(t, `body "v2"`, body)
		assert.Equal(t, "steadfast; fwd=stale; fwd-status=200; stored", resp.Header.Get("Cache-Status"))
		e.stored(1)
		_, body = e.get()
		assert.Equal(t, `body "v2"`, body)
		assert.EqualValues(t, 4, e.runs.Load())
	})

	t.Run("no-cache is stored and validated before each use", func(t *testing.T) {
		e := newProxyEnv(t, rdb, cachepolicy.Policy{})
		e.serve(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Etag", `"nc"`)
			w.Header().Set("Cache-Control", "no-cache")
			if r.Header.Get("If-None-Match") == `"nc"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			_, _ = io.WriteString(w, "validated")
		})
		resp, _ := e.get()
		assert.Equal(t, "steadfast; fwd=uri-miss; stored", resp.Header.Get("Cache-Status"))
		e.stored(1)
		for range 2 {
			resp, body := e.get()
			assert.Equal(t, "validated", body)
			assert.Equal(t, "steadfast; fwd=stale; fwd-status=304; stored", resp.Header.Get("Cache-Status"))
			assert.Equal(t, `"nc"`, (*e.seen.Load()).Get("If-None-Match"))
			e.stored(1)
		}
		assert.EqualValues(t, 3, e.runs.Load(), "validated on every use")
	})

	t.Run("http.ServeContent answers the conditional request", func(t *testing.T) {
		e := newProxyEnv(t, rdb, cachepolicy.Policy{TTL: time.Second})
		modified := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		e.serve(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Etag", `"file"`)
			http.ServeContent(w, r, "f.txt", modified, strings.NewReader("file content"))
		})
		e.get()
		e.stored(1)
		e.clock.Add(5 * time.Second)
		resp, body := e.get()
		assert.Equal(t, "file content", body)
		assert.Equal(t, "steadfast; fwd=stale; fwd-status=304; stored", resp.Header.Get("Cache-Status"))
	})

	t.Run("a 304 for another representation is asked again", func(t *testing.T) {
		e := newProxyEnv(t, rdb, cachepolicy.Policy{})
		e.serve(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=1")
			if r.Header.Get("If-None-Match") != "" {
				w.Header().Set("Etag", `"other"`)
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Header().Set("Etag", `"mine"`)
			_, _ = io.WriteString(w, "fresh copy")
		})
		e.get()
		e.stored(1)
		e.clock.Add(5 * time.Second)
		resp, body := e.get()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "fresh copy", body)
		assert.EqualValues(t, 3, e.runs.Load(), "conditional, then unconditional")
	})
}

func TestSemanticsVary(t *testing.T) {
	rdb := semanticsRedis(t)
	lang := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "lang=%s", r.Header.Get("Accept-Language"))
	}

	t.Run("variants by normalised value", func(t *testing.T) {
		e := newProxyEnv(t, rdb, cachepolicy.Policy{})
		e.serve(lang)
		_, body := e.get("Accept-Language", "en, de;q=0.5")
		assert.Equal(t, "lang=en, de;q=0.5", body)
		e.stored(2) // the variant, then the index
		resp, body := e.get("Accept-Language", "de")
		assert.Equal(t, "lang=de", body)
		assert.Equal(t, "steadfast; fwd=vary-miss; stored", resp.Header.Get("Cache-Status"))
		e.stored(2)

		gets := e.store.gets.Load()
		resp, body = e.get("Accept-Language", "DE;q=0.5 , EN")
		assert.Equal(t, "lang=en, de;q=0.5", body, "same meaning, same variant")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
		assert.EqualValues(t, 2, e.store.gets.Load()-gets, "a variant hit costs one more round trip")
		_, body = e.get("Accept-Language", "de")
		assert.Equal(t, "lang=de", body)
		assert.EqualValues(t, 2, e.runs.Load())
	})

	t.Run("variants are capped, oldest dropped", func(t *testing.T) {
		e := newProxyEnv(t, rdb, cachepolicy.Policy{MaxVariants: 2})
		e.serve(lang)
		for _, l := range []string{"en", "de", "fr"} {
			e.get("Accept-Language", l)
			e.stored(2)
		}
		resp, _ := e.get("Accept-Language", "fr")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
		resp, _ = e.get("Accept-Language", "de")
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
		resp, _ = e.get("Accept-Language", "en")
		assert.Equal(t, "steadfast; fwd=vary-miss; stored", resp.Header.Get("Cache-Status"), "the oldest was dropped")
	})

	t.Run("URLs without variants cost one round trip", func(t *testing.T) {
		e := newProxyEnv(t, rdb, cachepolicy.Policy{})
		e.serve(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			_, _ = io.WriteString(w, "plain")
		})
		e.get()
		e.stored(1)
		gets := e.store.gets.Load()
		resp, _ := e.get()
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
		assert.EqualValues(t, 1, e.store.gets.Load()-gets)
	})

	t.Run("Vary star is never stored", func(t *testing.T) {
		e := newProxyEnv(t, rdb, cachepolicy.Policy{})
		e.serve(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Vary", "Accept, *")
		})
		resp, _ := e.get()
		assert.Equal(t, "steadfast; fwd=uri-miss; detail=vary-star", resp.Header.Get("Cache-Status"))
	})

	t.Run("Vary on credentials follows the gates", func(t *testing.T) {
		e := newProxyEnv(t, rdb, cachepolicy.Policy{})
		e.serve(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "public, max-age=60")
			w.Header().Set("Vary", "Authorization, Cookie")
			fmt.Fprintf(w, "user=%s", r.Header.Get("Authorization"))
		})
		resp, _ := e.get("Authorization", "Bearer alice")
		assert.Equal(t, "steadfast; fwd=bypass; detail=authorization", resp.Header.Get("Cache-Status"))
		resp, _ = e.get("Cookie", "s=1")
		assert.Equal(t, "steadfast; fwd=bypass; detail=cookie", resp.Header.Get("Cache-Status"))
		_, body := e.get()
		assert.Equal(t, "user=", body)
		e.stored(2)
		_, body = e.get("Authorization", "Bearer alice")
		assert.Equal(t, "user=Bearer alice", body, "an anonymous variant never answers a credentialed request")
	})
}

func TestSemanticsStatuses(t *testing.T) {
	rdb := semanticsRedis(t)
	for _, tc := range []struct {
		status int
		cc     string
		stored bool
	}{
		{status: 500, cc: "max-age=60", stored: true},
		{status: 302, cc: "max-age=60", stored: true},
		{status: 307, cc: "s-maxage=60", stored: true},
		{status: 404, cc: "", stored: false}, // no freshness, no Last-Modified
		{status: 206, cc: "max-age=60", stored: false},
		{status: 502, cc: "", stored: false},
		{status: 200, cc: "must-understand, no-store, max-age=60", stored: true},
		{status: 299, cc: "must-understand, no-store, max-age=60", stored: false},
	} {
		t.Run(fmt.Sprintf("%d %s", tc.status, tc.cc), func(t *testing.T) {
			e := newProxyEnv(t, rdb, cachepolicy.Policy{})
			e.serve(func(w http.ResponseWriter, _ *http.Request) {
				if tc.cc != "" {
					w.Header().Set("Cache-Control", tc.cc)
				}
				if tc.status == http.StatusPartialContent {
					w.Header().Set("Content-Range", "bytes 0-0/10")
				}
				w.Header().Set("Location", "/elsewhere")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, "s")
			})
			e.get()
			if tc.stored {
				e.stored(1)
			}
			resp, _ := e.get()
			assert.Equal(t, tc.status, resp.StatusCode)
			if tc.stored {
				assert.Contains(t, resp.Header.Get("Cache-Status"), "hit")
				assert.EqualValues(t, 1, e.runs.Load())
			} else {
				assert.EqualValues(t, 2, e.runs.Load())
			}
		})
	}
}

func TestSemanticsHeuristicFreshness(t *testing.T) {
	rdb := semanticsRedis(t)
	t.Run("10 percent of the age", func(t *testing.T) {
		e := newProxyEnv(t, rdb, cachepolicy.Policy{})
		e.serve(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Last-Modified", e.clock.Now().Add(-10*time.Hour).Format(http.TimeFormat))
		})
		resp, _ := e.get()
		assert.Equal(t, "steadfast; fwd=uri-miss; stored", resp.Header.Get("Cache-Status"))
		e.stored(1)
		resp, _ = e.get()
		assert.Equal(t, "steadfast; hit; ttl=3600", resp.Header.Get("Cache-Status"))
	})
	t.Run("turned off", func(t *testing.T) {
		e := newProxyEnv(t, rdb, cachepolicy.Policy{NoHeuristic: true})
		e.serve(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Last-Modified", e.clock.Now().Add(-10*time.Hour).Format(http.TimeFormat))
		})
		resp, _ := e.get()
		assert.Equal(t, "steadfast; fwd=uri-miss; detail=no-freshness", resp.Header.Get("Cache-Status"))
	})
}

func TestSemanticsRange(t *testing.T) {
	rdb := semanticsRedis(t)
	e := newProxyEnv(t, rdb, cachepolicy.Policy{})
	e.serve(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Etag", `"r1"`)
		_, _ = io.WriteString(w, "0123456789")
	})
	e.get()
	e.stored(1)
	for _, tc := range []struct {
		header []string
		status int
		body   string
		cr     string
	}{
		{header: []string{"Range", "bytes=2-4"}, status: 206, body: "234", cr: "bytes 2-4/10"},
		{header: []string{"Range", "bytes=7-"}, status: 206, body: "789", cr: "bytes 7-9/10"},
		{header: []string{"Range", "bytes=-2"}, status: 206, body: "89", cr: "bytes 8-9/10"},
		{header: []string{"Range", "bytes=2-4", "If-Range", `"r1"`}, status: 206, body: "234", cr: "bytes 2-4/10"},
		{header: []string{"Range", "bytes=2-4", "If-Range", `"old"`}, status: 200, body: "0123456789"},
		{header: []string{"Range", "bytes=0-1,4-5"}, status: 200, body: "0123456789"},
		{header: []string{"Range", "bytes=10-"}, status: 416, body: "", cr: "bytes */10"},
	} {
		resp, body := e.get(tc.header...)
		assert.Equal(t, tc.status, resp.StatusCode, "%q", tc.header)
		assert.Equal(t, tc.body, body, "%q", tc.header)
		assert.Equal(t, tc.cr, resp.Header.Get("Content-Range"), "%q", tc.header)
		assert.Contains(t, resp.Header.Get("Cache-Status"), "hit", "%q", tc.header)
	}
	assert.EqualValues(t, 1, e.runs.Load(), "ranges come from the stored 200")

	t.Run("a range of a stale entry after revalidation", func(t *testing.T) {
		e := newProxyEnv(t, rdb, cachepolicy.Policy{})
		e.serve(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=1")
			w.Header().Set("Etag", `"r"`)
			if r.Header.Get("If-None-Match") == `"r"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			_, _ = io.WriteString(w, "0123456789")
		})
		e.get()
		e.stored(1)
		e.clock.Add(5 * time.Second)
		resp, body := e.get("Range", "bytes=0-2")
		assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
		assert.Equal(t, "012", body)
		assert.Empty(t, (*e.seen.Load()).Get("Range"), "the validation asks about the whole response")
	})

	t.Run("a 206 from the origin is not stored", func(t *testing.T) {
		e := newProxyEnv(t, rdb, cachepolicy.Policy{TTL: time.Minute})
		e.serve(func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "f", time.Time{}, strings.NewReader("0123456789"))
		})
		resp, body := e.get("Range", "bytes=0-1")
		assert.Equal(t, http.StatusPartialContent, resp.StatusCode)
		assert.Equal(t, "01", body)
		resp, body = e.get()
		assert.Equal(t, "0123456789", body)
		assert.Equal(t, "steadfast; fwd=uri-miss; stored", resp.Header.Get("Cache-Status"))
	})
}

func TestSemanticsTargetedCacheControl(t *testing.T) {
	rdb := semanticsRedis(t)
	t.Run("CDN-Cache-Control", func(t *testing.T) {
		e := newProxyEnv(t, rdb, cachepolicy.Policy{})
		e.serve(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("CDN-Cache-Control", "max-age=120")
		})
		resp, _ := e.get()
		assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"), "browsers still get their own")
		e.stored(1)
		resp, _ = e.get()
		assert.Equal(t, "steadfast; hit; ttl=120", resp.Header.Get("Cache-Status"))
	})
	t.Run("own field first", func(t *testing.T) {
		e := newProxyEnv(t, rdb, cachepolicy.Policy{TargetedField: "Steadfast-Cache-Control"})
		e.serve(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Cache-Control", "max-age=5")
			w.Header().Set("CDN-Cache-Control", "max-age=120")
			w.Header().Set("Steadfast-Cache-Control", "max-age=30")
		})
		e.get()
		e.stored(1)
		resp, _ := e.get()
		assert.Equal(t, "steadfast; hit; ttl=30", resp.Header.Get("Cache-Status"))
	})
	t.Run("safe defaults stay", func(t *testing.T) {
		e := newProxyEnv(t, rdb, cachepolicy.Policy{})
		e.serve(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("CDN-Cache-Control", "max-age=120")
			w.Header().Set("Set-Cookie", "s=1")
		})
		resp, _ := e.get()
		assert.Equal(t, "steadfast; fwd=uri-miss; detail=set-cookie", resp.Header.Get("Cache-Status"))
	})
}

func TestSemanticsForgedVariantIndex(t *testing.T) {
	// A value that looks like a variant index but is not one is a miss,
	// deleted and counted; it never sends the lookup elsewhere.
	rdb := semanticsRedis(t)
	e := newProxyEnv(t, rdb, cachepolicy.Policy{})
	e.serve(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		_, _ = io.WriteString(w, "origin")
	})
	req, err := http.NewRequest(http.MethodGet, e.front.URL+"/r", nil)
	require.NoError(t, err)
	key := cachepolicy.Key(strings.ReplaceAll(t.Name(), "/", ":")+":", req, cachepolicy.Policy{})
	require.NoError(t, rdb.Set(context.Background(), key, []byte("sfv\x01forged"), time.Minute))
	resp, body := e.get()
	assert.Equal(t, "origin", body)
	assert.Equal(t, "steadfast; fwd=uri-miss; stored", resp.Header.Get("Cache-Status"))
	assert.EqualValues(t, 1, e.cache.Stats().DecodeErrors)
}

// varyAtHeader is an outer middleware's writer that adds Vary: X-Tenant
// when the status is written, after the cache made its first decision.
type varyAtHeader struct {
	http.ResponseWriter
	wrote bool
}

func (v *varyAtHeader) WriteHeader(code int) {
	if !v.wrote {
		v.wrote = true
		v.ResponseWriter.Header().Add("Vary", "X-Tenant")
	}
	v.ResponseWriter.WriteHeader(code)
}

func (v *varyAtHeader) Write(p []byte) (int, error) {
	if !v.wrote {
		v.WriteHeader(http.StatusOK)
	}
	return v.ResponseWriter.Write(p)
}

func TestSemanticsOuterVaryAtWriteHeader(t *testing.T) {
	// A Vary that outer middleware adds as the status goes out makes the
	// entry a variant on that field: tenant B never gets tenant A's page.
	e := newEnv(t, middleware.CacheOptions{})
	cached := e.cache.Policy(cachepolicy.Policy{TTL: time.Hour})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "page of %s", r.Header.Get("X-Tenant"))
	}))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cached.ServeHTTP(&varyAtHeader{ResponseWriter: w}, r)
	})
	a := do(h, "GET", "/p", "X-Tenant", "A")
	assert.Equal(t, "page of A", a.Body.String())
	e.waitStored(2) // the variant, then the index
	b := do(h, "GET", "/p", "X-Tenant", "B")
	assert.Equal(t, "page of B", b.Body.String(), "tenant B got tenant A's page")
	a = do(h, "GET", "/p", "X-Tenant", "A")
	assert.Equal(t, "page of A", a.Body.String())
}
