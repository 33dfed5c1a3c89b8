package middleware

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/steadfast-go/steadfast/cachepolicy"
)

// ErrInvalidOption is wrapped by the errors constructors return for options
// they cannot use; the message names the field, in the form
// "middleware: RetryOptions.MaxDelay -1s is negative: invalid option".
var ErrInvalidOption = errors.New("invalid option")

// invalidOption returns an error wrapping [ErrInvalidOption], in the
// package's one style: "middleware: " and the formatted text, which names
// the option (Type.Field).
func invalidOption(format string, args ...any) error {
	return fmt.Errorf("middleware: "+format+": %w", append(args, ErrInvalidOption)...)
}

// Attribute keys of the package's log lines.
const (
	// LogKeyBreaker is the breaker's name (BreakerOptions.Name).
	LogKeyBreaker = "breaker"
	// LogKeyFrom is the state a breaker left.
	LogKeyFrom = "from"
	// LogKeyTo is the state a breaker entered.
	LogKeyTo = "to"
	// LogKeyPanic is a recovered panic's value.
	LogKeyPanic = "panic"
	// LogKeyStack is the stack of the goroutine that panicked.
	LogKeyStack = "stack"
	// LogKeyMethod is the request method.
	LogKeyMethod = "method"
	// LogKeyPath is the request's URL path, without the query.
	LogKeyPath = "path"
)

// orDefault returns v, or def if v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// CacheOptions configures a [Cache]. The zero value works.
type CacheOptions struct {
	// KeyPrefix is put, verbatim, before every key the cache reads and
	// writes. Empty means [DefaultCacheKeyPrefix].
	KeyPrefix string

	// Rules gives [Cache.Handler] the policy of each request. Nil means
	// Handler caches nothing; it still invalidates on unsafe methods.
	Rules *cachepolicy.Rules

	// QueueSize is how many entries may wait for the background writer.
	// When the queue is full an entry is dropped (and counted) rather than
	// making a request wait. Zero means [DefaultCacheQueueSize].
	QueueSize int

	// QueueBytes bounds the entries waiting for the background writer by
	// their size in bytes, besides QueueSize: an entry that does not fit
	// is dropped (counted in Dropped and DroppedBytes) rather than
	// making the process hold more. Zero means [DefaultCacheQueueBytes].
	QueueBytes int64

	// Workers is the number of goroutines that write entries to the
	// store. Zero means [DefaultCacheWorkers].
	Workers int

	// LockTimeout is the longest a request waits for another request's
	// run of the handler for the same key (coalescing) before it runs the
	// handler itself. Zero means [DefaultLockTimeout].
	LockTimeout time.Duration

	// MaxRefreshes bounds the background refreshes of stale entries
	// (stale-while-revalidate) running at once, across all keys. Past it,
	// the stale entry is served without starting another refresh
	// (counted in RefreshesSkipped). Zero means [DefaultMaxRefreshes].
	MaxRefreshes int

	// OuterVary names request headers on which middleware outside the
	// cache varies its own transformation of the response, such as
	// Accept-Encoding for a compressor (gorilla's CompressHandler sets
	// "Vary: Accept-Encoding" on every response). The cache stores the
	// response of the handler it wraps, before that transformation, and
	// the middleware transforms it again on every hit; so a Vary that
	// middleware outside set, naming only these headers, does not keep a
	// response from being stored. Every other Vary name set outside (say
	// X-Tenant) is honoured like the handler's own: the response is
	// stored only when the policy keys on that header. A Vary the handler
	// sets itself is always honoured. Name here only headers whose outer
	// middleware does not change what the handler answers: the cache does
	// not key on them. Nil means none.
	OuterVary []string

	// Logger receives a line when the write queue fills up and when it has
	// room again, and one per handler panic the cache answers with a stale
	// entry; never one per request. Nil means slog.Default().
	Logger *slog.Logger

	// Now tells the time: when entries were stored, and how old they are.
	// Nil means time.Now.
	Now func() time.Time

	// SigningKey, when set, signs every entry written with HMAC-SHA256
	// under this key (bound to the entry's Redis key), and makes every
	// entry read without a valid signature a corrupt one: a miss, deleted
	// and counted in DecodeErrors. Set it when writers the application
	// does not trust can write to the same Redis (a shared broker, say):
	// without it, anyone who can write a key can make the cache serve any
	// well-formed response. Every process sharing the entries needs the
	// same key; while keys roll out, a process without one still reads
	// signed entries (without checking them). At least 32 bytes, secret;
	// it costs one HMAC over the entry per hit and per write.
	// Nil: entries are not signed, only checksummed and checked for
	// meaning.
	SigningKey []byte
}
