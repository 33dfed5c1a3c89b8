package celery

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/healthhandler/internal/detail"
	"github.com/steadfast-go/steadfast/resilience"
)

// Defaults used when an [Options] field is zero.
const (
	// DefaultHeartbeat is Celery's worker heartbeat interval (the
	// worker's --heartbeat-interval).
	DefaultHeartbeat = 2 * time.Second
	// DefaultEventExchange is Celery's event exchange (its
	// event_exchange setting).
	DefaultEventExchange = "celeryev"
)

// Limits of what the listener remembers.
const (
	// celeryForget is how long a dead worker stays listed (offline or
	// expired) before it is forgotten.
	celeryForget = 10 * time.Minute
	// maxCeleryWorkers bounds the node names remembered, against a
	// publisher inventing new ones.
	maxCeleryWorkers = 10000
)

// Log attribute keys, as package healthhandler spells them.
const (
	logKeyCheck = "check"
	logKeyError = "error"
)

// Options tune the Celery event listener [NewEvents] starts
// and the check it gives. The zero value counts the workers of a Celery
// app with default settings, with no minimum.
type Options struct {
	// Name is the check's name and the keys' component. Empty means
	// "celery".
	Name string
	// Critical makes too few workers, or a broker the listener cannot
	// reach, fail the report (HTTP 503) and readiness.
	Critical bool
	// Interval and Timeout are the check's; zero means
	// [healthhandler.DefaultInterval] and [healthhandler.DefaultTimeout]. A run reads the listener's state in memory and
	// costs Redis nothing, so a short Interval is fine.
	Interval, Timeout time.Duration
	// Min is how many live workers the service needs; fewer fail the
	// check. Zero means no minimum: the check only reports the count.
	Min int
	// HeartbeatInterval is the workers' heartbeat interval. It is used
	// only after the listener (re)subscribes: for two intervals, too few
	// workers make the check warn rather than fail, since a live worker
	// may not have beaten yet. Each worker's own liveness uses the
	// interval its events announce. Zero means [DefaultHeartbeat]
	// (2 s).
	HeartbeatInterval time.Duration
	// EventExchange is the Celery app's event_exchange setting. Empty
	// means [DefaultEventExchange] ("celeryev").
	EventExchange string
	// KeyPrefix is the broker's global_keyprefix transport option, if the
	// Celery app sets one. Empty means none.
	KeyPrefix string
	// FanoutPrefix is what kombu puts between KeyPrefix and an exchange's
	// name to name a pub/sub channel. Empty means kombu's "/{db}." with
	// rdb's database number in place of {db}, as kombu forms it for a
	// "redis://" broker, and for a "sentinel://" one since kombu 5.4.0.
	// Workers on a "sentinel://" broker with an older kombu (Debian 12
	// ships 5.2.4) leave "{db}" as is: give them
	// [LegacySentinelFanoutPrefix].
	FanoutPrefix string
	// Logger receives one line when the listener loses Redis and one when
	// it listens again, never one per event. Nil means slog.Default().
	Logger *slog.Logger
	// Now tells the time at which events arrive and liveness is judged.
	// Nil means time.Now.
	Now func() time.Time
}

// Events counts the live workers of a Celery app that uses Redis as
// its broker, by listening to the heartbeats every worker publishes, with
// no code in the workers and without writing to Redis. Build one with
// [NewEvents] and add [Events.Check] to a [healthhandler.Handler]:
//
//	events, err := celery.NewEvents(rdb, celery.Options{Min: 1})
//	if err != nil { ... }
//	defer events.Close()
//	if err := health.Add(events.Check()); err != nil { ... }
//
// A worker is alive from the moment its worker-online or worker-heartbeat
// event arrives until two of its heartbeat intervals (the event's freq,
// 2 s by default, so 4 s) pass without another one, the window Celery's
// own monitors use; a worker-offline event (a warm shutdown) ends it at
// once. The window starts when an event arrives, by this process's clock,
// not at the timestamp the worker wrote into it: the two hosts' clocks may
// disagree by seconds, and a pub/sub message is delivered at once or never,
// so its arrival is as recent as its timestamp. [Worker.Skew]
// shows how far apart the clocks seem.
//
// Trade-offs, compared with [Ping]: the listener holds one pub/sub
// connection of its own for its whole life and writes nothing to Redis;
// it sees every worker that sends events (Celery workers send worker
// events unless started with --without-heartbeat), and it reports active
// and processed task counts. But it knows nothing until workers beat after
// it subscribed: for up to one heartbeat interval after start, or after
// a Redis outage, it has not heard every worker yet (for two intervals
// after it subscribes, too few workers make the check warn, not fail). It
// reconnects by itself, with backoff, after Redis was lost, and asks rdb
// for its current client each time. Its check and a [Ping] check
// need different names to share a Handler.
//
// rdb must use the broker's Redis database: the channels' names hold the
// database number. It may be a Sentinel (failover) client, as the broker
// may be "sentinel://"; not a Cluster client: kombu, Celery's Redis
// transport, has no Redis Cluster support, so no broker is a cluster. The
// app must keep kombu's default fanout_prefix and
// fanout_patterns transport options (true since Celery 4).
//
// A Events is safe for concurrent use. Close stops its listener.
type Events struct {
	rdb     *resilience.Redis
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	pattern string
	// notify, if set, is called after each message was handled and after
	// each change of the subscription; tests use it to wait for those.
	notify func()

	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	closed    bool
	ps        *redis.PubSub // the current subscription, closed by Close
	connected bool
	since     time.Time // when the current subscription was confirmed
	lastErr   string    // why the listener is not subscribed
	lost      bool      // the loss was logged
	workers   map[string]*celeryWorker
	events    uint64
	malformed uint64
	lastBad   string
}

