package healthhandler

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/steadfast-go/steadfast/resilience"
)

// asynq's layout in Redis: the sorted set asynqServersKey holds one member
// per server, the key of that server's state, "asynq:servers:{host:pid:id}",
// scored with the Unix time at which the server's state expires by the
// server host's clock. The state key holds the server's ServerInfo, a
// protobuf message, and expires by itself: every server rewrites it every
// 5 s with a TTL of 10 s, and deletes both key and member on shutdown.
const (
	asynqServersKey    = "asynq:servers"
	asynqServerPrefix  = "asynq:servers:{"
	maxAsynqServers    = 500
	asynqStatusActive  = "active"
	maxAsynqHostLength = 255
)

// AsynqOptions tune the check [Asynq] builds. The zero value counts the
// asynq servers without a minimum.
type AsynqOptions struct {
	// Name is the check's name and the keys' component. Empty means
	// "asynq".
	Name string
	// Critical makes too few servers, or a Redis the check cannot read,
	// fail the report (HTTP 503) and readiness.
	Critical bool
	// Interval and Timeout are the check's; zero means [DefaultInterval]
	// and [DefaultTimeout].
	Interval, Timeout time.Duration
	// Min is how many live servers the service needs; fewer fail the
	// check. Zero means no minimum: the check only reports the count.
	Min int
}

// Asynq returns a check that counts the live servers (worker processes) of
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
// [Handler.Add] reports a nil rdb or invalid options.
func Asynq(rdb *resilience.Redis, opts AsynqOptions) Check {
	c := newCheck(orName(opts.Name, "asynq"), opts.Critical, opts.Interval, opts.Timeout, ComponentTypeComponent)
	c.WorkersMeasurement = "servers"
	switch {
	case rdb == nil:
		c.err = errors.New("healthhandler: Asynq check of a nil client")
	case opts.Min < 0:
		c.err = fmt.Errorf("healthhandler: AsynqOptions.Min (%d) must not be negative", opts.Min)
	}
	if c.err != nil {
		return c
	}
	c.Run = func(ctx context.Context) ([]Observation, error) {
		servers, total, err := readAsynqServers(ctx, rdb)
		return asynqObservations(servers, total, err, rdb.String(), opts.Min), nil
	}
	return c
}

// asynqServer is one member of the servers' set, as read.
type asynqServer struct {
	host   string
	pid    int
	info   asynqServerInfo
	exists bool   // its state key exists: the server is alive
	bad    string // why the entry was skipped or only partly read
}

// readAsynqServers reads the servers' set and each member's state. total
// is the set's size, which may exceed the members read.
func readAsynqServers(ctx context.Context, rdb *resilience.Redis) ([]asynqServer, int64, error) {
	var members []string
	var total int64
	err := rdb.DoIdempotent(ctx, func(ctx context.Context, c redis.UniversalClient) error {
		var rng *redis.StringSliceCmd
		var card *redis.IntCmd
		_, err := c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			card = pipe.ZCard(ctx, asynqServersKey)
			rng = pipe.ZRange(ctx, asynqServersKey, 0, maxAsynqServers-1)
			return nil
		})
		if err != nil {
			return err
		}
		members, total = rng.Val(), card.Val()
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("asynq: read %s: %w", asynqServersKey, err)
	}
	servers := make([]asynqServer, len(members))
	var keys []string
	var idx []int
	for i, m := range members {
		host, pid, ok := parseAsynqMember(m)
		servers[i] = asynqServer{host: host, pid: pid}
		if !ok {
			servers[i].bad = fmt.Sprintf("member %q is not an asynq server key", clip(m))
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
		info, err := decodeAsynqServerInfo([]byte(v.Val()))
		if err != nil {
			s.bad = err.Error()
			continue
		}
		s.info = info
	}
	return servers, total, nil
}

// parseAsynqMember reads host and pid from a member
// "asynq:servers:{host:pid:id}". The host may hold colons; pid and id
// may not.
func parseAsynqMember(m string) (host string, pid int, ok bool) {
	inner, found := strings.CutPrefix(m, asynqServerPrefix)
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
	if checkHostname(host) != nil {
		return "", 0, false
	}
	return host, pid, true
}

// asynqServerInfo holds the fields of asynq's ServerInfo message the
// check reads.
type asynqServerInfo struct {
	Host        string // field 1
	PID         int32  // field 2
	ServerID    string // field 3
	Concurrency int32  // field 4
	Status      string // field 7: new, active, stopped or closed
	Active      int32  // field 9: tasks being processed
}

// Protobuf wire types, and the largest field number.
const (
	maxProtoField = 1<<29 - 1

	wireVarint = 0
	wireI64    = 1
	wireLen    = 2
	wireI32    = 5
)

