// Package steadfast is a set of net/http middleware that keeps a web
// service answering, and answering fast, when its Redis cache or its
// background workers misbehave.
//
// The parts, in the order a request meets them:
//
//   - [github.com/steadfast-go/steadfast/middleware]: http.Handler
//     wrappers. Cache (fails open: a Redis outage means uncached, never a
//     5xx), Breaker and Retry for handlers.
//   - [github.com/steadfast-go/steadfast/cachepolicy]: the pure decisions
//     the cache asks for: per-route policies, cache keys, what may be
//     stored and served (a subset of RFC 9111).
//   - [github.com/steadfast-go/steadfast/resilience]: the guarded Redis
//     client the cache reads and writes through. Configuration from the
//     environment, short deadlines, retry and a circuit breaker
//     (failsafe-go), and a prober that notices when Redis is back. Also
//     worker heartbeats and a retry runner for background tasks.
//
// Beside the request's way:
//
//   - [github.com/steadfast-go/steadfast/healthhandler]: a mountable
//     /health, /health/live and /health/ready in application/health+json,
//     where a cache outage is a warning, not a failure; its packages
//     [github.com/steadfast-go/steadfast/healthhandler/celery] and
//     [github.com/steadfast-go/steadfast/healthhandler/asynq] count Celery
//     workers and asynq servers.
//
// A service wires them like this:
//
//	cfg, err := resilience.ConfigFromEnv() // REDIS_URL, or REDISHOST + REDISPORT
//	if err != nil {
//		log.Fatal(err) // names the variable; never shows the password
//	}
//	rdb, err := resilience.NewRedis(cfg, resilience.Options{})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer rdb.Close()
//
//	cache, err := middleware.NewCache(rdb, middleware.CacheOptions{KeyPrefix: "items-api:"})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer cache.Close()
//
//	health, err := healthhandler.New(healthhandler.Options{ServiceID: "items-api"})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer health.Close()
//	redisCheck, err := healthhandler.Redis(rdb, healthhandler.RedisOptions{})
//	if err != nil {
//		log.Fatal(err)
//	}
//	if err := health.Add(redisCheck); err != nil {
//		log.Fatal(err)
//	}
//
//	mux := http.NewServeMux()
//	mux.Handle("GET /items/{id}", cache.Policy(cachepolicy.Policy{TTL: time.Minute})(items))
//	mux.Handle("/health", health)
//	mux.Handle("/health/", health)
//
// The runnable version of this, with workers, a handler breaker and an
// embedded Redis for a first run, is examples/echo-server.
package steadfast
