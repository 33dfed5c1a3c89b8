package resilience

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Defaults used when an [Options] field is zero.
const (
	DefaultOpTimeout        = 50 * time.Millisecond
	DefaultDialTimeout      = 500 * time.Millisecond
	DefaultMaxAttempts      = 2
	DefaultRetryBackoff     = 2 * time.Millisecond
	DefaultRetryMaxBackoff  = 20 * time.Millisecond
	DefaultFailureThreshold = 5
	DefaultBreakerDelay     = 10 * time.Second
	DefaultProbeInterval    = 50 * time.Millisecond
	DefaultProbeMaxInterval = 250 * time.Millisecond
	DefaultMinTransferRate  = 1 << 20 // bytes per second
)

// LargeValue is the size above which a value's transfer time is taken
// into account (see [Options.MinTransferRate]). Values up to this size keep
// the plain OpTimeout.
const LargeValue = 64 << 10

// Options tune a [Redis]. The zero value is ready to use: every zero field
// takes the default its comment names.
type Options struct {
	// Logger receives one line per state change (Redis lost, Redis back),
	// never one per operation. Nil means slog.Default().
	Logger *slog.Logger

	// OpTimeout bounds one whole operation, retries included: the
	// operation's context gets this deadline, go-redis honours it on the
	// socket, and waiting for a pooled connection gives up at four fifths
	// of it (a pool too small for the load is not counted against Redis).
	// A hung Redis therefore costs a caller at most OpTimeout. Zero means
	// [DefaultOpTimeout] (50 ms).
	OpTimeout time.Duration

	// MinTransferRate is the slowest rate, in bytes per second, at which
	// a healthy link to Redis is expected to move a value, so that a slow
	// transfer of a large entry is not taken for a Redis that is down:
	//   - a Set of a value larger than [LargeValue] gets OpTimeout plus the
	//     value's size at this rate as its deadline (1 MiB: about 1 s
	//     more at the default);
	//   - a Get learns the value's size in the same round trip (STRLEN and
	//     GET, pipelined): when its deadline passes after Redis answered a
	//     size larger than LargeValue, it fails with [ErrSlowTransfer],
	//     which the breaker does not count, and the caller goes on without
	//     the cache.
	// Values of LargeValue or less keep OpTimeout, so a hung Redis still
	// costs at most OpTimeout for them. Zero means [DefaultMinTransferRate]
	// (1 MiB/s).
	MinTransferRate int64

	// DialTimeout bounds one connection attempt of the reconnect prober,
	// handshake included. Zero means [DefaultDialTimeout] (500 ms).
	DialTimeout time.Duration

	// MaxAttempts is how many times an idempotent operation is tried,
	// within OpTimeout, when Redis fails in a way worth retrying (a reset
	// connection, LOADING, TRYAGAIN). One means no retry. Zero means
	// [DefaultMaxAttempts] (2).
	MaxAttempts int

	// RetryBackoff and RetryMaxBackoff are the first and the largest wait
	// between attempts; waits double from one to the other, with jitter.
	// Zero means [DefaultRetryBackoff] (2 ms) and [DefaultRetryMaxBackoff]
	// (20 ms).
	RetryBackoff, RetryMaxBackoff time.Duration

	// FailureThreshold is how many consecutive failed attempts open the
	// circuit breaker. Zero means [DefaultFailureThreshold] (5).
	FailureThreshold int

	// BreakerDelay is how long the breaker stays open before it lets one
	// trial operation through by itself. The prober normally closes it
	// much sooner; this is the fallback when probing cannot run. Zero means
	// [DefaultBreakerDelay] (10 s).
	BreakerDelay time.Duration

	// ProbeInterval is the wait before the prober's first ping once Redis
	// is lost; later waits double up to ProbeMaxInterval. Zero means
	// [DefaultProbeInterval] (50 ms) and [DefaultProbeMaxInterval] (250 ms):
	// with the cap at 250 ms a returning Redis is noticed within 125 ms on
	// average and 250 ms at worst, at the cost of four refused connects a
	// second during an outage.
	ProbeInterval, ProbeMaxInterval time.Duration

	// PoolSize is the go-redis pool size for a client built by [NewRedis].
	// Zero means go-redis's default (10 per GOMAXPROCS).
	PoolSize int

	// Dialer, if set, opens every connection of a client built by
	// [NewRedis] and of the prober. Tests use it to count dials. Nil means
	// a net.Dialer.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

	// OnStateChange, if set, is called once per state change, after it
	// happened, from the goroutine that caused it. It must not block.
	OnStateChange func(StateChange)

	// Now tells the time for stats, events and the spacing of trial
	// operations (see [TrialInterval]). Nil means time.Now.
	Now func() time.Time

	// NearCache, if set, serves Get hits from process memory, kept
	// coherent by Redis's invalidation pushes (see [NearCacheOptions]).
	// Nil means off: every Get is a round trip.
	NearCache *NearCacheOptions
}

func (o Options) withDefaults() (Options, error) {
	type check struct {
		name string
		d    time.Duration
	}
	for _, c := range []check{
		{"OpTimeout", o.OpTimeout}, {"DialTimeout", o.DialTimeout},
		{"RetryBackoff", o.RetryBackoff}, {"RetryMaxBackoff", o.RetryMaxBackoff},
		{"BreakerDelay", o.BreakerDelay}, {"ProbeInterval", o.ProbeInterval},
		{"ProbeMaxInterval", o.ProbeMaxInterval},
	} {
		if c.d < 0 {
			return o, fmt.Errorf("resilience: Options.%s is negative (%v): %w", c.name, c.d, ErrInvalidOption)
		}
	}
	if o.MinTransferRate < 0 {
		return o, fmt.Errorf("resilience: Options.MinTransferRate is negative (%d): %w", o.MinTransferRate, ErrInvalidOption)
	}
	if o.MinTransferRate == 0 {
		o.MinTransferRate = DefaultMinTransferRate
	}
	if o.MaxAttempts < 0 || o.FailureThreshold < 0 || o.PoolSize < 0 {
		return o, fmt.Errorf("resilience: Options.MaxAttempts, FailureThreshold and PoolSize must not be negative: %w", ErrInvalidOption)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.OpTimeout, DefaultOpTimeout)
	def(&o.DialTimeout, DefaultDialTimeout)
	def(&o.RetryBackoff, DefaultRetryBackoff)
	def(&o.RetryMaxBackoff, DefaultRetryMaxBackoff)
	def(&o.BreakerDelay, DefaultBreakerDelay)
	def(&o.ProbeInterval, DefaultProbeInterval)
	def(&o.ProbeMaxInterval, DefaultProbeMaxInterval)
	if o.RetryMaxBackoff < o.RetryBackoff {
		o.RetryMaxBackoff = o.RetryBackoff
	}
	if o.ProbeMaxInterval < o.ProbeInterval {
		o.ProbeMaxInterval = o.ProbeInterval
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.FailureThreshold == 0 {
		o.FailureThreshold = DefaultFailureThreshold
	}
	if o.NearCache != nil {
		n, err := o.NearCache.withDefaults()
		if err != nil {
			return o, err
		}
		o.NearCache = &n
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}
