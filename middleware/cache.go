package middleware

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/steadfast-go/steadfast/cachepolicy"
	"github.com/steadfast-go/steadfast/resilience"
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
	// missing key is an error for which errors.Is(err,
	// resilience.ErrNotFound) holds. Any other error means the store is
	// unavailable: the request is served without the cache.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores val at key for ttl. It must not keep val after it
	// returns.
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	// Del deletes keys; a missing key is not an error.
	Del(ctx context.Context, keys ...string) error
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

// CacheStats counts what a [Cache] did since it was made.
type CacheStats struct {
	// Hits counts requests answered from a fresh entry.
	Hits uint64
	// StaleHits counts requests answered from a stale entry: within its
	// stale-while-revalidate window, or in place of a failed handler
	// within its stale-if-error window.
	StaleHits uint64
	// Misses counts requests that ran the handler because no entry could
	// be used.
	Misses uint64
	// Coalesced counts requests that waited for another request's run of
	// the handler for the same key instead of running it themselves.
	Coalesced uint64
	// Bypasses counts requests served without the cache because the
	// store was unavailable (an error, a timeout, an open breaker).
	Bypasses uint64
	// Skipped counts GET and HEAD requests served without the cache
	// because of the request itself (no-store, Authorization, Cookie, a
	// request body).
	Skipped uint64
	// Stored counts entries written to the store; StoreErrors the writes
	// and deletes that failed; Dropped the entries not written because the
	// write queue was full or closed.
	Stored, StoreErrors, Dropped uint64
	// DecodeErrors counts stored values that were not valid entries
	// (corrupt, truncated, foreign, with content the cache would never
	// store, or unsigned or forged under [CacheOptions.SigningKey]); each
	// was deleted and taken as a miss.
	DecodeErrors uint64
	// Refreshes counts background refreshes of stale entries started;
	// RefreshesSkipped the stale hits that started none because
	// MaxRefreshes were running already.
	Refreshes, RefreshesSkipped uint64
	// DroppedBytes is the size of the entries counted in Dropped because
	// the write queue had no room for them (QueueSize or QueueBytes).
	DroppedBytes uint64
	// LockTimeouts counts requests that stopped waiting for another
	// request's run of the handler after LockTimeout and ran their own.
	LockTimeouts uint64
	// Invalidations counts keys invalidated because an unsafe request
	// (POST, PUT, PATCH, DELETE...) succeeded. A delete that fails is
	// also counted in StoreErrors; until it succeeds (it is tried again
	// when the entry is next found), this process neither serves nor
	// stores a response made before the invalidation.
	Invalidations uint64
}

