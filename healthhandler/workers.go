package healthhandler

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/steadfast-go/steadfast/healthhandler/internal/detail"
	"github.com/steadfast-go/steadfast/resilience"
)

// Defaults used when a [WorkersOptions] field is zero.
const (
	// DefaultWorkerTTL is three beats of a heartbeat with the default
	// interval: a worker is dead after missing three.
	DefaultWorkerTTL = 3 * resilience.DefaultHeartbeatInterval
	// DefaultWorkerPruneAfter is how long a dead worker stays in the set
	// (and in detailed reports) before the check removes it.
	DefaultWorkerPruneAfter = time.Hour
)

// WorkersOptions tune the check [Workers] builds. The zero value counts
// the workers of [resilience.DefaultHeartbeatKey] without a minimum.
type WorkersOptions struct {
	// Name is the check's name and the key's component. Empty means
	// "workers".
	Name string
	// Critical makes too few workers fail the report (HTTP 503) and
	// readiness.
	Critical bool
	// Interval and Timeout are the check's; zero means [DefaultInterval]
	// and [DefaultTimeout].
	Interval, Timeout time.Duration
	// Key is the heartbeat set the workers' [resilience.Heartbeat] write.
	// Empty means [resilience.DefaultHeartbeatKey].
	Key string
	// TTL is how recent a worker's last beat must be, by the Redis
	// server's clock, for it to count as alive. Make it a few of the
	// workers' heartbeat intervals. Zero means [DefaultWorkerTTL] (15 s).
	TTL time.Duration
	// Min is how many live workers the service needs; fewer fail the
	// check. Zero means no minimum: the check only reports the count.
	Min int
	// PruneAfter is how long after its last beat a dead worker is removed
	// from the set; it must not be shorter than TTL. Zero means
	// [DefaultWorkerPruneAfter] (1 h).
	PruneAfter time.Duration
}

// Workers returns a check that counts the workers whose heartbeats (see
// [resilience.NewHeartbeat]) are at most TTL old, by the Redis server's
// clock, so host clock skew never changes the count. It reports
// "workers:count", the number alive, failing when it is below Min; callers
// allowed to see details also read the IDs of live and dead workers. Each
// run reads the set in one script through the guard, removing workers dead
// for longer than PruneAfter. It returns an error wrapping
// [ErrInvalidOption] when rdb is nil or an option is invalid.
func Workers(rdb *resilience.Redis, opts WorkersOptions) (Check, error) {
	c := newCheck(cmp.Or(opts.Name, "workers"), opts.Critical, opts.Interval, opts.Timeout, ComponentTypeComponent)
	c.WorkersMeasurement = "count"
	ttl, prune := opts.TTL, opts.PruneAfter
	if ttl == 0 {
		ttl = DefaultWorkerTTL
	}
	if prune == 0 {
		prune = max(DefaultWorkerPruneAfter, ttl)
	}
	switch {
	case rdb == nil:
		return Check{}, fmt.Errorf("healthhandler: Workers of a nil client: %w", ErrInvalidOption)
	case ttl < 0, prune < 0, opts.Min < 0:
		return Check{}, fmt.Errorf("healthhandler: WorkersOptions.TTL (%v), PruneAfter (%v) and Min (%d) must not be negative: %w", opts.TTL, opts.PruneAfter, opts.Min, ErrInvalidOption)
	case prune < ttl:
		return Check{}, fmt.Errorf("healthhandler: WorkersOptions.PruneAfter (%v) is shorter than TTL (%v): %w", prune, ttl, ErrInvalidOption)
	}
	c.Run = func(ctx context.Context) ([]Observation, error) {
		ws, err := rdb.Workers(ctx, opts.Key, prune)
		if err != nil {
			return []Observation{{
				Measurement: "count", Status: StatusFail,
				Output: "workers unknown: " + redisOutput, Detail: failureDetail(err, rdb.Stats()),
			}}, nil
		}
		return workerObservations(ws, ttl, opts.Min), nil
	}
	return c, nil
}

// workerObservations describes one read of the heartbeat set.
func workerObservations(ws []resilience.Worker, ttl time.Duration, minimum int) []Observation {
	ob := Observation{Measurement: "count", Status: StatusPass}
	var alive, dead []string
	for _, w := range ws {
		if w.Age <= ttl {
			alive = append(alive, w.ID)
		} else {
			dead = append(dead, fmt.Sprintf("%s (%ds ago)", w.ID, int(w.Age.Seconds())))
		}
	}
	ob.Value = len(alive)
	if len(alive) < minimum {
		ob.Status = StatusFail
		ob.Output = fmt.Sprintf("%d workers alive, want at least %d", len(alive), minimum)
	}
	var lines []string
	lines = detail.AppendListed(lines, "alive", alive)
	lines = detail.AppendListed(lines, "dead", dead)
	ob.Detail = strings.Join(lines, "; ")
	return []Observation{ob}
}
