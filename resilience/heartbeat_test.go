package resilience_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/internal/testlog"
	"github.com/steadfast-go/steadfast/resilience"
)

// hbServerTime is the Redis server's clock in these tests: far from the
// host's (the real one, or synctest's year 2000), so that any use of the
// host clock shows.
var hbServerTime = time.Date(2031, 5, 17, 9, 30, 0, 0, time.UTC)

const hbKey = "test:workers"

// hbRedis guards a client of addr; it is closed when the test ends.
func hbRedis(t *testing.T, addr string, log *slog.Logger) *resilience.Redis {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r, err := resilience.NewRedis(resilience.Config{Addr: addr}, resilience.Options{Logger: log, OpTimeout: time.Second, DialTimeout: 5 * time.Second})
	require.NoError(t, err, "NewRedis")
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// hbLog records log lines in a testlog.Buffer and signals each one.
type hbLog struct {
	testlog.Buffer
	lines chan string
}

func newHBLog() *hbLog { return &hbLog{lines: make(chan string, 100)} }

// Write keeps p first, then signals it, so that a String after the
// signal holds the line.
func (l *hbLog) Write(p []byte) (int, error) {
	n, err := l.Buffer.Write(p)
	select {
	case l.lines <- string(p):
	default:
	}
	return n, err
}

func (l *hbLog) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// waitLine waits for a log line holding msg.
func (l *hbLog) waitLine(t *testing.T, msg string, limit time.Duration) {
	t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		select {
		case line := <-l.lines:
			if strings.Contains(line, msg) {
				return
			}
		case <-deadline.C:
			require.FailNowf(t, "no log line", "no log line %q within %v; log:\n%s", msg, limit, l.String())
		}
	}
}

func hbScore(t *testing.T, m *miniredis.Miniredis, id string) (time.Time, bool) {
	t.Helper()
	score, err := m.ZScore(hbKey, id)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(score)), true
}

func TestHeartbeatScoresByServerClock(t *testing.T) {
	m := miniredis.RunT(t)
	m.SetTime(hbServerTime)
	synctest.Test(t, func(t *testing.T) {
		r := hbRedis(t, m.Addr(), nil)
		hb, err := resilience.NewHeartbeat(r, resilience.HeartbeatOptions{Key: hbKey, ID: "w1", Interval: 5 * time.Second})
		require.NoError(t, err, "NewHeartbeat")
		// The first beat is in before NewHeartbeat returns.
		got, ok := hbScore(t, m, "w1")
		require.True(t, ok, "after NewHeartbeat: no last beat, want the server's %v", hbServerTime)
		require.True(t, got.Equal(hbServerTime), "after NewHeartbeat: last beat %v, want the server's %v", got, hbServerTime)
		for i := 1; i <= 3; i++ {
			now := hbServerTime.Add(time.Duration(i) * 5 * time.Second)
			m.SetTime(now)
			time.Sleep(5 * time.Second)
			synctest.Wait()
			got, _ = hbScore(t, m, "w1")
			require.True(t, got.Equal(now), "beat %d: last beat %v, want %v", i, got, now)
		}
		st := hb.Stats()
		assert.EqualValues(t, 4, st.Beats, "Stats().Beats")
		assert.Zero(t, st.Failures, "Stats().Failures")
		assert.True(t, st.LastBeat.Equal(hbServerTime.Add(15*time.Second)), "Stats().LastBeat = %v, want %v", st.LastBeat, hbServerTime.Add(15*time.Second))
		assert.Equal(t, "w1", st.ID, "Stats().ID")
		assert.Equal(t, hbKey, st.Key, "Stats().Key")
		require.NoError(t, hb.Close(), "Close")
		_, ok = hbScore(t, m, "w1")
		assert.False(t, ok, "w1 still in the set after Close")
		assert.NoError(t, hb.Close(), "second Close")
	})
}

