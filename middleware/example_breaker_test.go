package middleware_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/steadfast-go/steadfast/middleware"
)

func ExampleNewBreaker() {
	breaker, err := middleware.NewBreaker(middleware.BreakerOptions{
		Name:             "upstream",
		FailureThreshold: 2,
		Delay:            30 * time.Second,
		OnStateChange: func(c middleware.BreakerStateChange) {
			fmt.Printf("breaker %s: %s -> %s\n", c.Name, c.From, c.To)
		},
		Logger: slog.New(slog.DiscardHandler), // nil would log to slog.Default()
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	calls := 0
	upstream := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls++
		http.Error(w, "upstream is down", http.StatusBadGateway)
	})
	handler := breaker.Handler(upstream)

	for range 3 {
		rr := httptest.NewRecorder()
		handler.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/upstream", nil))
		fmt.Printf("%d Retry-After=%q %s", rr.Code, rr.Header().Get("Retry-After"), rr.Body)
	}
	stats := breaker.Stats()
	fmt.Printf("state %s, rejected %d, handler called %d times\n", stats.State, stats.Rejected, calls)
	// Output:
	// 502 Retry-After="" upstream is down
	// breaker upstream: closed -> open
	// 502 Retry-After="" upstream is down
	// 503 Retry-After="30" service unavailable: circuit breaker open
	// state open, rejected 1, handler called 2 times
}

func ExampleNewRetry() {
	retry, err := middleware.NewRetry(middleware.RetryOptions{
		MaxAttempts:  3,
		InitialDelay: time.Millisecond,
		MaxDelay:     10 * time.Millisecond,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	attempts := 0
	flaky := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		attempts++
		if attempts < 3 {
			http.Error(w, "try again", http.StatusServiceUnavailable) // held back, never sent
			return
		}
		fmt.Fprintf(w, "hello after %d attempts\n", attempts)
	})
	handler := retry.Handler(flaky)

	rr := httptest.NewRecorder()
	handler.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/greeting", nil))
	fmt.Print(rr.Code, " ", rr.Body)

	// POST is not idempotent: not retried unless listed in Methods.
	attempts = 0
	rr = httptest.NewRecorder()
	handler.ServeHTTP(rr, httptest.NewRequest(http.MethodPost, "/greeting", nil))
	fmt.Print(rr.Code, " ", rr.Body)

	fmt.Printf("%+v\n", retry.Stats())
	// Output:
	// 200 hello after 3 attempts
	// 503 try again
	// {Succeeded:0 Recovered:1 Retries:2 Exhausted:0}
}