// decodeAsynqServerInfo reads asynq's ServerInfo protobuf message. It
// skips the fields it does not need (queues, strict priority, start time)
// and fields unknown to it, so a newer asynq that adds fields still
// decodes; a field of a known number with the wrong wire type, a
// truncated or overlong value, or a string that is not UTF-8 is an error.
func decodeAsynqServerInfo(b []byte) (asynqServerInfo, error) {
	var info asynqServerInfo
	for len(b) > 0 {
		key, n := protoVarint(b)
		if n <= 0 {
			return info, malformed("asynq server state: bad field key")
		}
		b = b[n:]
		field, wire := key>>3, key&7
		if field == 0 || field > maxProtoField {
			return info, malformed("asynq server state: field number %d", field)
		}
		switch wire {
		case wireVarint:
			v, n := protoVarint(b)
			if n <= 0 {
				return info, malformed("asynq server state: bad varint in field %d", field)
			}
			b = b[n:]
			switch field {
			case 2:
				info.PID = int32(v) // int32 fields are sign-extended varints
			case 4:
				info.Concurrency = int32(v)
			case 9:
				info.Active = int32(v)
			case 1, 3, 5, 7, 8:
				return info, malformed("asynq server state: field %d is not a varint", field)
			}
		case wireLen:
			l, n := protoVarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return info, malformed("asynq server state: bad length in field %d", field)
			}
			v := b[n : n+int(l)]
			b = b[n+int(l):]
			var dst *string
			switch field {
			case 1:
				dst = &info.Host
			case 3:
				dst = &info.ServerID
			case 7:
				dst = &info.Status
			case 2, 4, 6, 9:
				return info, malformed("asynq server state: field %d is not a number", field)
			}
			if dst != nil {
				if !utf8.Valid(v) {
					return info, malformed("asynq server state: field %d is not UTF-8", field)
				}
				*dst = string(v)
			}
		case wireI64, wireI32:
			size := 8
			if wire == wireI32 {
				size = 4
			}
			if field <= 9 {
				return info, malformed("asynq server state: field %d has a fixed-size value", field)
			}
			if len(b) < size {
				return info, malformed("asynq server state: truncated field %d", field)
			}
			b = b[size:]
		default:
			return info, malformed("asynq server state: wire type %d", wire)
		}
	}
	if len(info.Host) > maxAsynqHostLength {
		return info, malformed("asynq server state: host of %d bytes", len(info.Host))
	}
	if info.Concurrency < 0 || info.Active < 0 {
		return info, malformed("asynq server state: negative concurrency or active count")
	}
	return info, nil
}

// protoVarint reads a base-128 varint. n is the bytes read, or 0 when b
// ends first, or -1 when the varint is longer than 10 bytes or overflows.
func protoVarint(b []byte) (v uint64, n int) {
	for i := 0; i < len(b); i++ {
		if i == 10 {
			return 0, -1
		}
		c := b[i]
		if i == 9 && c > 1 {
			return 0, -1
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

// asynqMeasurements are the check's keys after "asynq:", in order.
var asynqMeasurements = [...]string{"servers", "concurrency", "active", "malformed"}

// asynqObservations describes one read of the servers.
func asynqObservations(servers []asynqServer, total int64, err error, broker string, minimum int) []Observation {
	base := Observation{ComponentID: broker, Status: StatusPass}
	if err != nil {
		base.Status, base.Output = StatusFail, "asynq servers unknown: "+redisOutput
		obs := make([]Observation, len(asynqMeasurements))
		for i, m := range asynqMeasurements {
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
		case s.info.Status != "" && s.info.Status != asynqStatusActive:
			idle = append(idle, name+" ("+clip(s.info.Status)+")")
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
		base.Status = StatusFail
		base.Output = fmt.Sprintf("%d asynq servers alive, want at least %d", len(alive), minimum)
	}
	var detail []string
	detail = appendListed(detail, "alive", alive)
	detail = appendListed(detail, "not processing", idle)
	detail = appendListed(detail, "expired", expired)
	if total > int64(len(servers)) {
		detail = append(detail, fmt.Sprintf("first %d of %d entries read", len(servers), total))
	}
	srv := base
	srv.Measurement, srv.Value, srv.Detail = "servers", len(alive), strings.Join(detail, "; ")
	conc := base
	conc.Measurement, conc.Value = "concurrency", concurrency
	act := base
	act.Measurement, act.Value = "active", active
	mal := base
	mal.Measurement, mal.Value = "malformed", bad
	if bad > 0 {
		mal.Detail = "last: " + lastBad
	}
	return []Observation{srv, conc, act, mal}
}
