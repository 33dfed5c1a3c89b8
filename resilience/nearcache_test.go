package resilience

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/internal/faultproxy"
	"github.com/steadfast-go/steadfast/internal/redistest"
)

// nearOpts are Options with a near cache on, with test timeouts.
func nearOpts(o Options) Options {
	if o.NearCache == nil {
		o.NearCache = &NearCacheOptions{}
	}
	return withTestTimeouts(o)
}

// waitServing waits until the near cache's Serving is want.
func waitServing(t *testing.T, r *Redis, want bool) NearCacheStats {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		s := r.Stats().NearCache
		if s.Serving == want {
			return s
		}
		require.False(t, time.Now().After(deadline), "near cache Serving = %v after %v, want %v (reason %q)", s.Serving, waitLimit, want, s.Reason)
		time.Sleep(time.Millisecond)
	}
}

// nearHas reports whether the near cache would serve key from memory.
func nearHas(r *Redis, key string) bool {
	_, _, ok := r.near.lookup(key)
	return ok
}

// waitGone waits until key is no longer in the near cache.
func waitGone(t *testing.T, r *Redis, key, why string) time.Duration {
	t.Helper()
	start := time.Now()
	for nearHas(r, key) {
		require.LessOrEqual(t, time.Since(start), waitLimit, "%s: %q still in the near cache", why, key)
		time.Sleep(100 * time.Microsecond)
	}
	return time.Since(start)
}

// rawClient is a plain go-redis client: another process's writes.
func rawClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// cached reads key through r twice and checks the second read was served
// from memory: no operation reached the guard.
func cached(t *testing.T, r *Redis, key, want string) {
	t.Helper()
	ctx := ctxFor(t, waitLimit)
	for i := range 2 {
		before := r.Stats().Ops
		v, err := r.Get(ctx, key)
		require.NoError(t, err, "Get(%q) #%d = %q, %v; want %q", key, i, v, err, want)
		require.Equal(t, want, string(v), "Get(%q) #%d = %q, %v; want %q", key, i, v, err, want)
		require.False(t, i == 1 && r.Stats().Ops != before,
			"second Get(%q) went through the guard (Ops %d -> %d): not a near hit", key, before, r.Stats().Ops)
	}
	require.True(t, nearHas(r, key), "%q not in the near cache after two reads", key)
}

func TestNearCacheInvalidation(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	// Heartbeat an hour: no ping in between, so Ops counts reads only.
	r := newTestRedis(t, Config{Addr: srv.Addr()}, nearOpts(Options{}))
	waitServing(t, r, true)
	other := rawClient(t, srv.Addr())
	ctx := ctxFor(t, waitLimit)

	cases := []struct {
		name  string
		write func(key string) error
	}{
		{"overwrite", func(k string) error { return other.Set(ctx, k, "v2", 0).Err() }},
		{"delete", func(k string) error { return other.Del(ctx, k).Err() }},
		{"ttl expiry", func(k string) error { return other.PExpire(ctx, k, 20*time.Millisecond).Err() }},
		{"flushall", func(string) error { return other.FlushAll(ctx).Err() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := "near:" + strings.ReplaceAll(tc.name, " ", "-")
			require.NoError(t, other.Set(ctx, key, "v1", 0).Err())
			cached(t, r, key, "v1")
			inv := r.Stats().NearCache
			require.NoError(t, tc.write(key))
			d := waitGone(t, r, key, tc.name)
			t.Logf("%s reached the near cache after %v", tc.name, d)
			got := r.Stats().NearCache
			assert.Greater(t, got.Invalidations+got.Flushes, inv.Invalidations+inv.Flushes,
				"Invalidations %d, Flushes %d: no push counted", got.Invalidations, got.Flushes)
			want, err := other.Get(ctx, key).Result()
			if errors.Is(err, redis.Nil) {
				want = "<none>"
			}
			v, err := r.Get(ctx, key)
			if errors.Is(err, ErrNotFound) {
				v = []byte("<none>")
			}
			assert.Equal(t, want, string(v), "Get(%q) after %s = %q, %v; Redis has %q", key, tc.name, v, err, want)
		})
	}
}

