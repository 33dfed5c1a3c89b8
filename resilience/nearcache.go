package resilience

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults used when a [NearCacheOptions] field is zero.
const (
	// DefaultNearCacheMaxBytes bounds the near cache's memory: 32 MiB of
	// entries as go-redis estimates them (value, key, about 100 bytes of
	// bookkeeping each).
	DefaultNearCacheMaxBytes = 32 << 20
	// DefaultNearCacheMaxStaleness is the backstop: an entry is dropped
	// this long after it was fetched even if no invalidation came.
	DefaultNearCacheMaxStaleness = 10 * time.Second
	// DefaultNearCacheDrainInterval is how often go-redis reads the
	// invalidation pushes waiting on idle connections: the main term of the
	// coherence bound. go-redis's own default is 5 ms; at 1 ms a write in
	// one process reaches another's next read within 10 ms (p99) even on a
	// loaded machine, for an idle cost that measured the same at 1, 2 and
	// 5 ms (see README).
	DefaultNearCacheDrainInterval = time.Millisecond
	// DefaultNearCacheHeartbeat is how often the near cache confirms that
	// Redis answers, so that a silent network (a blackhole, where pushes
	// stop without any error) pauses it.
	DefaultNearCacheHeartbeat = 50 * time.Millisecond
)

// NearCacheOptions turn on the near cache of a client built by [NewRedis]:
// go-redis's own client-side caching (RESP3, CLIENT TRACKING, invalidation
// pushes) serves [Redis.Get] hits from process memory, and every write to a
// key, by any client of the same Redis, deletes the local copy within
// about one DrainInterval. The zero value is ready to use.
//
// The near cache serves only while the invalidation stream is known to
// flow: when Redis stops answering (the breaker opens, or a heartbeat
// fails) it is flushed and serves nothing until Redis answers again.
// Where go-redis cannot track keys (a server without RESP3 or CLIENT
// TRACKING, such as miniredis; a DB other than 0; Sentinel, Cluster or a
// client given to [Wrap]) it stays off, logs why once, and
// [Stats].NearCache says why.
type NearCacheOptions struct {
	// MaxBytes bounds the memory the cached values take, as go-redis
	// estimates it. A value larger than MaxBytes/16 (the cache has 16
	// shards) is never kept. Zero means [DefaultNearCacheMaxBytes] (32 MiB).
	MaxBytes int64

	// MaxEntries bounds the number of entries as well. Zero means no bound
	// besides MaxBytes.
	MaxEntries int

	// MaxStaleness drops an entry this long after it was fetched, whatever
	// the invalidations say: the backstop should one ever be lost. Zero
	// means [DefaultNearCacheMaxStaleness] (10 s).
	MaxStaleness time.Duration

	// DrainInterval is how often go-redis applies the invalidations waiting
	// on idle connections (values under 1 ms count as 1 ms). Zero means
	// [DefaultNearCacheDrainInterval] (1 ms, go-redis's floor).
	DrainInterval time.Duration

	// Heartbeat is how often Redis is pinged, through the guard, to confirm
	// that invalidations can still arrive; a ping that fails pauses the
	// near cache. Zero means [DefaultNearCacheHeartbeat] (50 ms).
	Heartbeat time.Duration
}

func (n NearCacheOptions) withDefaults() (NearCacheOptions, error) {
	for _, f := range []struct {
		name     string
		negative bool
	}{
		{"MaxBytes", n.MaxBytes < 0},
		{"MaxEntries", n.MaxEntries < 0},
		{"MaxStaleness", n.MaxStaleness < 0},
		{"DrainInterval", n.DrainInterval < 0},
		{"Heartbeat", n.Heartbeat < 0},
	} {
		if f.negative {
			return n, fmt.Errorf("resilience: Options.NearCache.%s is negative: %w", f.name, ErrInvalidOption)
		}
	}
	if n.MaxBytes == 0 {
		n.MaxBytes = DefaultNearCacheMaxBytes
	}
	if n.MaxStaleness == 0 {
		n.MaxStaleness = DefaultNearCacheMaxStaleness
	}
	if n.DrainInterval == 0 {
		n.DrainInterval = DefaultNearCacheDrainInterval
	}
	if n.Heartbeat == 0 {
		n.Heartbeat = DefaultNearCacheHeartbeat
	}
	return n, nil
}

