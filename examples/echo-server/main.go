// Command echo-server is the runnable example of steadfast: a small API
// with a Redis response cache that fails open, a handler breaker and
// retry, workers that publish heartbeats, and a mountable /health.
//
//	make run                                 # embedded Redis (miniredis)
//	cd examples/echo-server && go run .      # the same: a module of its own
//	REDIS_URL=redis://:pw@127.0.0.1:6379/0 go run .
//	go run . -worker                         # a separate worker process
//
// Environment: ADDR (listen address, default :8080), REDIS_URL or
// REDISHOST + REDISPORT (+ REDISUSER, REDIS_PASSWORD, REDIS_DB), ITEM_DELAY
// (simulated work per uncached item, default 50ms), WORKERS (in-process
// workers, default 1), UPSTREAM_FAIL_RATE (share of /upstream calls that
// fail, default 0.3), CELERY_CHECK (events or ping: count Celery workers on
// the same Redis), ASYNQ_CHECK (1: count asynq servers), HEALTH_TOKEN
// (callers sending "Authorization: Bearer $HEALTH_TOKEN" see /health
// details; unset, nobody does) and NEAR_CACHE (on: serve hits from process
// memory, kept coherent by Redis; default off). Metrics are served to
// Prometheus at /metrics.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gorilla/handlers"
	"github.com/redis/go-redis/v9"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/healthhandler/asynq"
	"github.com/steadfast-go/steadfast/healthhandler/celery"
	"github.com/steadfast-go/steadfast/metrics"
	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

// Keys this program uses in Redis.
const (
	keyPrefix    = "echo:"
	heartbeatKey = "echo:workers"
	taskQueue    = "echo:tasks"
	processedKey = "echo:processed"
)

// exitUsage is the exit status for a malformed setting.
const exitUsage = 2

func main() {
	workerOnly := flag.Bool("worker", false, "run only the workers (a separate worker process), no HTTP server")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	// go-redis logs every failed dial through a logger of its own, which
	// is process-wide: a program (never a library) may route it. Here it
	// goes to slog at debug level, since steadfast already logs one line
	// per change of Redis's state.
	redis.SetLogger(goRedisLogger{logger})

	s, err := loadSettings()
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo-server:", err) // one line, never a password
		os.Exit(exitUsage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, logger, s, *workerOnly); err != nil {
		logger.Error("echo-server stopped", slog.String("error", err.Error()))
		var se *settingError
		if errors.As(err, &se) {
			os.Exit(exitUsage)
		}
		os.Exit(1)
	}
}

