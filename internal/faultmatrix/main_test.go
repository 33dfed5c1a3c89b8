package faultmatrix

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the suite, and everything it closes, leaves no
// goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, append(ignoreResolver, ignoreRedistest, ignorePoolTryDial)...)
}

var (
	// ignoreRedistest: redistest's process waiters belong to the suite's
	// own servers, which live as long as the test that started them.
	ignoreRedistest = goleak.IgnoreAnyFunction("github.com/steadfast-go/steadfast/internal/redisproc.reap")
	// ignorePoolTryDial: after PoolSize failed dials, go-redis starts
	// pool.(*ConnPool).tryDial, which re-dials once a second and notices
	// a closed pool only between two tries, so it outlives Client.Close
	// (and so resilience.Redis.Close) by up to 1 s plus a dial timeout.
	// It is go-redis's goroutine and ends by itself; see the report of
	// the fault matrix.
	ignorePoolTryDial = goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial")
)