func TestHeartbeatKeepsBeatingThroughOutage(t *testing.T) {
	m := miniredis.RunT(t)
	m.SetTime(hbServerTime)
	outside := redistest.NewOutside(t)
	synctest.Test(t, func(t *testing.T) {
		log := newHBLog()
		r := hbRedis(t, m.Addr(), nil)
		hb, err := resilience.NewHeartbeat(r, resilience.HeartbeatOptions{
			Key: hbKey, ID: "w1", Interval: time.Second, Backoff: 100 * time.Millisecond, Logger: log.logger(),
		})
		require.NoError(t, err, "NewHeartbeat")
		defer hb.Close()

		m.Close()
		time.Sleep(30 * time.Second)
		synctest.Wait()
		st := hb.Stats()
		require.True(t, st.Failing, "during the outage: Stats = %+v, want failing with several failures", st)
		require.GreaterOrEqual(t, st.Failures, uint64(5), "during the outage: Stats = %+v, want several failures", st)
		require.NotEmpty(t, st.LastError, "during the outage: Stats = %+v, want failing with a last error", st)
		// Backoff: waits double from 100 ms to the 1 s interval, so 30 s
		// of outage cost well under one attempt per 100 ms.
		assert.LessOrEqual(t, st.Failures, uint64(60), "attempts in 30 s of outage: backoff not applied")

		outside.Run(func() { err = m.Restart() })
		require.NoError(t, err, "restart miniredis")
		m.Del(hbKey) // as if the restarted server had lost its data
		back := hbServerTime.Add(time.Minute)
		m.SetTime(back)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		got, ok := hbScore(t, m, "w1")
		require.True(t, ok, "after Redis came back: no last beat, want %v", back)
		require.True(t, got.Equal(back), "after Redis came back: last beat %v, want %v", got, back)
		st = hb.Stats()
		assert.False(t, st.Failing, "after Redis came back: Stats = %+v, want not failing", st)
		out := log.String()
		assert.Equal(t, 1, strings.Count(out, "heartbeat failing"), "\"heartbeat failing\" lines, want one per transition:\n%s", out)
		assert.Equal(t, 1, strings.Count(out, "heartbeat resumed"), "\"heartbeat resumed\" lines, want one:\n%s", out)
	})
}

// TestHeartbeatSurvivesRedisRestart kills a real redis-server, which loses
// the set, and starts it again: the worker must reappear by itself.
func TestHeartbeatSurvivesRedisRestart(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	log := newHBLog()
	r := hbRedis(t, srv.Addr(), nil)
	hb, err := resilience.NewHeartbeat(r, resilience.HeartbeatOptions{
		Key: hbKey, ID: "w1", Interval: 50 * time.Millisecond, Backoff: 10 * time.Millisecond, Logger: log.logger(),
	})
	require.NoError(t, err, "NewHeartbeat")
	defer hb.Close()
	_, err = srv.Command("ZSCORE", hbKey, "w1")
	require.NoError(t, err, "w1 not in the set at start")

	srv.Kill()
	log.waitLine(t, "heartbeat failing", 10*time.Second)
	srv.Restart()
	log.waitLine(t, "heartbeat resumed", 10*time.Second)
	score, err := srv.Command("ZSCORE", hbKey, "w1")
	require.NoError(t, err, "after restart: ZSCORE w1, want the worker back")
	require.NotEmpty(t, score, "after restart: ZSCORE w1, want the worker back")
	require.NotEqual(t, "$-1", score, "after restart: ZSCORE w1, want the worker back")
	require.NoError(t, hb.Close(), "Close")
	got, _ := srv.Command("ZSCORE", hbKey, "w1")
	assert.Equal(t, "$-1", got, "after Close: ZSCORE w1, want nil")
}

func TestHeartbeatStopsWhenRedisClosed(t *testing.T) {
	m := miniredis.RunT(t)
	synctest.Test(t, func(t *testing.T) {
		r := hbRedis(t, m.Addr(), nil)
		hb, err := resilience.NewHeartbeat(r, resilience.HeartbeatOptions{Key: hbKey, ID: "w1", Interval: time.Second})
		require.NoError(t, err, "NewHeartbeat")
		_ = r.Close()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		st := hb.Stats()
		assert.EqualValues(t, 1, st.Beats, "Stats().Beats, want the first beat only")
		assert.Zero(t, st.Failures, "Stats().Failures, want no failure counted")
		assert.ErrorIs(t, hb.Close(), resilience.ErrClosed, "Close, want ErrClosed (the ID could not be removed)")
		// The worker's ID stays, to drop out by age like a crashed worker's.
		_, ok := hbScore(t, m, "w1")
		assert.True(t, ok, "w1 removed although its Redis was closed")
	})
}

func TestNewHeartbeatErrors(t *testing.T) {
	m := miniredis.RunT(t)
	r := hbRedis(t, m.Addr(), nil)
	tests := []struct {
		name string
		r    *resilience.Redis
		opts resilience.HeartbeatOptions
		want string
	}{
		{"nil redis", nil, resilience.HeartbeatOptions{}, "nil Redis"},
		{"negative interval", r, resilience.HeartbeatOptions{Interval: -time.Second}, "Interval"},
		{"negative backoff", r, resilience.HeartbeatOptions{Backoff: -time.Second}, "Backoff"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hb, err := resilience.NewHeartbeat(tc.r, tc.opts)
			if err == nil {
				_ = hb.Close()
			}
			require.Error(t, err, "NewHeartbeat(%+v), want an error naming %q", tc.opts, tc.want)
			assert.Contains(t, err.Error(), tc.want, "NewHeartbeat(%+v) = %v, want it to name %q", tc.opts, err, tc.want)
		})
	}
}

