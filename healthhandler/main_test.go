package healthhandler

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-redis's own re-dial loop, started by a pool after PoolSize
		// dial failures in a row (a killed cluster master causes that):
		// it sleeps a second between dials and ends at its first wake
		// after the pool closed, a little later than goleak looks.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"),
	)
}
