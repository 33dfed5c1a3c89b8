//go:build unix

package main

import (
	"errors"
	"log/slog"
	"time"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/middleware"
	"github.com/steadfast-go/steadfast/resilience"
)

// steadfastServer is the steadfast configuration: middleware.Cache with
// default options over a resilience.Redis with default options.
type steadfastServer struct {
	rdb            *resilience.Redis
	srv            *server
	breaker        func() string
	stats          func() any
	opTimeout      time.Duration
	healthPath     string
	healthInterval time.Duration
}

// healthInterval is the Redis health check's interval: shorter than the
// default (10 s) so that the health scenario's few seconds span several
// checks.
const healthInterval = time.Second

// serveSteadfast serves the origin behind middleware.Cache with default
// options, the route's policy the zero cachepolicy.Policy (the response's
// own max-age decides), over resilience.NewRedis with default options.
// Only the loggers are set, to keep the tables readable. /health is
// healthhandler with the Redis check, its interval set to healthInterval.
//
// name is "steadfast" or, with near set (the near cache on, with its
// defaults), "steadfast+near".
func serveSteadfast(name string, o *origin, redisAddr string, near *resilience.NearCacheOptions, logger *slog.Logger) (*steadfastServer, error) {
	return serveSteadfastFor(name, o, resilience.Config{Addr: redisAddr}, near, logger)
}

// serveSteadfastFor is serveSteadfast for any configuration: Sentinel,
// Cluster.
func serveSteadfastFor(name string, o *origin, cfg resilience.Config, near *resilience.NearCacheOptions, logger *slog.Logger) (*steadfastServer, error) {
	rdb, err := resilience.NewRedis(cfg, resilience.Options{Logger: logger, NearCache: near})
	if err != nil {
		return nil, err
	}
	cache, err := middleware.NewCache(rdb, middleware.CacheOptions{Logger: logger})
	if err != nil {
		return nil, errors.Join(err, rdb.Close())
	}
	health, err := healthhandler.New(healthhandler.Options{Logger: logger})
	if err != nil {
		return nil, errors.Join(err, cache.Close(), rdb.Close())
	}
	redisCheck, err := healthhandler.Redis(rdb, healthhandler.RedisOptions{Interval: healthInterval})
	if err == nil {
		err = health.Add(redisCheck)
	}
	if err != nil {
		return nil, errors.Join(err, health.Close(), cache.Close(), rdb.Close())
	}
	mux := routes(o, cache.Policy(cachepolicy.Policy{}))
	mux.Handle("GET /health", health)
	s, err := serve(name, mux)
	if err != nil {
		return nil, errors.Join(err, health.Close(), cache.Close(), rdb.Close())
	}
	s.closers = append(s.closers, health.Close, cache.Close, rdb.Close)
	return &steadfastServer{
		rdb:     rdb,
		srv:     s,
		breaker: func() string { return rdb.State().String() },
		stats: func() any {
			return map[string]any{"redis": rdb.Stats(), "cache": cache.Stats()}
		},
		opTimeout:      resilience.DefaultOpTimeout,
		healthPath:     "/health",
		healthInterval: healthInterval,
	}, nil
}