// NearCacheStats describe the near cache, in [Stats].
type NearCacheStats struct {
	// Enabled is whether [Options].NearCache asked for it.
	Enabled bool
	// Serving is whether hits are served from process memory now.
	Serving bool
	// Reason says why it is not serving, in words fit for anyone (no
	// address, no server reply): empty while it serves, and when it was
	// not asked for.
	Reason string
	// Entries and Bytes are what it holds now; MaxBytes its bound.
	Entries         int
	Bytes, MaxBytes int64
	// Hits counts reads served from process memory; Misses reads that
	// looked and went to Redis.
	Hits, Misses uint64
	// Invalidations counts keys Redis said were changed (written, deleted,
	// expired or evicted); Flushes the FLUSHALL/FLUSHDB pushes; Pauses the
	// times it was flushed because Redis stopped answering.
	Invalidations, Flushes, Pauses uint64
}

// nearCache is go-redis's LocalCache behind a gate: it is the
// redis.Cache given to every client a [Redis] builds. The gate is closed
// (Get misses, nothing is stored) until Redis has shown it can track keys
// and whenever the invalidation stream may have been lost; closing it
// flushes. Reservations taken before a pause never publish (floor), so a
// fetch that straddles a pause cannot bring back a value whose
// invalidation was lost. Safe for concurrent use.
type nearCache struct {
	lc     *redis.LocalCache
	opts   NearCacheOptions
	prefix string // go-redis's namespace: DB 0 and the ACL user name

	serving  atomic.Bool
	floor    atomic.Uint64 // tokens at or below it were reserved before the last pause
	maxToken atomic.Uint64

	checked     bool // the server can track keys; owned by the heartbeat loop
	unsupported atomic.Bool

	mu     sync.Mutex
	reason string // why it is not serving; guarded by mu

	misses, invalidations, flushes, pauses atomic.Uint64

	// noWait is an already-cancelled context: the fast path passes it so
	// that a key being fetched by another caller is a miss at once rather
	// than a wait outside the operation's deadline. It carries no request.
	noWait context.Context
}

var _ redis.Cache = (*nearCache)(nil)

// Reasons the near cache is not serving.
const (
	nearStarting = "waiting for Redis to confirm key tracking"
	nearLost     = "invalidation stream lost: Redis did not answer"
	nearClosed   = "closed"
)

func newNearCache(o NearCacheOptions, username string) *nearCache {
	noWait, cancel := context.WithCancel(context.Background())
	cancel()
	n := &nearCache{
		lc: redis.NewLocalCache(redis.CacheConfig{
			MaxEntries:     o.MaxEntries,
			MaxMemoryBytes: o.MaxBytes,
			MaxStaleness:   o.MaxStaleness,
			DrainInterval:  o.DrainInterval,
		}),
		opts: o,
		// go-redis v9.22's namespace for a client on DB 0 (the only DB it
		// tracks): "0", NUL, the user name's length, ':', the name, NUL.
		prefix: "0\x00" + strconv.Itoa(len(username)) + ":" + username + "\x00",
		reason: nearStarting,
		noWait: noWait,
	}
	return n
}

// lookup is the fast path of [Redis.Get]: the entry go-redis keeps for
// GET key, read straight from its cache. ok is false on a miss (or
// anything unexpected), found false for a cached "no such key". Budget:
// two allocations (the cache key, the copy of the value) and no lock but a
// shard's read lock.
func (n *nearCache) lookup(key string) (val []byte, found, ok bool) {
	if !n.serving.Load() {
		return nil, false, false
	}
	raw, hit := n.lc.Get(n.noWait, n.cacheKey(key))
	if !hit {
		n.misses.Add(1)
		return nil, false, false
	}
	val, found, ok = parseBulk(raw)
	if !ok {
		n.misses.Add(1)
	}
	return val, found, ok
}

// cacheKey is go-redis's key for the command GET key: the namespace, then
// the command as sent (a RESP array of bulk strings).
func (n *nearCache) cacheKey(key string) string {
	lk := strconv.Itoa(len(key))
	b := make([]byte, 0, len(n.prefix)+20+len(lk)+len(key))
	b = append(b, n.prefix...)
	b = append(b, "*2\r\n$3\r\nget\r\n$"...)
	b = append(b, lk...)
	b = append(b, "\r\n"...)
	b = append(b, key...)
	b = append(b, "\r\n"...)
	return string(b)
}

// parseBulk reads the raw RESP reply go-redis cached for a GET: a bulk
// string ($len CRLF bytes CRLF) or a null (_ CRLF, or $-1 CRLF). Anything
// else is not ok. The value returned shares raw's memory.
func parseBulk(raw []byte) (val []byte, found, ok bool) {
	if len(raw) < 3 {
		return nil, false, false
	}
	switch raw[0] {
	case '_':
		return nil, false, len(raw) == 3 && raw[1] == '\r' && raw[2] == '\n'
	case '$':
	default:
		return nil, false, false
	}
	i := 1
	for i < len(raw) && raw[i] != '\r' {
		i++
	}
	if i+1 >= len(raw) || raw[i+1] != '\n' || i > 11 {
		return nil, false, false
	}
	size, err := strconv.Atoi(string(raw[1:i]))
	if err != nil {
		return nil, false, false
	}
	if size == -1 {
		return nil, false, i+2 == len(raw)
	}
	start := i + 2
	if size < 0 || len(raw)-start != size+2 || raw[len(raw)-2] != '\r' || raw[len(raw)-1] != '\n' {
		return nil, false, false
	}
	return raw[start : start+size : start+size], true, true
}

