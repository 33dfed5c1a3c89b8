package celery

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/internal/redisproc"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/internal/testlog"
	"github.com/steadfast-go/steadfast/resilience"
)

// celerySentinelApp is the tiny app on a Sentinel broker: kombu's
// "sentinel://" transport asks the sentinels for the master named
// master_name, and again after it lost the connection.
const celerySentinelApp = `import os
from celery import Celery

app = Celery("tinyapp", broker=os.environ["STEADFAST_CELERY_BROKER"])
app.conf.broker_transport_options = {"master_name": %q}


@app.task
def add(x, y):
    return x + y
`

// TestCelerySentinelFailover runs both Celery checks against a real
// Sentinel-managed master: a real worker whose broker is
// "sentinel://..." with master_name, and the checks reading through a
// resilience.Redis built for Sentinel. Both count the worker; after
// SENTINEL FAILOVER (Sentinel kills the clients of both data servers),
// the worker asks Sentinel again and reconnects to the new master, the
// listener subscribes again through the failover client and hears it
// again, and a ping reaches it on the new master.
func TestCelerySentinelFailover(t *testing.T) {
	requireCelery(t)
	ctx := context.Background()
	st := redistest.StartSentinel(t, redisproc.SentinelOptions{})
	dir := t.TempDir()
	app := fmt.Sprintf(celerySentinelApp, st.Name)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tinyapp.py"), []byte(app), 0o600))
	const db = 2
	var urls []string
	for _, a := range st.SentinelAddrs() {
		urls = append(urls, fmt.Sprintf("sentinel://%s/%d", a, db))
	}
	broker := strings.Join(urls, ";")

	var logs testlog.Buffer
	log := logs.Text(slog.LevelInfo)
	celeryNoLeaks(t)
	rdb, err := resilience.NewRedis(resilience.Config{
		Topology: resilience.TopologySentinel, MasterName: st.Name, Addrs: st.SentinelAddrs(), DB: db,
	}, resilience.Options{Logger: log, OpTimeout: time.Second})
	require.NoError(t, err, "NewRedis")
	t.Cleanup(func() { _ = rdb.Close() })

	// Before kombu 5.4.0 the Sentinel transport names its channels
	// "/{db}.celeryev/..." as is.
	var fanout string
	if kombuBefore54(t) {
		fanout = LegacySentinelFanoutPrefix
	}
	sig := newCelerySignal()
	ev, err := newEvents(rdb, Options{Min: 1, Logger: log, FanoutPrefix: fanout}, sig.notify)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ev.Close() })
	sig.wait(t, "subscription", func() bool { return ev.Stats().Connected })
	ping := ping(t, rdb, PingOptions{Min: 1, Window: 3 * time.Second, FanoutPrefix: fanout})

	run := func(c healthhandler.Check) map[string]healthhandler.Observation {
		t.Helper()
		obs, err := c.Run(ctx)
		require.NoError(t, err, "Run")
		m := map[string]healthhandler.Observation{}
		for _, o := range obs {
			m[o.Measurement] = o
		}
		return m
	}
	alive := func() int {
		n := 0
		for _, w := range ev.Stats().Workers {
			if w.Alive {
				n++
			}
		}
		return n
	}

	startCeleryWorker(t, dir, broker, "w1@steadfast")
	sig.wait(t, "w1 online", func() bool { return alive() == 1 })
	w := run(ev.Check())["workers"]
	assert.Equal(t, 1, w.Value, "events before the failover: workers = %+v", w)
	assert.Equal(t, healthhandler.StatusPass, w.Status, "events before the failover: workers = %+v", w)
	assert.Equal(t, "alive: w1@steadfast", w.Detail, "events before the failover: workers = %+v", w)
	var pw healthhandler.Observation
	sig.wait(t, "w1 answering a ping", func() bool {
		pw = run(ping)["workers"]
		return pw.Value == 1
	})
	assert.Equal(t, healthhandler.StatusPass, pw.Status, "ping before the failover: workers = %+v", pw)
	assert.Equal(t, "answered: w1@steadfast", pw.Detail, "ping before the failover: workers = %+v", pw)

	old, err := st.MasterAddr(ctx)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return st.Failover(ctx) == nil }, 10*time.Second, 50*time.Millisecond, "SENTINEL FAILOVER")
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	master, known, err := st.WaitNewMaster(wctx, old)
	require.NoError(t, err)
	t.Logf("master %s -> %s", old, master)
	// Until then, a ping through the failover client, which follows the
	// new master at once, may not reach the worker, still on the old one.
	pw = run(ping)["workers"]
	t.Logf("ping right after the new master was known: %v workers, %s %s", pw.Value, pw.Status, pw.Output)

	// Until Sentinel turns the old master into a replica (some seconds
	// later), worker and listener stay on it, and the listener goes on
	// hearing the worker there. Then Sentinel kills their connections: the
	// listener subscribes again through the failover client, which asks
	// Sentinel for the new master, and the worker, reconnecting through
	// Sentinel too (after a worker-offline event), beats there.
	var resubscribed time.Duration
	sig.wait(t, "w1 heard on the new master", func() bool {
		st := ev.Stats()
		if !st.Connected || !st.Since.After(known) || !listenerOn(ctx, master) {
			return false
		}
		resubscribed = st.Since.Sub(known)
		for _, w := range st.Workers {
			if w.Alive && w.LastHeard.After(st.Since) {
				return true
			}
		}
		return false
	})
	w = run(ev.Check())["workers"]
	assert.Equal(t, 1, w.Value, "events after the failover: workers = %+v", w)
	assert.Equal(t, healthhandler.StatusPass, w.Status, "events after the failover: workers = %+v", w)
	assert.Equal(t, "alive: w1@steadfast", w.Detail, "events after the failover: workers = %+v", w)
	t.Logf("listener subscribed again %v, and heard w1 there %v, after the new master was known",
		resubscribed.Round(time.Millisecond), time.Since(known).Round(time.Millisecond))

	// The worker re-subscribed to its control channel on the new master:
	// a ping through the failover client reaches it.
	sig.wait(t, "w1 answering a ping on the new master", func() bool {
		pw = run(ping)["workers"]
		return pw.Value == 1
	})
	assert.Equal(t, healthhandler.StatusPass, pw.Status, "ping after the failover: workers = %+v", pw)
	assert.Equal(t, "answered: w1@steadfast", pw.Detail, "ping after the failover: workers = %+v", pw)
	t.Logf("ping answered again %v after the new master was known", time.Since(known).Round(time.Millisecond))
}

