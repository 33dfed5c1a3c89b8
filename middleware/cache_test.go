package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/internal/testlog"
	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

func TestCacheHitAndMiss(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	o := &origin{set: header("X-Multi", "a", "X-Multi", "b")}
	h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(o)

	miss := do(h, "GET", "/items/1")
	assert.Equal(t, http.StatusOK, miss.Code)
	assert.Equal(t, "run 1", miss.Body.String())
	assert.Equal(t, "steadfast; fwd=uri-miss; stored", miss.Header().Get("Cache-Status"))
	assert.Empty(t, miss.Header().Values("Age"), "Age on a miss")
	e.waitStored(1)

	e.clock.Add(10 * time.Second)
	hit := do(h, "GET", "/items/1")
	assert.Equal(t, http.StatusOK, hit.Code)
	assert.Equal(t, "run 1", hit.Body.String())
	assert.Equal(t, "steadfast; hit; ttl=50", hit.Header().Get("Cache-Status"))
	assert.Equal(t, "10", hit.Header().Get("Age"))
	assert.Equal(t, []string{"a", "b"}, hit.Header().Values("X-Multi"))
	assert.Equal(t, "text/plain; charset=utf-8", hit.Header().Get("Content-Type"))
	assert.Equal(t, "5", hit.Header().Get("Content-Length"))
	assert.EqualValues(t, 1, o.runs.Load(), "handler runs")

	other := do(h, "GET", "/items/2")
	assert.Equal(t, "run 2", other.Body.String(), "another URL is another entry")
	e.waitStored(1)

	e.clock.Add(time.Minute)
	expired := do(h, "GET", "/items/1")
	assert.Equal(t, "run 3", expired.Body.String(), "an expired entry is not served")
	assert.Equal(t, "steadfast; fwd=stale; stored", expired.Header().Get("Cache-Status"))

	s := e.cache.Stats()
	assert.EqualValues(t, 1, s.Hits, "hits in %+v", s)
	assert.EqualValues(t, 3, s.Misses, "misses in %+v", s)
}

func TestCacheHandlerWithRules(t *testing.T) {
	items := cachepolicy.Policy{TTL: time.Minute}
	rules, err := cachepolicy.NewRules(map[string]cachepolicy.Policy{
		"GET /items/{id}": items,
		"GET /slow/":      {TTL: time.Hour},
	})
	require.NoError(t, err)
	e := newEnv(t, middleware.CacheOptions{Rules: rules})
	o := &origin{}
	h := e.cache.Handler(o)

	first := do(h, "GET", "/items/7")
	assert.Equal(t, "steadfast; fwd=uri-miss; stored", first.Header().Get("Cache-Status"))
	e.waitStored(1)
	assert.Equal(t, "steadfast; hit; ttl=60", do(h, "GET", "/items/7").Header().Get("Cache-Status"))
	assert.Equal(t, "steadfast; hit; ttl=3600", func() string {
		do(h, "GET", "/slow/a")
		e.waitStored(1)
		return do(h, "GET", "/slow/a").Header().Get("Cache-Status")
	}())

	untouched := do(h, "GET", "/other")
	assert.Empty(t, untouched.Header().Values("Cache-Status"), "a request without a rule was touched")
	assert.Equal(t, "run 3", untouched.Body.String())

	// A POST has no rule of its own; it invalidates under the GET rule.
	post := do(h, "POST", "/items/7")
	assert.Equal(t, "steadfast; fwd=method", post.Header().Get("Cache-Status"))
	assert.False(t, e.mr.Exists(key("/items/7", items)), "POST did not invalidate")
	assert.Equal(t, "steadfast; fwd=uri-miss; stored", do(h, "GET", "/items/7").Header().Get("Cache-Status"))
}

