package metrics

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/steadfast-go/steadfast/resilience"
)

// Attribute keys and values of OpenTelemetry's database semantic
// conventions.
const (
	keyDBSystem      = "db.system.name"
	keyDBOperation   = "db.operation.name"
	keyErrorType     = "error.type"
	keyConnState     = "db.client.connection.state"
	keyConnPool      = "db.client.connection.pool.name"
	dbSystemRedis    = "redis"
	connStateIdle    = "idle"
	connStateUsed    = "used"
	redisPoolName    = "redis"
	opDurationName   = "db.client.operation.duration"
	connCountName    = "db.client.connection.count"
	connTimeoutsName = "db.client.connection.timeouts"
)

// durationBuckets are the histogram's bounds in seconds: finer than the
// semantic conventions' default (which starts at 1 ms), since a Redis
// operation on a nearby server takes a fraction of a millisecond and the
// guard's deadline is tens of milliseconds.
var durationBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
}

// opOutcomes and opNames index the precomputed attribute sets of the
// duration histogram; any other name gets its set on first use.
var (
	opOutcomes = [...]resilience.OpOutcome{
		resilience.OpOK, resilience.OpTimeout, resilience.OpCanceled, resilience.OpRejected, resilience.OpError,
	}
	opNames = [...]string{"get", "set", "del", "ping", "do"}
)

// Batching of operation durations. The SDK's Histogram.Record costs a few
// hundred nanoseconds (attribute normalisation, exemplar filter, bucket
// search), more than a cache hit may spend on metrics; so the hook only
// appends the duration to a batch, and a goroutine records the batch every
// opFlushInterval. What does not fit in a batch is dropped and counted.
const (
	opFlushInterval = 100 * time.Millisecond
	opMaxBatch      = 1 << 16
)

// opSample is one operation waiting to be recorded: the indexes of its
// name and outcome, and its duration.
type opSample struct {
	name, outcome uint8
	d             time.Duration
}

// opRecorder records Redis operation durations. Its hot path is an index
// lookup and an append under a mutex; the goroutine started by start
// records the batches.
type opRecorder struct {
	hist  metric.Float64Histogram
	known [len(opNames)][len(opOutcomes)][]metric.RecordOption
	other sync.Map // opKey -> []metric.RecordOption, for names not in opNames

	mu      sync.Mutex
	batch   []opSample // guarded by mu
	flushMu sync.Mutex // one flush at a time
	spare   []opSample // guarded by flushMu
	dropped atomic.Uint64

	stop chan struct{}
	done chan struct{}
}

type opKey struct {
	name    string
	outcome resilience.OpOutcome
}

func newOpRecorder(hist metric.Float64Histogram) *opRecorder {
	r := &opRecorder{hist: hist, stop: make(chan struct{}), done: make(chan struct{})}
	for i, name := range opNames {
		for j, o := range opOutcomes {
			r.known[i][j] = opOptions(name, o)
		}
	}
	return r
}

// start runs the recorder's goroutine until close.
func (r *opRecorder) start() {
	go func() {
		defer close(r.done)
		t := time.NewTicker(opFlushInterval)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				r.flush()
				return
			case <-t.C:
				r.flush()
			}
		}
	}()
}

// close stops the goroutine after a last flush, and waits for it.
func (r *opRecorder) close() {
	close(r.stop)
	<-r.done
}

// flush records the batch. It runs every opFlushInterval and at each
// collection (the SDK runs callbacks before it reads the histogram), so
// that a collection sees every operation that ended before it.
func (r *opRecorder) flush() {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	b := r.batch
	r.batch = r.spare[:0]
	r.mu.Unlock()
	ctx := context.Background()
	for _, s := range b {
		r.hist.Record(ctx, s.d.Seconds(), r.known[s.name][s.outcome]...)
	}
	r.spare = b
}

// record is the hook given to ObserveOps.
func (r *opRecorder) record(op resilience.Op) {
	i, j := opIndex(op)
	if i < 0 || j < 0 {
		// A name this package does not know yet: rare, recorded at once.
		r.hist.Record(context.Background(), op.Duration.Seconds(), r.otherOptions(op)...)
		return
	}
	r.mu.Lock()
	if len(r.batch) < opMaxBatch {
		r.batch = append(r.batch, opSample{name: uint8(i), outcome: uint8(j), d: op.Duration}) //nolint:gosec // indexes of arrays of five
	} else {
		r.dropped.Add(1)
	}
	r.mu.Unlock()
}

