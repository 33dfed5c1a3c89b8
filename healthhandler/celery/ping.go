package celery

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/healthhandler/internal/detail"
	"github.com/steadfast-go/steadfast/resilience"
)

// Defaults used when a [PingOptions] field is zero.
const (
	// DefaultPingWindow is how long a ping waits for answers, as
	// long as "celery inspect ping" waits by default.
	DefaultPingWindow = time.Second
	// DefaultControlExchange is Celery's control exchange (its
	// control_exchange setting).
	DefaultControlExchange = "celery"
)

// kombu's Redis transport: a binding of an exchange is a member
// "routing key<sep>pattern<sep>queue" of the set "_kombu.binding.<exchange>",
// and a queue is a list per priority step, named "queue" for the first step
// and "queue<sep><step>" for the others.
const (
	kombuSep           = "\x06\x16"
	kombuBindingPrefix = "_kombu.binding."
)

var kombuPrioritySteps = [...]string{"3", "6", "9"}

// Limits of the ping.
const (
	// celeryPollChunk bounds one blocking read of the reply list, so that
	// no read outlasts the client's read timeout.
	celeryPollChunk = 250 * time.Millisecond
	// celeryCleanupTimeout bounds the removal of the reply binding and
	// list, which runs even when the ping's context has ended.
	celeryCleanupTimeout = time.Second
	// maxCeleryLeftovers bounds the reply queues kept for removal at the
	// next run.
	maxCeleryLeftovers = 32
)

// PingOptions tune the check [Ping] builds. The zero value
// pings the workers of a Celery app with default settings for one second,
// with no minimum.
type PingOptions struct {
	// Name is the check's name and the keys' component. Empty means
	// "celery"; give another when the same Handler also has a
	// [Events] check.
	Name string
	// Critical makes too few answers, or a broker the ping cannot reach,
	// fail the report (HTTP 503) and readiness.
	Critical bool
	// Interval is the check's. Zero means [healthhandler.DefaultInterval].
	Interval time.Duration
	// Timeout bounds one run; it must be longer than Window. Zero means
	// Window plus one second.
	Timeout time.Duration
	// Window is how long a run waits for answers: the bound within which
	// a live worker must answer. A run ends sooner when every worker
	// subscribed to the control channel has answered. Zero means
	// [DefaultPingWindow] (1 s).
	Window time.Duration
	// Min is how many workers must answer; fewer fail the check. Zero
	// means no minimum: the check only reports the count.
	Min int
	// ControlExchange is the Celery app's control_exchange setting.
	// Empty means [DefaultControlExchange] ("celery").
	ControlExchange string
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
}

// Ping returns a check that counts the Celery workers answering a
// broadcast ping, the call "celery inspect ping" makes, over the Redis
// broker rdb points at; the workers need no code for it. It reports, all
// with the same status:
//
//   - "celery:workers": how many workers answered within Window, failing
//     below Min or when Redis fails; callers allowed to see details also
//     read their names, or the error;
//   - "celery:responseTime": the time from the ping to the last answer,
//     in ms (none without answers);
//   - "celery:malformed": the answers of this run skipped because they
//     were not valid replies.
//
// Trade-offs, compared with [Events]: a ping needs no goroutine or
// connection between runs and knows the answer at once, even right after
// start, and a worker that answers proves its control loop runs, not only
// its heartbeat thread. But each run writes to Redis: it adds a reply
// queue binding, publishes the ping, waits up to Window for answers on
// the reply list, then removes the binding and the list, even when the
// run's context ended (a removal that fails, with Redis down, is done at
// the next run). It takes up to Window per run, holding one pooled
// connection meanwhile, and wakes every worker once per Interval.
//
// rdb must use the broker's Redis database; it may be a Sentinel
// (failover) client, not a Cluster client (see [Events]). Ping returns an
// error naming the field, wrapping [healthhandler.ErrInvalidOption], when
// rdb is nil, is a Redis Cluster client or an option is invalid.
func Ping(rdb *resilience.Redis, opts PingOptions) (healthhandler.Check, error) {
	opts.Name = cmp.Or(opts.Name, "celery")
	opts.Window = cmp.Or(opts.Window, DefaultPingWindow)
	opts.ControlExchange = cmp.Or(opts.ControlExchange, DefaultControlExchange)
	timeout := cmp.Or(opts.Timeout, opts.Window+time.Second)
	switch {
	case rdb == nil:
		return healthhandler.Check{}, fmt.Errorf("celery: Ping of a nil client: %w", healthhandler.ErrInvalidOption)
	case opts.Window < 0, opts.Min < 0, timeout < 0:
		return healthhandler.Check{}, fmt.Errorf("celery: PingOptions.Window (%v), Timeout (%v) and Min (%d) must not be negative: %w",
			opts.Window, opts.Timeout, opts.Min, healthhandler.ErrInvalidOption)
	case timeout <= opts.Window:
		return healthhandler.Check{}, fmt.Errorf("celery: PingOptions.Timeout (%v) must be longer than Window (%v): %w",
			timeout, opts.Window, healthhandler.ErrInvalidOption)
	}
	if err := notCluster("Ping", rdb); err != nil {
		return healthhandler.Check{}, err
	}
	p := &celeryPinger{rdb: rdb, opts: opts}
	return healthhandler.Check{
		Name: opts.Name, Critical: opts.Critical,
		Interval: opts.Interval, Timeout: timeout,
		WorkersMeasurement: "workers",
		Run: func(ctx context.Context) ([]healthhandler.Observation, error) {
			res, err := p.ping(ctx)
			return celeryPingObservations(res, err, rdb.String(), opts.Min), nil
		},
	}, nil
}

