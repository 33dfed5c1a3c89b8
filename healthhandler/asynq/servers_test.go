package asynq

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/healthhandler/internal/detail"
	"github.com/steadfast-go/steadfast/resilience"
)

// testRedis guards a client of the Redis at addr. Its operation deadline
// is generous: tests run on loaded machines. TestMain checks that no
// goroutine is left once the tests end.
func testRedis(t *testing.T, addr string) *resilience.Redis {
	t.Helper()
	rdb, err := resilience.NewRedis(resilience.Config{Addr: addr},
		resilience.Options{Logger: slog.New(slog.DiscardHandler), OpTimeout: time.Second})
	require.NoError(t, err, "NewRedis")
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// servers builds the check, failing the test on an error.
func servers(t *testing.T, rdb *resilience.Redis, opts Options) healthhandler.Check {
	t.Helper()
	c, err := Servers(rdb, opts)
	require.NoError(t, err, "Servers")
	return c
}

// A tiny protobuf encoder, to build asynq server states as asynq writes
// them (see asynq's ServerInfo message).

func pbVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func pbTag(b []byte, field, wire int) []byte { return pbVarint(b, uint64(field<<3|wire)) }

func pbInt(b []byte, field int, v int64) []byte {
	return pbVarint(pbTag(b, field, wireVarint), uint64(v))
}

func pbBytes(b []byte, field int, v []byte) []byte {
	b = pbVarint(pbTag(b, field, wireLen), uint64(len(v)))
	return append(b, v...)
}

// asynqState encodes a ServerInfo with every field asynq sets.
func asynqState(host string, pid, concurrency, active int64, status string) []byte {
	var b []byte
	b = pbBytes(b, 1, []byte(host))
	b = pbInt(b, 2, pid)
	b = pbBytes(b, 3, []byte("0b3ea2a4-5c1c-4c57-9a4d-2b1e4f3e5a61"))
	b = pbInt(b, 4, concurrency)
	for _, q := range []struct {
		name string
		prio int64
	}{{"critical", 6}, {"default", 3}} {
		b = pbBytes(b, 5, pbInt(pbBytes(nil, 1, []byte(q.name)), 2, q.prio))
	}
	b = pbInt(b, 6, 1)
	b = pbBytes(b, 7, []byte(status))
	b = pbBytes(b, 8, pbInt(pbInt(nil, 1, 1795439400), 2, 123456789))
	return pbInt(b, 9, active)
}

func TestDecodeAsynqServerInfo(t *testing.T) {
	full := asynqState("host-a", 4242, 10, 3, "active")
	tests := []struct {
		name    string
		in      []byte
		want    serverInfo
		wantErr string
	}{
		{name: "as asynq writes it", in: full, want: serverInfo{
			Host: "host-a", PID: 4242, ServerID: "0b3ea2a4-5c1c-4c57-9a4d-2b1e4f3e5a61", Concurrency: 10, Status: "active", Active: 3}},
		{name: "empty message", in: nil, want: serverInfo{}},
		{name: "unknown fields skipped", in: append(append(append(pbInt(nil, 15, 7), pbBytes(nil, 16, []byte("x"))...),
			append(pbTag(nil, 17, wireI64), 1, 2, 3, 4, 5, 6, 7, 8)...), append(pbTag(nil, 18, wireI32), 1, 2, 3, 4)...),
			want: serverInfo{}},
		{name: "negative pid", in: pbInt(nil, 2, -1), want: serverInfo{PID: -1}},
		{name: "truncated string", in: full[:3], wantErr: "bad length"},
		{name: "truncated varint", in: []byte{0x10, 0x80}, wantErr: "bad varint"},
		{name: "truncated fixed", in: append(pbTag(nil, 17, wireI64), 1, 2), wantErr: "truncated"},
		{name: "host as a number", in: pbInt(nil, 1, 5), wantErr: "not a varint"},
		{name: "pid as a string", in: pbBytes(nil, 2, []byte("5")), wantErr: "not a number"},
		{name: "known field fixed size", in: append(pbTag(nil, 4, wireI32), 1, 2, 3, 4), wantErr: "fixed-size"},
		{name: "group", in: pbTag(nil, 3, 3), wantErr: "wire type 3"},
		{name: "field zero", in: []byte{0x00, 0x01}, wantErr: "field number 0"},
		{name: "overlong varint", in: []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, wantErr: "bad varint"},
		{name: "host not UTF-8", in: pbBytes(nil, 1, []byte{0xff}), wantErr: "not UTF-8"},
		{name: "host too long", in: pbBytes(nil, 1, []byte(strings.Repeat("h", 300))), wantErr: "host of 300 bytes"},
		{name: "negative concurrency", in: pbInt(nil, 4, -2), wantErr: "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeServerInfo(tc.in)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, detail.ErrMalformed, "decodeServerInfo(%x)", tc.in)
				require.ErrorContains(t, err, tc.wantErr, "decodeServerInfo(%x)", tc.in)
				return
			}
			require.NoError(t, err, "decodeServerInfo(%x)", tc.in)
			require.Equal(t, tc.want, got, "decodeServerInfo(%x)", tc.in)
		})
	}
}

