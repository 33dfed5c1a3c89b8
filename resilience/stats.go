package resilience

import (
	"sync/atomic"
	"time"
)

// counters are updated on every operation with atomics only.
type counters struct {
	ops, failures, rejected, retries, probes, trials atomic.Uint64
	abandoned                                        atomic.Uint64
	latencyNanos                                     atomic.Int64
	maxLatencyNanos                                  atomic.Int64
	lastSuccess                                      atomic.Int64 // unix nanos, 0 = never
	lastError                                        atomic.Pointer[errRecord]
}

type errRecord struct {
	msg string
	at  time.Time
}

func (c *counters) record(d time.Duration, err error) {
	c.ops.Add(1)
	c.latencyNanos.Add(int64(d))
	for {
		m := c.maxLatencyNanos.Load()
		if int64(d) <= m || c.maxLatencyNanos.CompareAndSwap(m, int64(d)) {
			break
		}
	}
}

// noteError records err as the last failure seen, by an operation's
// attempt or by the prober. It does not count an operation as failed.
func (c *counters) noteError(now time.Time, err error) {
	c.lastError.Store(&errRecord{msg: err.Error(), at: now})
}

func (c *counters) lastErr() string {
	if e := c.lastError.Load(); e != nil {
		return e.msg
	}
	return ""
}

// Stats is a snapshot of a [Redis], for health checks and metrics.
type Stats struct {
	// Addr is the redacted address, as redis://user:***@host:port/db.
	Addr string
	// State is the breaker's state, entered at Since. In a cluster it is
	// the breaker of operations that name no key; Nodes has the others.
	State State
	Since time.Time
	// Nodes holds, in a cluster, the breaker state of each master node a
	// key led to, by host:port; nil otherwise.
	Nodes map[string]State
	// LastError is the last failure's text and time. Errors from this
	// package never hold a password; host names may appear.
	LastError   string
	LastErrorAt time.Time
	// LastSuccess is when Redis last answered; zero if never.
	LastSuccess time.Time
	// Ops counts operations that reached the guard's executor; Failures
	// those that failed because of Redis; Rejected those answered
	// [ErrUnavailable] by the open breaker without a network call; Retries
	// the extra attempts made; Probes the prober's pings; Trials the
	// operations traffic ran while a breaker was open, to find out sooner
	// than the prober that Redis is back.
	Ops, Failures, Rejected, Retries, Probes, Trials uint64
	// Abandoned counts the operations the caller stopped waiting for
	// because they were still running at their deadline (plus a grace of
	// 25 ms): go-redis held them past it. Each is also in Failures.
	Abandoned uint64
	// Opens, HalfOpens and Closes count the breaker's changes into each
	// state; in a cluster, those of every node's breaker as well.
	Opens, HalfOpens, Closes uint64
	// MeanLatency and MaxLatency cover the operations counted in Ops.
	MeanLatency, MaxLatency time.Duration
	// Pool holds go-redis's connection pool figures.
	Pool PoolStats
	// NearCache describes the near cache (see [Options].NearCache).
	NearCache NearCacheStats
}

// PoolStats are the figures of go-redis's connection pool.
type PoolStats struct {
	// TotalConns is the number of connections in the pool now, IdleConns
	// those of them not in use, and StaleConns how many stale connections
	// the pool has removed so far.
	TotalConns, IdleConns, StaleConns uint32
	// Hits counts the times an operation found a free connection in the
	// pool, Misses those it had to dial one, and Timeouts those it gave
	// up waiting for one (PoolTimeout).
	Hits, Misses, Timeouts uint32
}

// Stats returns a snapshot. It does no I/O.
func (r *Redis) Stats() Stats {
	s := Stats{
		Addr:     r.name,
		State:    r.State(),
		Since:    time.Unix(0, r.since.Load()),
		Ops:      r.st.ops.Load(),
		Failures: r.st.failures.Load(),
		Rejected: r.st.rejected.Load(),
		Retries:  r.st.retries.Load(),
		Probes:   r.st.probes.Load(),
		Trials:   r.st.trials.Load(),

		Abandoned: r.st.abandoned.Load(),

		Opens:     r.trans.opens.Load(),
		HalfOpens: r.trans.halfOpens.Load(),
		Closes:    r.trans.closes.Load(),

		NearCache: r.nearStats(),
	}
	if n := r.st.lastSuccess.Load(); n != 0 {
		s.LastSuccess = time.Unix(0, n)
	}
	if e := r.st.lastError.Load(); e != nil {
		s.LastError, s.LastErrorAt = e.msg, e.at
	}
	if r.cluster != nil {
		s.Nodes = r.cluster.nodeStates()
	}
	if s.Ops > 0 {
		s.MeanLatency = time.Duration(r.st.latencyNanos.Load() / int64(s.Ops))
	}
	s.MaxLatency = time.Duration(r.st.maxLatencyNanos.Load())
	if p := r.Client().PoolStats(); p != nil {
		s.Pool = PoolStats{
			TotalConns: p.TotalConns, IdleConns: p.IdleConns, StaleConns: p.StaleConns,
			Hits: p.Hits, Misses: p.Misses, Timeouts: p.Timeouts,
		}
	}
	return s
}
