package resilience

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/redis/go-redis/v9"
)

// Defaults used when a [HeartbeatOptions] field is zero.
const (
	DefaultHeartbeatKey      = "steadfast:workers"
	DefaultHeartbeatInterval = 5 * time.Second
)

// Log attribute keys of the heartbeat.
const (
	logKeyWorker = "worker"
	logKeySetKey = "key"
)

// Heartbeat scores are milliseconds since the Unix epoch by the Redis
// server's own clock (TIME), never the host's: thirteen digits, exact in
// Lua's numbers and in Lua's number-to-string conversion (%.14g) until the
// year 2286. Both scripts write after TIME, which needs Redis 5 or later
// (effect replication).
var (
	// beatScript records ARGV[1] as alive now; it returns now.
	beatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
return now
`)
	// workersScript removes members older than ARGV[1] ms (when positive)
	// and returns {now, {member, score, ...}}, newest first.
	workersScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prune = tonumber(ARGV[1])
if prune > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - prune))
end
return {now, redis.call('ZREVRANGE', KEYS[1], 0, -1, 'WITHSCORES')}
`)
)

// HeartbeatOptions tune a [Heartbeat]. The zero value is ready to use.
type HeartbeatOptions struct {
	// Key is the sorted set shared by all workers of a kind: member =
	// worker ID, score = time of its last beat. Empty means
	// [DefaultHeartbeatKey] ("steadfast:workers").
	Key string

	// ID names this worker in the set; it must be unique among live
	// workers. Empty means "<hostname>-<pid>".
	ID string

	// Interval is the time between beats. Readers should call a worker
	// dead only after missing several beats (healthhandler uses three).
	// Zero means [DefaultHeartbeatInterval] (5 s).
	Interval time.Duration

	// Backoff is the first wait after a failed beat; waits double, with
	// jitter, up to Interval, and beating goes on for as long as Redis is
	// down. Zero means Interval/10.
	Backoff time.Duration

	// Logger receives one line when beats start failing and one when they
	// succeed again, never one per attempt. Nil means slog.Default().
	Logger *slog.Logger
}

// Heartbeat publishes that a worker process is alive: every Interval it
// records its ID in a Redis sorted set with the Redis server's current time
// as the score, so that clock skew between hosts cannot make a live worker
// look dead. While Redis fails it keeps trying, with capped exponential
// backoff; on [Heartbeat.Close] it stops and removes its ID. A worker that
// dies without Close drops out once readers see its last beat grow old
// (see [Redis.Workers]).
//
// Build one with [NewHeartbeat]; the zero value is not usable. A Heartbeat
// is safe for concurrent use.
type Heartbeat struct {
	r        *Redis
	key, id  string
	interval time.Duration
	backoff  time.Duration
	log      *slog.Logger

	stop context.CancelFunc // ends the beating goroutine
	wg   sync.WaitGroup

	failing  atomic.Bool
	beats    atomic.Uint64
	failures atomic.Uint64
	lastBeat atomic.Int64 // Redis server clock, unix ms; 0 = never
	lastErr  atomic.Pointer[string]

	closeOnce sync.Once
	closeErr  error
}

// HeartbeatStats is a snapshot of a [Heartbeat].
type HeartbeatStats struct {
	// ID and Key say which member of which set this worker writes.
	ID, Key string
	// Beats counts beats Redis recorded; Failures the attempts that
	// failed.
	Beats, Failures uint64
	// LastBeat is the Redis server's time of the last recorded beat; zero
	// if none yet.
	LastBeat time.Time
	// Failing says whether the latest attempt failed; LastError is the
	// text of the latest failure (it never holds a password).
	Failing   bool
	LastError string
}

// NewHeartbeat starts publishing heartbeats for one worker through r. It
// beats once before returning (one attempt, bounded by r's operation
// deadline) so that a worker is visible at once when Redis is up; when
// Redis is down that is not an error: beating goes on in the background
// until [Heartbeat.Close]. It returns an error only for a nil r or a
// negative option.
func NewHeartbeat(r *Redis, opts HeartbeatOptions) (*Heartbeat, error) {
	if r == nil {
		return nil, fmt.Errorf("resilience: NewHeartbeat of a nil Redis: %w", ErrInvalidOption)
	}
	if opts.Interval < 0 || opts.Backoff < 0 {
		return nil, fmt.Errorf("resilience: HeartbeatOptions.Interval (%v) and Backoff (%v) must not be negative: %w", opts.Interval, opts.Backoff, ErrInvalidOption)
	}
	h := &Heartbeat{
		r:        r,
		key:      opts.Key,
		id:       opts.ID,
		interval: opts.Interval,
		backoff:  opts.Backoff,
		log:      opts.Logger,
	}
	if h.key == "" {
		h.key = DefaultHeartbeatKey
	}
	if h.id == "" {
		h.id = defaultWorkerID()
	}
	if h.interval == 0 {
		h.interval = DefaultHeartbeatInterval
	}
	if h.backoff == 0 {
		h.backoff = h.interval / 10
	}
	h.backoff = min(max(h.backoff, time.Millisecond), h.interval)
	if h.log == nil {
		h.log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	first := h.beat(ctx)
	h.wg.Add(1)
	go h.run(ctx, first)
	return h, nil
}

func defaultWorkerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}

// ID returns the worker's ID, the member it writes.
func (h *Heartbeat) ID() string { return h.id }

// Stats returns a snapshot. It does no I/O.
func (h *Heartbeat) Stats() HeartbeatStats {
	s := HeartbeatStats{
		ID: h.id, Key: h.key,
		Beats: h.beats.Load(), Failures: h.failures.Load(),
		Failing: h.failing.Load(),
	}
	if ms := h.lastBeat.Load(); ms != 0 {
		s.LastBeat = time.UnixMilli(ms)
	}
	if e := h.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	return s
}

