package asynqtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/steadfast-go/steadfast/healthhandler"
	asynqcheck "github.com/steadfast-go/steadfast/healthhandler/asynq"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/resilience"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// quiet is an asynq.Logger that drops everything.
type quiet struct{}

func (quiet) Debug(...any) {}
func (quiet) Info(...any)  {}
func (quiet) Warn(...any)  {}
func (quiet) Error(...any) {}
func (quiet) Fatal(...any) {}

var _ asynq.Logger = quiet{}

// setChanges signals each change of the servers' set, from Redis's
// keyspace notifications, so that the test waits on events rather than
// polling.
func setChanges(t *testing.T, srv *redistest.Server, password string) <-chan struct{} {
	t.Helper()
	if _, err := srv.Command("CONFIG", "SET", "notify-keyspace-events", "Kz"); err != nil {
		t.Fatalf("enable keyspace notifications: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: password})
	ps := c.Subscribe(context.Background(), "__keyspace@0__:asynq:servers")
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	changed := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range ps.Channel() {
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = ps.Close()
		<-done
		_ = c.Close()
	})
	return changed
}

// TestAsynqServers counts real asynq servers: none, one, two, and one
// again after a shutdown, with their host, pid and concurrency read from
// the state asynq writes.
func TestAsynqServers(t *testing.T) {
	const password = "asynq-Pa55-word"
	srv := redistest.Start(t, redistest.Options{Password: password})
	changed := setChanges(t, srv, password)
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	rdb, err := resilience.NewRedis(resilience.Config{Addr: srv.Addr(), Password: password},
		resilience.Options{Logger: discard, OpTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rdb.Close() }()
	check, err := asynqcheck.Servers(rdb, asynqcheck.Options{Min: 1})
	if err != nil {
		t.Fatal(err)
	}

	run := func() map[string]healthhandler.Observation {
		t.Helper()
		obs, err := check.Run(context.Background())
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		m := map[string]healthhandler.Observation{}
		for _, o := range obs {
			m[o.Measurement] = o
		}
		return m
	}
	waitFor := func(what string, n int) map[string]healthhandler.Observation {
		t.Helper()
		deadline := time.NewTimer(30 * time.Second)
		defer deadline.Stop()
		for {
			obs := run()
			if obs["servers"].Value == n {
				return obs
			}
			select {
			case <-changed:
			case <-deadline.C:
				t.Fatalf("timed out waiting for %s: servers = %+v", what, obs["servers"])
			}
		}
	}
	if s := run()["servers"]; s.Value != 0 || s.Status != healthhandler.StatusFail {
		t.Fatalf("no server: servers = %+v", s)
	}

	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	start := func(concurrency int) *asynq.Server {
		t.Helper()
		s := asynq.NewServer(asynq.RedisClientOpt{Addr: srv.Addr(), Password: password},
			asynq.Config{Concurrency: concurrency, Logger: quiet{}, LogLevel: asynq.FatalLevel})
		if err := s.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })); err != nil {
			t.Fatalf("start asynq server: %v", err)
		}
		return s
	}
	s1 := start(3)
	obs := waitFor("the first server", 1)
	want := fmt.Sprintf("alive: %s:%d (concurrency 3, active 0)", host, os.Getpid())
	if s := obs["servers"]; s.Status != healthhandler.StatusPass || s.Detail != want {
		t.Errorf("one server: servers = %+v, want detail %q", s, want)
	}
	if m := obs["malformed"]; m.Value != 0 {
		t.Errorf("asynq's own state read as malformed: %+v", m)
	}

	s2 := start(5)
	obs = waitFor("the second server", 2)
	if c := obs["concurrency"]; c.Value != int64(8) {
		t.Errorf("two servers: concurrency = %v, want 8", c.Value)
	}

	s1.Shutdown()
	waitFor("the first server's shutdown", 1)

	// The same through a Handler: a detailed report, without the password.
	h, err := healthhandler.New(healthhandler.Options{Logger: discard, ShowDetails: func(*http.Request) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Add(check); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitChecked(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	_ = h.Close()
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, `"asynq:servers"`) || !strings.Contains(body, "concurrency 5") {
		t.Errorf("report %d: %s", rec.Code, body)
	}
	if strings.Contains(body, password) {
		t.Errorf("the password is in the report: %s", body)
	}

	s2.Shutdown()
	if s := waitFor("the last shutdown", 0)["servers"]; s.Status != healthhandler.StatusFail {
		t.Errorf("no server left: servers = %+v", s)
	}
}
