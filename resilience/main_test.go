package resilience

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-redis's own re-dial loop, started by a pool after PoolSize dial
		// failures in a row (tests of a dead Redis cause that): it sleeps a
		// second between dials and ends at its first wake after the pool
		// closed, a little later than goleak looks.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"),
		// go-redis resolves the made-up address of every failover client it
		// builds ("FailoverClient", to guess an endpoint type), bounded by
		// 2 s; the resolver's goroutines outlive that bound when the DNS
		// server does not answer, as on a machine without one.
		goleak.IgnoreAnyFunction("net.(*Resolver).goLookupIPCNAMEOrder.func3.1"),
		goleak.IgnoreAnyFunction("net.(*Resolver).goLookupIPCNAMEOrder.func4"),
		goleak.IgnoreAnyFunction("net.(*Resolver).lookupIPAddr.func2"),
	)
}