// run beats every interval; a failed beat is retried with backoff, without
// limit, until it succeeds or the heartbeat is closed. It stops early only
// when r itself is closed, since nothing can beat through it then.
func (h *Heartbeat) run(ctx context.Context, first error) {
	defer h.wg.Done()
	policy := retrypolicy.NewBuilder[any]().
		HandleIf(func(_ any, err error) bool {
			return err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed)
		}).
		WithMaxRetries(-1).
		WithBackoff(h.backoff, h.interval).
		WithJitterFactor(0.2).
		ReturnLastFailure().
		Build()
	exec := failsafe.With[any](policy).WithContext(ctx)
	beat := func() error { return h.beat(ctx) }

	err := first
	wait := h.interval
	if err != nil {
		wait = h.backoff
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		if errors.Is(err, ErrClosed) {
			h.log.Warn("heartbeat stopped: redis client closed",
				slog.String(logKeySetKey, h.key), slog.String(logKeyWorker, h.id))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		err = exec.Run(beat)
		timer.Reset(h.interval)
	}
}

// beat records one beat. It logs the first failure after a success and the
// first success after a failure: one line per transition.
func (h *Heartbeat) beat(ctx context.Context) error {
	var now int64
	err := h.r.DoIdempotent(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		v, err := beatScript.Run(ctx, c, []string{h.key}, h.id).Int64()
		now = v
		return err
	})
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, ErrClosed) {
			return err // closing, or nothing left to beat through: not a Redis failure
		}
		h.failures.Add(1)
		msg := err.Error()
		h.lastErr.Store(&msg)
		if !h.failing.Swap(true) {
			h.log.Warn("heartbeat failing; retrying with backoff",
				slog.String(logKeySetKey, h.key), slog.String(logKeyWorker, h.id), slog.String(logKeyError, msg))
		}
		return fmt.Errorf("heartbeat %q: %w", h.id, err)
	}
	h.beats.Add(1)
	h.lastBeat.Store(now)
	if h.failing.Swap(false) {
		h.log.Info("heartbeat resumed",
			slog.String(logKeySetKey, h.key), slog.String(logKeyWorker, h.id))
	}
	return nil
}

// Close stops beating, waits for the beating goroutine, then removes the
// worker's ID from the set (one guarded operation, bounded by the Redis
// operation deadline). If the removal fails, Close returns the error and
// the ID drops out by age like a dead worker's. Close is safe to call more
// than once; later calls return the first call's result.
func (h *Heartbeat) Close() error {
	h.closeOnce.Do(func() {
		h.stop()
		h.wg.Wait()
		err := h.r.DoIdempotent(context.Background(), func(ctx context.Context, c redis.UniversalClient) error {
			return c.ZRem(ctx, h.key, h.id).Err()
		})
		if err != nil {
			h.closeErr = fmt.Errorf("heartbeat %q remove: %w", h.id, err)
		}
	})
	return h.closeErr
}

// Worker is one member of a heartbeat set, as the Redis server's clock
// sees it.
type Worker struct {
	// ID is the worker's ID.
	ID string
	// LastBeat is the Redis server's time of its last beat.
	LastBeat time.Time
	// Age is how long ago that was, by the same clock; never negative.
	Age time.Duration
}

// Workers reads the heartbeat set at key (empty means
// [DefaultHeartbeatKey]) in one guarded, retried round trip, newest beat
// first. Ages are measured by the Redis server's clock, so host clock skew
// does not change them. When pruneAfter is positive, members whose last
// beat is older than that are removed first, in the same script. It
// returns [ErrUnavailable] at once while the breaker is open.
func (r *Redis) Workers(ctx context.Context, key string, pruneAfter time.Duration) ([]Worker, error) {
	if key == "" {
		key = DefaultHeartbeatKey
	}
	var reply any
	err := r.DoIdempotent(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		v, err := workersScript.Run(ctx, c, []string{key}, max(pruneAfter.Milliseconds(), 0)).Result()
		reply = v
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("workers %q: %w", key, err)
	}
	ws, err := parseWorkers(reply)
	if err != nil {
		return nil, fmt.Errorf("workers %q: %w", key, err)
	}
	return ws, nil
}

// parseWorkers decodes {now, {member, score, ...}}.
func parseWorkers(reply any) ([]Worker, error) {
	top, ok := reply.([]any)
	if !ok || len(top) != 2 {
		return nil, fmt.Errorf("unexpected reply %T", reply)
	}
	now, ok := top[0].(int64)
	if !ok {
		return nil, fmt.Errorf("unexpected time %T", top[0])
	}
	flat, ok := top[1].([]any)
	if !ok || len(flat)%2 != 0 {
		return nil, fmt.Errorf("unexpected members %T", top[1])
	}
	ws := make([]Worker, 0, len(flat)/2)
	for i := 0; i < len(flat); i += 2 {
		id, ok1 := flat[i].(string)
		sc, ok2 := flat[i+1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("unexpected member %T %T", flat[i], flat[i+1])
		}
		score, err := strconv.ParseFloat(sc, 64)
		if err != nil {
			return nil, fmt.Errorf("score of %q: %w", id, err)
		}
		ms := int64(score)
		ws = append(ws, Worker{
			ID:       id,
			LastBeat: time.UnixMilli(ms),
			Age:      time.Duration(max(now-ms, 0)) * time.Millisecond,
		})
	}
	return ws, nil
}
