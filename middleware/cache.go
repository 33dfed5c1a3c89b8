package middleware

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/steadfast-go/steadfast/cachepolicy"
)

// DefaultCacheKeyPrefix is put before every cache key when
// [CacheOptions.KeyPrefix] is empty.
const DefaultCacheKeyPrefix = "steadfast:"

// Attribute keys of the cache's log lines, besides the package's common
// ones.
const (
	// LogKeyQueueSize is the capacity of the cache's write queue.
	LogKeyQueueSize = "queue_size"
	// LogKeyQueueBytes is the byte bound of the cache's write queue.
	LogKeyQueueBytes = "queue_bytes"
	// LogKeyPolicyError says what is wrong with a policy given to
	// [Cache.Policy].
	LogKeyPolicyError = "policy_error"
)

// minSigningKey is the shortest [CacheOptions.SigningKey]: the HMAC's
// output size, as RFC 2104 section 3 advises.
const minSigningKey = 32

// detailUnavailable is the Cache-Status detail of a request served
// without the cache because the store could not answer.
const detailUnavailable = "redis-unavailable"

// Cache-Status values that do not change, written without formatting.
const (
	statusBypassUnavailable = cachepolicy.CacheName + "; fwd=bypass; detail=" + detailUnavailable
	statusInvalidPolicy     = cachepolicy.CacheName + "; fwd=bypass; detail=invalid-policy"
	statusMethod            = cachepolicy.CacheName + "; fwd=method"
)

// Store is what [Cache] needs from Redis; [*resilience.Redis] satisfies it.
// Implementations must be safe for concurrent use.
type Store interface {
	// Get returns the value at key; the caller may keep and modify it. A
	// missing key is an error for which errors.Is(err, fs.ErrNotExist)
	// holds ([resilience.ErrNotFound] does). Any other error means the
	// store is unavailable: the request is served without the cache.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores val at key for ttl. It must not keep val after it
	// returns.
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	// Del deletes keys; a missing key is not an error.
	Del(ctx context.Context, keys ...string) error
}