// cacheCounters are CacheStats, updated with atomics only.
type cacheCounters struct {
	hits, staleHits, misses, coalesced, bypasses, skipped      atomic.Uint64
	stored, storeErrors, dropped, decodeErrors, refreshes, inv atomic.Uint64
	refreshesSkipped, droppedBytes, lockTimeouts               atomic.Uint64
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
// Invalidation deletes the entry an unsafe request's URL and key headers
// select. Other variants of the URL (other values of
// [cachepolicy.Policy.KeyHeaders]) live until their TTL: listing them would
// cost every hit a second round trip. So may a response whose run was in
// progress when the entry was deleted.
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
		return nil, fmt.Errorf("new cache: store is nil: %w", ErrInvalidOption)
	case opts.QueueSize < 0:
		return nil, fmt.Errorf("new cache: QueueSize %d is negative: %w", opts.QueueSize, ErrInvalidOption)
	case opts.Workers < 0:
		return nil, fmt.Errorf("new cache: Workers %d is negative: %w", opts.Workers, ErrInvalidOption)
	case len(opts.SigningKey) > 0 && len(opts.SigningKey) < minSigningKey:
		return nil, fmt.Errorf("new cache: SigningKey has %d bytes, fewer than %d: %w",
			len(opts.SigningKey), minSigningKey, ErrInvalidOption)
	case opts.QueueBytes < 0:
		return nil, fmt.Errorf("new cache: QueueBytes %d is negative: %w", opts.QueueBytes, ErrInvalidOption)
	case opts.LockTimeout < 0:
		return nil, fmt.Errorf("new cache: LockTimeout %v is negative: %w", opts.LockTimeout, ErrInvalidOption)
	case opts.MaxRefreshes < 0:
		return nil, fmt.Errorf("new cache: MaxRefreshes %d is negative: %w", opts.MaxRefreshes, ErrInvalidOption)
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
	c.w = newWriter(store, orDefault(opts.QueueSize, DefaultCacheQueueSize), orDefault(opts.QueueBytes, DefaultCacheQueueBytes),
		orDefault(opts.Workers, DefaultCacheWorkers), c.log, &c.stats, c.inval.made)
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

// Stats returns what the cache did so far. It does no I/O.
func (c *Cache) Stats() CacheStats {
	s := &c.stats
	return CacheStats{
		Hits:          s.hits.Load(),
		StaleHits:     s.staleHits.Load(),
		Misses:        s.misses.Load(),
		Coalesced:     s.coalesced.Load(),
		Bypasses:      s.bypasses.Load(),
		Skipped:       s.skipped.Load(),
		Stored:        s.stored.Load(),
		StoreErrors:   s.storeErrors.Load(),
		Dropped:       s.dropped.Load(),
		DecodeErrors:  s.decodeErrors.Load(),
		Refreshes:     s.refreshes.Load(),
		Invalidations: s.inv.Load(),

		RefreshesSkipped: s.refreshesSkipped.Load(),
		DroppedBytes:     s.droppedBytes.Load(),
		LockTimeouts:     s.lockTimeouts.Load(),
	}
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
				w.Header()["Cache-Status"] = []string{statusInvalidPolicy}
				next.ServeHTTP(w, r)
			})
		}
	}
	p = normalizePolicy(p)
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

// normalizePolicy returns p with its KeyHeaders canonical, sorted and
// without duplicates (the form keys are computed fastest from) and with
// slices of its own.
func normalizePolicy(p cachepolicy.Policy) cachepolicy.Policy {
	if p.KeyHeaders != nil {
		hs := make([]string, len(p.KeyHeaders))
		for i, name := range p.KeyHeaders {
			hs[i] = textproto.CanonicalMIMEHeaderKey(name)
		}
		slices.Sort(hs)
		p.KeyHeaders = slices.Clip(slices.Compact(hs))
	}
	p.Statuses = slices.Clone(p.Statuses)
	return p
}

