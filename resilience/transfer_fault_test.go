package resilience

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/internal/faultproxy"
	"github.com/steadfast-go/steadfast/internal/redistest"
)

// TestFaultSlowLinkLargeValues: over a shared link throttled to 8 MiB/s,
// traffic of 1 MiB values must not open the breaker, and a small key's
// hits stay hits. Before MinTransferRate, Gets of the large values timed
// out against the 50 ms deadline, each counted as a failure, and the
// breaker opened over and over for every key.
func TestFaultSlowLinkLargeValues(t *testing.T) {
	if raceEnabled {
		// Its bounds are about a 50 ms deadline on a throttled link; under
		// the race detector every goroutine is several times slower.
		t.Skip("timing-bound: run without -race")
	}
	srv := redistest.Start(t, redistest.Options{})
	proxy, err := faultproxy.New(srv.Addr(), faultproxy.Options{Rate: 8 << 20})
	require.NoError(t, err)
	defer func() { _ = proxy.Close() }()

	const large, writers = 1 << 20, 2
	value := bytes.Repeat([]byte("x"), large)
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer func() { _ = direct.Close() }()
	ctx := ctxFor(t, time.Minute)
	for i := range writers {
		require.NoError(t, direct.Set(ctx, fmt.Sprint("big:", i), value, 0).Err())
	}
	require.NoError(t, direct.Set(ctx, "small", "v", 0).Err())

	var opened atomic.Int64
	r := newTestRedis(t, Config{Addr: proxy.Addr()}, Options{Logger: discard, OpTimeout: DefaultOpTimeout,
		OnStateChange: func(c StateChange) {
			if c.To == StateOpen {
				opened.Add(1)
				t.Logf("breaker opened after: %s", c.LastError)
			}
		}})
	require.NoError(t, r.WaitReady(ctx))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sets, setErrs, slowGets atomic.Int64
	for i := range writers {
		key := fmt.Sprint("big:", i)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := r.Get(ctx, key); errors.Is(err, ErrSlowTransfer) {
					slowGets.Add(1)
				} else if err != nil {
					t.Logf("Get of %d bytes: %v", large, err)
				}
				sets.Add(1)
				start := time.Now()
				if err := r.Set(ctx, key, value, 0); err != nil {
					setErrs.Add(1)
					t.Logf("Set of %d bytes after %v: %v", large, time.Since(start), err)
				}
			}
		})
	}
	var hits, misses int
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		if v, err := r.Get(ctx, "small"); err == nil && string(v) == "v" {
			hits++
		} else {
			misses++
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	t.Logf("small key: %d hits, %d misses; large: %d sets (%d failed), %d Gets too slow; breaker opened %d times",
		hits, misses, sets.Load(), setErrs.Load(), slowGets.Load(), opened.Load())
	// Before MinTransferRate it opened 11 to 12 times in 3 s. On a loaded
	// 2-core machine one opening from a dial or handshake that missed its
	// deadline can still happen; size-caused timeouts never count.
	assert.LessOrEqual(t, opened.Load(), int64(1), "breaker openings on a slow link, want at most one")
	assert.GreaterOrEqual(t, hits, 4*(hits+misses)/5, "small key: hits of %d Gets, want at least 80%%", hits+misses)
	assert.LessOrEqual(t, setErrs.Load(), sets.Load()/4, "failed Sets of %d (of %d bytes), want few: their deadline grows with the size", sets.Load(), large)
}
