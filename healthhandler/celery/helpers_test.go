package celery

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/steadfast-go/steadfast/resilience"
)

// celeryTestRedis guards a client of the Redis at addr. Its operation
// deadline is generous: tests run on loaded machines. When the test ends,
// after the cleanups registered later (closing the client, listeners and
// fakes), no goroutine started from here on may be left.
func celeryTestRedis(t *testing.T, addr, password string, db int, log *slog.Logger) *resilience.Redis {
	t.Helper()
	celeryNoLeaks(t)
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	rdb, err := resilience.NewRedis(resilience.Config{Addr: addr, Password: password, DB: db},
		resilience.Options{Logger: log, OpTimeout: time.Second})
	require.NoError(t, err, "NewRedis")
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// celeryNoLeaks fails the test if goroutines started from now on still
// run once the cleanups registered after this call are done. It waits a
// few seconds for them: a go-redis client that failed to dial may sleep
// out a second in a goroutine of its own after it was closed.
func celeryNoLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := goleak.Find(ignore, // it retries for a moment itself
				// Test servers restarted during the test; their own
				// cleanups, which run later, stop them.
				goleak.IgnoreAnyFunction("github.com/alicebob/miniredis/v2/server.(*Server).serve"),
				goleak.IgnoreAnyFunction("github.com/steadfast-go/steadfast/internal/redisproc.reap"))
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				assert.NoError(t, err, "goroutines left")
				return
			}
		}
	})
}

// celerySignal wakes a waiter; size one, so no wake-up is lost.
type celerySignal chan struct{}

func newCelerySignal() celerySignal { return make(celerySignal, 1) }

func (s celerySignal) notify() {
	select {
	case s <- struct{}{}:
	default:
	}
}

// wait blocks until cond holds, re-checking it at each signal, or fails
// the test after a deadline far beyond what the wait should take.
func (s celerySignal) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-s:
		case <-deadline.C:
			require.Failf(t, "timed out", "waiting for %s", what)
		}
	}
}

// celeryClock is a settable clock for liveness.
type celeryClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *celeryClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *celeryClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
