package resilience_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/steadfast-go/steadfast/internal/redistest"
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
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// hbLog records log lines and signals each one.
type hbLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func newHBLog() *hbLog { return &hbLog{lines: make(chan string, 100)} }

func (l *hbLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case l.lines <- string(p):
	default:
	}
	return l.buf.Write(p)
}

func (l *hbLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
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
			t.Fatalf("no log line %q within %v; log:\n%s", msg, limit, l.String())
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
		if err != nil {
			t.Fatalf("NewHeartbeat: %v", err)
		}
		// The first beat is in before NewHeartbeat returns.
		if got, ok := hbScore(t, m, "w1"); !ok || !got.Equal(hbServerTime) {
			t.Fatalf("after NewHeartbeat: last beat %v (present %v), want the server's %v", got, ok, hbServerTime)
		}
		for i := 1; i <= 3; i++ {
			now := hbServerTime.Add(time.Duration(i) * 5 * time.Second)
			m.SetTime(now)
			time.Sleep(5 * time.Second)
			synctest.Wait()
			if got, _ := hbScore(t, m, "w1"); !got.Equal(now) {
				t.Fatalf("beat %d: last beat %v, want %v", i, got, now)
			}
		}
		st := hb.Stats()
		if st.Beats != 4 || st.Failures != 0 || !st.LastBeat.Equal(hbServerTime.Add(15*time.Second)) || st.ID != "w1" || st.Key != hbKey {
			t.Errorf("Stats = %+v, want 4 beats, no failure, last beat %v", st, hbServerTime.Add(15*time.Second))
		}
		if err := hb.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, ok := hbScore(t, m, "w1"); ok {
			t.Errorf("w1 still in the set after Close")
		}
		if err := hb.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
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
		if err != nil {
			t.Fatalf("NewHeartbeat: %v", err)
		}
		defer hb.Close()

		m.Close()
		time.Sleep(30 * time.Second)
		synctest.Wait()
		st := hb.Stats()
		if !st.Failing || st.Failures < 5 || st.LastError == "" {
			t.Fatalf("during the outage: Stats = %+v, want failing with several failures", st)
		}
		// Backoff: waits double from 100 ms to the 1 s interval, so 30 s
		// of outage cost well under one attempt per 100 ms.
		if st.Failures > 60 {
			t.Errorf("%d attempts in 30 s of outage: backoff not applied", st.Failures)
		}

		outside.Run(func() { err = m.Restart() })
		if err != nil {
			t.Fatalf("restart miniredis: %v", err)
		}
		m.Del(hbKey) // as if the restarted server had lost its data
		back := hbServerTime.Add(time.Minute)
		m.SetTime(back)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got, ok := hbScore(t, m, "w1"); !ok || !got.Equal(back) {
			t.Fatalf("after Redis came back: last beat %v (present %v), want %v", got, ok, back)
		}
		if st := hb.Stats(); st.Failing {
			t.Errorf("after Redis came back: Stats = %+v, want not failing", st)
		}
		out := log.String()
		if n := strings.Count(out, "heartbeat failing"); n != 1 {
			t.Errorf("%d \"heartbeat failing\" lines, want one per transition:\n%s", n, out)
		}
		if n := strings.Count(out, "heartbeat resumed"); n != 1 {
			t.Errorf("%d \"heartbeat resumed\" lines, want one:\n%s", n, out)
		}
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
	if err != nil {
		t.Fatalf("NewHeartbeat: %v", err)
	}
	defer hb.Close()
	if _, err := srv.Command("ZSCORE", hbKey, "w1"); err != nil {
		t.Fatalf("w1 not in the set at start: %v", err)
	}

	srv.Kill()
	log.waitLine(t, "heartbeat failing", 10*time.Second)
	srv.Restart()
	log.waitLine(t, "heartbeat resumed", 10*time.Second)
	score, err := srv.Command("ZSCORE", hbKey, "w1")
	if err != nil || score == "" || score == "$-1" {
		t.Fatalf("after restart: ZSCORE w1 = %q, %v; want the worker back", score, err)
	}
	if err := hb.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, _ := srv.Command("ZSCORE", hbKey, "w1"); got != "$-1" {
		t.Errorf("after Close: ZSCORE w1 = %q, want nil", got)
	}
}