// unsafeMethod reports whether a request with the method may change the
// resource: anything but GET, HEAD, OPTIONS and TRACE.
func unsafeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// serve handles a request under policy p.
//
// Hit path budget, on top of the store's Get: at most 10 µs of CPU and 40
// allocations (BenchmarkCacheHit shows it). The key is appended into a
// stack buffer (one allocation for its string), the entry is decoded in
// place (three allocations, body not copied), stored header values are
// put into the response's map without copying, and Age and Cache-Status
// are formatted with strconv, not fmt.
func (c *Cache) serve(w http.ResponseWriter, r *http.Request, next http.Handler, p *cachepolicy.Policy) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		c.serveOther(w, r, next, p)
		return
	}
	rd := cachepolicy.ParseRequest(r.Header)
	if fwd, reason := skip(r, &rd, p); reason != "" {
		c.stats.skipped.Add(1)
		setCacheStatus(w.Header(), cachepolicy.CacheStatus{Fwd: fwd, Detail: reason})
		next.ServeHTTP(w, r)
		return
	}

	var kb [128]byte
	key := string(cachepolicy.AppendKey(kb[:0], c.prefix, r, *p))
	lookup := time.Now() // the runtime's clock: this orders real events
	val, err := c.store.Get(r.Context(), key)
	now := c.now()
	var e entry
	found := false
	switch {
	case err == nil:
		if e, err = decodeEntry(val, key, c.signKey, now); err != nil {
			// Deleted now rather than queued, so that the delete cannot
			// overtake the write of the response about to be made.
			c.stats.decodeErrors.Add(1)
			if c.store.Del(r.Context(), key) != nil {
				c.stats.storeErrors.Add(1)
			}
		} else if at, stale := c.inval.stale(key, e.storedAt, now); stale {
			// Stored before this process invalidated the key, whose
			// delete failed or was overtaken: a miss, and deleted now.
			c.deleteInvalidated(r, key, at)
		} else {
			found = true
		}
	case errors.Is(err, resilience.ErrNotFound):
	case r.Context().Err() != nil:
		return // the client is gone (or out of time): nobody to answer
	default:
		// Redis cannot answer. Nothing is stored, but concurrent requests
		// for the key still run the handler once between them: an outage
		// (or a pool too small for a burst) must not turn into a stampede.
		c.stats.bypasses.Add(1)
		c.fill(w, r, next, p, key, lookup, &rd, nil, cachepolicy.FwdBypass)
		return
	}

	state := cachepolicy.Expired
	if found {
		state = cachepolicy.Classify(e.life, e.storedAt, now, rd)
	}
	switch state {
	case cachepolicy.Fresh:
		c.stats.hits.Add(1)
		c.writeEntry(w, r, &e, now, cachepolicy.CacheStatus{Hit: true, TTL: e.life.TTL(e.storedAt, now)}, false)
		return
	case cachepolicy.StaleRevalidate:
		c.stats.staleHits.Add(1)
		c.refresh(key, w, r, next, p)
		c.writeEntry(w, r, &e, now, cachepolicy.CacheStatus{
			Hit: true, TTL: e.life.TTL(e.storedAt, now), Detail: "stale-while-revalidate",
		}, false)
		return
	}

	fwd := cachepolicy.FwdURIMiss
	switch {
	case rd.NoCache || (rd.HasMaxAge && rd.MaxAge <= 0):
		fwd = cachepolicy.FwdRequest
	case found:
		fwd = cachepolicy.FwdStale
	}
	if rd.OnlyIfCached {
		// RFC 9111 5.2.1.7: no stored response may be used, so 504.
		setCacheStatus(w.Header(), cachepolicy.CacheStatus{Fwd: fwd, Detail: "only-if-cached"})
		http.Error(w, http.StatusText(http.StatusGatewayTimeout), http.StatusGatewayTimeout)
		return
	}
	var fallback *entry // served if the handler fails
	if state == cachepolicy.StaleIfErrorOnly {
		fallback = &e
	}
	c.fill(w, r, next, p, key, lookup, &rd, fallback, fwd)
}

// skip says why a GET or HEAD request is not handled by the cache at all,
// with the fwd value for its Cache-Status, or returns an empty reason.
func skip(r *http.Request, rd *cachepolicy.RequestDirectives, p *cachepolicy.Policy) (fwd, reason string) {
	switch {
	case hasBody(r):
		// A "fat GET": what the handler answers may depend on the body,
		// which is not in the key.
		return cachepolicy.FwdBypass, "request-body"
	case rd.NoStore:
		return cachepolicy.FwdRequest, "no-store"
	case len(r.Header["Authorization"]) > 0 && !p.AllowAuthorization:
		return cachepolicy.FwdBypass, "authorization"
	case len(r.Header["Cookie"]) > 0 && !p.AllowCookies:
		return cachepolicy.FwdBypass, "cookie"
	}
	return "", ""
}

// hasBody reports whether r carries a body: a Content-Length above zero,
// or a body of unknown length (chunked), as net/http's server sets them.
func hasBody(r *http.Request) bool {
	return r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody)
}

// setCacheStatus sets the Cache-Status field of h.
func setCacheStatus(h http.Header, s cachepolicy.CacheStatus) {
	h["Cache-Status"] = []string{s.String()}
}