// forget drops the local copy of key after this process wrote it, so that
// its own next read does not wait for Redis's push to say so.
func (n *nearCache) forget(key string) { n.lc.DeleteByRedisKey(n.prefix + key) }

// pause closes the gate and flushes, for reason. It reports whether the
// near cache was serving.
func (n *nearCache) pause(reason string) bool {
	was := n.serving.Swap(false)
	n.floor.Store(n.maxToken.Load())
	n.lc.Flush()
	n.setReason(reason)
	if was {
		n.pauses.Add(1)
	}
	return was
}

// resume opens the gate, empty. It reports whether it was closed.
func (n *nearCache) resume() bool {
	if n.serving.Load() || n.unsupported.Load() {
		return false
	}
	n.lc.Flush()
	n.setReason("")
	return !n.serving.Swap(true)
}

// disable turns the near cache off for good.
func (n *nearCache) disable(reason string) {
	n.unsupported.Store(true)
	n.pause(reason)
}

func (n *nearCache) setReason(s string) {
	n.mu.Lock()
	n.reason = s
	n.mu.Unlock()
}

func (n *nearCache) stats() NearCacheStats {
	cs := n.lc.Stats()
	s := NearCacheStats{
		Enabled:       true,
		Serving:       n.serving.Load(),
		Entries:       cs.Entries,
		Bytes:         cs.MemoryUsageBytes,
		MaxBytes:      n.opts.MaxBytes,
		Hits:          cs.Hits,
		Misses:        n.misses.Load(),
		Invalidations: n.invalidations.Load(),
		Flushes:       n.flushes.Load(),
		Pauses:        n.pauses.Load(),
	}
	n.mu.Lock()
	s.Reason = n.reason
	n.mu.Unlock()
	if s.Serving {
		s.Reason = ""
	}
	return s
}

// The redis.Cache methods, called by go-redis.

// Get serves go-redis's own lookups, only while the gate is open.
func (n *nearCache) Get(ctx context.Context, cacheKey string) ([]byte, bool) {
	if !n.serving.Load() {
		return nil, false
	}
	return n.lc.Get(ctx, cacheKey)
}

// Reserve claims a key for fetching. Closed gate: fetch without caching.
func (n *nearCache) Reserve(cacheKey string, redisKeys []string) (uint64, bool) {
	token, fetch := n.lc.Reserve(cacheKey, redisKeys)
	if token != 0 {
		for {
			m := n.maxToken.Load()
			if token <= m || n.maxToken.CompareAndSwap(m, token) {
				break
			}
		}
	}
	// Read after the token is noted: a pause either sees the token (and
	// raises the floor over it) or is seen here.
	if !n.serving.Load() {
		if token != 0 {
			n.lc.Cancel(cacheKey, token)
		}
		return 0, true
	}
	return token, fetch
}

// FulfillOwned publishes a fetched value unless a pause came since it
// was reserved.
func (n *nearCache) FulfillOwned(cacheKey string, token, ownerConnID uint64, value []byte) bool {
	if !n.serving.Load() || token <= n.floor.Load() {
		n.lc.Cancel(cacheKey, token)
		return false
	}
	return n.lc.FulfillOwned(cacheKey, token, ownerConnID, value)
}

// Cancel drops a reservation.
func (n *nearCache) Cancel(cacheKey string, token uint64) bool {
	return n.lc.Cancel(cacheKey, token)
}

// DeleteByRedisKey applies one key of an invalidation push.
func (n *nearCache) DeleteByRedisKey(redisKey string) int {
	n.invalidations.Add(1)
	return n.lc.DeleteByRedisKey(redisKey)
}

// DeleteByCacheKey drops one entry go-redis could not decode.
func (n *nearCache) DeleteByCacheKey(cacheKey string) bool {
	return n.lc.DeleteByCacheKey(cacheKey)
}

// EvictByConn drops what a connection that lost its tracking fetched.
func (n *nearCache) EvictByConn(connID uint64) int { return n.lc.EvictByConn(connID) }

// Flush applies a FLUSHALL or FLUSHDB push.
func (n *nearCache) Flush() int {
	n.flushes.Add(1)
	return n.lc.Flush()
}

// Stats lets go-redis's Client.CSCStats report this cache.
func (n *nearCache) Stats() redis.CSCStats { return n.lc.Stats() }
