package resilience

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/internal/testlog"
)

// hour is long enough to mean "never" in a test: a probe interval or a
// breaker delay that must not elapse.
const hour = time.Hour

// waitLimit bounds every wait on a signal. It is generous: the machine
// running the tests may be loaded; a wait normally ends far sooner.
const waitLimit = 10 * time.Second

// newLogger returns a JSON logger at level and the buffer it writes to.
func newLogger(level slog.Level) (*slog.Logger, *testlog.Buffer) {
	b := new(testlog.Buffer)
	return b.JSON(level), b
}

// events collects state changes from Options.OnStateChange without ever
// blocking the goroutine that reports them.
type events struct {
	ch chan StateChange
}

func newEvents() *events { return &events{ch: make(chan StateChange, 256)} }

func (e *events) record(c StateChange) {
	select {
	case e.ch <- c:
	default: // a test that floods events only waits for one of them
	}
}

// waitFor waits until a change to state arrives, or fails the test after
// limit. Changes to other states on the way are skipped.
func (e *events) waitFor(t *testing.T, to State, limit time.Duration) StateChange {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case c := <-e.ch:
			if c.To == to {
				return c
			}
		case <-timer.C:
			require.FailNowf(t, "no state change", "no change to %v within %v", to, limit)
			return StateChange{}
		}
	}
}

// dialCounter counts the connections a Redis opens, through Options.Dialer.
type dialCounter struct {
	n atomic.Int64
	d net.Dialer
}

func (c *dialCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c.n.Add(1)
	return c.d.DialContext(ctx, network, addr)
}

// testOpTimeout replaces the 50 ms default operation deadline (and the
// probe's 500 ms dial timeout) in tests that are not about deadlines: on a
// loaded machine under the race detector a healthy round trip can take
// longer than that, and a test must not fail for it.
const testOpTimeout = 2 * time.Second

// withTestTimeouts fills OpTimeout and DialTimeout, when zero, with
// testOpTimeout.
func withTestTimeouts(opts Options) Options {
	if opts.OpTimeout == 0 {
		opts.OpTimeout = testOpTimeout
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = testOpTimeout
	}
	return opts
}

// eventually calls op until it succeeds or waitLimit passes, and returns
// its last error. Each failed call is paced by the operation's own
// deadline, not by a sleep.
func eventually(op func() error) error {
	deadline := time.Now().Add(waitLimit)
	for {
		err := op()
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}

// newTestRedis builds a Redis, with test timeouts, that is closed when the
// test ends.
func newTestRedis(t *testing.T, cfg Config, opts Options) *Redis {
	t.Helper()
	r, err := NewRedis(cfg, withTestTimeouts(opts))
	require.NoError(t, err, "NewRedis(%v)", cfg)
	t.Cleanup(func() {
		assert.NoError(t, r.Close(), "Close")
	})
	return r
}

// ctxFor returns a context that ends after d, cancelled when the test ends.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// fakeClock is an Options.Now that tests move by hand. It is safe for
// concurrent use: the prober reads it too.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := new(fakeClock)
	c.set(t)
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

var discard = slog.New(slog.DiscardHandler)

// fixedNow is the time an injected clock reports.
var fixedNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// hungListener accepts connections and never answers: a Redis that hangs
// without a redis-server. accepted gets one value per connection.
func hungListener(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ch := make(chan struct{}, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String(), ch
}
