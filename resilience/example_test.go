package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/steadfast-go/steadfast/resilience"
)

func ExampleParseURL() {
	cfg, err := resilience.ParseURL("redis://app:s3cret@cache.internal:6380/2")
	fmt.Println(cfg, err)

	// Errors name what is wrong and never show the password.
	_, err = resilience.ParseURL("redis://app:s3cret@cache.internal:63o0/2")
	fmt.Println(err)
	// Output:
	// redis://app:***@cache.internal:6380/2 <nil>
	// url="redis://app:***@cache.internal:63o0/2": malformed URL: invalid port after host
}

func ExampleNewRedis() {
	mr, err := miniredis.Run() // a real server stands here in production
	if err != nil {
		panic(err)
	}
	defer mr.Close()

	rdb, err := resilience.NewRedis(resilience.Config{Addr: mr.Addr()}, resilience.Options{
		Logger:    slog.New(slog.DiscardHandler),
		OpTimeout: 5 * time.Second, // generous for a busy test machine; the default is 50 ms
	})
	if err != nil {
		panic(err)
	}
	defer rdb.Close()

	ctx := context.Background()
	// A strict start: wait until Redis has answered once. Without it the
	// program starts at once and caches as soon as Redis is there.
	if err := rdb.WaitReady(ctx); err != nil {
		panic(err)
	}
	if err := rdb.Set(ctx, "greeting", []byte("hello"), time.Minute); err != nil {
		panic(err)
	}
	v, err := rdb.Get(ctx, "greeting")
	fmt.Println(string(v), err)

	_, err = rdb.Get(ctx, "absent")
	fmt.Println(errors.Is(err, resilience.ErrNotFound), rdb.State())
	// Output:
	// hello <nil>
	// true closed
}

func ExampleRetry() {
	attempts := 0
	err := resilience.Retry(context.Background(), resilience.RetryOptions{
		Name:    "reindex",
		Backoff: time.Millisecond,
		Logger:  slog.New(slog.DiscardHandler),
	}, func(ctx context.Context) error {
		attempts++
		if attempts < 3 {
			return errors.New("broker unreachable")
		}
		return nil
	})
	fmt.Println(attempts, err)
	// Output:
	// 3 <nil>
}

// The near cache needs a server that tracks keys for its clients
// (redis-server 6 or later). miniredis does not: the near cache turns
// itself off, says why, and every Get goes to Redis as before.
func ExampleNearCacheOptions() {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()

	rdb, err := resilience.NewRedis(resilience.Config{Addr: mr.Addr()}, resilience.Options{
		Logger:    slog.New(slog.DiscardHandler),
		OpTimeout: 5 * time.Second,
		NearCache: &resilience.NearCacheOptions{}, // 32 MiB, 1 ms drain, 10 s backstop
	})
	if err != nil {
		panic(err)
	}
	defer func() { _ = rdb.Close() }()

	// It decides once Redis answers.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if s := rdb.Stats().NearCache; !s.Serving && s.Reason != "waiting for Redis to confirm key tracking" {
			break
		}
	}
	s := rdb.Stats().NearCache
	fmt.Printf("serving: %v (%s)\n", s.Serving, s.Reason)
	// Output: serving: false (the server refused CLIENT TRACKING)
}
