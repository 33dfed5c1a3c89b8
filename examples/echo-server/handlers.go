package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/steadfast-go/steadfast/resilience"
)

// Bounds that keep clients from growing the example without end.
const (
	// maxItems caps the items a PUT may change; a PUT for a new id beyond
	// it is refused with 507. A GET stores nothing.
	maxItems = 10_000
	// maxTasks caps the Redis task queue; a task beyond it is dropped.
	maxTasks = 1_000
)

// pushBounded appends ARGV[1] to the list KEYS[1] only while it holds fewer
// than ARGV[2] entries, in one step: it returns the new length, or -1 when
// the list is full.
var pushBounded = redis.NewScript(`
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
return redis.call('RPUSH', KEYS[1], ARGV[1])`)

// items is the example's backend: an in-memory store whose reads take
// ITEM_DELAY, standing in for a slow database. Only changed items are
// kept, at most maxItems of them; any other id reads as its first version.
type items struct {
	delay  time.Duration
	rdb    *resilience.Redis
	logger *slog.Logger
	epoch  time.Time // UpdatedAt of every item never changed

	mu   sync.Mutex
	data map[string]item // guarded by mu: changed items only
}

type item struct {
	ID          string    `json:"id"`
	Version     int       `json:"version"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Tags        []string  `json:"tags"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

func newItems(delay time.Duration, rdb *resilience.Redis, logger *slog.Logger) *items {
	return &items{
		delay: delay, rdb: rdb, logger: logger,
		epoch: time.Now().UTC().Truncate(time.Second),
		data:  make(map[string]item),
	}
}

// lookup returns the item: a changed one, or the first version of any id,
// made up and not stored. Call with s.mu held.
func (s *items) lookup(id string) item {
	if it, ok := s.data[id]; ok {
		return it
	}
	return item{
		ID: id, Version: 1, Name: "item " + id,
		Description: strings.Repeat("A steadfast example item, served from the cache when Redis is up. ", 12),
		Tags:        []string{"example", "steadfast", "cached"},
		UpdatedAt:   s.epoch,
	}
}

// get serves GET /items/{id}: about 1 KiB of JSON after the simulated work.
func (s *items) get(w http.ResponseWriter, r *http.Request) {
	select {
	case <-time.After(s.delay):
	case <-r.Context().Done():
		return
	}
	s.mu.Lock()
	it := s.lookup(r.PathValue("id"))
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", fmt.Sprintf(`"%s-%d"`, it.ID, it.Version))
	w.Header().Set("Last-Modified", it.UpdatedAt.Format(http.TimeFormat))
	_ = json.NewEncoder(w).Encode(it)
}

// put serves PUT /items/{id}: the body {"name": ...} changes the item and
// queues a task for the workers. The cache invalidates the GET on success.
func (s *items) put(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil || in.Name == "" {
		http.Error(w, `want a JSON body {"name": "..."}`, http.StatusBadRequest)
		return
	}
	id := r.PathValue("id")
	s.mu.Lock()
	if _, ok := s.data[id]; !ok && len(s.data) >= maxItems {
		s.mu.Unlock()
		http.Error(w, "item store full", http.StatusInsufficientStorage)
		return
	}
	it := s.lookup(id)
	it.Version++
	it.Name = in.Name
	it.UpdatedAt = time.Now().UTC().Truncate(time.Second)
	s.data[id] = it
	s.mu.Unlock()

	// Queue a reindex task, unless the queue is full. Redis may be down:
	// the change is made anyway, and the task is lost, which this demo
	// only logs.
	var queued int64
	err := s.rdb.Do(r.Context(), func(ctx context.Context, c redis.UniversalClient) error {
		n, err := pushBounded.Run(ctx, c, []string{taskQueue}, "reindex "+id, maxTasks).Int64()
		queued = n
		return err
	})
	switch {
	case err != nil:
		s.logger.Warn("task not queued", slog.String("item", id), slog.String("error", err.Error()))
	case queued < 0:
		s.logger.Debug("task queue full: task dropped", slog.String("item", id))
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(it)
}

// echo serves GET /echo?msg=...: cached for 10 s, keyed by the query.
func echo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"msg": r.URL.Query().Get("msg")})
}

// now serves GET /time: never cached.
func now(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"time": time.Now().UTC().Format(time.RFC3339Nano)})
}

// flakyUpstream stands in for a dependency that fails a share of calls
// with 503: Retry hides most failures, Breaker stops calling it when it
// keeps failing.
func flakyUpstream(failRate float64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if rand.Float64() < failRate {
			http.Error(w, "upstream failed", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintln(w, `{"upstream":"ok"}`)
	})
}
