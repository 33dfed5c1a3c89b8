package resilience

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// boundSlack is what an operation may take beyond its deadline and
// execGrace: the wake-up of the waiting goroutine on a loaded 2-core
// machine under -race.
const boundSlack = 150 * time.Millisecond

// holdHook holds every command for hold, deaf to the context: what
// go-redis does when it waits on a lock or a busy pool that no context
// reaches. Each held command signals released when it goes on.
type holdHook struct {
	hold     time.Duration
	released chan struct{}
}

func (h holdHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h holdHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		time.Sleep(h.hold)
		defer func() { h.released <- struct{}{} }()
		return next(ctx, cmd)
	}
}

func (h holdHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		time.Sleep(h.hold)
		defer func() { h.released <- struct{}{} }()
		return next(ctx, cmds)
	}
}

var _ redis.Hook = holdHook{}

// TestOperationBoundedWhenGoRedisHoldsIt: Get, Set, Del and Ping return
// at their deadline plus execGrace even when go-redis holds them far
// longer, deaf to the context; the operation runs on, is counted
// abandoned and failed, and the caller sees a deadline error. On the
// old code each call took the whole hold (a second).
func TestOperationBoundedWhenGoRedisHoldsIt(t *testing.T) {
	mr := miniredis.RunT(t)
	const opTimeout = 50 * time.Millisecond
	hook := holdHook{hold: time.Second, released: make(chan struct{}, 8)}
	c := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true, DisableIdentity: true,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}})
	t.Cleanup(func() { _ = c.Close() })
	r, err := Wrap(c, Options{Logger: discard, OpTimeout: opTimeout, FailureThreshold: 100, ProbeInterval: hour, ProbeMaxInterval: hour})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	require.NoError(t, eventually(func() error { _, err := r.Ping(context.Background()); return err }))
	c.AddHook(hook)

	ctx := context.Background()
	ops := map[string]func() error{
		"get":  func() error { _, err := r.Get(ctx, "k"); return err },
		"set":  func() error { return r.Set(ctx, "k", []byte("v"), 0) },
		"del":  func() error { return r.Del(ctx, "k") },
		"ping": func() error { _, err := r.Ping(ctx); return err },
	}
	bound := opTimeout + execGrace + boundSlack
	held := 0
	before := r.Stats().Abandoned // the first Ping may have been slow
	for name, op := range ops {
		start := time.Now()
		err := op()
		took := time.Since(start)
		assert.ErrorIs(t, err, context.DeadlineExceeded, "%s: the error of an operation held past its deadline", name)
		assert.LessOrEqual(t, took, bound, "%s held the caller %v, want at most OpTimeout+execGrace+%v", name, took, boundSlack)
		held++
	}
	assert.Equal(t, uint64(len(ops)), r.Stats().Abandoned-before, "operations abandoned at their deadline")
	// The held operations run on to their own end; wait for them.
	for range held {
		select {
		case <-hook.released:
		case <-time.After(10 * time.Second):
			require.Fail(t, "a held operation never went on")
		}
	}
}
