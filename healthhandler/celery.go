package healthhandler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/redis/go-redis/v9"

	"github.com/steadfast-go/steadfast/resilience"
)

// Defaults used when a [CeleryOptions] or [CeleryPingOptions] field is
// zero.
const (
	// DefaultCeleryHeartbeat is Celery's worker heartbeat interval (the
	// worker's --heartbeat-interval).
	DefaultCeleryHeartbeat = 2 * time.Second
	// DefaultCeleryEventExchange is Celery's event exchange (its
	// event_exchange setting).
	DefaultCeleryEventExchange = "celeryev"
)

// Timings of the event listener.
const (
	// celeryReconnectMin and celeryReconnectMax bound the wait between
	// attempts to subscribe again after the connection was lost, as the
	// reconnect prober of package resilience does.
	celeryReconnectMin = 100 * time.Millisecond
	celeryReconnectMax = time.Second
	// celerySubscribeTimeout bounds the wait for Redis to confirm the
	// subscription.
	celerySubscribeTimeout = 2 * time.Second
	// celeryIdle is how long the subscription may be silent before the
	// listener sends a PING on it, and then how long it waits for the
	// answer before it calls the connection dead. Celery workers beat
	// every 2 s, so a silent connection is rare while workers run.
	celeryIdle = 5 * time.Second
	// celeryForget is how long a dead worker stays listed (offline or
	// expired) before it is forgotten.
	celeryForget = 10 * time.Minute
	// maxCeleryWorkers bounds the node names remembered, against a
	// publisher inventing new ones.
	maxCeleryWorkers = 10000
)

// errSessionEnded marks the end of a subscription that had been
// established: the listener starts a fresh round of attempts for it, with
// a short first wait, instead of going on with the longer waits of the
// attempts before it.
var errSessionEnded = errors.New("subscription ended")

// CeleryOptions tune the Celery event listener [NewCeleryEvents] starts
// and the check it gives. The zero value counts the workers of a Celery
// app with default settings, with no minimum.
type CeleryOptions struct {
	// Name is the check's name and the keys' component. Empty means
	// "celery".
	Name string
	// Critical makes too few workers, or a broker the listener cannot
	// reach, fail the report (HTTP 503) and readiness.
	Critical bool
	// Interval and Timeout are the check's; zero means [DefaultInterval]
	// and [DefaultTimeout]. A run reads the listener's state in memory and
	// costs Redis nothing, so a short Interval is fine.
	Interval, Timeout time.Duration
	// Min is how many live workers the service needs; fewer fail the
	// check. Zero means no minimum: the check only reports the count.
	Min int
	// HeartbeatInterval is the workers' heartbeat interval. It is used
	// only after the listener (re)subscribes: for two intervals, too few
	// workers make the check warn rather than fail, since a live worker
	// may not have beaten yet. Each worker's own liveness uses the
	// interval its events announce. Zero means [DefaultCeleryHeartbeat]
	// (2 s).
	HeartbeatInterval time.Duration
	// EventExchange is the Celery app's event_exchange setting. Empty
	// means [DefaultCeleryEventExchange] ("celeryev").
	EventExchange string
	// KeyPrefix is the broker's global_keyprefix transport option, if the
	// Celery app sets one. Empty means none.
	KeyPrefix string
	// Logger receives one line when the listener loses Redis and one when
	// it listens again, never one per event. Nil means slog.Default().
	Logger *slog.Logger
	// Now tells the time at which events arrive and liveness is judged.
	// Nil means time.Now.
	Now func() time.Time
}