func TestHeartbeatDefaults(t *testing.T) {
	m := miniredis.RunT(t)
	r := hbRedis(t, m.Addr(), nil)
	hb, err := resilience.NewHeartbeat(r, resilience.HeartbeatOptions{})
	require.NoError(t, err, "NewHeartbeat")
	defer hb.Close()
	st := hb.Stats()
	assert.Equal(t, resilience.DefaultHeartbeatKey, st.Key, "Stats().Key")
	assert.NotEmpty(t, st.ID, "Stats().ID, want a default ID")
	assert.Equal(t, st.ID, hb.ID(), "ID(), want Stats().ID")
	_, err = m.ZScore(resilience.DefaultHeartbeatKey, st.ID)
	assert.NoError(t, err, "default ID %q not in %q", st.ID, resilience.DefaultHeartbeatKey)
}

func TestRedisWorkers(t *testing.T) {
	m := miniredis.RunT(t)
	m.SetTime(hbServerTime)
	ms := func(d time.Duration) float64 { return float64(hbServerTime.Add(-d).UnixMilli()) }
	for id, age := range map[string]time.Duration{"new": 0, "old": 10 * time.Second, "dead": 5 * time.Minute, "ancient": 2 * time.Hour} {
		_, err := m.ZAdd(hbKey, ms(age), id)
		require.NoError(t, err)
	}
	r := hbRedis(t, m.Addr(), nil)
	ctx := context.Background()

	ws, err := r.Workers(ctx, hbKey, 0)
	require.NoError(t, err, "Workers")
	assert.Equal(t, fmt.Sprint([]resilience.Worker{
		{ID: "new", LastBeat: hbServerTime, Age: 0},
		{ID: "old", LastBeat: hbServerTime.Add(-10 * time.Second), Age: 10 * time.Second},
		{ID: "dead", LastBeat: hbServerTime.Add(-5 * time.Minute), Age: 5 * time.Minute},
		{ID: "ancient", LastBeat: hbServerTime.Add(-2 * time.Hour), Age: 2 * time.Hour},
	}), fmt.Sprint(ws), "Workers without pruning")

	ws, err = r.Workers(ctx, hbKey, time.Hour)
	require.NoError(t, err, "Workers with pruning")
	var ids []string
	for _, w := range ws {
		ids = append(ids, w.ID)
	}
	assert.Equal(t, "new,old,dead", strings.Join(ids, ","), "Workers pruning after 1h")
	members, _ := m.ZMembers(hbKey)
	assert.Len(t, members, 3, "set after pruning, want ancient removed")

	ws, err = r.Workers(ctx, "test:empty", time.Hour)
	assert.NoError(t, err, "Workers of a missing key")
	assert.Empty(t, ws, "Workers of a missing key")
}

func TestRedisWorkersUnavailable(t *testing.T) {
	m := miniredis.RunT(t)
	r := hbRedis(t, m.Addr(), nil)
	require.NoError(t, r.WaitReady(context.Background())) // the start-up probe is done
	m.SetError("READONLY You can't write against a read only replica.")
	_, err := r.Workers(context.Background(), hbKey, 0)
	require.True(t, resilience.IsFailure(err), "Workers on a read-only replica = %v, want a READONLY failure", err)
	assert.Contains(t, err.Error(), "READONLY", "Workers on a read-only replica, want a READONLY failure")
}

func ExampleNewHeartbeat() {
	m, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer m.Close()
	rdb, err := resilience.NewRedis(resilience.Config{Addr: m.Addr()}, resilience.Options{Logger: slog.New(slog.DiscardHandler), OpTimeout: time.Second})
	if err != nil {
		panic(err)
	}
	defer rdb.Close()

	// In the worker process:
	hb, err := resilience.NewHeartbeat(rdb, resilience.HeartbeatOptions{ID: "worker-1", Interval: 5 * time.Second})
	if err != nil {
		panic(err)
	}

	// In the API process, or its health check:
	ctx := context.Background()
	ws, _ := rdb.Workers(ctx, resilience.DefaultHeartbeatKey, time.Hour)
	for _, w := range ws {
		fmt.Println(w.ID, "alive:", w.Age < 15*time.Second)
	}

	// The worker shuts down cleanly and removes itself.
	_ = hb.Close()
	ws, _ = rdb.Workers(ctx, resilience.DefaultHeartbeatKey, time.Hour)
	fmt.Println("workers after Close:", len(ws))
	// Output:
	// worker-1 alive: true
	// workers after Close: 0
}