func TestParseAsynqMember(t *testing.T) {
	tests := []struct {
		member string
		host   string
		pid    int
		ok     bool
	}{
		{"asynq:servers:{host-a:4242:0b3ea2a4-5c1c-4c57-9a4d-2b1e4f3e5a61}", "host-a", 4242, true},
		{"asynq:servers:{fe80::1:17:id}", "fe80::1", 17, true},
		{"asynq:servers:{host-a:4242:}", "", 0, false},
		{"asynq:servers:{host-a:x:id}", "", 0, false},
		{"asynq:servers:{host-a:0:id}", "", 0, false},
		{"asynq:servers:{:1:id}", "", 0, false},
		{"asynq:servers:{host-a:1:id", "", 0, false},
		{"asynq:workers:{host-a:1:id}", "", 0, false},
		{"asynq:servers:{4242:id}", "", 0, false},
		{"asynq:servers:{ho\nst:1:id}", "", 0, false},
	}
	for _, tc := range tests {
		host, pid, ok := parseMember(tc.member)
		assert.Equal(t, tc.host, host, "parseMember(%q) host", tc.member)
		assert.Equal(t, tc.pid, pid, "parseMember(%q) pid", tc.member)
		assert.Equal(t, tc.ok, ok, "parseMember(%q) ok", tc.member)
	}
}

// addAsynqServer writes a server's entry as asynq's heartbeat does:
// the member with its expiry as score, and the state with a TTL.
func addAsynqServer(t *testing.T, mr *miniredis.Miniredis, host string, pid int, state []byte) string {
	t.Helper()
	key := "asynq:servers:{" + host + ":" + strconv.Itoa(pid) + ":0b3ea2a4}"
	_, err := mr.ZAdd(serversKey, float64(time.Now().Add(10*time.Second).Unix()), key)
	require.NoError(t, err)
	if state != nil {
		require.NoError(t, mr.Set(key, string(state)))
		mr.SetTTL(key, 10*time.Second)
	}
	return key
}

func asynqRun(t *testing.T, c healthhandler.Check) map[string]healthhandler.Observation {
	t.Helper()
	obs, err := c.Run(context.Background())
	require.NoError(t, err, "Run")
	m := map[string]healthhandler.Observation{}
	for _, o := range obs {
		m[o.Measurement] = o
	}
	return m
}

func TestAsynq(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := testRedis(t, mr.Addr())
	c := servers(t, rdb, Options{Min: 2})

	obs := asynqRun(t, c)
	s := obs["servers"]
	assert.Equal(t, healthhandler.StatusFail, s.Status, "no server: servers = %+v", s)
	assert.Equal(t, 0, s.Value, "no server: servers = %+v", s)
	assert.Equal(t, "0 asynq servers alive, want at least 2", s.Output, "no server: servers = %+v", s)

	addAsynqServer(t, mr, "host-a", 11, asynqState("host-a", 11, 10, 3, "active"))
	addAsynqServer(t, mr, "host-b", 22, asynqState("host-b", 22, 5, 0, "active"))
	addAsynqServer(t, mr, "host-c", 33, asynqState("host-c", 33, 8, 0, "stopped"))
	addAsynqServer(t, mr, "host-d", 44, nil)                      // died without cleaning up
	addAsynqServer(t, mr, "host-e", 55, []byte{0xff, 0xff, 0xff}) // state not readable
	_, err := mr.ZAdd(serversKey, 1, "something-else")
	require.NoError(t, err)
	obs = asynqRun(t, c)
	s = obs["servers"]
	wantDetail := "alive: host-a:11 (concurrency 10, active 3), host-b:22 (concurrency 5, active 0), host-e:55; " +
		"not processing: host-c:33 (stopped); expired: host-d:44"
	assert.Equal(t, healthhandler.StatusPass, s.Status, "servers = %+v", s)
	assert.Equal(t, 3, s.Value, "servers = %+v, want 3 alive", s)
	assert.Equal(t, wantDetail, s.Detail, "servers = %+v", s)
	assert.Equal(t, int64(15), obs["concurrency"].Value, "concurrency")
	assert.Equal(t, int64(3), obs["active"].Value, "active")
	m := obs["malformed"]
	assert.Equal(t, 2, m.Value, "malformed = %+v", m)
	assert.Contains(t, m.Detail, "last: ", "malformed = %+v", m)
	for _, o := range obs {
		assert.Equal(t, rdb.String(), o.ComponentID, "%s componentId", o.Measurement)
	}

	// The states expire by Redis's clock when their servers stop beating.
	mr.FastForward(11 * time.Second)
	obs = asynqRun(t, c)
	s = obs["servers"]
	assert.Equal(t, healthhandler.StatusFail, s.Status, "after the TTL: servers = %+v", s)
	assert.Equal(t, 0, s.Value, "after the TTL: servers = %+v", s)
	assert.Contains(t, s.Detail, "expired: host-a:11, host-b:22", "after the TTL: servers = %+v", s)
	assert.Len(t, mr.Keys(), 1, "the check must not write")
}

