package middleware

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/steadfast-go/steadfast/cachepolicy"
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
	key string
	e   *entry
	ttl time.Duration
	// size is what the entry counts against the queue's byte bound.
	size int64
	// gen is the invalidation generation when the run that made e began.
	gen uint64
	// done, if set, is called exactly once when the job was carried out,
	// failed or was dropped.
	done func()
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

func newWriter(store Store, size int, maxBytes int64, workers int, log *slog.Logger, stats *cacheCounters,
	invalidated func(key string, gen uint64) bool,
) *writer {
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
		j.done()
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
	if j.done != nil {
		defer j.done()
	}
	if w.ctx.Err() != nil { // Close gave up draining
		w.stats.dropped.Add(1)
		return buf
	}
	if w.invalidated(j.key, j.gen) {
		w.stats.dropped.Add(1)
		return buf
	}
	if need := encodedSize(j.e); cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	buf = appendEntry(buf[:0], j.e, j.key, w.signKey)
	if err := w.store.Set(w.ctx, j.key, buf, j.ttl); err != nil {
		// Redis being down is logged by the store's own state changes;
		// here it is only counted.
		w.stats.storeErrors.Add(1)
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

// refresh starts the background refresh of the stale entry at key, unless
// one is running already, MaxRefreshes are, or the cache is closed. The
// handler runs with a copy of r made unconditional (no validators, Range
// or Cache-Control), as a GET, with r's context values but neither its
// cancellation nor its deadline: it has a deadline of its own,
// refreshTimeout, and ends early only when the cache is closed. The
// header w has before the entry is written (what middleware outside the
// cache set) counts in the store decision, as on a miss.
func (c *Cache) refresh(key string, w http.ResponseWriter, r *http.Request, next http.Handler, p *cachepolicy.Policy) {
	c.refreshMu.Lock()
	if _, running := c.refreshing[key]; running || c.closed {
		c.refreshMu.Unlock()
		return
	}
	if len(c.refreshing) >= c.maxRefresh {
		c.refreshMu.Unlock()
		c.stats.refreshesSkipped.Add(1)
		return
	}
	c.refreshing[key] = struct{}{}
	c.refreshWG.Add(1)
	c.refreshMu.Unlock()
	c.stats.refreshes.Add(1)

	// The request's values, not its end or its deadline: the client has
	// its answer. The refresh ends with Close, or after refreshTimeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), refreshTimeout)
	stop := context.AfterFunc(c.ctx, cancel)
	req := r.Clone(ctx)
	req.Method = http.MethodGet
	req.Body, req.ContentLength = http.NoBody, 0
	for _, name := range refreshDropped {
		delete(req.Header, name)
	}
	var before http.Header
	if h := w.Header(); len(h) > 0 {
		before = h.Clone()
	}
	go func() {
		defer func() {
			stop()
			cancel()
			c.refreshMu.Lock()
			delete(c.refreshing, key)
			c.refreshMu.Unlock()
			c.refreshWG.Done()
		}()
		c.runRefresh(key, req, before, next, p)
	}()
}

// refreshDropped are the request fields a refresh leaves out, so that the
// handler answers with a whole, storable response.
var refreshDropped = []string{
	"Cache-Control", "If-Match", "If-Modified-Since", "If-None-Match", "If-Range",
	"If-Unmodified-Since", "Pragma", "Range",
}

// runRefresh runs next for a refresh and queues its response if it may be
// stored and the handler completed it: it returned, within the refresh's
// deadline, having written the whole body it announced. before is the
// header middleware outside the cache set on the request that started the
// refresh. A panic is logged and goes no further: there is no client, and a
// panic in this goroutine would end the process.
func (c *Cache) runRefresh(key string, req *http.Request, before http.Header, next http.Handler, p *cachepolicy.Policy) {
	sink := refreshSink{h: before.Clone()}
	rec := c.recs.get(&sink, recorderConfig{capture: true, limit: bodyLimit(p)})
	returned := false
	defer func() {
		if !returned {
			if v := recover(); v != nil && v != http.ErrAbortHandler {
				logPanic(c.log, req, v)
			}
		}
	}()
	// Taken before the handler runs, as for a miss: an invalidation that
	// comes while it runs must find this response older than itself.
	now, gen := c.now(), c.inval.generation()
	next.ServeHTTP(rec, req)
	returned = true

	rec.finish()
	status := rec.Status()
	if status == 0 {
		status = http.StatusOK
	}
	h := sink.Header()
	d := cachepolicy.Storable(req, status, c.decisionHeader(h, func(i int) bool {
		return i < len(before["Vary"]) && h["Vary"][i] == before["Vary"][i]
	}), *p, now)
	if d.Store && req.Context().Err() == nil && rec.Complete() && lengthMatches(status, h, len(rec.Body())) {
		e := newEntry(now, d.Lifetime, status, h, before, rec.Body()) // the sink's header is ours
		c.w.enqueue(writeJob{key: key, e: e, ttl: retention(e.life), gen: gen})
	}
	c.recs.put(rec)
}

// refreshSink is where a background refresh writes: there is no client,
// so the recorder in front of it keeps what is to be stored and the rest
// is dropped. It is not a wrapper, and has nothing to flush or hijack.
type refreshSink struct {
	h http.Header
}

// Header returns the response's header map.
func (d *refreshSink) Header() http.Header {
	if d.h == nil {
		d.h = make(http.Header)
	}
	return d.h
}

// Write drops p.
func (*refreshSink) Write(p []byte) (int, error) { return len(p), nil }

// WriteHeader drops the status; the recorder keeps it.
func (*refreshSink) WriteHeader(int) {}
