package middleware

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the background writer, used when CacheOptions leaves them zero.
const (
	// DefaultCacheQueueSize is the number of entries that may wait to be
	// written when [CacheOptions.QueueSize] is zero.
	DefaultCacheQueueSize = 1024
	// DefaultCacheQueueBytes is the most bytes of entries that may wait to
	// be written when [CacheOptions.QueueBytes] is zero.
	DefaultCacheQueueBytes = 32 << 20
	// DefaultLockTimeout is how long a request waits for another
	// request's run of the handler for the same key when
	// [CacheOptions.LockTimeout] is zero (nginx's proxy_cache_lock_timeout
	// is 5 s too).
	DefaultLockTimeout = 5 * time.Second
	// DefaultMaxRefreshes is how many background refreshes may run at
	// once when [CacheOptions.MaxRefreshes] is zero.
	DefaultMaxRefreshes = 4
	// DefaultCacheWorkers is the number of goroutines that write entries
	// when [CacheOptions.Workers] is zero.
	DefaultCacheWorkers = 4
	// closeDrainTimeout bounds how long Close waits for queued entries to
	// be written before it drops the rest.
	closeDrainTimeout = 5 * time.Second
	// refreshTimeout bounds a background refresh. It is the refresh's
	// own: the deadline of the request that started it does not apply,
	// since that request is answered (from the stale entry) long before.
	refreshTimeout = 30 * time.Second
	// maxWorkerBuffer is the largest encoding buffer a worker keeps for
	// the next entry.
	maxWorkerBuffer = 1 << 20
)

// writeJob is one entry waiting in the queue to be written.
type writeJob struct {
	// key is the URL's key: where e is stored, or, when e is a variant
	// (e.variant set), where the URL's variant index is.
	key string
	e   *entry
	ttl time.Duration
	// maxVariants caps the variants in the index, for a variant.
	maxVariants int
	// size is what the entry counts against the queue's byte bound.
	size int64
	// gen is the invalidation generation when the run that made e began.
	gen uint64
	// done, if set, is called exactly once when the job was carried out
	// (stored true), failed or was dropped (stored false). A job dropped
	// because its key was invalidated counts as carried out: the store
	// holds what the invalidation left there.
	done func(stored bool)
}

// writer is the bounded background queue that takes entries off the
// request path: a request hands over its entry and goes on; a fixed set of
// workers encodes and writes them. A full queue, by entries or by bytes,
// drops the entry (counted, logged once per episode) instead of making the
// request wait or the process hold more.
type writer struct {
	store Store
	// invalidated says the entry was made by a run that started before
	// its key was last invalidated: it is dropped, never written.
	invalidated func(key string, gen uint64) bool
	log         *slog.Logger
	stats       *cacheCounters
	signKey     []byte // CacheOptions.SigningKey; set before the first job

	jobs chan writeJob
	// queued is the size of the entries in jobs; maxBytes bounds it.
	queued   atomic.Int64
	maxBytes int64
	// mu guards closed, so that no send races with close(jobs).
	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
	ctx    context.Context // cancelled when Close gives up draining
	cancel context.CancelFunc
	full   atomic.Bool // the queue was found full and not yet found free
}

// newWriter starts the writer of opts (QueueSize, QueueBytes and Workers,
// zero meaning their defaults).
func newWriter(store Store, opts CacheOptions, log *slog.Logger, stats *cacheCounters,
	invalidated func(key string, gen uint64) bool,
) *writer {
	size := orDefault(opts.QueueSize, DefaultCacheQueueSize)
	maxBytes := orDefault(opts.QueueBytes, DefaultCacheQueueBytes)
	workers := orDefault(opts.Workers, DefaultCacheWorkers)
	w := &writer{
		maxBytes:    maxBytes,
		store:       store,
		invalidated: invalidated,
		log:         log,
		stats:       stats,
		// Buffered: this channel is the bounded queue of CacheOptions.QueueSize.
		jobs: make(chan writeJob, size),
	}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.wg.Add(workers)
	for range workers {
		go w.run()
	}
	return w
}

// enqueue hands j to the workers without waiting. It reports false, after
// calling j.done, when the queue is full or closed.
func (w *writer) enqueue(j writeJob) bool {
	j.size = int64(encodedSize(j.e))
	w.mu.RLock()
	defer w.mu.RUnlock()
	if !w.closed {
		if w.queued.Add(j.size) <= w.maxBytes {
			select {
			case w.jobs <- j:
				if w.full.Load() && w.full.CompareAndSwap(true, false) {
					w.log.Info("cache write queue has room again")
				}
				return true
			default:
			}
		}
		w.queued.Add(-j.size)
		if w.full.CompareAndSwap(false, true) {
			w.log.Warn("cache write queue full: dropping entries until it has room",
				slog.Int(LogKeyQueueSize, cap(w.jobs)), slog.Int64(LogKeyQueueBytes, w.maxBytes))
		}
		w.stats.droppedBytes.Add(uint64(j.size))
	}
	w.stats.dropped.Add(1)
	if j.done != nil {
		j.done(false)
	}
	return false
}

func (w *writer) run() {
	defer w.wg.Done()
	var buf []byte
	for j := range w.jobs {
		buf = w.write(j, buf)
		w.queued.Add(-j.size)
		if cap(buf) > maxWorkerBuffer {
			buf = nil
		}
	}
}

// write carries out one job and returns the encoding buffer for reuse.
func (w *writer) write(j writeJob, buf []byte) []byte {
	stored := true
	if j.done != nil {
		defer func() { j.done(stored) }()
	}
	if w.ctx.Err() != nil { // Close gave up draining
		w.stats.dropped.Add(1)
		stored = false
		return buf
	}
	if w.invalidated(j.key, j.gen) {
		w.stats.dropped.Add(1)
		return buf
	}
	if need := encodedSize(j.e); cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	var err error
	if j.e.variant != nil {
		buf, err = w.writeVariant(j, buf)
	} else {
		buf = appendEntry(buf[:0], j.e, j.key, w.signKey)
		err = w.store.Set(w.ctx, j.key, buf, j.ttl)
	}
	if err != nil {
		// Redis being down is logged by the store's own state changes;
		// here it is only counted.
		w.stats.storeErrors.Add(1)
		stored = false
		return buf
	}
	if w.invalidated(j.key, j.gen) {
		// The key was invalidated while the write was on its way, and its
		// delete may have landed first: delete again.
		if err := w.store.Del(w.ctx, j.key); err != nil {
			w.stats.storeErrors.Add(1)
		}
		w.stats.dropped.Add(1)
		return buf
	}
	w.stats.stored.Add(1)
	return buf
}

// close stops taking jobs and waits for the queued ones to be written, at
// most closeDrainTimeout; what is left then is dropped. It is safe to call
// more than once.
func (w *writer) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.jobs)
	}
	w.mu.Unlock()
	drained := make(chan struct{})
	go func() { w.wg.Wait(); close(drained) }()
	timer := time.NewTimer(closeDrainTimeout)
	defer timer.Stop()
	select {
	case <-drained:
	case <-timer.C:
		w.cancel()
		<-drained
	}
	w.cancel()
}