// CeleryEvents counts the live workers of a Celery app that uses Redis as
// its broker, by listening to the heartbeats every worker publishes, with
// no code in the workers and without writing to Redis. Build one with
// [NewCeleryEvents] and add [CeleryEvents.Check] to a [Handler]:
//
//	celery, err := healthhandler.NewCeleryEvents(rdb, healthhandler.CeleryOptions{Min: 1})
//	if err != nil { ... }
//	defer celery.Close()
//	_ = health.Add(celery.Check())
//
// A worker is alive from the moment its worker-online or worker-heartbeat
// event arrives until two of its heartbeat intervals (the event's freq,
// 2 s by default, so 4 s) pass without another one, the window Celery's
// own monitors use; a worker-offline event (a warm shutdown) ends it at
// once. The window starts when an event arrives, by this process's clock,
// not at the timestamp the worker wrote into it: the two hosts' clocks may
// disagree by seconds, and a pub/sub message is delivered at once or never,
// so its arrival is as recent as its timestamp. [CeleryWorker.Skew]
// shows how far apart the clocks seem.
//
// Trade-offs, compared with [CeleryPing]: the listener holds one pub/sub
// connection of its own for its whole life and writes nothing to Redis;
// it sees every worker that sends events (Celery workers send worker
// events unless started with --without-heartbeat), and it reports active
// and processed task counts. But it knows nothing until workers beat after
// it subscribed: for up to one heartbeat interval after start, or after
// a Redis outage, it has not heard every worker yet (for two intervals
// after it subscribes, too few workers make the check warn, not fail). It
// reconnects by itself, with backoff, after Redis was lost, and asks rdb
// for its current client each time. Its check and a [CeleryPing] check
// need different names to share a Handler.
//
// rdb must use the broker's Redis database: the channels' names hold the
// database number. The app must keep kombu's default fanout_prefix and
// fanout_patterns transport options (true since Celery 4).
//
// A CeleryEvents is safe for concurrent use. Close stops its listener.
type CeleryEvents struct {
	rdb     *resilience.Redis
	opts    CeleryOptions
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

// CeleryWorker describes one worker the listener heard of, in
// [CeleryStats].
type CeleryWorker struct {
	// Hostname is the worker's node name, such as "celery@host1".
	Hostname string
	// Alive says whether the worker beat within the last two of its
	// heartbeat intervals and did not announce it went offline.
	Alive bool
	// Offline says the worker announced a warm shutdown.
	Offline bool
	// Active and Processed are the tasks the worker was running and had
	// run, from its last event.
	Active, Processed int64
	// Freq is the worker's heartbeat interval, from its last event.
	Freq time.Duration
	// LastHeard is when its last worker-online or worker-heartbeat event
	// arrived, by [CeleryOptions.Now].
	LastHeard time.Time
	// Skew is LastHeard minus the timestamp the worker wrote into that
	// event: the difference between the two clocks, plus the time the
	// event took to arrive. It is zero when the event had no timestamp.
	Skew time.Duration
}

// CeleryStats is a snapshot of a [CeleryEvents].
type CeleryStats struct {
	// Connected says whether the listener is subscribed now; Since is
	// when it subscribed (zero when it is not).
	Connected bool
	Since     time.Time
	// LastError says why the listener is not subscribed; empty while it
	// is.
	LastError string
	// Events counts the messages received; Malformed those skipped
	// because they were not valid Celery worker events, and LastMalformed
	// says what was wrong with the latest one.
	Events, Malformed uint64
	LastMalformed     string
	// Workers lists the workers heard of, alive or dead for less than
	// ten minutes, sorted by Hostname.
	Workers []CeleryWorker
}

// NewCeleryEvents starts listening to the worker events of the Celery app
// whose broker rdb points at, in a goroutine the returned CeleryEvents
// owns until [CeleryEvents.Close]. It returns at once and does not wait
// for Redis: the check fails with the reason until the subscription
// stands. It returns an error naming the field when rdb is nil or an
// option is invalid.
func NewCeleryEvents(rdb *resilience.Redis, opts CeleryOptions) (*CeleryEvents, error) {
	return newCeleryEvents(rdb, opts, nil)
}

func newCeleryEvents(rdb *resilience.Redis, opts CeleryOptions, notify func()) (*CeleryEvents, error) {
	if rdb == nil {
		return nil, errors.New("healthhandler: NewCeleryEvents of a nil client")
	}
	if opts.Min < 0 || opts.Interval < 0 || opts.Timeout < 0 || opts.HeartbeatInterval < 0 {
		return nil, fmt.Errorf("healthhandler: CeleryOptions.Min (%d), Interval (%v), Timeout (%v) and HeartbeatInterval (%v) must not be negative",
			opts.Min, opts.Interval, opts.Timeout, opts.HeartbeatInterval)
	}
	if opts.Name == "" {
		opts.Name = "celery"
	}
	if opts.HeartbeatInterval == 0 {
		opts.HeartbeatInterval = DefaultCeleryHeartbeat
	}
	if opts.EventExchange == "" {
		opts.EventExchange = DefaultCeleryEventExchange
	}
	e := &CeleryEvents{
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
	e.pattern = escapeGlob(kombuFanoutPrefix(opts.KeyPrefix, rdb.Client())+opts.EventExchange+"/worker.") + "*"
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go e.listen(ctx)
	return e, nil
}

// kombuFanoutPrefix is what kombu's Redis transport puts before an
// exchange's name to make a pub/sub channel: its global key prefix, then
// "/{db}.".
func kombuFanoutPrefix(keyPrefix string, c redis.UniversalClient) string {
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
func (e *CeleryEvents) Check() Check {
	c := newCheck(e.opts.Name, e.opts.Critical, e.opts.Interval, e.opts.Timeout, ComponentTypeComponent)
	c.WorkersMeasurement = "workers"
	c.Run = func(context.Context) ([]Observation, error) {
		now := e.now()
		return celeryEventObservations(e.stats(now), e.rdb.String(), e.opts.Min, 2*e.opts.HeartbeatInterval, now), nil
	}
	return c
}

// Stats returns a snapshot of what the listener knows. It does no I/O.
func (e *CeleryEvents) Stats() CeleryStats { return e.stats(e.now()) }

func (e *CeleryEvents) stats(now time.Time) CeleryStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := CeleryStats{
		Connected: e.connected, LastError: e.lastErr,
		Events: e.events, Malformed: e.malformed, LastMalformed: e.lastBad,
		Workers: make([]CeleryWorker, 0, len(e.workers)),
	}
	if e.connected {
		st.Since = e.since
	}
	for host, w := range e.workers {
		if now.Sub(w.expires) > celeryForget {
			delete(e.workers, host)
			continue
		}
		st.Workers = append(st.Workers, CeleryWorker{
			Hostname: host, Alive: !w.offline && now.Before(w.expires), Offline: w.offline,
			Active: w.active, Processed: w.processed, Freq: w.freq,
			LastHeard: w.heard, Skew: w.skew,
		})
	}
	slices.SortFunc(st.Workers, func(a, b CeleryWorker) int { return strings.Compare(a.Hostname, b.Hostname) })
	return st
}

// Close stops the listener, closing its connection, and waits for it. It
// is safe to call more than once and always returns nil.
func (e *CeleryEvents) Close() error {
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

// listen subscribes, and subscribes again whenever the subscription is
// lost, until Close. failsafe-go spaces the attempts; each subscription
// that stood and then broke starts a new round of attempts, so the first
// one comes at once.
func (e *CeleryEvents) listen(ctx context.Context) {
	defer close(e.done)
	policy := retrypolicy.NewBuilder[any]().
		HandleIf(func(_ any, err error) bool {
			return err != nil && ctx.Err() == nil && !errors.Is(err, errSessionEnded)
		}).
		WithMaxAttempts(-1).
		WithBackoff(celeryReconnectMin, celeryReconnectMax).
		WithJitterFactor(0.2).
		ReturnLastFailure().
		Build()
	exec := failsafe.With[any](policy).WithContext(ctx)
	for ctx.Err() == nil {
		_ = exec.Run(func() error { return e.session(ctx) })
	}
}

// session subscribes once and handles messages until the connection
// fails or ctx ends. It always returns an error.
func (e *CeleryEvents) session(ctx context.Context) error {
	ps := e.rdb.Client().PSubscribe(ctx, e.pattern)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		_ = ps.Close()
		return ctx.Err()
	}
	e.ps = ps
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		if e.ps == ps {
			e.ps = nil
		}
		e.mu.Unlock()
		_ = ps.Close()
	}()

	msg, err := ps.ReceiveTimeout(ctx, celerySubscribeTimeout)
	if err == nil {
		if _, ok := msg.(*redis.Subscription); !ok {
			err = fmt.Errorf("unexpected %T before the subscription", msg)
		}
	}
	if err != nil {
		return e.noteLost(ctx, fmt.Errorf("celery events: subscribe: %w", err), false)
	}
	e.noteSubscribed()

	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, celeryIdle)
		if err != nil {
			switch {
			case ctx.Err() != nil:
			case isTimeout(err) && !pinged:
				pinged = true
				if err = ps.Ping(ctx); err == nil {
					continue
				}
			case isTimeout(err):
				err = errors.New("no answer to PING")
			}
			return e.noteLost(ctx, fmt.Errorf("celery events: receive: %w", err), true)
		}
		pinged = false
		if m, ok := msg.(*redis.Message); ok {
			e.handle(m.Payload)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// noteSubscribed records that the subscription stands, logging it when
// it comes back after a loss.
func (e *CeleryEvents) noteSubscribed() {
	e.mu.Lock()
	wasLost := e.lost
	e.connected, e.since, e.lastErr, e.lost = true, e.now(), "", false
	e.mu.Unlock()
	if wasLost {
		e.log.Info("celery events: listening again", slog.String(logKeyCheck, e.opts.Name))
	}
	e.notified()
}

func (e *CeleryEvents) notified() {
	if e.notify != nil {
		e.notify()
	}
}

// noteLost records why the listener is not subscribed and logs the first
// failure after a success. It returns err, marked as the end of a
// subscription when one had stood for a while (a subscription that breaks
// at once goes on with the waits of the attempts before it).
func (e *CeleryEvents) noteLost(ctx context.Context, err error, established bool) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	msg := redact(err.Error())
	e.mu.Lock()
	stood := established && e.now().Sub(e.since) >= celeryReconnectMax
	e.connected, e.lastErr = false, msg
	logIt := !e.lost
	e.lost = true
	e.mu.Unlock()
	if logIt {
		e.log.Warn("celery events: not listening; retrying", slog.String(logKeyCheck, e.opts.Name), slog.String(logKeyError, msg))
	}
	e.notified()
	if stood {
		return fmt.Errorf("%w: %w", errSessionEnded, err)
	}
	return err
}

// handle decodes one message and updates the worker it is about.
func (e *CeleryEvents) handle(payload string) {
	now := e.now()
	ev, err := decodeCeleryEvent([]byte(payload))
	e.mu.Lock()
	e.record(now, ev, err)
	e.mu.Unlock()
	e.notified()
}

// record applies one decoded event. e.mu is held.
func (e *CeleryEvents) record(now time.Time, ev celeryEvent, err error) {
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
				e.lastBad = fmt.Sprintf("more than %d worker names; %q skipped", maxCeleryWorkers, clip(ev.Hostname))
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
func celeryEventObservations(st CeleryStats, broker string, minimum int, warmUp time.Duration, now time.Time) []Observation {
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
	base := Observation{ComponentID: broker, Status: StatusPass}
	var detail []string
	switch {
	case !st.Connected:
		base.Status, base.Output = StatusFail, "celery workers unknown: "+redisOutput
		detail = append(detail, st.LastError)
	case len(alive) < minimum && now.Sub(st.Since) < warmUp:
		base.Status = StatusWarn
		base.Output = fmt.Sprintf("%d celery workers heard since listening began, want at least %d", len(alive), minimum)
	case len(alive) < minimum:
		base.Status = StatusFail
		base.Output = fmt.Sprintf("%d celery workers alive, want at least %d", len(alive), minimum)
	}
	detail = appendListed(detail, "alive", alive)
	detail = appendListed(detail, "offline", offline)
	detail = appendListed(detail, "no heartbeat", expired)
	workers := base
	workers.Measurement = "workers"
	workers.Detail = strings.Join(detail, "; ")
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
	return []Observation{workers, act, proc, bad}
}