// celeryWorker is what the listener knows of one worker.
type celeryWorker struct {
	freq              time.Duration
	active, processed int64
	heard             time.Time // when its last online or heartbeat event arrived
	expires           time.Time // alive before this instant
	offline           bool
	skew              time.Duration
}

// NewEvents starts listening to the worker events of the Celery app
// whose broker rdb points at, in a goroutine the returned Events
// owns until [Events.Close]. It returns at once and does not wait
// for Redis: the check fails with the reason until the subscription
// stands. It returns an error naming the field, wrapping
// [healthhandler.ErrInvalidOption], when rdb is nil, is a Redis Cluster
// client (see [Events]) or an option is invalid.
func NewEvents(rdb *resilience.Redis, opts Options) (*Events, error) {
	return newEvents(rdb, opts, nil)
}

func newEvents(rdb *resilience.Redis, opts Options, notify func()) (*Events, error) {
	if rdb == nil {
		return nil, fmt.Errorf("celery: NewEvents of a nil client: %w", healthhandler.ErrInvalidOption)
	}
	if err := notCluster("NewEvents", rdb); err != nil {
		return nil, err
	}
	if opts.Min < 0 || opts.Interval < 0 || opts.Timeout < 0 || opts.HeartbeatInterval < 0 {
		return nil, fmt.Errorf("celery: Options.Min (%d), Interval (%v), Timeout (%v) and HeartbeatInterval (%v) must not be negative: %w",
			opts.Min, opts.Interval, opts.Timeout, opts.HeartbeatInterval, healthhandler.ErrInvalidOption)
	}
	opts.Name = cmp.Or(opts.Name, "celery")
	opts.HeartbeatInterval = cmp.Or(opts.HeartbeatInterval, DefaultHeartbeat)
	opts.EventExchange = cmp.Or(opts.EventExchange, DefaultEventExchange)
	e := &Events{
		rdb:     rdb,
		opts:    opts,
		log:     opts.Logger,
		now:     opts.Now,
		notify:  notify,
		done:    make(chan struct{}),
		workers: map[string]*celeryWorker{},
		lastErr: "not subscribed yet",
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.now == nil {
		e.now = time.Now
	}
	// kombu's channel for an event: [prefix]/{db}.{exchange}/{routing key},
	// where the routing key is the event type with dots: worker.heartbeat.
	e.pattern = escapeGlob(kombuFanoutPrefix(opts.KeyPrefix, opts.FanoutPrefix, rdb.Client())+opts.EventExchange+"/worker.") + "*"
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go e.listen(ctx)
	return e, nil
}

// notCluster refuses a Redis Cluster client: kombu's Redis transport
// speaks to one Redis (or to the master Sentinel names), so no Celery
// broker is a cluster, and a check on one would count no workers forever
// as if they were gone.
func notCluster(fn string, rdb *resilience.Redis) error {
	if _, ok := rdb.Client().(*redis.ClusterClient); ok || rdb.Topology() == resilience.TopologyCluster {
		return fmt.Errorf("celery: %s of a Redis Cluster client: Celery's Redis transport (kombu) has no Cluster support, so the broker is one Redis or a Sentinel master; give its client: %w",
			fn, healthhandler.ErrInvalidOption)
	}
	return nil
}

// LegacySentinelFanoutPrefix is the fanout prefix of kombu's Sentinel
// transport before kombu 5.4.0, which did not put the database number in
// place of "{db}" (kombu pull request 1986): give it as
// [Options.FanoutPrefix] and [PingOptions.FanoutPrefix] when the workers'
// broker is "sentinel://" and their kombu is older.
const LegacySentinelFanoutPrefix = "/{db}."

// kombuFanoutPrefix is what kombu's Redis transport puts before an
// exchange's name to make a pub/sub channel: its global key prefix, then
// fanout, or "/{db}." with c's database number when fanout is empty.
func kombuFanoutPrefix(keyPrefix, fanout string, c redis.UniversalClient) string {
	if fanout != "" {
		return keyPrefix + fanout
	}
	db := 0
	if rc, ok := c.(*redis.Client); ok {
		db = rc.Options().DB
	}
	return keyPrefix + "/" + strconv.Itoa(db) + "."
}

// escapeGlob quotes the characters PSUBSCRIBE patterns give a meaning.
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Check returns the check that reports what the listener knows; each run
// reads memory only. It reports, all with the same status:
//
//   - "celery:workers": the number of live workers, failing when it is
//     below Min or when the listener is not subscribed (everyone reads
//     "celery workers unknown: redis unavailable"; callers allowed to see
//     details read the reason). For two heartbeat intervals after the
//     listener subscribed, too few workers only warn. Callers allowed to
//     see details also read the live workers' names and those offline or
//     expired lately;
//   - "celery:active" and "celery:processed": the sums, over the live
//     workers, of the tasks they are running and have run;
//   - "celery:malformed": the messages skipped since start because they
//     were not valid worker events (details: what was wrong with the
//     latest).
func (e *Events) Check() healthhandler.Check {
	return healthhandler.Check{
		Name: e.opts.Name, Critical: e.opts.Critical,
		Interval: e.opts.Interval, Timeout: e.opts.Timeout,
		WorkersMeasurement: "workers",
		Run: func(context.Context) ([]healthhandler.Observation, error) {
			now := e.now()
			return celeryEventObservations(e.stats(now), e.rdb.String(), e.opts.Min, 2*e.opts.HeartbeatInterval, now), nil
		},
	}
}

// Close stops the listener, closing its connection, and waits for it. It
// is safe to call more than once and always returns nil.
func (e *Events) Close() error {
	e.mu.Lock()
	e.closed = true
	ps := e.ps
	e.ps = nil
	e.mu.Unlock()
	e.cancel()
	if ps != nil {
		_ = ps.Close() // unblocks a pending receive; it may already be closed
	}
	<-e.done
	return nil
}

// handle decodes one message and updates the worker it is about.
func (e *Events) handle(payload string) {
	now := e.now()
	ev, err := decodeCeleryEvent([]byte(payload))
	e.mu.Lock()
	e.record(now, ev, err)
	e.mu.Unlock()
	e.notified()
}

// record applies one decoded event. e.mu is held.
func (e *Events) record(now time.Time, ev celeryEvent, err error) {
	e.events++
	if err != nil {
		e.malformed++
		e.lastBad = err.Error()
		return
	}
	w := e.workers[ev.Hostname]
	switch ev.Type {
	case celeryWorkerOnline, celeryWorkerHeartbeat:
		if w == nil {
			if len(e.workers) >= maxCeleryWorkers {
				e.malformed++
				e.lastBad = fmt.Sprintf("more than %d worker names; %q skipped", maxCeleryWorkers, detail.Clip(ev.Hostname))
				return
			}
			w = &celeryWorker{}
			e.workers[ev.Hostname] = w
		}
		w.freq, w.active, w.processed = ev.Freq, ev.Active, ev.Processed
		w.heard, w.expires, w.offline = now, now.Add(2*ev.Freq), false
		w.skew = 0
		if !ev.Timestamp.IsZero() {
			w.skew = now.Sub(ev.Timestamp)
		}
	case celeryWorkerOffline:
		if w != nil {
			w.offline = true
			w.expires = now
		}
	}
}

// celeryEventObservations describes what the listener knows at now.
func celeryEventObservations(st Stats, broker string, minimum int, warmUp time.Duration, now time.Time) []healthhandler.Observation {
	var alive, offline, expired []string
	var active, processed int64
	for _, w := range st.Workers {
		switch {
		case w.Alive:
			alive = append(alive, w.Hostname)
			active += w.Active
			processed += w.Processed
		case w.Offline:
			offline = append(offline, w.Hostname)
		default:
			expired = append(expired, fmt.Sprintf("%s (%ds ago)", w.Hostname, int(now.Sub(w.LastHeard).Seconds())))
		}
	}
	base := healthhandler.Observation{ComponentID: broker, Status: healthhandler.StatusPass}
	var lines []string
	switch {
	case !st.Connected:
		base.Status, base.Output = healthhandler.StatusFail, "celery workers unknown: "+detail.RedisUnavailable
		lines = append(lines, st.LastError)
	case len(alive) < minimum && now.Sub(st.Since) < warmUp:
		base.Status = healthhandler.StatusWarn
		base.Output = fmt.Sprintf("%d celery workers heard since listening began, want at least %d", len(alive), minimum)
	case len(alive) < minimum:
		base.Status = healthhandler.StatusFail
		base.Output = fmt.Sprintf("%d celery workers alive, want at least %d", len(alive), minimum)
	}
	lines = detail.AppendListed(lines, "alive", alive)
	lines = detail.AppendListed(lines, "offline", offline)
	lines = detail.AppendListed(lines, "no heartbeat", expired)
	workers := base
	workers.Measurement = "workers"
	workers.Detail = strings.Join(lines, "; ")
	act := base
	act.Measurement = "active"
	proc := base
	proc.Measurement = "processed"
	if st.Connected {
		// Unknown otherwise: a count from before the loss would mislead.
		workers.Value, act.Value, proc.Value = len(alive), active, processed
	}
	bad := base
	bad.Measurement, bad.Value = "malformed", st.Malformed
	if st.Malformed > 0 {
		bad.Detail = "last: " + st.LastMalformed
	}
	return []healthhandler.Observation{workers, act, proc, bad}
}