func TestNearCacheEviction(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Args: []string{"--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru"}})
	r := newTestRedis(t, Config{Addr: srv.Addr()}, nearOpts(Options{}))
	waitServing(t, r, true)
	other := rawClient(t, srv.Addr())
	ctx := ctxFor(t, waitLimit)
	require.NoError(t, other.Set(ctx, "victim", "v1", 0).Err())
	cached(t, r, "victim", "v1")
	// Near hits do not touch the key in Redis: it is the least recently
	// used, and goes first.
	filler := bytes.Repeat([]byte("x"), 64<<10)
	for i := 0; ; i++ {
		n, err := other.Exists(ctx, "victim").Result()
		require.NoError(t, err)
		if n == 0 {
			break
		}
		require.LessOrEqual(t, i, 1000, "victim never evicted")
		err = other.Set(ctx, fmt.Sprintf("fill:%d", i), filler, 0).Err()
		require.True(t, err == nil || redis.IsOOMError(err), "fill: %v", err)
	}
	d := waitGone(t, r, "victim", "eviction")
	t.Logf("eviction reached the near cache after %v", d)
	_, err := r.Get(ctx, "victim")
	assert.ErrorIs(t, err, ErrNotFound, "Get(victim) after eviction: %v, want ErrNotFound", err)
}

// TestNearCacheOwnWrite: this process's own Set and Del are seen by its
// next Get at once, without waiting for Redis's push.
func TestNearCacheOwnWrite(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	// A drain interval of an hour: only the local forget can explain a
	// fresh read.
	r := newTestRedis(t, Config{Addr: srv.Addr()}, nearOpts(Options{NearCache: &NearCacheOptions{DrainInterval: time.Hour}}))
	waitServing(t, r, true)
	ctx := ctxFor(t, waitLimit)
	require.NoError(t, r.Set(ctx, "k", []byte("v1"), 0))
	cached(t, r, "k", "v1")
	require.NoError(t, r.Set(ctx, "k", []byte("v2"), 0))
	v, err := r.Get(ctx, "k")
	require.NoError(t, err, "Get after own Set = %q, %v; want v2", v, err)
	require.Equal(t, "v2", string(v), "Get after own Set = %q, %v; want v2", v, err)
	cached(t, r, "k", "v2")
	require.NoError(t, r.Del(ctx, "k"))
	v, err = r.Get(ctx, "k")
	require.ErrorIs(t, err, ErrNotFound, "Get after own Del = %q, %v; want ErrNotFound", v, err)
}

// TestNearCacheNegativeHit: a missing key is cached too, and a write by
// another client ends it.
func TestNearCacheNegativeHit(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	r := newTestRedis(t, Config{Addr: srv.Addr()}, nearOpts(Options{}))
	waitServing(t, r, true)
	ctx := ctxFor(t, waitLimit)
	for range 2 {
		_, err := r.Get(ctx, "absent")
		require.ErrorIs(t, err, ErrNotFound, "Get(absent) = %v, want ErrNotFound", err)
	}
	require.True(t, nearHas(r, "absent"), "a miss was not cached")
	require.NoError(t, rawClient(t, srv.Addr()).Set(ctx, "absent", "now", 0).Err())
	waitGone(t, r, "absent", "create")
	v, err := r.Get(ctx, "absent")
	require.NoError(t, err, "Get after create = %q", v)
	require.Equal(t, "now", string(v), "Get after create = %q, %v", v, err)
}

// TestNearCacheFaults: with Redis killed, hung or behind a blackhole the
// invalidation stream is lost, so the near cache stops serving (flushed)
// until Redis answers, and a write made meanwhile is then seen.
func TestNearCacheFaults(t *testing.T) {
	cases := []struct {
		name        string
		fault, heal func(srv *redistest.Server, p *faultproxy.Proxy)
		writeDuring bool // another client writes while this one is cut off
	}{
		{"killed", func(s *redistest.Server, _ *faultproxy.Proxy) { s.Kill() }, func(s *redistest.Server, _ *faultproxy.Proxy) { s.Restart() }, false},
		{"sigstop", func(s *redistest.Server, _ *faultproxy.Proxy) { s.Pause() }, func(s *redistest.Server, _ *faultproxy.Proxy) { s.Resume() }, false},
		{"blackhole", func(_ *redistest.Server, p *faultproxy.Proxy) { p.SetMode(faultproxy.Blackhole) }, func(_ *redistest.Server, p *faultproxy.Proxy) { p.SetMode(faultproxy.Pass) }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{})
			p, err := faultproxy.New(srv.Addr(), faultproxy.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = p.Close() })
			logger, logs := newLogger(slog.LevelInfo)
			r := newTestRedis(t, Config{Addr: p.Addr()}, nearOpts(Options{
				Logger: logger, OpTimeout: 200 * time.Millisecond,
				ProbeInterval: 10 * time.Millisecond, ProbeMaxInterval: 20 * time.Millisecond,
			}))
			waitServing(t, r, true)
			ctx := context.Background()
			other := rawClient(t, srv.Addr())
			require.NoError(t, other.Set(ctx, "k", "v1", 0).Err())
			cached(t, r, "k", "v1")

			tc.fault(srv, p)
			s := waitServing(t, r, false)
			assert.NotEmpty(t, s.Reason, "paused near cache: reason %q, %d entries; want a reason and none", s.Reason, s.Entries)
			assert.Zero(t, s.Entries, "paused near cache: reason %q, %d entries; want a reason and none", s.Reason, s.Entries)
			v, err := r.Get(ctx, "k")
			assert.Error(t, err, "Get while Redis is cut off = %q, want an error (nothing served from memory)", v)
			if tc.writeDuring {
				require.NoError(t, other.Set(ctx, "k", "v2", 0).Err())
			}
			tc.heal(srv, p)
			if tc.name == "killed" { // no persistence: the key went with it
				require.NoError(t, eventually(func() error { return other.Set(ctx, "k", "v1", 0).Err() }))
			}
			s = waitServing(t, r, true)
			assert.NotZero(t, s.Pauses, "Pauses = 0 after a fault")
			want := "v1"
			if tc.writeDuring {
				want = "v2"
			}
			require.NoError(t, eventually(func() error {
				v, err := r.Get(ctx, "k")
				if err == nil {
					require.Equal(t, want, string(v), "Get after %s: a stale read", tc.name)
				}
				return err
			}), "Get after heal")
			cached(t, r, "k", want)
			assert.Len(t, logs.Lines("near cache paused"), 1, "%d 'near cache paused' lines, want 1:\n%s", len(logs.Lines("near cache paused")), logs)
		})
	}
}