// Cache is a response cache in Redis that fails open: when Redis errs,
// times out or its breaker is open, requests are served by the handler,
// uncached, with no added latency beyond the store's own deadline.
//
// Routes opt in with a policy, one handler at a time ([Cache.Policy]) or
// for a whole mux by pattern ([Cache.Handler] with [CacheOptions.Rules]).
// Only GET and HEAD requests are answered from the cache (HEAD from the
// GET entry), and only when they carry no body (a body is not in the key:
// "detail=request-body"); a successful unsafe request (POST, PUT, PATCH, DELETE)
// that passes through the cache deletes the entry of the same URL.
//
// On a hit the cache makes one Redis round trip and writes the stored
// status, header and body, with Age and Cache-Status. On a miss the
// handler runs once per key however many requests wait (they share its
// response when it may be stored, else run their own, at once; none waits
// longer than [CacheOptions.LockTimeout]), its response is recorded, and a
// storable one goes to a bounded background writer: a request never waits
// for a write. While a response may be shared its body is buffered (up to
// the policy's MaxBodyBytes) and sent when the handler returns, so that
// no client's reading speed holds back the others; any other response
// streams to the client as it is written.
//
// What is stored is what the handler completed, or nothing: a response is
// stored only when the handler returned normally, its context still live
// (its client did not leave, no deadline passed), every byte it wrote was
// recorded (no write failed, nothing was cut off) and the body is as long
// as any Content-Length it declared. The store decision reads the final
// response header, with what middleware outside the cache set: its
// Cache-Control (private, no-store), Set-Cookie and Vary count as the
// handler's own would (see [CacheOptions.OuterVary] for a compressor).
//
// Every response the cache touched carries a Cache-Status field
// (RFC 9211), such as "steadfast; hit; ttl=42",
// "steadfast; fwd=uri-miss; stored" or
// "steadfast; fwd=bypass; detail=redis-unavailable"; a response that is
// not stored says why in its detail ("set-cookie", "status", ...). The
// field is written with the status, before the body: "stored" means the
// response was storable by its status and header, so a response that then
// turns out incomplete, or outgrows MaxBodyBytes without a Content-Length
// to announce it, or gets a Set-Cookie from an outer middleware when its
// status is written, is not stored although the field says so.
//
// The HTTP semantics (RFC 9111, RFC 9110, RFC 9213) are those of
// [cachepolicy]: freshness from targeted fields, Cache-Control, Expires, the
// policy or a heuristic; Age that counts the age a response arrived with.
// A response that says Vary on request fields outside the policy's
// KeyHeaders is stored as a variant, under a key made from the request's
// normalised values of those fields, and the URL's key holds an index of
// its variants: a hit on such a URL costs a second round trip, others do
// not. A Range request for a stored 200 is answered 206 from it.
//
// Revalidation: a stored 200 that is stale, or said no-cache, and has an
// ETag or Last-Modified is kept for a while ([cachepolicy.Policy.StaleRetention])
// and, when next asked for, the handler gets the request made conditional
// (If-None-Match, else If-Modified-Since). A handler that answers 304 (as
// [http.ServeContent] and [http.FileServer] do when the validator still
// matches, or a handler that compares r.Header.Get("If-None-Match") with
// its current ETag) renews the stored response: its header is updated from
// the 304, its freshness computed again, and the client served from it,
// with "Cache-Status: steadfast; fwd=stale; fwd-status=304; stored". A 200
// replaces it. A handler that ignores conditional requests works unchanged.
//
// Invalidation deletes the entry an unsafe request's URL and key headers
// select; with it goes the URL's variant index, so its Vary variants are
// found no more. Other values of [cachepolicy.Policy.KeyHeaders] live until
// their TTL: listing them would cost every hit a second round trip. So may
// a response whose run was in progress when the entry was deleted.
//
// A route should be cached once: either by [Cache.Policy] on its handler,
// or by a rule of [Cache.Handler], not both.
//
// A Cache is safe for concurrent use. Make it with [NewCache]; the zero
// value is not usable. Close stops its goroutines.
type Cache struct {
	store   Store
	prefix  string
	signKey []byte // CacheOptions.SigningKey, own copy; nil: unsigned
	rules   *cachepolicy.Rules
	now     func() time.Time
	log     *slog.Logger

	w       *writer
	flights flights
	linger  time.Duration // how long a stored flight stays findable: flightLinger
	inval   invalidations
	recs    recorderPool
	stats   cacheCounters
	// onLookup is set by ObserveLookups.
	onLookup lookupObserver

	lockTimeout time.Duration
	hfm         *hitForMiss
	outerVary   []string

	// Background refreshes (stale-while-revalidate): one per key.
	ctx        context.Context // cancelled by Close
	cancel     context.CancelFunc
	refreshMu  sync.Mutex
	refreshing map[string]struct{} // guarded by refreshMu
	maxRefresh int
	closed     bool // guarded by refreshMu
	refreshWG  sync.WaitGroup
}

