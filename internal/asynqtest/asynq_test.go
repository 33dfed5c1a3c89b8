package asynqtest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	_, err := srv.Command("CONFIG", "SET", "notify-keyspace-events", "Kz")
	require.NoError(t, err, "enable keyspace notifications")
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: password})
	ps := c.Subscribe(context.Background(), "__keyspace@0__:asynq:servers")
	_, err = ps.Receive(context.Background())
	require.NoError(t, err, "subscribe")
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
	require.NoError(t, err)
	defer func() { _ = rdb.Close() }()
	check, err := asynqcheck.Servers(rdb, asynqcheck.Options{Min: 1})
	require.NoError(t, err)

	run := func() map[string]healthhandler.Observation {
		t.Helper()
		obs, err := check.Run(context.Background())
		require.NoError(t, err, "Run")
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
				require.Failf(t, "timed out", "waiting for %s: servers = %+v", what, obs["servers"])
			}
		}
	}
	servers := run()["servers"]
	require.Equal(t, 0, servers.Value, "no server: servers = %+v", servers)
	require.Equal(t, healthhandler.StatusFail, servers.Status, "no server: servers = %+v", servers)

	host, err := os.Hostname()
	require.NoError(t, err)
	start := func(concurrency int) *asynq.Server {
		t.Helper()
		s := asynq.NewServer(asynq.RedisClientOpt{Addr: srv.Addr(), Password: password},
			asynq.Config{Concurrency: concurrency, Logger: quiet{}, LogLevel: asynq.FatalLevel})
		require.NoError(t, s.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })), "start asynq server")
		return s
	}
	s1 := start(3)
	obs := waitFor("the first server", 1)
	want := fmt.Sprintf("alive: %s:%d (concurrency 3, active 0)", host, os.Getpid())
	servers = obs["servers"]
	assert.Equal(t, healthhandler.StatusPass, servers.Status, "one server: servers = %+v", servers)
	assert.Equal(t, want, servers.Detail, "one server: servers = %+v", servers)
	assert.Equal(t, 0, obs["malformed"].Value, "asynq's own state read as malformed: %+v", obs["malformed"])

	s2 := start(5)
	obs = waitFor("the second server", 2)
	assert.Equal(t, int64(8), obs["concurrency"].Value, "two servers: concurrency")

	s1.Shutdown()
	waitFor("the first server's shutdown", 1)

	// The same through a Handler: a detailed report, without the password.
	h, err := healthhandler.New(healthhandler.Options{Logger: discard, ShowDetails: func(*http.Request) bool { return true }})
	require.NoError(t, err)
	require.NoError(t, h.Add(check))
	require.NoError(t, h.WaitChecked(context.Background()))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	_ = h.Close()
	body := rec.Body.String()
	assert.Equal(t, http.StatusOK, rec.Code, "report: %s", body)
	assert.Contains(t, body, `"asynq:servers"`, "report")
	assert.Contains(t, body, "concurrency 5", "report")
	assert.NotContains(t, body, password, "the password is in the report")

	s2.Shutdown()
	servers = waitFor("the last shutdown", 0)["servers"]
	assert.Equal(t, healthhandler.StatusFail, servers.Status, "no server left: servers = %+v", servers)
}
