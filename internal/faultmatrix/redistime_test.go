package faultmatrix

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/steadfast-go/steadfast/middleware"
)

// redisTimer records, for every cached request, how long it took in all
// and how long it spent in Redis operations: what tells a request that
// Redis held from one the machine held.
type redisTimer struct {
	mu   sync.Mutex
	reqs []redisTime
}

// redisTime is one request's time, and its time in Redis operations.
type redisTime struct {
	mu         *sync.Mutex // guards the operation figures while it runs
	start, end time.Time
	ops        int
	inRedis    time.Duration // all its operations
	slowestOp  time.Duration
	slowestAt  time.Time // when the slowest operation started
}

type redisTimeKey struct{}

// wrap times the requests through next.
func (rt *redisTimer) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &redisTime{mu: new(sync.Mutex), start: time.Now()}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), redisTimeKey{}, rec)))
		rec.mu.Lock()
		rec.end = time.Now()
		done := *rec
		rec.mu.Unlock()
		rt.mu.Lock()
		rt.reqs = append(rt.reqs, done)
		rt.mu.Unlock()
	})
}

// between returns the requests that started at or after from and before
// to.
func (rt *redisTimer) between(from, to time.Time) []redisTime {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var out []redisTime
	for _, r := range rt.reqs {
		if !r.start.Before(from) && r.start.Before(to) {
			out = append(out, r)
		}
	}
	return out
}

// timedStore adds the time of each operation to the request's record (the
// background writer's operations carry none).
type timedStore struct{ middleware.Store }

func (s timedStore) time(ctx context.Context, start time.Time) {
	if rec, ok := ctx.Value(redisTimeKey{}).(*redisTime); ok {
		d := time.Since(start)
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if !rec.end.IsZero() {
			return // a refresh that outlived the request
		}
		rec.ops++
		rec.inRedis += d
		if d > rec.slowestOp {
			rec.slowestOp, rec.slowestAt = d, start
		}
	}
}

func (s timedStore) Get(ctx context.Context, key string) ([]byte, error) {
	defer s.time(ctx, time.Now())
	return s.Store.Get(ctx, key)
}

func (s timedStore) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	defer s.time(ctx, time.Now())
	return s.Store.Set(ctx, key, val, ttl)
}

func (s timedStore) Del(ctx context.Context, keys ...string) error {
	defer s.time(ctx, time.Now())
	return s.Store.Del(ctx, keys...)
}

// stallMeter measures how late the machine runs this process: a goroutine
// sleeps stallTick again and again and records how much longer each
// sleep took. On a 2-core machine shared with other test runs, the whole
// process is at times not run for hundreds of milliseconds; a request's
// time cannot be bounded below that, and the meter says how much of it
// was the machine.
type stallMeter struct {
	mu    sync.Mutex
	ticks []stallTick
	stop  chan struct{}
	done  chan struct{}
}

// stallTick is one sleep that started at at and ended late.
type stallTick struct {
	at   time.Time
	late time.Duration
}

const stallTickLen = 2 * time.Millisecond

func startStallMeter() *stallMeter {
	m := &stallMeter{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		t := time.NewTimer(stallTickLen)
		defer t.Stop()
		for {
			start := time.Now()
			t.Reset(stallTickLen)
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
			if late := time.Since(start) - stallTickLen; late > time.Millisecond {
				m.mu.Lock()
				m.ticks = append(m.ticks, stallTick{at: start, late: late})
				m.mu.Unlock()
			}
		}
	}()
	return m
}

// close stops the meter and waits for it.
func (m *stallMeter) close() {
	close(m.stop)
	<-m.done
}

// stalled returns how long, in all, the sleeps that overlapped [from, to]
// overslept: the time the machine did not run this process then.
func (m *stallMeter) stalled(from, to time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var sum time.Duration
	for _, tk := range m.ticks {
		end := tk.at.Add(stallTickLen + tk.late)
		if end.After(from) && tk.at.Before(to) {
			sum += tk.late
		}
	}
	return sum
}