func TestCacheKeyPoisoning(t *testing.T) {
	// Headers a request may carry to change what a careless handler
	// writes. None of them is in the key unless the policy names it.
	poison := []string{
		"X-Forwarded-Host", "evil.example",
		"X-Forwarded-Proto", "javascript",
		"X-Forwarded-Scheme", "nothttps",
		"X-Forwarded-Port", "1337",
		"X-Original-URL", "/admin",
		"X-Rewrite-URL", "/admin",
		"X-Host", "evil.example",
		"Forwarded", "host=evil.example;proto=http",
		"X-HTTP-Method-Override", "POST",
		"Accept-Language", "xx",
		"User-Agent", "evil",
	}
	// reflect writes every such header into the body, and says so with
	// Vary when vary is set.
	reflect := func(vary string) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			if vary != "" {
				w.Header().Set("Vary", vary)
			}
			for i := 0; i < len(poison); i += 2 {
				if v := r.Header.Get(poison[i]); v != "" {
					fmt.Fprintf(w, "%s=%s ", poison[i], v)
				}
			}
		}
	}

	t.Run("unkeyed headers hit the clean entry", func(t *testing.T) {
		e := newEnv(t, middleware.CacheOptions{})
		h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(&origin{set: reflect("")})
		clean := do(h, "GET", "/page")
		e.waitStored(1)
		for i := 0; i < len(poison); i += 2 {
			rr := do(h, "GET", "/page", poison[i], poison[i+1])
			assert.Equal(t, clean.Body.String(), rr.Body.String(), "%s changed the cached response", poison[i])
			assert.Equal(t, "steadfast; hit; ttl=60", rr.Header().Get("Cache-Status"), poison[i])
		}
	})

	t.Run("response varying on an unkeyed header is stored only for its value", func(t *testing.T) {
		e := newEnv(t, middleware.CacheOptions{})
		h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(&origin{set: reflect("X-Forwarded-Host")})
		evil := do(h, "GET", "/page", "X-Forwarded-Host", "evil.example")
		require.Contains(t, evil.Body.String(), "evil.example")
		assert.Equal(t, "steadfast; fwd=uri-miss; stored", evil.Header().Get("Cache-Status"))
		e.waitStored(2) // the variant, then the URL's variant index
		clean := do(h, "GET", "/page")
		assert.NotContains(t, clean.Body.String(), "evil", "the attacker's response was served")
		assert.Equal(t, "steadfast; fwd=vary-miss; stored", clean.Header().Get("Cache-Status"))
		e.waitStored(2)
		again := do(h, "GET", "/page", "X-Forwarded-Host", "evil.example")
		assert.Contains(t, again.Body.String(), "evil.example")
		assert.Equal(t, "steadfast; hit; ttl=60", again.Header().Get("Cache-Status"))
		clean = do(h, "GET", "/page")
		assert.NotContains(t, clean.Body.String(), "evil", "the attacker's response was served")
		assert.Equal(t, "steadfast; hit; ttl=60", clean.Header().Get("Cache-Status"))
	})

	t.Run("keyed header gets its own entry", func(t *testing.T) {
		e := newEnv(t, middleware.CacheOptions{})
		policy := cachepolicy.Policy{TTL: time.Minute, KeyHeaders: []string{"x-forwarded-host"}}
		h := e.cache.Policy(policy)(&origin{set: reflect("X-Forwarded-Host")})
		evil := do(h, "GET", "/page", "X-Forwarded-Host", "evil.example")
		require.Contains(t, evil.Body.String(), "evil.example")
		e.waitStored(1)
		clean := do(h, "GET", "/page")
		assert.NotContains(t, clean.Body.String(), "evil", "the attacker's variant was served")
		assert.Equal(t, "steadfast; fwd=uri-miss; stored", clean.Header().Get("Cache-Status"))
		e.waitStored(1)
		again := do(h, "GET", "/page", "X-Forwarded-Host", "evil.example")
		assert.Equal(t, evil.Body.String(), again.Body.String())
	})

	t.Run("Host and scheme are keyed, not taken from headers", func(t *testing.T) {
		e := newEnv(t, middleware.CacheOptions{})
		o := &origin{}
		h := e.cache.Policy(cachepolicy.Policy{TTL: time.Minute})(o)
		do(h, "GET", "http://a.example/page")
		e.waitStored(1)
		assert.Equal(t, "run 2", do(h, "GET", "http://b.example/page").Body.String(), "Host not in key")
		assert.Equal(t, "run 3", do(h, "GET", "https://a.example/page").Body.String(), "scheme not in key")
		e.waitStored(2)
		assert.Equal(t, "run 1", do(h, "GET", "http://a.example/page", "X-Forwarded-Proto", "https").Body.String())
	})
}

func TestCacheCorruptEntries(t *testing.T) {
	policy := cachepolicy.Policy{TTL: time.Minute}
	good := func(t *testing.T) string {
		e := newEnv(t, middleware.CacheOptions{})
		do(e.cache.Policy(policy)(&origin{}), "GET", "/x")
		e.waitStored(1)
		v, err := e.mr.Get(key("/x", policy))
		require.NoError(t, err)
		return v
	}(t)
	tests := []struct {
		name string
		val  string
	}{
		{name: "garbage", val: "\x00\x01\x02 not an entry"},
		{name: "empty", val: ""},
		{name: "foreign JSON", val: `{"status":200,"body":"x"}`},
		{name: "truncated", val: good[:len(good)-3]},
		{name: "header only", val: good[:12]},
		{name: "flipped bit", val: good[:len(good)-1] + string(good[len(good)-1]^1)},
		{name: "future version", val: good[:3] + "\x09" + good[4:]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, middleware.CacheOptions{})
			k := key("/x", policy)
			require.NoError(t, e.mr.Set(k, tc.val))
			// A response that is not stored, so that the key stays deleted.
			o := &origin{set: header("Cache-Control", "no-store")}
			rr := do(e.cache.Policy(policy)(o), "GET", "/x")
			assert.Equal(t, http.StatusOK, rr.Code)
			assert.Equal(t, "run 1", rr.Body.String())
			assert.False(t, e.mr.Exists(k), "corrupt value not deleted")
			assert.EqualValues(t, 1, e.cache.Stats().DecodeErrors)
		})
	}

	t.Run("replaced by a good entry", func(t *testing.T) {
		e := newEnv(t, middleware.CacheOptions{})
		require.NoError(t, e.mr.Set(key("/x", policy), "junk"))
		h := e.cache.Policy(policy)(&origin{})
		do(h, "GET", "/x")
		e.waitStored(1)
		assert.Equal(t, "run 1", do(h, "GET", "/x").Body.String())
	})
}

