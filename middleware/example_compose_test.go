package middleware_test

import (
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"time"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/middleware"
)

// Cache outside, Breaker inside: when the upstream fails, the breaker's
// 5xx (its own 503 once it is open) is replaced by the stale entry, as long
// as the entry is within its stale-if-error window.
func Example_cacheAndBreaker() {
	mr, rdb := exampleRedis()
	defer mr.Close()
	defer rdb.Close()

	now := exampleNow()
	cache, err := middleware.NewCache(rdb, middleware.CacheOptions{Now: func() time.Time { return now }})
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
	breaker, err := middleware.NewBreaker(middleware.BreakerOptions{
		FailureThreshold: 1, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}

	healthy, calls := true, 0
	upstream := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls++
		if !healthy {
			http.Error(w, "upstream down", http.StatusBadGateway)
			return
		}
		fmt.Fprint(w, "prices v1")
	})
	h := cache.Policy(cachepolicy.Policy{TTL: time.Minute, StaleIfError: time.Hour})(
		breaker.Handler(upstream))

	get(h, "/prices")
	waitStored(cache, 1)

	now = now.Add(2 * time.Minute) // the entry is stale now
	healthy = false
	get(h, "/prices") // the upstream fails: the breaker opens
	get(h, "/prices") // the open breaker answers 503 without calling it
	fmt.Println("upstream calls:", calls, "breaker:", breaker.Stats().State)
	// Output:
	// 200 "prices v1" Cache-Status: steadfast; fwd=uri-miss; stored
	// 200 "prices v1" Cache-Status: steadfast; hit; ttl=-60; detail=stale-if-error
	// 200 "prices v1" Cache-Status: steadfast; hit; ttl=-60; detail=stale-if-error
	// upstream calls: 2 breaker: open
}