// writeEntry answers r from e: a 304 when r's validators match a stored
// 200, else the stored status, header and body (no body for HEAD). Age is
// set from e.storedAt. A shared entry (one other requests use too) gets
// copies of its header values.
func (c *Cache) writeEntry(w http.ResponseWriter, r *http.Request, e *entry, now time.Time, cs cachepolicy.CacheStatus, shared bool) {
	notModified := e.status == http.StatusOK && conditional(r.Header) &&
		cachepolicy.NotModified(r, e.get("Etag"), e.get("Last-Modified"))
	h := w.Header()
	for i := range e.fields {
		f := &e.fields[i]
		if notModified && (f.name == "Content-Length" || f.name == "Content-Type" || f.name == "Content-Encoding") {
			continue
		}
		if shared {
			h[f.name] = slices.Clone(f.values)
		} else {
			h[f.name] = f.values
		}
	}
	var buf [24]byte
	vs := make([]string, 2)
	vs[0] = string(strconv.AppendInt(buf[:0], int64(cachepolicy.Age(e.storedAt, now)/time.Second), 10))
	vs[1] = cs.String()
	h["Age"], h["Cache-Status"] = vs[0:1:1], vs[1:2:2]
	if notModified {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(e.status)
	if r.Method != http.MethodHead && len(e.body) > 0 {
		_, _ = w.Write(e.body) // a client that went away is not an error here
	}
}

// conditional reports whether a request header holds a validator that
// could turn a stored 200 into a 304.
func conditional(h http.Header) bool {
	return len(h["If-None-Match"]) > 0 || len(h["If-Modified-Since"]) > 0
}

// serveOther handles a request whose method is not answered from the
// cache: unsafe ones run the handler and, if they succeed, invalidate the
// GET entry of their URL under p; others (OPTIONS, TRACE) pass through
// untouched.
func (c *Cache) serveOther(w http.ResponseWriter, r *http.Request, next http.Handler, p *cachepolicy.Policy) {
	if !unsafeMethod(r.Method) {
		next.ServeHTTP(w, r)
		return
	}
	w.Header()["Cache-Status"] = []string{statusMethod}
	rec := c.recs.get(w, recorderConfig{})
	next.ServeHTTP(rec, r) // a panic passes on: nothing to invalidate
	rec.finish()
	status, hijacked := rec.Status(), rec.Hijacked()
	c.recs.put(rec)
	if status == 0 && !hijacked {
		status = http.StatusOK
	}
	if cachepolicy.Invalidates(r.Method, status) {
		c.invalidate(r, p)
	}
}

// invalidate deletes the GET entry for r's URL under p, synchronously, so
// that the client's next GET sees the change. Only the variant r's own
// key headers select is deleted: the others cannot be listed without
// another round trip on every hit, and live until their TTL.
func (c *Cache) invalidate(r *http.Request, p *cachepolicy.Policy) {
	get := *r // shallow copy: the key of the same URL's GET
	get.Method = http.MethodGet
	key := cachepolicy.Key(c.prefix, &get, *p)
	// Recorded first: should the delete fail, or a miss that started
	// earlier write after it, this process still never serves or stores
	// the old response again.
	at := c.now()
	c.inval.add(key, at)
	c.flights.forgetKey(key)
	c.stats.inv.Add(1)
	c.deleteInvalidated(r, key, at)
}

// deleteInvalidated deletes key's entry, invalidated at at. It must happen
// even if the client left as soon as it had its answer; the store's own
// deadline bounds it. A failure is counted, and the delete is tried again
// when the entry is next found.
func (c *Cache) deleteInvalidated(r *http.Request, key string, at time.Time) {
	if err := c.store.Del(context.WithoutCancel(r.Context()), key); err != nil {
		c.stats.storeErrors.Add(1)
		return
	}
	c.inval.deleted(key, at, c.now())
}