// opIndex returns the indexes of op's name and outcome in opNames and
// opOutcomes, or -1.
func opIndex(op resilience.Op) (i, j int) {
	i, j = -1, -1
	switch op.Name {
	case "get":
		i = 0
	case "set":
		i = 1
	case "del":
		i = 2
	case "ping":
		i = 3
	case "do":
		i = 4
	}
	switch op.Outcome {
	case resilience.OpOK:
		j = 0
	case resilience.OpTimeout:
		j = 1
	case resilience.OpCanceled:
		j = 2
	case resilience.OpRejected:
		j = 3
	case resilience.OpError:
		j = 4
	}
	return i, j
}

func (r *opRecorder) otherOptions(op resilience.Op) []metric.RecordOption {
	k := opKey{op.Name, op.Outcome}
	if v, ok := r.other.Load(k); ok {
		return v.([]metric.RecordOption) //nolint:forcetypeassert // only this type is stored
	}
	v, _ := r.other.LoadOrStore(k, opOptions(op.Name, op.Outcome))
	return v.([]metric.RecordOption) //nolint:forcetypeassert // only this type is stored
}

// opOptions is the measurement option of an operation's attributes:
// db.system.name, db.operation.name (the command, upper case, or "do" for
// a pipeline or script) and, when it did not succeed, error.type.
func opOptions(name string, o resilience.OpOutcome) []metric.RecordOption {
	op := name
	switch name {
	case "get", "set", "del", "ping":
		op = upper(name)
	}
	attrs := []attribute.KeyValue{
		attribute.String(keyDBSystem, dbSystemRedis),
		attribute.String(keyDBOperation, op),
	}
	if o != resilience.OpOK {
		attrs = append(attrs, attribute.String(keyErrorType, string(o)))
	}
	return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
}

// upper returns an ASCII string in upper case.
func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// instrumentRedis measures the guarded client: operation durations
// (hook), the pool and the breaker (Stats).
func (m *Metrics) instrumentRedis(meter metric.Meter, src Sources) error {
	rdb := src.Redis
	if rdb == nil {
		return nil
	}
	hist, err := meter.Float64Histogram(opDurationName,
		metric.WithUnit("s"),
		metric.WithDescription("Duration of Redis operations through the guard, retries included."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	if err != nil {
		return err
	}
	in := &instruments{meter: meter}
	conns := in.upDown(connCountName, "{connection}", "Connections in the Redis client's pool, by state.")
	timeouts := in.counter(connTimeoutsName, "{timeout}", "Waits for a pooled Redis connection that timed out.")
	stale := in.counter("steadfast.redis.pool.stale", "{connection}", "Stale connections the Redis pool removed.")
	failures := in.counter("steadfast.redis.failures", "{operation}", "Redis operations that failed because of Redis.")
	dropped := in.counter("steadfast.redis.operation.unrecorded", "{operation}",
		"Redis operations whose duration was not recorded: more than a batch between two flushes.")
	bi := newBreakerInstruments(in)
	near := newNearInstruments(in)
	if in.err != nil {
		return in.err
	}

	pool := attribute.String(keyConnPool, redisPoolName)
	idle := metric.WithAttributeSet(attribute.NewSet(pool, attribute.String(keyConnState, connStateIdle)))
	used := metric.WithAttributeSet(attribute.NewSet(pool, attribute.String(keyConnState, connStateUsed)))
	poolOnly := metric.WithAttributeSet(attribute.NewSet(pool))
	system := metric.WithAttributeSet(attribute.NewSet(attribute.String(keyDBSystem, dbSystemRedis)))
	breaker := newBreakerAttrs(RedisBreakerName)
	ops := newOpRecorder(hist)
	err = m.register(meter, func(_ context.Context, o metric.Observer) error {
		ops.flush()
		s := rdb.Stats()
		p := s.Pool
		o.ObserveInt64(conns, int64(p.IdleConns), idle)
		o.ObserveInt64(conns, int64(p.TotalConns)-int64(p.IdleConns), used)
		o.ObserveInt64(timeouts, int64(p.Timeouts), poolOnly)
		o.ObserveInt64(stale, int64(p.StaleConns), poolOnly)
		o.ObserveInt64(failures, count(s.Failures), system)
		bi.observe(o, breaker, breakerCounts{state: int(s.State), opens: s.Opens, halfOpens: s.HalfOpens, closes: s.Closes, rejected: s.Rejected})
		o.ObserveInt64(dropped, count(ops.dropped.Load()), system)
		near.observe(o, s.NearCache)
		return nil
	}, append([]metric.Observable{conns, timeouts, stale, failures, dropped, bi.state, bi.transitions, bi.rejected}, near.all()...)...)
	if err != nil {
		return err
	}
	ops.start()
	rdb.ObserveOps(ops.record)
	m.hooked(func() {
		rdb.ObserveOps(nil)
		ops.close()
	})
	return nil
}
