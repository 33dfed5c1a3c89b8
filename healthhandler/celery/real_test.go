package celery

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/internal/testlog"
)

// celeryRequireEnv turns a missing Celery from a skip into a failure, as
// CI sets it.
const celeryRequireEnv = "STEADFAST_REQUIRE_CELERY"

// celeryPython is the distribution's interpreter, where the python3-celery
// package installs Celery.
const celeryPython = "/usr/bin/python3"

// celeryTinyApp is the Celery app the workers run.
const celeryTinyApp = `import os
from celery import Celery

app = Celery("tinyapp", broker=os.environ["STEADFAST_CELERY_BROKER"])


@app.task
def add(x, y):
    return x + y
`

// celeryModules are the Python modules a Celery worker on a Redis broker
// needs, each with the Debian package that installs it for celeryPython.
// kombu's Redis transport imports redis lazily: without python3-redis
// (only "Suggested" by python3-celery) every worker dies at start-up.
var celeryModules = []struct{ module, pkg string }{
	{"celery", "python3-celery"},
	{"redis", "python3-redis"},
}

// requireCelery skips the test when Celery cannot be run, unless
// celeryRequireEnv is set, in which case it fails at once, naming the
// missing Python module and the package that installs it.
func requireCelery(t *testing.T) {
	t.Helper()
	for _, m := range celeryModules {
		out, err := exec.Command(celeryPython, "-c", "import "+m.module).CombinedOutput()
		if err == nil {
			continue
		}
		msg := fmt.Sprintf("python module %q not available with %s (apt-get install %s; set %s=1 to fail instead of skipping): %v: %s",
			m.module, celeryPython, m.pkg, celeryRequireEnv, err, lastLine(out))
		if os.Getenv(celeryRequireEnv) == "1" {
			require.FailNow(t, msg)
		}
		t.Skip(msg)
	}
	out, err := exec.Command(celeryPython, "-c", "import celery; print(celery.__version__)").CombinedOutput()
	require.NoError(t, err, "celery version: %s", lastLine(out))
	t.Logf("celery %s", bytes.TrimSpace(out))
}

// lastLine is the last non-empty line of a command's output: for a Python
// traceback, the exception.
func lastLine(out []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	return lines[len(lines)-1]
}

// celeryWorkerProc is one Celery worker process owned by a test.
type celeryWorkerProc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startCeleryWorker starts a worker of the tiny app in dir, named name,
// on broker. The test's end kills it if it still runs.
func startCeleryWorker(t *testing.T, dir, broker, name string) *celeryWorkerProc {
	t.Helper()
	w := &celeryWorkerProc{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	logf, err := os.Create(w.log)
	require.NoError(t, err)
	w.cmd = exec.Command(celeryPython, "-m", "celery", "-A", "tinyapp", "worker",
		"-n", name, "--pool=solo", "--without-mingle", "--without-gossip", "--loglevel=INFO")
	w.cmd.Dir = dir
	w.cmd.Env = append(os.Environ(), "STEADFAST_CELERY_BROKER="+broker, "PYTHONDONTWRITEBYTECODE=1")
	w.cmd.Stdout, w.cmd.Stderr = logf, logf
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := w.cmd.Start(); err != nil {
		_ = logf.Close()
		require.FailNow(t, "start celery worker", "%v", err)
	}
	go func() {
		_ = w.cmd.Wait()
		_ = logf.Close()
		close(w.done)
	}()
	t.Cleanup(func() {
		_ = w.cmd.Process.Kill()
		<-w.done
		if t.Failed() {
			b, _ := os.ReadFile(w.log)
			t.Logf("%s log:\n%s", name, b)
		}
	})
	return w
}

// signal sends sig to the worker and waits for it to exit.
func (w *celeryWorkerProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, w.cmd.Process.Signal(sig), "signal %v to %s", sig, w.name)
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
		require.Failf(t, "worker did not exit", "%s did not exit after %v", w.name, sig)
	}
}

