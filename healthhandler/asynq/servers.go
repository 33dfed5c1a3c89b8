package asynq

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/healthhandler/internal/detail"
	"github.com/steadfast-go/steadfast/resilience"
)

// asynq's layout in Redis: the sorted set serversKey holds one member
// per server, the key of that server's state, "asynq:servers:{host:pid:id}",
// scored with the Unix time at which the server's state expires by the
// server host's clock. The state key holds the server's ServerInfo, a
// protobuf message, and expires by itself: every server rewrites it every
// 5 s with a TTL of 10 s, and deletes both key and member on shutdown.
const (
	serversKey   = "asynq:servers"
	serverPrefix = "asynq:servers:{"
	maxServers   = 500
	statusActive = "active"
)

// Options tune the check [Servers] builds. The zero value counts the
// asynq servers without a minimum.
type Options struct {
	// Name is the check's name and the keys' component. Empty means
	// "asynq".
	Name string
	// Critical makes too few servers, or a Redis the check cannot read,
	// fail the report (HTTP 503) and readiness.
	Critical bool
	// Interval and Timeout are the check's; zero means
	// [healthhandler.DefaultInterval] and [healthhandler.DefaultTimeout].
	Interval, Timeout time.Duration
	// Min is how many live servers the service needs; fewer fail the
	// check. Zero means no minimum: the check only reports the count.
	Min int
}

// Servers returns a check that counts the live servers (worker processes) of
// github.com/hibiken/asynq on the Redis rdb points at, reading what they
// publish about themselves; it writes nothing and needs no code in the
// servers, nor asynq in this program. It reports, all with the same status:
//
//   - "asynq:servers": the number of live servers processing tasks,
//     failing below Min or when Redis fails; callers allowed to see details
//     also read each server's host, pid and concurrency, and the servers
//     that stopped processing or died without cleaning up;
//   - "asynq:concurrency" and "asynq:active": the sums, over the live
//     servers, of their concurrency and of the tasks they are running;
//   - "asynq:malformed": the entries skipped because they were not what
//     asynq writes.
//
// A server is alive while its state key exists. That key's expiry is kept
// by Redis on its own clock, so clock skew between hosts cannot change the
// count; the scores of the servers' set, written by each server host's
// clock, are not used. A server killed without shutting down counts until
// its key expires, up to 10 s later. A server that stopped taking tasks
// (asynq's Server.Stop) is listed but not counted.
//
// Host, pid and concurrency come from the server state, which is a
// protobuf message: the check reads the few fields it needs with a small
// decoder of its own rather than bringing asynq or protobuf into the
// program. A state it cannot read still counts as a live server, named by
// the host and pid of its key, and is counted as malformed.
//
// Each run costs two round trips through the guard: one read of the
// set (at most 500 members) and one pipeline reading each member's state.
// rdb may be standalone, Sentinel or Cluster: in a cluster each state key
// has a hash slot of its own ({host:pid:id}), and the pipeline goes to
// every master that holds some (asynq.RedisClusterClientOpt writes them
// so; see the README for its client's reload interval after a failover).
// Servers returns an error wrapping [healthhandler.ErrInvalidOption] when
// rdb is nil or an option is invalid; [healthhandler.Handler.Add] checks
// the rest (Interval and Timeout).
func Servers(rdb *resilience.Redis, opts Options) (healthhandler.Check, error) {
	switch {
	case rdb == nil:
		return healthhandler.Check{}, fmt.Errorf("asynq: Servers of a nil client: %w", healthhandler.ErrInvalidOption)
	case opts.Min < 0:
		return healthhandler.Check{}, fmt.Errorf("asynq: Options.Min (%d) must not be negative: %w", opts.Min, healthhandler.ErrInvalidOption)
	}
	opts.Name = cmp.Or(opts.Name, "asynq")
	return healthhandler.Check{
		Name: opts.Name, Critical: opts.Critical,
		Interval: opts.Interval, Timeout: opts.Timeout,
		WorkersMeasurement: "servers",
		Run: func(ctx context.Context) ([]healthhandler.Observation, error) {
			servers, total, err := readServers(ctx, rdb)
			return observations(servers, total, err, rdb.String(), opts.Min), nil
		},
	}, nil
}

// server is one member of the servers' set, as read.
type server struct {
	host   string
	pid    int
	info   serverInfo
	exists bool   // its state key exists: the server is alive
	bad    string // why the entry was skipped or only partly read
}

