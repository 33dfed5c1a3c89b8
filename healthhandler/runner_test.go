package healthhandler_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/internal/testlog"
)

// t0Bubble is the start of every synctest bubble's clock.
func t0Bubble() time.Time { return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) }

// TestRequestsNeverWait: 200 concurrent requests while the check takes
// 200 ms all answer at once from the last result, and the check runs once
// per interval, not per request.
func TestRequestsNeverWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var runs atomic.Int64
		h := newHandler(t, healthhandler.Options{})
		mustAdd(t, h, healthhandler.Check{Name: "slow", Interval: time.Second, Run: func(ctx context.Context) ([]healthhandler.Observation, error) {
			n := runs.Add(1)
			time.Sleep(200 * time.Millisecond)
			return []healthhandler.Observation{{Measurement: "run", Value: n}}, nil
		}})

		// burst sends 200 concurrent requests and checks that none waited:
		// the bubble's clock moves only when every goroutine is blocked, so
		// a request waiting for the check would let it move.
		burst := func(want string) {
			t.Helper()
			start := time.Now()
			bodies := make([][]byte, 200)
			var wg sync.WaitGroup
			for i := range bodies {
				wg.Go(func() { bodies[i] = get(t, h, http.MethodGet, "/health", false).body })
			}
			wg.Wait()
			assert.Zero(t, time.Since(start), "requests took some of the check's time, want none")
			for i, b := range bodies {
				require.Contains(t, string(b), want, "request %d", i)
			}
		}

		synctest.Wait() // the first run is under way
		burst(`"output":"not yet checked"`)
		time.Sleep(time.Second + 100*time.Millisecond) // the second run is under way
		burst(`"observedValue":1`)
		for range 20 {
			time.Sleep(100 * time.Millisecond)
			burst(`"observedValue":`)
		}
		// 3.1 s have passed: runs started at 0, 1, 2 and 3 s.
		assert.Equal(t, int64(4), runs.Load(), "check runs in 3.1 s with a 1 s interval and 4400 requests")
		st := h.Stats().Checks[0]
		assert.Equal(t, uint64(3), st.Runs, "Stats = %+v, want 3 ended runs of 200ms", st)
		assert.Equal(t, 200*time.Millisecond, st.LastDuration, "Stats = %+v, want 3 ended runs of 200ms", st)
	})
}

// TestHangingCheck: a run that overruns its timeout is reported failing at
// the timeout, whether or not it honours its context, and runs never pile
// up behind it.
func TestHangingCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var runs, ignoring atomic.Int64
		h := newHandler(t, healthhandler.Options{ShowDetails: showDetails})
		mustAdd(t, h, healthhandler.Check{Name: "polite", Interval: 5 * time.Second, Timeout: time.Second,
			Run: func(ctx context.Context) ([]healthhandler.Observation, error) {
				if runs.Add(1) == 1 {
					return []healthhandler.Observation{{Measurement: "responseTime", Value: 1, Unit: "ms"}}, nil
				}
				<-ctx.Done()
				return nil, ctx.Err()
			}})
		mustAdd(t, h, healthhandler.Check{Name: "rude", Interval: 5 * time.Second, Timeout: time.Second,
			Run: func(ctx context.Context) ([]healthhandler.Observation, error) {
				ignoring.Add(1)
				<-release // ignores ctx
				return nil, nil
			}})
		synctest.Wait()
		time.Sleep(5*time.Second + time.Second) // polite's second run hit its timeout; rude's first long ago
		synctest.Wait()

		rep := decode(t, get(t, h, http.MethodGet, "/health", true).body)
		polite := rep.Checks["polite:responseTime"]
		if assert.Len(t, polite, 1, "polite after timeout = %+v, want the same key", polite) {
			assert.Equal(t, healthhandler.StatusFail, polite[0].Status, "polite after timeout = %+v", polite)
			assert.Nil(t, polite[0].ObservedValue, "polite after timeout = %+v, want no value", polite)
			assert.True(t, strings.HasPrefix(polite[0].Output, "polite check timed out"), "polite after timeout = %+v, want \"polite check timed out\"", polite)
		}
		rude := rep.Checks["rude"]
		require.Len(t, rude, 1, "rude = %+v", rude)
		assert.Equal(t, healthhandler.StatusFail, rude[0].Status, "rude = %+v", rude)
		assert.Equal(t, "rude check timed out: no result within 1s", rude[0].Output, "rude = %+v", rude)
		assert.True(t, rude[0].Time.Equal(time.Now().Add(-5*time.Second)), "rude time %v, want %v (when it timed out)", rude[0].Time, time.Now().Add(-5*time.Second))
		time.Sleep(time.Minute)
		assert.Equal(t, int64(1), ignoring.Load(), "rude runs while its first run hung")
		close(release)
		synctest.Wait()
		assert.Equal(t, int64(2), ignoring.Load(), "rude runs after it returned (at once, being long overdue)")
		st := h.Stats()
		assert.NotZero(t, st.Checks[0].Timeouts, "Stats = %+v, want timeouts counted", st)
		assert.Equal(t, uint64(1), st.Checks[1].Timeouts, "Stats = %+v, want timeouts counted", st)
	})
}

func TestPanickingCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs testlog.Buffer
		var runs atomic.Int64
		h := newHandler(t, healthhandler.Options{ShowDetails: showDetails, Logger: logs.Text(slog.LevelInfo)})
		mustAdd(t, h, healthhandler.Check{Name: "buggy", Interval: time.Second, Run: func(context.Context) ([]healthhandler.Observation, error) {
			runs.Add(1)
			panic("index out of range")
		}})
		time.Sleep(5 * time.Second)
		synctest.Wait()
		for _, details := range []bool{false, true} {
			body := get(t, h, http.MethodGet, "/health", details).body
			rep := decode(t, body)
			want := "buggy check failed"
			if details {
				want += ": check panicked"
			}
			if got := rep.Checks["buggy"]; assert.Len(t, got, 1, "details=%v: buggy = %+v", details, got) {
				assert.Equal(t, healthhandler.StatusFail, got[0].Status, "details=%v: buggy = %+v", details, got)
				assert.Equal(t, want, got[0].Output, "details=%v: buggy = %+v", details, got)
			}
			assert.NotContains(t, string(body), "goroutine", "stack trace in the report")
			assert.NotContains(t, string(body), ".go:", "stack trace in the report")
		}
		out := logs.String()
		assert.GreaterOrEqual(t, runs.Load(), int64(5), "panicking runs")
		panics := logs.Lines("health check panicked")
		assert.Len(t, panics, 1, "%d panicking runs, want one panic line logged:\n%s", runs.Load(), out)
		assert.Contains(t, out, "stack=", "panic logged without the stack")
	})
}

// TestChangesAndLogs: one event per change of a check's status, one log
// line per change (a first pass is not news), none for repeated results.
func TestChangesAndLogs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs testlog.Buffer
		ch := newChanges()
		var failing atomic.Bool
		h := newHandler(t, healthhandler.Options{Logger: logs.Text(slog.LevelInfo), OnChange: ch.record, Now: time.Now})
		mustAdd(t, h, healthhandler.Check{Name: "db", Critical: true, Interval: time.Second, Run: func(context.Context) ([]healthhandler.Observation, error) {
			if failing.Load() {
				return nil, errors.New("connection refused")
			}
			return nil, nil
		}})
		synctest.Wait()
		failing.Store(true)
		time.Sleep(3 * time.Second) // three failing runs
		synctest.Wait()
		failing.Store(false)
		time.Sleep(2 * time.Second)
		synctest.Wait()

		got := ch.list()
		want := []struct{ from, to, overall healthhandler.Status }{
			{"", "pass", "pass"}, {"pass", "fail", "fail"}, {"fail", "pass", "pass"},
		}
		require.Len(t, got, len(want), "changes = %+v", got)
		for i, w := range want {
			msg := fmt.Sprintf("change %d = %+v, want critical db %s -> %s overall %s", i, got[i], w.from, w.to, w.overall)
			assert.Equal(t, "db", got[i].Check, msg)
			assert.True(t, got[i].Critical, msg)
			assert.Equal(t, w.from, got[i].From, msg)
			assert.Equal(t, w.to, got[i].To, msg)
			assert.Equal(t, w.overall, got[i].Overall, msg)
		}
		assert.Equal(t, "connection refused", got[1].Detail, "failing change = %+v, want the detail", got[1])
		assert.True(t, got[1].At.Equal(t0Bubble().Add(time.Second)), "failing change = %+v, want the time of the run", got[1])
		out := logs.String()
		assert.Len(t, logs.Lines("health check status changed"), 2, "change log lines:\n%s", out)
		assert.Contains(t, out, "level=WARN", "log lacks the warning")
		assert.Contains(t, out, `error="connection refused"`, "log lacks the warning's error")
	})
}

func TestObservationValues(t *testing.T) {
	h := newHandler(t, healthhandler.Options{ShowDetails: showDetails})
	value := map[string]any{"url": "redis://:s3cret-Pa55@h:6379", "n": 0}
	mustAdd(t, h, healthhandler.Check{Name: "odd", Interval: time.Hour, Run: fixed([]healthhandler.Observation{
		{Measurement: "zero", Value: 0},
		{Measurement: "object", Value: value},
		{Measurement: "bad", Value: func() {}},
		{Measurement: "status", Status: "broken"},
	}, nil)})
	waitChecked(t, h)
	value["n"] = 99 // the report must not alias it
	body := get(t, h, http.MethodGet, "/health", true).body
	rep := decode(t, body)
	assert.Equal(t, float64(0), rep.Checks["odd:zero"][0].ObservedValue, "zero value kept")
	assert.Equal(t, "map[n:0 url:redis://:***@h:6379]", fmt.Sprint(rep.Checks["odd:object"][0].ObservedValue), "object value scrubbed and copied")
	bad := rep.Checks["odd:bad"][0]
	assert.Nil(t, bad.ObservedValue, "unencodable value = %+v, want dropped", bad)
	assert.Contains(t, bad.Output, "not encodable", "unencodable value = %+v, want a note", bad)
	st := rep.Checks["odd:status"][0]
	assert.Equal(t, healthhandler.StatusFail, st.Status, "unknown status = %+v", st)
	assert.Contains(t, st.Output, "unknown status broken", "unknown status = %+v, want a note", st)
}