// offsetClock is the real clock plus an offset a test may advance.
type offsetClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *offsetClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// TestCeleryRealWorkers counts real Celery workers on a real Redis with a
// password, both ways: the count goes 0, 1, 2 as workers start, drops at
// once on a warm shutdown (worker-offline) and after two heartbeat
// intervals when a worker is killed (no event), and a ping is answered
// within its window, leaving nothing behind.
func TestCeleryRealWorkers(t *testing.T) {
	requireCelery(t)
	const password = "celery-Pa55-word"
	srv := redistest.Start(t, redistest.Options{Password: password})
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tinyapp.py"), []byte(celeryTinyApp), 0o600))
	const db = 3
	broker := fmt.Sprintf("redis://:%s@%s/%d", password, srv.Addr(), db)

	var logs testlog.Buffer
	log := logs.Text(slog.LevelInfo)
	rdb := celeryTestRedis(t, srv.Addr(), password, db, log)
	clock := &offsetClock{}
	sig := newCelerySignal()
	ev, err := newEvents(rdb, Options{Min: 1, Logger: log, Now: clock.Now}, sig.notify)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ev.Close() })
	sig.wait(t, "subscription", func() bool { return ev.Stats().Connected })

	alive := func() []string {
		var names []string
		for _, w := range ev.Stats().Workers {
			if w.Alive {
				names = append(names, w.Hostname)
			}
		}
		return names
	}
	var texts []string // every text the checks produce, to look for the password
	run := func(c healthhandler.Check) map[string]healthhandler.Observation {
		t.Helper()
		obs, err := c.Run(context.Background())
		require.NoError(t, err, "Run")
		m := map[string]healthhandler.Observation{}
		for _, o := range obs {
			m[o.Measurement] = o
			texts = append(texts, o.Output, o.Detail, o.ComponentID)
		}
		return m
	}
	require.Equal(t, 0, run(ev.Check())["workers"].Value, "workers before any worker")

	w1 := startCeleryWorker(t, dir, broker, "w1@steadfast")
	sig.wait(t, "w1 online", func() bool { return len(alive()) == 1 })
	w := run(ev.Check())["workers"]
	assert.Equal(t, 1, w.Value, "one worker: workers = %+v", w)
	assert.Equal(t, healthhandler.StatusPass, w.Status, "one worker: workers = %+v", w)
	assert.Equal(t, "alive: w1@steadfast", w.Detail, "one worker: workers = %+v", w)
	w2 := startCeleryWorker(t, dir, broker, "w2@steadfast")
	sig.wait(t, "w2 online", func() bool { return len(alive()) == 2 })
	obs := run(ev.Check())
	w = obs["workers"]
	assert.Equal(t, 2, w.Value, "two workers: workers = %+v", w)
	assert.Equal(t, "alive: w1@steadfast, w2@steadfast", w.Detail, "two workers: workers = %+v", w)
	assert.Equal(t, int64(0), obs["active"].Value, "active")
	assert.Equal(t, int64(0), obs["processed"].Value, "processed")

	// The ping: both answer within the window. A worker announces itself
	// before it listens for control messages, so the ping is tried again
	// at each event until both answer; a run ends as soon as every
	// subscriber of the control channel answered.
	const window = 10 * time.Second
	ping := ping(t, rdb, PingOptions{Min: 2, Window: window})
	var pobs map[string]healthhandler.Observation
	sig.wait(t, "both workers answering a ping", func() bool {
		pobs = run(ping)
		return pobs["workers"].Value == 2
	})
	w = pobs["workers"]
	assert.Equal(t, healthhandler.StatusPass, w.Status, "ping: workers = %+v", w)
	assert.Equal(t, "answered: w1@steadfast, w2@steadfast", w.Detail, "ping: workers = %+v", w)
	rt, _ := pobs["responseTime"].Value.(float64)
	assert.Positive(t, rt, "ping answered in %v ms", pobs["responseTime"].Value)
	assert.LessOrEqual(t, rt, float64(window/time.Millisecond), "ping answered in %v ms, want within %v", pobs["responseTime"].Value, window)
	assertNoPingLeftReal(t, srv, db)

	// A warm shutdown says goodbye: w2 is gone at once.
	w2.signal(t, syscall.SIGTERM)
	sig.wait(t, "w2 offline", func() bool { return len(alive()) == 1 })
	for _, w := range ev.Stats().Workers {
		if w.Hostname == "w2@steadfast" {
			assert.True(t, w.Offline, "w2 after SIGTERM: %+v, want offline by its worker-offline event", w)
		}
	}

	// kill -9 says nothing: w1 stays alive until two of its heartbeat
	// intervals passed. A barrier message makes sure every event w1 sent
	// before it died has been handled.
	w1.signal(t, syscall.SIGKILL)
	before := ev.Stats().Events
	err = rdb.Client().Publish(context.Background(), fmt.Sprintf("/%d.celeryev/worker.barrier", db),
		kombuMessage(t, map[string]any{"type": "worker-barrier", "hostname": "test@steadfast"}, nil)).Err()
	require.NoError(t, err)
	sig.wait(t, "barrier", func() bool { return ev.Stats().Events > before })
	var freq time.Duration
	for _, w := range ev.Stats().Workers {
		if w.Hostname == "w1@steadfast" {
			freq = w.Freq
			assert.True(t, w.Alive, "w1 right after kill -9: %+v, want still alive", w)
			assert.False(t, w.Offline, "w1 right after kill -9: %+v, want still alive", w)
		}
	}
	assert.Equal(t, DefaultHeartbeat, freq, "w1 freq, want Celery's default")
	clock.Advance(2*freq + time.Millisecond)
	w = run(ev.Check())["workers"]
	assert.Equal(t, 0, w.Value, "two heartbeat intervals after kill -9: workers = %+v", w)
	assert.Equal(t, healthhandler.StatusFail, w.Status, "two heartbeat intervals after kill -9: workers = %+v", w)
	assert.Contains(t, w.Detail, "no heartbeat: w1@steadfast", "two heartbeat intervals after kill -9: workers = %+v", w)
	w = run(ping)["workers"]
	assert.Equal(t, 0, w.Value, "ping with no worker: workers = %+v", w)
	assert.Equal(t, healthhandler.StatusFail, w.Status, "ping with no worker: workers = %+v", w)
	assertNoPingLeftReal(t, srv, db)

	// No password anywhere: not in check texts, not in a detailed report,
	// not in logs.
	h, err := healthhandler.New(healthhandler.Options{ShowDetails: func(*http.Request) bool { return true }, Logger: log})
	require.NoError(t, err)
	defer func() { _ = h.Close() }()
	require.NoError(t, h.Add(ev.Check()))
	require.NoError(t, h.WaitChecked(context.Background()))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	texts = append(texts, rec.Body.String(), logs.String())
	for _, s := range texts {
		assert.NotContains(t, s, password, "the password is in a text")
	}
}

// assertNoPingLeftReal checks that no reply binding or reply list of ours
// remains on the real server.
func assertNoPingLeftReal(t *testing.T, srv *redistest.Server, db int) {
	t.Helper()
	rdb := celeryTestRedis(t, srv.Addr(), "celery-Pa55-word", db, nil)
	ctx := context.Background()
	members, err := rdb.Client().SMembers(ctx, "_kombu.binding.reply.celery.pidbox").Result()
	require.NoError(t, err)
	for _, m := range members {
		assert.False(t, strings.HasPrefix(m, "steadfast-"), "reply binding %q left behind", m)
	}
	keys, err := rdb.Client().Keys(ctx, "steadfast-*").Result()
	require.NoError(t, err)
	assert.Empty(t, keys, "reply lists left behind")
	_ = rdb.Close()
}
