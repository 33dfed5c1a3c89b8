package healthhandler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/resilience"
)

// show fetches url and prints its status code, report status and keys.
func show(url string) {
	res, err := http.Get(url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Body.Close()
	var rep healthhandler.Report
	if err := json.NewDecoder(res.Body).Decode(&rep); err != nil {
		fmt.Println(err)
		return
	}
	var keys []string
	for k := range rep.Checks {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Println(res.StatusCode, rep.Status, keys)
}

func ExampleNew() {
	quiet := slog.New(slog.DiscardHandler)
	m, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer m.Close()
	rdb, err := resilience.NewRedis(resilience.Config{Addr: m.Addr()}, resilience.Options{Logger: quiet, OpTimeout: time.Second})
	if err != nil {
		panic(err)
	}
	defer rdb.Close()

	health, err := healthhandler.New(healthhandler.Options{ServiceID: "items-api", Version: "1.4.2", Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer health.Close()
	// Redis is a cache here: the service works without it.
	redisCheck, err := healthhandler.Redis(rdb, healthhandler.RedisOptions{})
	if err != nil {
		panic(err)
	}
	if err := health.Add(redisCheck); err != nil {
		panic(err)
	}
	// The database is not: without it the service is not ready.
	if err := health.Add(healthhandler.Check{Name: "db", Critical: true, Run: func(ctx context.Context) ([]healthhandler.Observation, error) {
		return nil, nil // return nil, db.PingContext(ctx)
	}}); err != nil {
		panic(err)
	}
	_ = health.WaitChecked(context.Background())

	mux := http.NewServeMux()
	mux.Handle("/health", health)
	mux.Handle("/health/", health)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	show(srv.URL + "/health")
	show(srv.URL + "/health/live")
	show(srv.URL + "/health/ready")
	// Output:
	// 200 pass [db redis:breaker redis:connections redis:lastSuccess redis:responseTime]
	// 200 pass []
	// 200 pass [db]
}

// A failing non-critical dependency makes the report "warn" with HTTP
// 200; a failing critical one makes it "fail" with HTTP 503.
func ExampleCheck() {
	health, err := healthhandler.New(healthhandler.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer health.Close()
	_ = health.Add(healthhandler.Check{
		Name: "search", Interval: 30 * time.Second, Timeout: time.Second,
		Run: func(ctx context.Context) ([]healthhandler.Observation, error) {
			return []healthhandler.Observation{{
				Measurement: "responseTime", Value: 850, Unit: "ms",
				Status: healthhandler.StatusWarn, Output: "search is slow",
			}}, nil
		},
	})
	_ = health.WaitChecked(context.Background())
	srv := httptest.NewServer(health)
	defer srv.Close()

	show(srv.URL + "/health")
	_ = health.Add(healthhandler.Check{Name: "db", Critical: true, Run: func(ctx context.Context) ([]healthhandler.Observation, error) {
		return nil, errors.New("dial tcp db.internal:5432: connection refused")
	}})
	_ = health.WaitChecked(context.Background())
	show(srv.URL + "/health")
	// Output:
	// 200 warn [search:responseTime]
	// 503 fail [db search:responseTime]
}

// Drain at the start of shutdown: readiness fails so that load balancers
// stop sending traffic, while liveness and the report go on.
func ExampleHandler_Drain() {
	health, err := healthhandler.New(healthhandler.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer health.Close()
	srv := httptest.NewServer(health)
	defer srv.Close()

	show(srv.URL + "/health/ready")
	health.Drain()
	show(srv.URL + "/health/ready")
	show(srv.URL + "/health/live")
	// Output:
	// 200 pass []
	// 503 fail []
	// 200 pass []
}

func ExampleWorkers() {
	quiet := slog.New(slog.DiscardHandler)
	m, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer m.Close()
	rdb, err := resilience.NewRedis(resilience.Config{Addr: m.Addr()}, resilience.Options{Logger: quiet, OpTimeout: time.Second})
	if err != nil {
		panic(err)
	}
	defer rdb.Close()

	// Each worker process publishes heartbeats...
	hb, err := resilience.NewHeartbeat(rdb, resilience.HeartbeatOptions{ID: "worker-1", Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer hb.Close()

	// ...and the API counts them. Operators may see which ones.
	health, err := healthhandler.New(healthhandler.Options{
		Logger:      quiet,
		ShowDetails: func(r *http.Request) bool { return r.Header.Get("X-Operator") == "yes" },
	})
	if err != nil {
		panic(err)
	}
	defer health.Close()
	workers, err := healthhandler.Workers(rdb, healthhandler.WorkersOptions{Min: 1, Critical: true})
	if err != nil {
		panic(err)
	}
	if err := health.Add(workers); err != nil {
		panic(err)
	}
	_ = health.WaitChecked(context.Background())

	for _, operator := range []string{"no", "yes"} {
		req := httptest.NewRequest(http.MethodGet, "/health", nil)
		req.Header.Set("X-Operator", operator)
		rec := httptest.NewRecorder()
		health.ServeHTTP(rec, req)
		var rep healthhandler.Report
		_ = json.Unmarshal(rec.Body.Bytes(), &rep)
		c := rep.Checks["workers:count"][0]
		fmt.Printf("%d %s count=%v output=%q\n", rec.Code, rep.Status, c.ObservedValue, c.Output)
	}
	// Output:
	// 200 pass count=1 output=""
	// 200 pass count=1 output="alive: worker-1"
}