// celeryPinger pings on behalf of one check; its runs never overlap.
type celeryPinger struct {
	rdb  *resilience.Redis
	opts PingOptions

	mu        sync.Mutex
	leftovers []celeryReplyQueue // to remove at the next run
}

// celeryReplyQueue is what a ping adds to Redis for its answers.
type celeryReplyQueue struct {
	bindingKey, member string   // the binding; empty when already removed
	lists              []string // the reply lists, one per priority step
}

// celeryPingResult is what one ping found.
type celeryPingResult struct {
	hosts     []string      // node names that answered, sorted
	slowest   time.Duration // from the ping to the last answer
	malformed int
	lastBad   string
}

// ping broadcasts one ping and collects the answers until Window ends,
// every subscriber of the control channel answered, or ctx ends.
func (p *celeryPinger) ping(ctx context.Context) (celeryPingResult, error) {
	var res celeryPingResult
	p.sweep(ctx)

	client := p.rdb.Client()
	replyExchange := "reply." + p.opts.ControlExchange + ".pidbox"
	oid, ticket := "steadfast-"+newUUID(), newUUID()
	queue := oid + "." + replyExchange
	q := celeryReplyQueue{
		bindingKey: p.opts.KeyPrefix + kombuBindingPrefix + replyExchange,
		member:     oid + kombuSep + kombuSep + queue,
		lists:      []string{p.opts.KeyPrefix + queue},
	}
	for _, step := range kombuPrioritySteps {
		q.lists = append(q.lists, p.opts.KeyPrefix+queue+kombuSep+step)
	}
	channel := kombuFanoutPrefix(p.opts.KeyPrefix, p.opts.FanoutPrefix, client) + p.opts.ControlExchange + ".pidbox"
	start := time.Now()
	msg, err := encodeCeleryPing(p.opts.ControlExchange+".pidbox", replyExchange, oid, ticket, newUUID(), start.Add(p.opts.Window))
	if err != nil {
		return res, fmt.Errorf("celery ping: %w", err)
	}

	err = p.rdb.DoIdempotent(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		return c.SAdd(ctx, q.bindingKey, q.member).Err()
	})
	if !errors.Is(err, resilience.ErrUnavailable) && !errors.Is(err, resilience.ErrClosed) {
		// Redis may have added the binding even if the reply got lost.
		defer p.cleanup(ctx, q)
	}
	if err != nil {
		return res, fmt.Errorf("celery ping: bind reply queue: %w", err)
	}
	var receivers int64
	if err := p.rdb.Do(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		n, err := c.Publish(ctx, channel, msg).Result()
		receivers = n
		return err
	}); err != nil {
		return res, fmt.Errorf("celery ping: publish: %w", err)
	}
	// Every worker subscribes to the control channel once, so the number
	// of receivers is how many answers can come.

	chunk := celeryPollChunk
	if rc, ok := client.(*redis.Client); ok {
		if rt := rc.Options().ReadTimeout; rt > 0 && rt/2 < chunk {
			chunk = max(rt/2, time.Millisecond)
		}
	}
	seen := map[string]bool{}
	deadline := start.Add(p.opts.Window)
	for int64(len(seen)) < receivers {
		wait := min(time.Until(deadline), chunk)
		if wait < time.Millisecond {
			break
		}
		reply, err := p.rdb.Client().Do(ctx, "BRPOP", q.lists[0], strconv.FormatFloat(wait.Seconds(), 'f', 3, 64)).StringSlice()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return res, fmt.Errorf("celery ping: %w", ctx.Err())
			}
			return res, fmt.Errorf("celery ping: read replies: %w", err)
		}
		if len(reply) != 2 {
			return res, fmt.Errorf("celery ping: read replies: BRPOP answered %d values", len(reply))
		}
		hosts, err := decodeCeleryReply([]byte(reply[1]), ticket)
		switch {
		case errors.Is(err, errStrayReply):
			continue
		case err != nil:
			res.malformed++
			res.lastBad = err.Error()
			continue
		}
		res.slowest = time.Since(start)
		for _, h := range hosts {
			seen[h] = true
		}
	}
	for h := range seen {
		res.hosts = append(res.hosts, h)
	}
	slices.Sort(res.hosts)
	return res, nil
}

