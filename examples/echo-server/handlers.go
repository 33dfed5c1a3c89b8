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

// items is the example's backend: an in-memory store whose reads take
// ITEM_DELAY, standing in for a slow database.
type items struct {
	delay  time.Duration
	rdb    *resilience.Redis
	logger *slog.Logger

	mu   sync.Mutex
	data map[string]item
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
	return &items{delay: delay, rdb: rdb, logger: logger, data: make(map[string]item)}
}

// lookup returns the item, making up a first version of any id.
func (s *items) lookup(id string) item {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.data[id]
	if !ok {
		it = item{
			ID: id, Version: 1, Name: "item " + id,
			Description: strings.Repeat("A steadfast example item, served from the cache when Redis is up. ", 12),
			Tags:        []string{"example", "steadfast", "cached"},
			UpdatedAt:   time.Now().UTC().Truncate(time.Second),
		}
		s.data[id] = it
	}
	return it
}

// get serves GET /items/{id}: about 1 KiB of JSON after the simulated work.
func (s *items) get(w http.ResponseWriter, r *http.Request) {
	select {
	case <-time.After(s.delay):
	case <-r.Context().Done():
		return
	}
	it := s.lookup(r.PathValue("id"))
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
	it := s.lookup(id)
	s.mu.Lock()
	it.Version++
	it.Name = in.Name
	it.UpdatedAt = time.Now().UTC().Truncate(time.Second)
	s.data[id] = it
	s.mu.Unlock()

	// Queue a reindex task. Redis may be down: the change is made anyway,
	// and the task is lost, which this demo only logs.
	err := s.rdb.Do(r.Context(), func(ctx context.Context, c redis.UniversalClient) error {
		return c.RPush(ctx, taskQueue, "reindex "+id).Err()
	})
	if err != nil {
		s.logger.Warn("task not queued", slog.String("item", id), slog.String("error", err.Error()))
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
