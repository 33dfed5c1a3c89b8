package middleware_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

// exampleNow is a fixed clock, so that the examples' ttl and Age values do
// not depend on how fast they run.
func exampleNow() time.Time { return time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC) }

// waitStored waits until the cache's background writer has stored n
// entries in all; entries are written after the response, off the request
// path.
func waitStored(cache *middleware.Cache, n uint64) {
	deadline := time.Now().Add(10 * time.Second)
	for cache.Stats().Stored < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// get sends a GET for target to h and prints what came back.
func get(h http.Handler, target string) {
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest("GET", target, nil))
	fmt.Printf("%d %q Cache-Status: %s\n", rr.Code, rr.Body.String(), rr.Header().Get("Cache-Status"))
}

// exampleRedis returns an embedded Redis and the guarded client for it.
func exampleRedis() (*miniredis.Miniredis, *resilience.Redis) {
	mr, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	rdb, err := resilience.NewRedis(resilience.Config{Addr: mr.Addr()},
		resilience.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	return mr, rdb
}

// The usual setup: a guarded Redis client, a cache on it, and the cache
// closed before the client.
func ExampleNewCache() {
	mr, _ := miniredis.Run() // an embedded Redis, for the example
	defer mr.Close()

	rdb, err := resilience.NewRedis(resilience.Config{Addr: mr.Addr()}, resilience.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer rdb.Close()

	cache, err := middleware.NewCache(rdb, middleware.CacheOptions{KeyPrefix: "app:", Now: exampleNow})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close() // before rdb.Close: writes what is queued

	items := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "item %s", r.PathValue("id"))
	})
	mux := http.NewServeMux()
	mux.Handle("GET /items/{id}", cache.Policy(cachepolicy.Policy{TTL: time.Minute})(items))

	get(mux, "/items/1")
	waitStored(cache, 1)
	get(mux, "/items/1")
	fmt.Println(len(mr.Keys()), "key, under the prefix:", mr.Keys()[0][:4])
	// Output:
	// 200 "item 1" Cache-Status: steadfast; fwd=uri-miss; stored
	// 200 "item 1" Cache-Status: steadfast; hit; ttl=60
	// 1 key, under the prefix: app:
}

// One handler wrapped with its own policy: fresh for a minute, then served
// stale for 30 seconds while one refresh runs, and for 10 minutes more when
// the handler fails.
func ExampleCache_Policy() {
	mr, rdb := exampleRedis()
	defer mr.Close()
	defer rdb.Close()
	cache, err := middleware.NewCache(rdb, middleware.CacheOptions{Now: exampleNow})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()

	calls := 0
	report := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls++
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "quarterly report")
	})
	h := cache.Policy(cachepolicy.Policy{
		TTL:                  time.Minute,
		StaleWhileRevalidate: 30 * time.Second,
		StaleIfError:         10 * time.Minute,
	})(report)

	get(h, "/report")
	waitStored(cache, 1)
	get(h, "/report")
	get(h, "/report")
	fmt.Println("handler calls:", calls)
	// Output:
	// 200 "quarterly report" Cache-Status: steadfast; fwd=uri-miss; stored
	// 200 "quarterly report" Cache-Status: steadfast; hit; ttl=60
	// 200 "quarterly report" Cache-Status: steadfast; hit; ttl=60
	// handler calls: 1
}

// One middleware for a whole mux, with policies by net/http pattern.
// Requests no rule matches pass through untouched.
func ExampleCache_Handler() {
	mr, rdb := exampleRedis()
	defer mr.Close()
	defer rdb.Close()

	rules, err := cachepolicy.NewRules(map[string]cachepolicy.Policy{
		"GET /items/{id}": {TTL: time.Minute},
		"GET /static/":    {TTL: 24 * time.Hour, MaxBodyBytes: 4 << 20},
	})
	if err != nil {
		log.Fatal(err)
	}
	cache, err := middleware.NewCache(rdb, middleware.CacheOptions{Rules: rules, Now: exampleNow})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "item %s", r.PathValue("id"))
	})
	mux.HandleFunc("GET /time", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "now")
	})
	h := cache.Handler(mux)

	get(h, "/items/7")
	waitStored(cache, 1)
	get(h, "/items/7")
	get(h, "/time")
	// Output:
	// 200 "item 7" Cache-Status: steadfast; fwd=uri-miss; stored
	// 200 "item 7" Cache-Status: steadfast; hit; ttl=60
	// 200 "now" Cache-Status:
}

// The response's own Cache-Control decides: s-maxage over max-age over the
// policy's TTL, and no-store or private is never stored. With the zero
// policy only responses that give their own freshness are stored.
func ExampleCache_Policy_cacheControl() {
	mr, rdb := exampleRedis()
	defer mr.Close()
	defer rdb.Close()
	cache, err := middleware.NewCache(rdb, middleware.CacheOptions{Now: exampleNow})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("/shared", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300, s-maxage=30")
		fmt.Fprint(w, "for everyone")
	})
	mux.HandleFunc("/mine", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age=300")
		fmt.Fprint(w, "for you")
	})
	mux.HandleFunc("/plain", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "no freshness given")
	})
	h := cache.Policy(cachepolicy.Policy{})(mux)

	get(h, "/shared")
	get(h, "/mine")
	get(h, "/plain")
	waitStored(cache, 1)
	get(h, "/shared")
	// Output:
	// 200 "for everyone" Cache-Status: steadfast; fwd=uri-miss; stored
	// 200 "for you" Cache-Status: steadfast; fwd=uri-miss; detail=private
	// 200 "no freshness given" Cache-Status: steadfast; fwd=uri-miss; detail=no-freshness
	// 200 "for everyone" Cache-Status: steadfast; hit; ttl=30
}

// downStore is a store whose Redis is unreachable.
type downStore struct{}

func (downStore) Get(context.Context, string) ([]byte, error) {
	return nil, resilience.ErrUnavailable
}

func (downStore) Set(context.Context, string, []byte, time.Duration) error {
	return resilience.ErrUnavailable
}

func (downStore) Del(context.Context, ...string) error { return resilience.ErrUnavailable }

// When Redis is unavailable the handler serves every request, uncached,
// and says so in Cache-Status; nothing fails because of Redis.
func Example_failOpen() {
	cache, err := middleware.NewCache(downStore{}, middleware.CacheOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
	h := cache.Policy(cachepolicy.Policy{TTL: time.Minute})(http.HandlerFunc(
		func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "still here") }))

	get(h, "/")
	get(h, "/")
	fmt.Println("bypasses:", cache.Stats().Bypasses)
	// Output:
	// 200 "still here" Cache-Status: steadfast; fwd=bypass; detail=redis-unavailable
	// 200 "still here" Cache-Status: steadfast; fwd=bypass; detail=redis-unavailable
	// bypasses: 2
}