// run wires every part and serves until ctx ends, then shuts down in
// order: readiness fails, in-flight requests finish, every Close runs.
func run(ctx context.Context, logger *slog.Logger, s settings, workerOnly bool) error {
	redisCfg := s.redis
	if s.embedded {
		if workerOnly {
			return &settingError{msg: "-worker needs REDIS_URL, or REDISHOST and REDISPORT: an embedded Redis is not shared between processes"}
		}
		mr, err := miniredis.Run()
		if err != nil {
			return fmt.Errorf("embedded redis: %w", err)
		}
		defer mr.Close()
		redisCfg = resilience.Config{Addr: mr.Addr()}
		logger.Info("no REDIS_URL or REDISHOST/REDISPORT set: using an embedded Redis (miniredis)", slog.String("addr", mr.Addr()))
	}

	ropts := resilience.Options{Logger: logger}
	if s.nearCache {
		ropts.NearCache = &resilience.NearCacheOptions{} // the documented defaults: 32 MiB, 1 ms drain
	}
	rdb, err := resilience.NewRedis(redisCfg, ropts)
	if err != nil {
		return err
	}
	defer closeLogged(logger, "redis", rdb)
	logger.Info("redis", slog.Any("config", redisCfg)) // Config's LogValue hides the password

	workers, err := startWorkers(rdb, logger, s.workers)
	if err != nil {
		return err
	}
	defer closeLogged(logger, "workers", workers)
	if workerOnly {
		logger.Info("worker process running", slog.Int("workers", s.workers))
		<-ctx.Done()
		return nil
	}

	cache, err := middleware.NewCache(rdb, middleware.CacheOptions{
		KeyPrefix: keyPrefix, Logger: logger,
		// CompressHandler, outside the cache, says "Vary: Accept-Encoding"
		// about its own work: the cache stores the identity response and
		// the compressor encodes it again on every hit. Any other Vary,
		// Cache-Control or Set-Cookie set outside the cache counts.
		OuterVary: []string{"Accept-Encoding"},
	})
	if err != nil {
		return err
	}
	defer closeLogged(logger, "cache", cache)

	breaker, err := middleware.NewBreaker(middleware.BreakerOptions{Name: "upstream", Logger: logger, Delay: 5 * time.Second})
	if err != nil {
		return err
	}
	retry, err := middleware.NewRetry(middleware.RetryOptions{Name: "upstream", Logger: logger})
	if err != nil {
		return err
	}

	health, err := healthhandler.New(healthhandler.Options{
		ServiceID:   "echo-server",
		Description: "steadfast example",
		// Details (error texts, hosts, user names, worker ids) only for
		// callers that send the bearer token HEALTH_TOKEN; nobody when it
		// is unset. Not by remote address: behind a proxy on this host
		// every caller would be loopback.
		ShowDetails: healthhandler.BearerToken(s.healthToken),
		Logger:      logger,
	})
	if err != nil {
		return err
	}
	defer closeLogged(logger, "health", health)
	// Redis is a cache here, and workers are a background concern: both
	// are non-critical, so their failure makes /health "warn" (HTTP 200)
	// and never takes the service out of rotation.
	redisCheck, err := healthhandler.Redis(rdb, healthhandler.RedisOptions{Interval: 2 * time.Second, Timeout: time.Second})
	if err != nil {
		return err
	}
	workersCheck, err := healthhandler.Workers(rdb, healthhandler.WorkersOptions{
		Key: heartbeatKey, Min: 1, TTL: 3 * heartbeatInterval, Interval: 2 * time.Second, Timeout: time.Second,
	})
	if err != nil {
		return err
	}
	if err := health.Add(redisCheck); err != nil {
		return err
	}
	if err := health.Add(workersCheck); err != nil {
		return err
	}

	// Workers not written with steadfast: Celery workers on this Redis
	// (CELERY_CHECK=events listens to their heartbeats, =ping asks them)
	// and asynq servers (ASYNQ_CHECK=1).
	switch s.celeryCheck {
	case "events":
		events, err := celery.NewEvents(rdb, celery.Options{Min: 1, Logger: logger})
		if err != nil {
			return err
		}
		defer closeLogged(logger, "celery", events)
		if err := health.Add(events.Check()); err != nil {
			return err
		}
	case "ping":
		ping, err := celery.Ping(rdb, celery.PingOptions{Min: 1})
		if err != nil {
			return err
		}
		if err := health.Add(ping); err != nil {
			return err
		}
	}
	if s.asynqCheck {
		servers, err := asynq.Servers(rdb, asynq.Options{Min: 1})
		if err != nil {
			return err
		}
		if err := health.Add(servers); err != nil {
			return err
		}
	}

	// Metrics: OpenTelemetry, served to Prometheus at /metrics.
	provider, err := newPrometheusProvider()
	if err != nil {
		return err
	}
	defer closeLogged(logger, "meter provider", provider)
	m, err := metrics.Instrument(provider, metrics.Sources{
		Redis: rdb, Cache: cache, Health: health,
		Breakers: []*middleware.Breaker{breaker}, Retries: []*middleware.Retry{retry},
	})
	if err != nil {
		return err
	}
	defer closeLogged(logger, "metrics", m)

	items := newItems(s.itemDelay, rdb, logger)
	itemPolicy := cache.Policy(cachepolicy.Policy{
		TTL:                  60 * time.Second,
		StaleWhileRevalidate: 30 * time.Second,
		StaleIfError:         10 * time.Minute,
	})
	mux := http.NewServeMux()
	mux.Handle("GET /items/{id}", itemPolicy(http.HandlerFunc(items.get)))
	mux.Handle("PUT /items/{id}", itemPolicy(http.HandlerFunc(items.put))) // a success invalidates the GET
	mux.Handle("GET /echo", cache.Policy(cachepolicy.Policy{TTL: 10 * time.Second})(http.HandlerFunc(echo)))
	mux.HandleFunc("GET /time", now) // not wrapped: never cached
	mux.Handle("GET /upstream", breaker.Handler(retry.Handler(flakyUpstream(s.upstreamFailRate))))
	mux.Handle("/health", health)
	mux.Handle("/health/", health)
	mux.Handle("GET /metrics", provider.handler)

	// Compression sits outside the cache, so stored bodies stay identity-
	// encoded; CacheOptions.OuterVary above tells the cache that its
	// "Vary: Accept-Encoding" is the compressor's own.
	h := handlers.CompressHandler(mux)
	h = handlers.RecoveryHandler(handlers.RecoveryLogger(recoveryLogger{logger}))(h)
	h = handlers.CombinedLoggingHandler(os.Stdout, h)

	srv := &http.Server{
		Addr:              s.addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.addr, err)
	}
	logger.Info("listening", slog.String("addr", ln.Addr().String()))
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	health.Drain() // /health/ready fails from now on
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// recoveryLogger sends gorilla's recovered panics to slog.
type recoveryLogger struct{ l *slog.Logger }

func (r recoveryLogger) Println(v ...any) {
	r.l.Error("handler panic", slog.String("panic", fmt.Sprint(v...)))
}

// goRedisLogger sends go-redis's own log lines to slog at debug level.
type goRedisLogger struct{ l *slog.Logger }

func (g goRedisLogger) Printf(ctx context.Context, format string, v ...any) {
	g.l.DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

// closeLogged closes c at shutdown, logging (not failing on) its error.
func closeLogged(logger *slog.Logger, name string, c interface{ Close() error }) {
	if err := c.Close(); err != nil {
		logger.Warn("close", slog.String("component", name), slog.String("error", err.Error()))
	}
}