func TestCacheFailOpen(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{name: "breaker open", err: resilience.ErrUnavailable},
		{name: "timeout", err: fmt.Errorf("redis get: %w", context.DeadlineExceeded)},
		{name: "connection refused", err: errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sets atomic.Int64
			store := &fakeStore{
				GetFunc: func(context.Context, string) ([]byte, error) { return nil, tc.err },
				SetFunc: func(context.Context, string, []byte, time.Duration) error { sets.Add(1); return nil },
			}
			cache, err := middleware.NewCache(store, middleware.CacheOptions{Logger: quiet})
			require.NoError(t, err)
			o := &origin{}
			h := cache.Policy(cachepolicy.Policy{TTL: time.Minute})(o)
			for i := range 3 {
				rr := do(h, "GET", "/x")
				assert.Equal(t, http.StatusOK, rr.Code)
				assert.Equal(t, fmt.Sprintf("run %d", i+1), rr.Body.String())
				assert.Equal(t, "steadfast; fwd=bypass; detail=redis-unavailable", rr.Header().Get("Cache-Status"))
			}
			require.NoError(t, cache.Close())
			assert.Zero(t, sets.Load(), "stored while the store was unavailable")
			assert.EqualValues(t, 3, cache.Stats().Bypasses)
		})
	}
}

func TestCacheClientGoneDuringLookup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	store := &fakeStore{GetFunc: func(ctx context.Context, _ string) ([]byte, error) {
		cancel()
		return nil, fmt.Errorf("redis get: %w", ctx.Err())
	}}
	cache, err := middleware.NewCache(store, middleware.CacheOptions{Logger: quiet})
	require.NoError(t, err)
	defer cache.Close()
	o := &origin{}
	rr := httptest.NewRecorder()
	cache.Policy(cachepolicy.Policy{TTL: time.Minute})(o).ServeHTTP(rr, newRequest("GET", "/x").WithContext(ctx))
	assert.Zero(t, o.runs.Load(), "handler ran for a client that left")
	assert.Zero(t, cache.Stats().Bypasses, "a client leaving counted as Redis unavailable")
}

func TestCacheResponseWriterInterfaces(t *testing.T) {
	e := newEnv(t, middleware.CacheOptions{})
	p := cachepolicy.Policy{TTL: time.Minute}
	mux := http.NewServeMux()
	mux.Handle("GET /flush", e.cache.Policy(p)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		rc := http.NewResponseController(w)
		assert.NoError(t, rc.SetWriteDeadline(time.Now().Add(time.Minute)), "Unwrap reaches the connection")
		_, _ = io.WriteString(w, "part 1;")
		assert.NoError(t, rc.Flush())
		_, _ = io.WriteString(w, "part 2")
	})))
	mux.Handle("GET /readfrom", e.cache.Policy(p)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		rf, ok := w.(io.ReaderFrom)
		if !assert.True(t, ok, "io.ReaderFrom lost") { // the server's goroutine: no require
			return
		}
		_, err := rf.ReadFrom(strings.NewReader("copied body"))
		assert.NoError(t, err)
	})))
	mux.Handle("GET /hijack", e.cache.Policy(p)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if !assert.NoError(t, err) {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		_ = brw.Flush()
	})))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (string, string) {
		res, err := srv.Client().Get(srv.URL + path)
		require.NoError(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return string(b), res.Header.Get("Cache-Status")
	}

	body, status := get("/flush")
	assert.Equal(t, "part 1;part 2", body)
	assert.Equal(t, "steadfast; fwd=uri-miss; stored", status)
	body, _ = get("/readfrom")
	assert.Equal(t, "copied body", body)
	e.waitStored(2)
	body, status = get("/flush")
	assert.Equal(t, "part 1;part 2", body, "flushed response stored whole")
	assert.Equal(t, "steadfast; hit; ttl=60", status)
	body, _ = get("/readfrom")
	assert.Equal(t, "copied body", body)

	body, status = get("/hijack")
	assert.Equal(t, "hijacked", body)
	assert.Empty(t, status)
	assert.False(t, e.mr.Exists(key(srv.URL+"/hijack", p)))
}

func TestCacheInvalidPolicy(t *testing.T) {
	var logs testlog.Buffer
	e := newEnv(t, middleware.CacheOptions{Logger: logs.Text(slog.LevelInfo)})
	o := &origin{}
	h := e.cache.Policy(cachepolicy.Policy{TTL: -time.Second})(o)
	for range 2 {
		rr := do(h, "GET", "/x")
		assert.Equal(t, "steadfast; fwd=bypass; detail=invalid-policy", rr.Header().Get("Cache-Status"))
	}
	assert.EqualValues(t, 2, o.runs.Load())
	assert.Equal(t, 1, strings.Count(logs.String(), "TTL"), "log:\n%s", logs.String())
}