// NewCache returns a cache that keeps entries in store, usually a
// [*resilience.Redis]. It starts the background writer's goroutines; call
// Close to stop them. The error wraps [ErrInvalidOption] and names the
// field when an option is out of range.
func NewCache(store Store, opts CacheOptions) (*Cache, error) {
	switch {
	case store == nil:
		return nil, invalidOption("NewCache of a nil store")
	case opts.QueueSize < 0:
		return nil, invalidOption("CacheOptions.QueueSize %d is negative", opts.QueueSize)
	case opts.Workers < 0:
		return nil, invalidOption("CacheOptions.Workers %d is negative", opts.Workers)
	case len(opts.SigningKey) > 0 && len(opts.SigningKey) < minSigningKey:
		return nil, invalidOption("CacheOptions.SigningKey has %d bytes, fewer than %d", len(opts.SigningKey), minSigningKey)
	case opts.QueueBytes < 0:
		return nil, invalidOption("CacheOptions.QueueBytes %d is negative", opts.QueueBytes)
	case opts.LockTimeout < 0:
		return nil, invalidOption("CacheOptions.LockTimeout %v is negative", opts.LockTimeout)
	case opts.MaxRefreshes < 0:
		return nil, invalidOption("CacheOptions.MaxRefreshes %d is negative", opts.MaxRefreshes)
	}
	c := &Cache{
		store:       store,
		prefix:      orDefault(opts.KeyPrefix, DefaultCacheKeyPrefix),
		rules:       opts.Rules,
		now:         opts.Now,
		log:         opts.Logger,
		refreshing:  make(map[string]struct{}),
		maxRefresh:  orDefault(opts.MaxRefreshes, DefaultMaxRefreshes),
		linger:      flightLinger,
		lockTimeout: orDefault(opts.LockTimeout, DefaultLockTimeout),
		hfm:         newHitForMiss(),
		outerVary:   slices.Clone(opts.OuterVary),
		signKey:     bytes.Clone(opts.SigningKey),
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.w = newWriter(store, opts, c.log, &c.stats, c.inval.made)
	c.w.signKey = c.signKey // before any job: the queue orders it before every read
	return c, nil
}

// Close cancels background refreshes and waits for them, at most 5
// seconds, then waits for the entries already queued to be written, at
// most 5 seconds more, and drops the rest. The cache goes on serving after
// Close, but stores nothing more. Close is safe to call more than once. It
// returns an error only when a refresh's handler ignored its cancelled
// context for those 5 seconds (its goroutine is then left running).
func (c *Cache) Close() error {
	c.refreshMu.Lock()
	c.closed = true
	c.refreshMu.Unlock()
	c.cancel()
	var err error
	refreshed := make(chan struct{})
	go func() { c.refreshWG.Wait(); close(refreshed) }()
	timer := time.NewTimer(closeDrainTimeout)
	select {
	case <-refreshed:
	case <-timer.C:
		err = fmt.Errorf("cache close: a background refresh still runs %v after its context was cancelled", closeDrainTimeout)
	}
	timer.Stop()
	c.w.close()
	return err
}

// Policy returns middleware that caches the responses of the handler it
// wraps under p:
//
//	mux.Handle("GET /items/{id}", cache.Policy(cachepolicy.Policy{TTL: time.Minute})(items))
//
// For the handler's own unsafe requests to invalidate its entries, the
// handler must see them: register it for all methods ("/items/{id}"), or
// wrap the mux in [Cache.Handler] as well.
//
// p is checked once, here. An invalid policy (see
// [cachepolicy.Policy.Validate]) is logged once, and the route is served
// uncached, with "Cache-Status: steadfast; fwd=bypass;
// detail=invalid-policy": a cache mistake never takes a route down. A
// program that would rather not start with one calls p.Validate first.
func (c *Cache) Policy(p cachepolicy.Policy) func(http.Handler) http.Handler {
	if err := p.Validate(); err != nil {
		c.log.Error("cache policy is invalid: the route is served uncached",
			slog.String(LogKeyPolicyError, err.Error()))
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet || r.Method == http.MethodHead {
					c.observe(r, LookupBypass, "invalid-policy")
				}
				w.Header()["Cache-Status"] = []string{statusInvalidPolicy}
				next.ServeHTTP(w, r)
			})
		}
	}
	p = p.Normalize()
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c.serve(w, r, next, &p)
		})
	}
}

// Handler returns next with caching by rules: each request gets the policy
// of the [CacheOptions.Rules] pattern it matches; a GET or HEAD request
// that matches none passes through untouched. An unsafe request that
// succeeds invalidates the entry of the same URL under the policy the GET
// rule gives (the zero policy, URL only, when there is none), so that
// routes cached with [Cache.Policy] are invalidated too when Handler wraps
// their mux. The method value c.Handler is a func(http.Handler)
// http.Handler.
func (c *Cache) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			p, ok := c.rules.For(r)
			if !ok {
				next.ServeHTTP(w, r)
				return
			}
			c.serve(w, r, next, &p)
			return
		}
		var p cachepolicy.Policy
		if unsafeMethod(r.Method) {
			get := *r // shallow copy, to ask for the GET rule
			get.Method = http.MethodGet
			p, _ = c.rules.For(&get)
		}
		c.serveOther(w, r, next, &p)
	})
}