func TestAsynqManyServers(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := testRedis(t, mr.Addr())
	for i := range maxServers + 5 {
		addAsynqServer(t, mr, "h", i+1, asynqState("h", int64(i+1), 1, 0, "active"))
	}
	s := asynqRun(t, servers(t, rdb, Options{}))["servers"]
	tail := s.Detail[max(0, len(s.Detail)-60):]
	assert.Equal(t, maxServers, s.Value, "servers; detail ending %q", tail)
	assert.True(t, strings.HasSuffix(s.Detail, "; first 500 of 505 entries read"), "servers = %v, detail ending %q", s.Value, tail)
}

func TestAsynqRedisDown(t *testing.T) {
	rdb := testRedis(t, "127.0.0.1:1")
	obs := asynqRun(t, servers(t, rdb, Options{}))
	s := obs["servers"]
	assert.Equal(t, healthhandler.StatusFail, s.Status, "Redis down: servers = %+v", s)
	assert.Equal(t, "asynq servers unknown: redis unavailable", s.Output, "Redis down: servers = %+v", s)
	assert.Contains(t, s.Detail, "asynq: read asynq:servers", "Redis down: servers = %+v", s)
	assert.Nil(t, s.Value, "Redis down: servers = %+v", s)
	assert.Len(t, obs, 4, "observations, want the 4 keys")
}

func TestAsynqOptions(t *testing.T) {
	_, err := Servers(nil, Options{})
	assert.ErrorIs(t, err, healthhandler.ErrInvalidOption, "Servers(nil)")
	mr := miniredis.RunT(t)
	rdb := testRedis(t, mr.Addr())
	_, err = Servers(rdb, Options{Min: -1})
	assert.ErrorIs(t, err, healthhandler.ErrInvalidOption, "Servers with Min -1")
	assert.ErrorContains(t, err, "Min", "Servers with Min -1")
	c, err := Servers(rdb, Options{})
	assert.NoError(t, err, "defaults")
	assert.Equal(t, "asynq", c.Name, "defaults: Name")
}

func FuzzDecodeAsynqServerInfo(f *testing.F) {
	f.Add(asynqState("host-a", 4242, 10, 3, "active"))
	f.Add([]byte{})
	f.Add([]byte{0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add(append(pbTag(nil, 17, wireI64), 1, 2, 3, 4, 5, 6, 7, 8))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := decodeServerInfo(data)
		if err != nil {
			require.ErrorIs(t, err, detail.ErrMalformed)
			return
		}
		require.LessOrEqual(t, len(info.Host), detail.MaxHostname, "accepted %+v", info)
		require.GreaterOrEqual(t, info.Concurrency, int32(0), "accepted %+v", info)
		require.GreaterOrEqual(t, info.Active, int32(0), "accepted %+v", info)
		// What decodes encodes back to the same fields.
		var b []byte
		b = pbBytes(b, 1, []byte(info.Host))
		b = pbInt(b, 2, int64(info.PID))
		b = pbBytes(b, 3, []byte(info.ServerID))
		b = pbInt(b, 4, int64(info.Concurrency))
		b = pbBytes(b, 7, []byte(info.Status))
		b = pbInt(b, 9, int64(info.Active))
		again, err := decodeServerInfo(b)
		require.NoError(t, err, "round trip of %+v", info)
		require.Equal(t, info, again, "round trip")
	})
}

func FuzzParseAsynqMember(f *testing.F) {
	f.Add("asynq:servers:{host-a:4242:0b3ea2a4-5c1c-4c57-9a4d-2b1e4f3e5a61}")
	f.Add("asynq:servers:{fe80::1:17:id}")
	f.Add("asynq:servers:{:1:}")
	f.Fuzz(func(t *testing.T, member string) {
		host, pid, ok := parseMember(member)
		if !ok {
			return
		}
		require.NoError(t, detail.CheckHostname(host), "parseMember(%q) accepted host %q", member, host)
		require.Positive(t, pid, "parseMember(%q) accepted pid", member)
		again, pid2, ok := parseMember("asynq:servers:{" + host + ":" + strconv.Itoa(pid) + ":x}")
		require.True(t, ok, "parseMember of rebuilt %q", member)
		require.Equal(t, host, again, "parseMember of rebuilt %q: host", member)
		require.Equal(t, pid, pid2, "parseMember of rebuilt %q: pid", member)
	})
}