// cleanup removes the binding and the reply lists of q with a context of
// its own, so that it runs even when the ping's context ended. What it
// cannot remove now is left for the next run, and so is the first reply
// list in any case: a worker that read the binding just before it was
// removed may still push a late answer.
func (p *celeryPinger) cleanup(parent context.Context, q celeryReplyQueue) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), celeryCleanupTimeout)
	defer cancel()
	err := p.remove(ctx, q)
	left := celeryReplyQueue{lists: q.lists[:1]}
	if err != nil {
		left = q
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.leftovers = append(p.leftovers, left)
	if n := len(p.leftovers) - maxCeleryLeftovers; n > 0 {
		p.leftovers = slices.Delete(p.leftovers, 0, n)
	}
}

// sweep removes what earlier runs left behind; what still cannot be
// removed is kept for the next run.
func (p *celeryPinger) sweep(parent context.Context) {
	p.mu.Lock()
	left := p.leftovers
	p.leftovers = nil
	p.mu.Unlock()
	if len(left) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), celeryCleanupTimeout)
	defer cancel()
	if err := p.remove(ctx, left...); err == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.leftovers = append(left, p.leftovers...)
}

// remove deletes the bindings and lists of qs in one pipeline. The keys
// are deleted one by one, since in a Cluster they may live in different
// slots.
func (p *celeryPinger) remove(ctx context.Context, qs ...celeryReplyQueue) error {
	return p.rdb.DoIdempotent(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		_, err := c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for _, q := range qs {
				if q.member != "" {
					pipe.SRem(ctx, q.bindingKey, q.member)
				}
				for _, k := range q.lists {
					pipe.Del(ctx, k)
				}
			}
			return nil
		})
		return err
	})
}

// newUUID returns a random (version 4) UUID, as kombu's ids are.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// celeryPingObservations describes one ping.
func celeryPingObservations(res celeryPingResult, err error, broker string, minimum int) []healthhandler.Observation {
	base := healthhandler.Observation{ComponentID: broker, Status: healthhandler.StatusPass}
	switch {
	case err != nil:
		base.Status, base.Output = healthhandler.StatusFail, "celery workers unknown: "+detail.RedisUnavailable
	case len(res.hosts) < minimum:
		base.Status = healthhandler.StatusFail
		base.Output = fmt.Sprintf("%d celery workers answered, want at least %d", len(res.hosts), minimum)
	}
	workers := base
	workers.Measurement = "workers"
	rt := base
	rt.Measurement = "responseTime"
	bad := base
	bad.Measurement = "malformed"
	if err != nil {
		workers.Detail = err.Error()
		return []healthhandler.Observation{workers, rt, bad}
	}
	workers.Value = len(res.hosts)
	if len(res.hosts) > 0 {
		workers.Detail = "answered: " + detail.List(res.hosts)
		rt.Value, rt.Unit = detail.Millis(res.slowest), "ms"
	}
	bad.Value = res.malformed
	if res.malformed > 0 {
		bad.Detail = "last: " + res.lastBad
	}
	return []healthhandler.Observation{workers, rt, bad}
}
