package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/steadfast-go/steadfast/resilience"
)

// heartbeatInterval is how often each worker says it is alive; /health
// counts a worker dead after three missed beats.
const heartbeatInterval = 2 * time.Second

// pollInterval is how often an idle worker looks for a task.
const pollInterval = 500 * time.Millisecond

// workerPool runs the demo workers: each publishes heartbeats and takes
// tasks from a Redis list, retrying Redis failures with backoff and
// logging them instead of crashing.
type workerPool struct {
	stop  context.CancelFunc
	wg    sync.WaitGroup
	beats []*resilience.Heartbeat
}

func startWorkers(rdb *resilience.Redis, logger *slog.Logger, n int) (*workerPool, error) {
	ctx, stop := context.WithCancel(context.Background())
	p := &workerPool{stop: stop}
	host, _ := os.Hostname()
	for i := range n {
		id := fmt.Sprintf("%s-%d-%d", host, os.Getpid(), i)
		hb, err := resilience.NewHeartbeat(rdb, resilience.HeartbeatOptions{
			Key: heartbeatKey, ID: id, Interval: heartbeatInterval, Logger: logger,
		})
		if err != nil {
			_ = p.Close()
			return nil, err
		}
		p.beats = append(p.beats, hb)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			work(ctx, rdb, logger.With(slog.String("worker", id)))
		}()
	}
	return p, nil
}

// work takes tasks until ctx ends.
func work(ctx context.Context, rdb *resilience.Redis, logger *slog.Logger) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := resilience.Retry(ctx, resilience.RetryOptions{
			Name: "take-task", MaxAttempts: 4, Backoff: 100 * time.Millisecond, MaxBackoff: time.Second, Logger: logger,
		}, func(ctx context.Context) error { return takeTask(ctx, rdb, logger) })
		if err != nil && ctx.Err() == nil {
			logger.Warn("task skipped after retries", slog.String("error", err.Error()))
		}
	}
}

// takeTask processes one queued task, if any. LPOP is not idempotent: if
// Redis applies it and the reply is lost, that task is gone; a real
// worker would use LMOVE to a processing list.
func takeTask(ctx context.Context, rdb *resilience.Redis, logger *slog.Logger) error {
	var task string
	err := rdb.Do(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		v, err := c.LPop(ctx, taskQueue).Result()
		task = v
		return err
	})
	switch {
	case errors.Is(err, redis.Nil):
		return nil // nothing to do
	case err != nil:
		return err
	}
	logger.Info("task done", slog.String("task", task))
	return rdb.Do(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		return c.Incr(ctx, processedKey).Err()
	})
}

// Close stops the workers and their heartbeats (which removes them from
// the live set at once).
func (p *workerPool) Close() error {
	p.stop()
	p.wg.Wait()
	var errs []error
	for _, hb := range p.beats {
		errs = append(errs, hb.Close())
	}
	return errors.Join(errs...)
}