func TestNearCacheUnsupported(t *testing.T) {
	cases := []struct {
		name   string
		build  func(t *testing.T, o Options) *Redis
		reason string
	}{
		{"miniredis", func(t *testing.T, o Options) *Redis {
			m := miniredis.RunT(t)
			return newTestRedis(t, Config{Addr: m.Addr()}, o)
		}, "CLIENT TRACKING"},
		{"db 1", func(t *testing.T, o Options) *Redis {
			m := miniredis.RunT(t)
			return newTestRedis(t, Config{Addr: m.Addr(), DB: 1}, o)
		}, "DB 0 only"},
		{"wrapped", func(t *testing.T, o Options) *Redis {
			m := miniredis.RunT(t)
			c := redis.NewClient(&redis.Options{Addr: m.Addr()})
			t.Cleanup(func() { _ = c.Close() })
			r, err := Wrap(c, o)
			require.NoError(t, err)
			t.Cleanup(func() { _ = r.Close() })
			return r
		}, "standalone client built by NewRedis"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logger, logs := newLogger(slog.LevelInfo)
			r := tc.build(t, nearOpts(Options{Logger: logger}))
			deadline := time.Now().Add(waitLimit)
			for !strings.Contains(r.Stats().NearCache.Reason, tc.reason) {
				require.False(t, time.Now().After(deadline), "Reason = %q, want it to say %q", r.Stats().NearCache.Reason, tc.reason)
				time.Sleep(time.Millisecond)
			}
			s := r.Stats().NearCache
			assert.True(t, s.Enabled, "Enabled %v Serving %v, want true false", s.Enabled, s.Serving)
			assert.False(t, s.Serving, "Enabled %v Serving %v, want true false", s.Enabled, s.Serving)
			ctx := ctxFor(t, waitLimit)
			require.NoError(t, r.Set(ctx, "k", []byte("v"), 0))
			for range 2 {
				v, err := r.Get(ctx, "k")
				require.NoError(t, err, "Get = %q", v)
				require.Equal(t, "v", string(v), "Get = %q, %v", v, err)
			}
			assert.Len(t, logs.Lines("near cache off"), 1, "%d 'near cache off' lines, want 1:\n%s", len(logs.Lines("near cache off")), logs)
		})
	}
}

func TestNearCacheOffByDefault(t *testing.T) {
	m := miniredis.RunT(t)
	r := newTestRedis(t, Config{Addr: m.Addr()}, Options{})
	s := r.Stats().NearCache
	assert.Zero(t, s, "NearCache stats without the option = %+v, want zero", s)
}

func TestNearCacheOptionsInvalid(t *testing.T) {
	_, err := NewRedis(Config{Addr: "127.0.0.1:1"}, Options{NearCache: &NearCacheOptions{MaxBytes: -1}})
	require.Error(t, err, "NewRedis with MaxBytes -1, want an error naming NearCache")
	assert.Contains(t, err.Error(), "NearCache", "NewRedis with MaxBytes -1: %v, want an error naming NearCache", err)
}