// kombuBefore54 tells whether the workers' kombu is older than 5.4.0,
// whose Sentinel transport left "{db}" in its channels' names.
func kombuBefore54(t *testing.T) bool {
	t.Helper()
	out, err := exec.Command(celeryPython, "-c", "import kombu; print(kombu.VERSION.major * 100 + kombu.VERSION.minor)").CombinedOutput()
	require.NoError(t, err, "kombu version: %s", lastLine(out))
	v, err := strconv.Atoi(strings.TrimSpace(string(out)))
	require.NoError(t, err, "kombu version %q", out)
	t.Logf("kombu %d.%d", v/100, v%100)
	return v < 504
}

// listenerOn tells whether the data server at addr has a pattern
// subscriber: the listener, subscribed there.
func listenerOn(ctx context.Context, addr string) bool {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer func() { _ = c.Close() }()
	n, err := c.PubSubNumPat(ctx).Result()
	return err == nil && n > 0
}

// TestCeleryRefusesCluster: no Celery broker is a Redis Cluster (kombu
// has no Cluster transport), so both checks refuse a cluster client at
// construction, saying why, rather than counting no workers forever.
func TestCeleryRefusesCluster(t *testing.T) {
	celeryNoLeaks(t)
	log := (&testlog.Buffer{}).Text(slog.LevelInfo)
	// Nothing listens there: the refusal needs no cluster.
	addr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	built, err := resilience.NewRedis(resilience.Config{Topology: resilience.TopologyCluster, Addrs: []string{addr}},
		resilience.Options{Logger: log})
	require.NoError(t, err, "NewRedis")
	t.Cleanup(func() { _ = built.Close() })
	wrapped, err := resilience.Wrap(redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: []string{addr},
		// Its cleanup goroutine would outlive Close.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}), resilience.Options{Logger: log})
	require.NoError(t, err, "Wrap")
	t.Cleanup(func() { _ = wrapped.Close() })

	for name, rdb := range map[string]*resilience.Redis{"NewRedis": built, "Wrap": wrapped} {
		t.Run(name, func(t *testing.T) {
			ev, err := NewEvents(rdb, Options{})
			if ev != nil {
				_ = ev.Close()
			}
			require.ErrorIs(t, err, healthhandler.ErrInvalidOption, "NewEvents of a cluster client")
			assert.Contains(t, err.Error(), "NewEvents of a Redis Cluster client")
			assert.Contains(t, err.Error(), "no Cluster support")
			_, err = Ping(rdb, PingOptions{})
			require.ErrorIs(t, err, healthhandler.ErrInvalidOption, "Ping of a cluster client")
			assert.Contains(t, err.Error(), "Ping of a Redis Cluster client")
			assert.Contains(t, err.Error(), "no Cluster support")
		})
	}
}

// TestKombuFanoutPrefix: the channels' prefix is kombu's "/{db}." with
// the client's database, or the FanoutPrefix given, after KeyPrefix.
func TestKombuFanoutPrefix(t *testing.T) {
	db3 := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DB: 3})
	t.Cleanup(func() { _ = db3.Close() })
	tests := []struct {
		name, keyPrefix, fanout, want string
	}{
		{name: "default", want: "/3."},
		{name: "key prefix", keyPrefix: "app:", want: "app:/3."},
		{name: "legacy sentinel", fanout: LegacySentinelFanoutPrefix, want: "/{db}."},
		{name: "key prefix and fanout", keyPrefix: "app:", fanout: "/x.", want: "app:/x."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := kombuFanoutPrefix(tc.keyPrefix, tc.fanout, db3)
			assert.Equal(t, tc.want, got, "kombuFanoutPrefix(%q, %q, db 3)", tc.keyPrefix, tc.fanout)
		})
	}
}