func TestHeartbeatStopsWhenRedisClosed(t *testing.T) {
	m := miniredis.RunT(t)
	synctest.Test(t, func(t *testing.T) {
		r := hbRedis(t, m.Addr(), nil)
		hb, err := resilience.NewHeartbeat(r, resilience.HeartbeatOptions{Key: hbKey, ID: "w1", Interval: time.Second})
		if err != nil {
			t.Fatalf("NewHeartbeat: %v", err)
		}
		_ = r.Close()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if st := hb.Stats(); st.Beats != 1 || st.Failures != 0 {
			t.Errorf("Stats = %+v, want the first beat only and no failure counted", st)
		}
		if err := hb.Close(); !errors.Is(err, resilience.ErrClosed) {
			t.Errorf("Close = %v, want ErrClosed (the ID could not be removed)", err)
		}
		// The worker's ID stays, to drop out by age like a crashed worker's.
		if _, ok := hbScore(t, m, "w1"); !ok {
			t.Errorf("w1 removed although its Redis was closed")
		}
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
				t.Fatalf("NewHeartbeat(%+v) = nil error, want one naming %q", tc.opts, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewHeartbeat(%+v) = %v, want it to name %q", tc.opts, err, tc.want)
			}
		})
	}
}

func TestHeartbeatDefaults(t *testing.T) {
	m := miniredis.RunT(t)
	r := hbRedis(t, m.Addr(), nil)
	hb, err := resilience.NewHeartbeat(r, resilience.HeartbeatOptions{})
	if err != nil {
		t.Fatalf("NewHeartbeat: %v", err)
	}
	defer hb.Close()
	st := hb.Stats()
	if st.Key != resilience.DefaultHeartbeatKey || st.ID == "" || hb.ID() != st.ID {
		t.Errorf("Stats = %+v, ID() = %q; want key %q and a default ID", st, hb.ID(), resilience.DefaultHeartbeatKey)
	}
	if _, err := m.ZScore(resilience.DefaultHeartbeatKey, st.ID); err != nil {
		t.Errorf("default ID %q not in %q: %v", st.ID, resilience.DefaultHeartbeatKey, err)
	}
}

func TestRedisWorkers(t *testing.T) {
	m := miniredis.RunT(t)
	m.SetTime(hbServerTime)
	ms := func(d time.Duration) float64 { return float64(hbServerTime.Add(-d).UnixMilli()) }
	for id, age := range map[string]time.Duration{"new": 0, "old": 10 * time.Second, "dead": 5 * time.Minute, "ancient": 2 * time.Hour} {
		if _, err := m.ZAdd(hbKey, ms(age), id); err != nil {
			t.Fatal(err)
		}
	}
	r := hbRedis(t, m.Addr(), nil)
	ctx := context.Background()

	ws, err := r.Workers(ctx, hbKey, 0)
	if err != nil {
		t.Fatalf("Workers: %v", err)
	}
	if got, want := fmt.Sprint(ws), fmt.Sprint([]resilience.Worker{
		{ID: "new", LastBeat: hbServerTime, Age: 0},
		{ID: "old", LastBeat: hbServerTime.Add(-10 * time.Second), Age: 10 * time.Second},
		{ID: "dead", LastBeat: hbServerTime.Add(-5 * time.Minute), Age: 5 * time.Minute},
		{ID: "ancient", LastBeat: hbServerTime.Add(-2 * time.Hour), Age: 2 * time.Hour},
	}); got != want {
		t.Errorf("Workers without pruning =\n%s\nwant\n%s", got, want)
	}

	ws, err = r.Workers(ctx, hbKey, time.Hour)
	if err != nil {
		t.Fatalf("Workers with pruning: %v", err)
	}
	var ids []string
	for _, w := range ws {
		ids = append(ids, w.ID)
	}
	if got := strings.Join(ids, ","); got != "new,old,dead" {
		t.Errorf("Workers pruning after 1h = %s, want new,old,dead", got)
	}
	if members, _ := m.ZMembers(hbKey); len(members) != 3 {
		t.Errorf("set after pruning = %v, want ancient removed", members)
	}

	if ws, err := r.Workers(ctx, "test:empty", time.Hour); err != nil || len(ws) != 0 {
		t.Errorf("Workers of a missing key = %v, %v; want none, nil", ws, err)
	}
}

func TestRedisWorkersUnavailable(t *testing.T) {
	m := miniredis.RunT(t)
	r := hbRedis(t, m.Addr(), nil)
	if err := r.WaitReady(context.Background()); err != nil { // the start-up probe is done
		t.Fatal(err)
	}
	m.SetError("READONLY You can't write against a read only replica.")
	_, err := r.Workers(context.Background(), hbKey, 0)
	if !resilience.IsFailure(err) || !strings.Contains(err.Error(), "READONLY") {
		t.Errorf("Workers on a read-only replica = %v, want a READONLY failure", err)
	}
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
