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
func serveSteadfast(o *origin, redisAddr string, logger *slog.Logger) (*steadfastServer, error) {
	return serveSteadfastFor(o, resilience.Config{Addr: redisAddr}, logger)
}

// serveSteadfastFor is serveSteadfast for any configuration: Sentinel,
// Cluster.
func serveSteadfastFor(o *origin, cfg resilience.Config, logger *slog.Logger) (*steadfastServer, error) {
	rdb, err := resilience.NewRedis(cfg, resilience.Options{Logger: logger})
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
	if err := health.Add(healthhandler.Redis(rdb, healthhandler.RedisOptions{Interval: healthInterval})); err != nil {
		return nil, errors.Join(err, health.Close(), cache.Close(), rdb.Close())
	}
	mux := routes(o, cache.Policy(cachepolicy.Policy{}))
	mux.Handle("GET /health", health)
	s, err := serve("steadfast", mux)
	if err != nil {
		return nil, errors.Join(err, health.Close(), cache.Close(), rdb.Close())
	}
	s.closers = append(s.closers, health.Close, cache.Close, rdb.Close)
	return &steadfastServer{
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
