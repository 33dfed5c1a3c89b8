package healthhandler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/steadfast-go/steadfast/resilience"
)

// RedisOptions tune the check [Redis] builds. The zero value gives a
// non-critical check named "redis" with the default interval and timeout.
type RedisOptions struct {
	// Name is the check's name and the keys' component. Empty means
	// "redis".
	Name string
	// Critical makes a Redis failure fail the report (HTTP 503) and
	// readiness. Leave it false when Redis is a cache the service works
	// without.
	Critical bool
	// Interval and Timeout are the check's; zero means [DefaultInterval]
	// and [DefaultTimeout].
	Interval, Timeout time.Duration
}

// redisOutput is what everyone may read when Redis fails.
const redisOutput = "redis unavailable"

// Redis returns a check of the guarded client rdb. Each run sends one PING
// through the guard (so the check costs Redis one round trip per interval,
// however many requests read the report; while the breaker is open it
// costs nothing) and reads rdb's figures. It reports, all with the same
// status and componentType "datastore":
//
//   - "redis:responseTime": the PING round trip in ms (none when it failed);
//   - "redis:connections": the pool's figures, an object with total, idle,
//     stale, hits, misses and timeouts;
//   - "redis:breaker": the circuit breaker's state, closed, open or
//     half-open;
//   - "redis:lastSuccess": seconds since Redis last answered (none if it
//     never did);
//   - "redis:nearCache", only when the near cache was asked for
//     ([resilience.Options].NearCache): an object with serving (whether
//     hits come from process memory now), reason (why not, when not),
//     entries, bytes, maxBytes, hits, misses, invalidations, flushes and
//     pauses.
//
// For Sentinel and Cluster it also reports the topology (see
// [resilience.Redis.DescribeTopology]): "redis:sentinels", "redis:master"
// and "redis:replicas" (Sentinel), or "redis:nodes" and "redis:slots"
// (Cluster). Addresses are componentIds, shown only with details. No
// reachable sentinel, a lost quorum, a failing master or an uncovered
// slot is "warn", or "fail" when the check is Critical.
//
// When Redis fails, everyone reads "redis unavailable"; callers allowed to
// see details also read the specific error (such as "connection refused",
// READONLY or WRONGPASS; with the breaker open, the last error that opened
// it) and the redacted address as componentId.
//
// A PING is not the whole story: a read-only replica or a server out of
// memory answers it while every write fails. So when the PING succeeds but
// other operations failed because of Redis since the previous run (as
// rdb's Stats count them), the check reports "warn", with "redis
// operations failing" for everyone and the count and last error in the
// details. It returns an error wrapping [ErrInvalidOption] when rdb is
// nil.
func Redis(rdb *resilience.Redis, opts RedisOptions) (Check, error) {
	c := newCheck(cmp.Or(opts.Name, "redis"), opts.Critical, opts.Interval, opts.Timeout, ComponentTypeDatastore)
	if rdb == nil {
		return Check{}, fmt.Errorf("healthhandler: Redis of a nil client: %w", ErrInvalidOption)
	}
	// Runs of one check never overlap, so seen needs no lock.
	seen := rdb.Stats().Failures
	c.Run = func(ctx context.Context) ([]Observation, error) {
		rtt, err := rdb.Ping(ctx)
		st := rdb.Stats()
		failed := st.Failures - min(seen, st.Failures)
		seen = st.Failures
		obs := redisObservations(rtt, err, st, failed, time.Now())
		if rdb.Topology() != resilience.TopologyStandalone {
			ts, terr := rdb.DescribeTopology(ctx)
			obs = append(obs, topologyObservations(ts, terr, opts.Critical)...)
		}
		return obs, nil
	}
	return c, nil
}

// redisOutputFailing is what everyone may read when Redis answers PING
// but other operations fail.
const redisOutputFailing = "redis operations failing"

// redisObservations describes one PING and the figures read after it;
// failed is how many operations failed because of Redis since the
// previous run.
func redisObservations(rtt time.Duration, err error, st resilience.Stats, failed uint64, now time.Time) []Observation {
	base := Observation{ComponentID: st.Addr, Status: StatusPass}
	switch {
	case err != nil:
		base.Status, base.Output, base.Detail = StatusFail, redisOutput, failureDetail(err, st)
	case failed > 0:
		base.Status, base.Output = StatusWarn, redisOutputFailing
		base.Detail = fmt.Sprintf("%d operations failed since the last check; last error: %s", failed, st.LastError)
	}
	rt := base
	rt.Measurement = "responseTime"
	if err == nil {
		rt.Value, rt.Unit = millis(rtt), "ms"
	}
	conns := base
	conns.Measurement = "connections"
	conns.Value = poolFigures{
		Total: st.Pool.TotalConns, Idle: st.Pool.IdleConns, Stale: st.Pool.StaleConns,
		Hits: st.Pool.Hits, Misses: st.Pool.Misses, Timeouts: st.Pool.Timeouts,
	}
	breaker := base
	breaker.Measurement = "breaker"
	breaker.Value = st.State.String()
	since := base
	since.Measurement = "lastSuccess"
	if !st.LastSuccess.IsZero() {
		since.Value, since.Unit = roundTo(max(now.Sub(st.LastSuccess), 0).Seconds(), 1e3), "s"
	}
	obs := []Observation{rt, conns, breaker, since}
	if n := st.NearCache; n.Enabled {
		near := base
		near.Measurement = "nearCache"
		near.Value = nearFigures{
			Serving: n.Serving, Reason: n.Reason, Entries: n.Entries, Bytes: n.Bytes, MaxBytes: n.MaxBytes,
			Hits: n.Hits, Misses: n.Misses, Invalidations: n.Invalidations, Flushes: n.Flushes, Pauses: n.Pauses,
		}
		obs = append(obs, near)
	}
	return obs
}

// nearFigures is the observedValue of "redis:nearCache". Reason is text
// fit for anyone: resilience words it without addresses or replies.
type nearFigures struct {
	Serving       bool   `json:"serving"`
	Reason        string `json:"reason,omitempty"`
	Entries       int    `json:"entries"`
	Bytes         int64  `json:"bytes"`
	MaxBytes      int64  `json:"maxBytes"`
	Hits          uint64 `json:"hits"`
	Misses        uint64 `json:"misses"`
	Invalidations uint64 `json:"invalidations"`
	Flushes       uint64 `json:"flushes"`
	Pauses        uint64 `json:"pauses"`
}

// failureDetail is the specific text of a failed operation: its error, or,
// when the open breaker answered without asking Redis, the last error
// Redis gave.
func failureDetail(err error, st resilience.Stats) string {
	if errors.Is(err, resilience.ErrUnavailable) && st.LastError != "" {
		return "breaker " + st.State.String() + "; last error: " + st.LastError
	}
	return err.Error()
}

// poolFigures is the observedValue of "redis:connections".
type poolFigures struct {
	Total    uint32 `json:"total"`
	Idle     uint32 `json:"idle"`
	Stale    uint32 `json:"stale"`
	Hits     uint32 `json:"hits"`
	Misses   uint32 `json:"misses"`
	Timeouts uint32 `json:"timeouts"`
}

// millis is d in milliseconds, to the microsecond.
func millis(d time.Duration) float64 { return roundTo(float64(d)/float64(time.Millisecond), 1e3) }

func roundTo(v, scale float64) float64 { return math.Round(v*scale) / scale }