// readServers reads the servers' set and each member's state. total
// is the set's size, which may exceed the members read.
func readServers(ctx context.Context, rdb *resilience.Redis) ([]server, int64, error) {
	var members []string
	var total int64
	err := rdb.DoIdempotent(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		var rng *redis.StringSliceCmd
		var card *redis.IntCmd
		_, err := c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			card = pipe.ZCard(ctx, serversKey)
			rng = pipe.ZRange(ctx, serversKey, 0, maxServers-1)
			return nil
		})
		if err != nil {
			return err
		}
		members, total = rng.Val(), card.Val()
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("asynq: read %s: %w", serversKey, err)
	}
	servers := make([]server, len(members))
	var keys []string
	var idx []int
	for i, m := range members {
		host, pid, ok := parseMember(m)
		servers[i] = server{host: host, pid: pid}
		if !ok {
			servers[i].bad = fmt.Sprintf("member %q is not an asynq server key", detail.Clip(m))
			continue
		}
		keys, idx = append(keys, m), append(idx, i)
	}
	if len(keys) == 0 {
		return servers, total, nil
	}
	var values []*redis.StringCmd
	err = rdb.DoIdempotent(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		cmds, err := c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for _, k := range keys {
				pipe.Get(ctx, k)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		values = values[:0]
		for _, cmd := range cmds {
			sc, ok := cmd.(*redis.StringCmd)
			if !ok {
				return fmt.Errorf("get server state: unexpected %T", cmd)
			}
			if err := sc.Err(); err != nil && !errors.Is(err, redis.Nil) {
				return fmt.Errorf("get server state: %w", err)
			}
			values = append(values, sc)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("asynq: read server states: %w", err)
	}
	for j, v := range values {
		s := &servers[idx[j]]
		if errors.Is(v.Err(), redis.Nil) {
			continue // the state expired: the server died without cleaning up
		}
		s.exists = true
		info, err := decodeServerInfo([]byte(v.Val()))
		if err != nil {
			s.bad = err.Error()
			continue
		}
		s.info = info
	}
	return servers, total, nil
}

// parseMember reads host and pid from a member
// "asynq:servers:{host:pid:id}". The host may hold colons; pid and id
// may not.
func parseMember(m string) (host string, pid int, ok bool) {
	inner, found := strings.CutPrefix(m, serverPrefix)
	if !found {
		return "", 0, false
	}
	inner, found = strings.CutSuffix(inner, "}")
	if !found {
		return "", 0, false
	}
	i := strings.LastIndexByte(inner, ':')
	if i < 0 || i == len(inner)-1 {
		return "", 0, false
	}
	inner = inner[:i]
	j := strings.LastIndexByte(inner, ':')
	if j <= 0 {
		return "", 0, false
	}
	pid, err := strconv.Atoi(inner[j+1:])
	if err != nil || pid <= 0 {
		return "", 0, false
	}
	host = inner[:j]
	if detail.CheckHostname(host) != nil {
		return "", 0, false
	}
	return host, pid, true
}

// measurements are the check's keys after "asynq:", in order.
var measurements = [...]string{"servers", "concurrency", "active", "malformed"}

// observations describes one read of the servers.
func observations(servers []server, total int64, err error, broker string, minimum int) []healthhandler.Observation {
	base := healthhandler.Observation{ComponentID: broker, Status: healthhandler.StatusPass}
	if err != nil {
		base.Status, base.Output = healthhandler.StatusFail, "asynq servers unknown: "+detail.RedisUnavailable
		obs := make([]healthhandler.Observation, len(measurements))
		for i, m := range measurements {
			obs[i] = base
			obs[i].Measurement = m
		}
		obs[0].Detail = err.Error()
		return obs
	}
	var alive, idle, expired []string
	var concurrency, active int64
	bad, lastBad := 0, ""
	for _, s := range servers {
		if s.bad != "" {
			bad++
			lastBad = s.bad
		}
		name := s.host + ":" + strconv.Itoa(s.pid)
		switch {
		case s.host == "":
			continue // not a server key at all
		case !s.exists:
			expired = append(expired, name)
		case s.info.Status != "" && s.info.Status != statusActive:
			idle = append(idle, name+" ("+detail.Clip(s.info.Status)+")")
		default:
			if s.info.Host != "" {
				name = s.info.Host + ":" + strconv.Itoa(int(s.info.PID))
			}
			if s.bad == "" {
				name += fmt.Sprintf(" (concurrency %d, active %d)", s.info.Concurrency, s.info.Active)
			}
			alive = append(alive, name)
			concurrency += int64(s.info.Concurrency)
			active += int64(s.info.Active)
		}
	}
	if len(alive) < minimum {
		base.Status = healthhandler.StatusFail
		base.Output = fmt.Sprintf("%d asynq servers alive, want at least %d", len(alive), minimum)
	}
	var lines []string
	lines = detail.AppendListed(lines, "alive", alive)
	lines = detail.AppendListed(lines, "not processing", idle)
	lines = detail.AppendListed(lines, "expired", expired)
	if total > int64(len(servers)) {
		lines = append(lines, fmt.Sprintf("first %d of %d entries read", len(servers), total))
	}
	srv := base
	srv.Measurement, srv.Value, srv.Detail = "servers", len(alive), strings.Join(lines, "; ")
	conc := base
	conc.Measurement, conc.Value = "concurrency", concurrency
	act := base
	act.Measurement, act.Value = "active", active
	mal := base
	mal.Measurement, mal.Value = "malformed", bad
	if bad > 0 {
		mal.Detail = "last: " + lastBad
	}
	return []healthhandler.Observation{srv, conc, act, mal}
}