// TestNearCacheFloor: a fetch reserved before a pause never publishes,
// even when it completes after the near cache resumed.
func TestNearCacheFloor(t *testing.T) {
	n := newNearCache(NearCacheOptions{MaxBytes: 1 << 20}, "")
	n.resume()
	key := n.cacheKey("k")
	token, fetch := n.Reserve(key, []string{n.prefix + "k"})
	require.True(t, fetch, "Reserve = %d, %v", token, fetch)
	require.NotZero(t, token, "Reserve = %d, %v", token, fetch)
	n.pause(nearLost)
	n.resume()
	require.False(t, n.FulfillOwned(key, token, 1, []byte("$1\r\nx\r\n")), "a value reserved before a pause was published after it")
	token, _ = n.Reserve(key, []string{n.prefix + "k"})
	require.True(t, n.FulfillOwned(key, token, 1, []byte("$1\r\nx\r\n")), "a value reserved after the resume was refused")
	v, found, ok := n.lookup("k")
	require.True(t, ok, "lookup = %q, %v, %v", v, found, ok)
	require.True(t, found, "lookup = %q, %v, %v", v, found, ok)
	require.Equal(t, "x", string(v), "lookup = %q, %v, %v", v, found, ok)
	n.pause(nearLost)
	_, _, ok = n.lookup("k")
	require.False(t, ok, "lookup served while paused")
	token, fetch = n.Reserve(key, nil)
	require.Zero(t, token, "Reserve while paused = %d, %v; want 0, true (fetch uncached)", token, fetch)
	require.True(t, fetch, "Reserve while paused = %d, %v; want 0, true (fetch uncached)", token, fetch)
}

func TestParseBulk(t *testing.T) {
	cases := []struct {
		raw       string
		val       string
		found, ok bool
	}{
		{"$2\r\nv1\r\n", "v1", true, true},
		{"$0\r\n\r\n", "", true, true},
		{"_\r\n", "", false, true},
		{"$-1\r\n", "", false, true},
		{"$3\r\nv1\r\n", "", false, false},
		{"$1\r\nv1\r\n", "", false, false},
		{"$2\r\nv1\n\n", "", false, false},
		{"+OK\r\n", "", false, false},
		{"$-2\r\n", "", false, false},
		{"$99999999999999999999\r\n", "", false, false},
		{"$", "", false, false},
		{"", "", false, false},
		{"_\r\nx", "", false, false},
	}
	for _, tc := range cases {
		v, found, ok := parseBulk([]byte(tc.raw))
		assert.Equal(t, tc.val, string(v), "parseBulk(%q) = %q, %v, %v; want %q, %v, %v", tc.raw, v, found, ok, tc.val, tc.found, tc.ok)
		assert.Equal(t, tc.found, found, "parseBulk(%q) = %q, %v, %v; want %q, %v, %v", tc.raw, v, found, ok, tc.val, tc.found, tc.ok)
		assert.Equal(t, tc.ok, ok, "parseBulk(%q) = %q, %v, %v; want %q, %v, %v", tc.raw, v, found, ok, tc.val, tc.found, tc.ok)
	}
}

func FuzzParseBulk(f *testing.F) {
	for _, s := range []string{"$2\r\nv1\r\n", "_\r\n", "$-1\r\n", "$0\r\n\r\n", "*1\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		v, found, ok := parseBulk(raw)
		require.False(t, !ok && (found || v != nil), "parseBulk(%q) not ok but found=%v v=%q", raw, found, v)
		if ok && found {
			want := fmt.Sprintf("$%d\r\n%s\r\n", len(v), v)
			require.Equal(t, want, string(raw), "parseBulk(%q) = %q, which is not what it read", raw, v)
		}
	})
}

// TestNearCacheOffOnTopology: Sentinel and Cluster clients built by
// NewRedis report the near cache off, and say why, also once their
// breaker has opened (nothing answers at these addresses).
func TestNearCacheOffOnTopology(t *testing.T) {
	for _, cfg := range []Config{
		{Topology: TopologySentinel, Addrs: []string{deadAddr(t)}, MasterName: "m"},
		{Topology: TopologyCluster, Addrs: []string{deadAddr(t)}},
	} {
		t.Run(cfg.Topology.String(), func(t *testing.T) {
			r := newTestRedis(t, cfg, nearOpts(Options{Logger: slog.New(slog.DiscardHandler)}))
			deadline := time.Now().Add(waitLimit)
			for r.State() != StateOpen {
				require.False(t, time.Now().After(deadline), "breaker %v, want open", r.State())
				time.Sleep(time.Millisecond)
			}
			s := r.Stats().NearCache
			assert.True(t, s.Enabled, "NearCache = %+v, want enabled, not serving, off for the topology", s)
			assert.False(t, s.Serving, "NearCache = %+v, want enabled, not serving, off for the topology", s)
			assert.Contains(t, s.Reason, "standalone client built by NewRedis", "NearCache = %+v, want enabled, not serving, off for the topology", s)
		})
	}
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}
