package healthhandler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/steadfast-go/steadfast/healthhandler"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// newHandler builds a Handler closed when the test ends.
func newHandler(t *testing.T, opts healthhandler.Options) *healthhandler.Handler {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discard()
	}
	h, err := healthhandler.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func mustAdd(t *testing.T, h *healthhandler.Handler, c healthhandler.Check) {
	t.Helper()
	if err := h.Add(c); err != nil {
		t.Fatalf("Add(%q): %v", c.Name, err)
	}
}

// mustCheck returns a function that returns a check constructor's Check,
// failing t when the constructor returned an error.
func mustCheck(t testing.TB) func(healthhandler.Check, error) healthhandler.Check {
	return func(c healthhandler.Check, err error) healthhandler.Check {
		t.Helper()
		if err != nil {
			t.Fatalf("check constructor: %v", err)
		}
		return c
	}
}

func waitChecked(t *testing.T, h *healthhandler.Handler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.WaitChecked(ctx); err != nil {
		t.Fatalf("WaitChecked: %v", err)
	}
}

// fixed returns a Run giving the same result every time.
func fixed(obs []healthhandler.Observation, err error) func(context.Context) ([]healthhandler.Observation, error) {
	return func(context.Context) ([]healthhandler.Observation, error) { return obs, err }
}

// goldenChecks are the checks of one golden scenario: a critical database
// with two replicas, a non-critical cache and a plain critical queue.
func goldenChecks(scenario string) []healthhandler.Check {
	db := []healthhandler.Observation{
		{Measurement: "responseTime", ComponentID: "db-1.internal:5432", Value: 1.5, Unit: "ms"},
		{Measurement: "responseTime", ComponentID: "db-2.internal:5432", Value: 2.25, Unit: "ms"},
	}
	var dbErr error
	cache := []healthhandler.Observation{
		{Measurement: "responseTime", ComponentID: "cache.internal:6379", Value: 0.3, Unit: "ms"},
		{Measurement: "connections", ComponentID: "cache.internal:6379", Value: map[string]int{"total": 4, "idle": 3}},
	}
	switch scenario {
	case "warn":
		for i := range cache {
			cache[i].Status, cache[i].Output = healthhandler.StatusFail, "cache unavailable"
			cache[i].Detail = "dial tcp cache.internal:6379: connect: connection refused"
		}
		cache[0].Value, cache[0].Unit = nil, ""
	case "fail":
		db[0].Status = healthhandler.StatusPass // one replica is fine
		db[1].Value, db[1].Unit = nil, ""
		db[1].Status, db[1].Output = healthhandler.StatusFail, "database unavailable"
		dbErr = errors.New("read tcp db-2.internal:5432: i/o timeout")
	}
	return []healthhandler.Check{
		{Name: "db", Critical: true, ComponentType: healthhandler.ComponentTypeDatastore, Interval: time.Hour, Run: fixed(db, dbErr)},
		{Name: "cache", ComponentType: healthhandler.ComponentTypeDatastore, Interval: time.Hour, Run: fixed(cache, nil)},
		{Name: "queue", Critical: true, Interval: time.Hour, Run: fixed(nil, nil)},
	}
}

func TestGolden(t *testing.T) {
	tests := []struct {
		scenario string
		code     int
		status   healthhandler.Status
	}{
		{"pass", http.StatusOK, healthhandler.StatusPass},
		{"warn", http.StatusOK, healthhandler.StatusWarn},
		{"fail", http.StatusServiceUnavailable, healthhandler.StatusFail},
	}
	for _, tc := range tests {
		t.Run(tc.scenario, func(t *testing.T) {
			h := newHandler(t, healthhandler.Options{
				ServiceID: "items-api", Version: "1", ReleaseID: "1.4.2", Description: "items of the shop",
				ShowDetails: showDetails, Now: fixedNow,
			})
			for _, c := range goldenChecks(tc.scenario) {
				mustAdd(t, h, c)
			}
			waitChecked(t, h)
			for _, details := range []bool{false, true} {
				res := get(t, h, http.MethodGet, "/health", details)
				if res.code != tc.code {
					t.Errorf("details=%v: HTTP %d, want %d", details, res.code, tc.code)
				}
				if got := decode(t, res.body).Status; got != tc.status {
					t.Errorf("details=%v: status %q, want %q", details, got, tc.status)
				}
				name := tc.scenario + ".json"
				if details {
					name = tc.scenario + "-details.json"
				}
				compareGolden(t, filepath.Join("testdata", name), res.body)
			}
		})
	}
}

func compareGolden(t *testing.T, path string, body []byte) {
	t.Helper()
	var got bytes.Buffer
	if err := json.Indent(&got, body, "", "  "); err != nil {
		t.Fatalf("indent: %v", err)
	}
	if *update {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("%s differs:\ngot:\n%s\nwant:\n%s", path, got.Bytes(), want)
	}
}

func TestDetailsOnlyForAllowedCallers(t *testing.T) {
	h := newHandler(t, healthhandler.Options{ShowDetails: showDetails})
	for _, c := range goldenChecks("fail") {
		mustAdd(t, h, c)
	}
	waitChecked(t, h)
	secretish := []string{"db-1.internal", "db-2.internal", "cache.internal", "i/o timeout", "componentId"}
	for _, path := range []string{"/health", "/health/ready"} {
		public := get(t, h, http.MethodGet, path, false).body
		for _, s := range secretish {
			if bytes.Contains(public, []byte(s)) {
				t.Errorf("public %s shows %q:\n%s", path, s, public)
			}
		}
		if !bytes.Contains(public, []byte("database unavailable")) {
			t.Errorf("public %s lacks the generic output:\n%s", path, public)
		}
		detailed := get(t, h, http.MethodGet, path, true).body
		for _, s := range []string{"db-2.internal:5432", "database unavailable: read tcp db-2.internal:5432: i/o timeout"} {
			if !bytes.Contains(detailed, []byte(s)) {
				t.Errorf("detailed %s lacks %q:\n%s", path, s, detailed)
			}
		}
	}

	// Without ShowDetails nobody sees details, whatever the request.
	h2 := newHandler(t, healthhandler.Options{})
	for _, c := range goldenChecks("fail") {
		mustAdd(t, h2, c)
	}
	waitChecked(t, h2)
	if body := get(t, h2, http.MethodGet, "/health", true).body; bytes.Contains(body, []byte("db-2.internal")) {
		t.Errorf("details shown without ShowDetails:\n%s", body)
	}
}

func TestRoutesAndMethods(t *testing.T) {
	h := newHandler(t, healthhandler.Options{ServiceID: "items-api"})
	mustAdd(t, h, healthhandler.Check{Name: "db", Critical: true, Run: fixed(nil, errors.New("down"))})
	mustAdd(t, h, healthhandler.Check{Name: "cache", Run: fixed(nil, nil)})
	waitChecked(t, h)
	mux := http.NewServeMux()
	mux.Handle("/health", h)
	mux.Handle("/health/", h)
	mux.Handle("GET /livez", h.Live())
	mux.Handle("GET /readyz", h.Ready())

	tests := []struct {
		method, path string
		code         int
		checks       []string // keys expected; nil for liveness
	}{
		{http.MethodGet, "/health", 503, []string{"cache", "db"}},
		{http.MethodGet, "/health/", 503, []string{"cache", "db"}},
		{http.MethodGet, "/health/live", 200, nil},
		{http.MethodGet, "/health/live/", 200, nil},
		{http.MethodGet, "/health/ready", 503, []string{"db"}},
		{http.MethodGet, "/livez", 200, nil},
		{http.MethodGet, "/readyz", 503, []string{"db"}},
		{http.MethodHead, "/health", 503, nil},
		{http.MethodHead, "/health/live", 200, nil},
		{http.MethodPost, "/health", 405, nil},
		{http.MethodDelete, "/health/ready", 405, nil},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			res := get(t, mux, tc.method, tc.path, false)
			if res.code != tc.code {
				t.Fatalf("HTTP %d, want %d; body %s", res.code, tc.code, res.body)
			}
			switch tc.method {
			case http.MethodHead:
				if len(res.body) != 0 || res.header.Get("Content-Length") == "0" || res.header.Get("Content-Type") != healthhandler.MediaType {
					t.Errorf("HEAD: body %q, headers %v; want no body, the GET's length and type", res.body, res.header)
				}
				return
			case http.MethodGet:
			default:
				if got := res.header.Get("Allow"); got != "GET, HEAD" {
					t.Errorf("Allow %q, want GET, HEAD", got)
				}
				return
			}
			rep := decode(t, res.body)
			if rep.ServiceID != "items-api" {
				t.Errorf("serviceId %q, want items-api", rep.ServiceID)
			}
			var keys []string
			for k := range rep.Checks {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if got, want := fmt.Sprint(keys), fmt.Sprint(tc.checks); len(tc.checks) > 0 && got != want {
				t.Errorf("checks %v, want %v", got, want)
			}
			if tc.checks == nil && (rep.Status != healthhandler.StatusPass || len(rep.Checks) != 0) {
				t.Errorf("liveness = %+v, want pass without checks", rep)
			}
		})
	}
}

func TestStatusAggregation(t *testing.T) {
	tests := []struct {
		name       string
		critical   healthhandler.Status // status of the critical check; empty: none
		other      healthhandler.Status // status of the non-critical check; empty: none
		wantStatus healthhandler.Status
		wantCode   int
		wantReady  int
	}{
		{"no checks", "", "", healthhandler.StatusPass, 200, 200},
		{"all pass", healthhandler.StatusPass, healthhandler.StatusPass, healthhandler.StatusPass, 200, 200},
		{"non-critical warns", healthhandler.StatusPass, healthhandler.StatusWarn, healthhandler.StatusWarn, 200, 200},
		{"non-critical fails", healthhandler.StatusPass, healthhandler.StatusFail, healthhandler.StatusWarn, 200, 200},
		{"critical warns", healthhandler.StatusWarn, healthhandler.StatusPass, healthhandler.StatusWarn, 200, 200},
		{"critical fails", healthhandler.StatusFail, healthhandler.StatusPass, healthhandler.StatusFail, 503, 503},
		{"only non-critical fails", "", healthhandler.StatusFail, healthhandler.StatusWarn, 200, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHandler(t, healthhandler.Options{})
			if tc.critical != "" {
				mustAdd(t, h, healthhandler.Check{Name: "db", Critical: true, Run: fixed([]healthhandler.Observation{{Status: tc.critical}}, nil)})
			}
			if tc.other != "" {
				mustAdd(t, h, healthhandler.Check{Name: "cache", Run: fixed([]healthhandler.Observation{{Status: tc.other}}, nil)})
			}
			waitChecked(t, h)
			res := get(t, h, http.MethodGet, "/health", false)
			if got := decode(t, res.body).Status; got != tc.wantStatus || res.code != tc.wantCode {
				t.Errorf("/health: %q HTTP %d, want %q HTTP %d", got, res.code, tc.wantStatus, tc.wantCode)
			}
			if got := get(t, h, http.MethodGet, "/health/ready", false).code; got != tc.wantReady {
				t.Errorf("/health/ready: HTTP %d, want %d", got, tc.wantReady)
			}
			if st := h.Stats(); st.Status != tc.wantStatus || st.Ready != (tc.wantReady == 200) {
				t.Errorf("Stats = %+v, want status %q ready %v", st, tc.wantStatus, tc.wantReady == 200)
			}
		})
	}
}

// TestPendingAndDrain: before a critical check has run the service is not
// ready and the report says "not yet checked"; Drain fails readiness only.
func TestPendingAndDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHandler(t, healthhandler.Options{})
		mustAdd(t, h, healthhandler.Check{Name: "db", Critical: true, Interval: time.Minute, Run: func(ctx context.Context) ([]healthhandler.Observation, error) {
			time.Sleep(time.Second)
			return nil, nil
		}})
		synctest.Wait()
		full := get(t, h, http.MethodGet, "/health", false)
		rep := decode(t, full.body)
		if full.code != 200 || rep.Status != healthhandler.StatusWarn || rep.Checks["db"][0].Output != "not yet checked" {
			t.Errorf("pending /health: HTTP %d %+v, want 200 warn with db not yet checked", full.code, rep)
		}
		ready := get(t, h, http.MethodGet, "/health/ready", false)
		if rep := decode(t, ready.body); ready.code != 503 || rep.Output != "not yet checked" {
			t.Errorf("pending /health/ready: HTTP %d %+v, want 503 not yet checked", ready.code, rep)
		}

		time.Sleep(time.Second)
		synctest.Wait()
		if got := get(t, h, http.MethodGet, "/health/ready", false).code; got != 200 {
			t.Fatalf("ready after the first run: HTTP %d, want 200", got)
		}
		h.Drain()
		h.Drain()
		ready = get(t, h, http.MethodGet, "/health/ready", false)
		if rep := decode(t, ready.body); ready.code != 503 || rep.Status != healthhandler.StatusFail || rep.Output != "draining" {
			t.Errorf("draining /health/ready: HTTP %d %+v, want 503 fail draining", ready.code, rep)
		}
		if got := get(t, h, http.MethodGet, "/health", false).code; got != 200 {
			t.Errorf("draining /health: HTTP %d, want 200 (draining is not ill health)", got)
		}
		if got := get(t, h, http.MethodGet, "/health/live", false).code; got != 200 {
			t.Errorf("draining /health/live: HTTP %d, want 200", got)
		}
		if st := h.Stats(); !st.Draining || st.Ready {
			t.Errorf("Stats = %+v, want draining and not ready", st)
		}
	})
}

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
			if waited := time.Since(start); waited != 0 {
				t.Errorf("requests took %v of the check's time, want none", waited)
			}
			for i, b := range bodies {
				if !bytes.Contains(b, []byte(want)) {
					t.Fatalf("request %d: body %s, want it to hold %s", i, b, want)
				}
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
		if got := runs.Load(); got != 4 {
			t.Errorf("check ran %d times in 3.1 s with a 1 s interval and 4400 requests, want 4", got)
		}
		if st := h.Stats().Checks[0]; st.Runs != 3 || st.LastDuration != 200*time.Millisecond {
			t.Errorf("Stats = %+v, want 3 ended runs of 200ms", st)
		}
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
		if len(polite) != 1 || polite[0].Status != healthhandler.StatusFail || polite[0].ObservedValue != nil ||
			!strings.HasPrefix(polite[0].Output, "polite check timed out") {
			t.Errorf("polite after timeout = %+v, want the same key failing with \"polite check timed out\" and no value", polite)
		}
		rude := rep.Checks["rude"]
		if len(rude) != 1 || rude[0].Status != healthhandler.StatusFail || rude[0].Output != "rude check timed out: no result within 1s" {
			t.Errorf("rude = %+v, want failing: rude check timed out", rude)
		}
		if !rude[0].Time.Equal(time.Now().Add(-5 * time.Second)) {
			t.Errorf("rude time %v, want %v (when it timed out)", rude[0].Time, time.Now().Add(-5*time.Second))
		}
		time.Sleep(time.Minute)
		if got := ignoring.Load(); got != 1 {
			t.Errorf("rude ran %d times while its first run hung, want 1", got)
		}
		close(release)
		synctest.Wait()
		if got := ignoring.Load(); got != 2 {
			t.Errorf("rude ran %d times after it returned, want 2 (at once, being long overdue)", got)
		}
		st := h.Stats()
		if st.Checks[0].Timeouts == 0 || st.Checks[1].Timeouts != 1 {
			t.Errorf("Stats = %+v, want timeouts counted", st)
		}
	})
}

func TestPanickingCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		var runs atomic.Int64
		h := newHandler(t, healthhandler.Options{ShowDetails: showDetails, Logger: logs.logger()})
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
			if got := rep.Checks["buggy"]; len(got) != 1 || got[0].Status != healthhandler.StatusFail || got[0].Output != want {
				t.Errorf("details=%v: buggy = %+v, want fail with %q", details, got, want)
			}
			if bytes.Contains(body, []byte("goroutine")) || bytes.Contains(body, []byte(".go:")) {
				t.Errorf("stack trace in the report:\n%s", body)
			}
		}
		out := logs.String()
		if n := strings.Count(out, "health check panicked"); runs.Load() < 5 || n != 1 || !strings.Contains(out, "stack=") {
			t.Errorf("%d panicking runs logged %d panic lines, want one with the stack:\n%s", runs.Load(), n, out)
		}
	})
}

// TestChangesAndLogs: one event per change of a check's status, one log
// line per change (a first pass is not news), none for repeated results.
func TestChangesAndLogs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs syncBuffer
		ch := newChanges()
		var failing atomic.Bool
		h := newHandler(t, healthhandler.Options{Logger: logs.logger(), OnChange: ch.record, Now: time.Now})
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
		if len(got) != len(want) {
			t.Fatalf("changes = %+v, want %d", got, len(want))
		}
		for i, w := range want {
			if got[i].Check != "db" || !got[i].Critical || got[i].From != w.from || got[i].To != w.to || got[i].Overall != w.overall {
				t.Errorf("change %d = %+v, want db %s -> %s overall %s", i, got[i], w.from, w.to, w.overall)
			}
		}
		if got[1].Detail != "connection refused" || !got[1].At.Equal(t0Bubble().Add(time.Second)) {
			t.Errorf("failing change = %+v, want detail and the time of the run", got[1])
		}
		out := logs.String()
		if n := strings.Count(out, "health check status changed"); n != 2 {
			t.Errorf("%d change log lines, want 2:\n%s", n, out)
		}
		if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "error=\"connection refused\"") {
			t.Errorf("log lacks the warning with its error:\n%s", out)
		}
	})
}

// t0Bubble is the start of every synctest bubble's clock.
func t0Bubble() time.Time { return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) }

func TestAddErrors(t *testing.T) {
	run := fixed(nil, nil)
	h := newHandler(t, healthhandler.Options{})
	mustAdd(t, h, healthhandler.Check{Name: "db", Run: run})
	waitChecked(t, h)
	tests := []struct {
		name  string
		check healthhandler.Check
		want  string
	}{
		{"empty name", healthhandler.Check{Run: run}, "Name is empty"},
		{"colon", healthhandler.Check{Name: "db:x", Run: run}, "colon"},
		{"nil run", healthhandler.Check{Name: "x"}, "Run is nil"},
		{"negative interval", healthhandler.Check{Name: "x", Run: run, Interval: -1}, "negative"},
		{"negative timeout", healthhandler.Check{Name: "x", Run: run, Timeout: -1}, "negative"},
		{"duplicate", healthhandler.Check{Name: "db", Run: run}, "added twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := h.Add(tc.check)
			if !errors.Is(err, healthhandler.ErrInvalidOption) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Add(%+v) = %v, want ErrInvalidOption naming %q", tc.check, err, tc.want)
			}
		})
	}
	for name, err := range map[string]error{
		"Redis(nil)":   second(healthhandler.Redis(nil, healthhandler.RedisOptions{})),
		"Workers(nil)": second(healthhandler.Workers(nil, healthhandler.WorkersOptions{})),
	} {
		if !errors.Is(err, healthhandler.ErrInvalidOption) || !strings.Contains(err.Error(), "nil client") {
			t.Errorf("%s = %v, want ErrInvalidOption naming %q", name, err, "nil client")
		}
	}
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := h.Add(healthhandler.Check{Name: "late", Run: run}); !errors.Is(err, healthhandler.ErrClosed) {
		t.Errorf("Add after Close = %v, want ErrClosed", err)
	}
	if err := h.WaitChecked(context.Background()); err != nil {
		t.Errorf("WaitChecked after Close with every check run = %v, want nil", err)
	}
	if got := get(t, h, http.MethodGet, "/health/ready", false).code; got != 503 {
		t.Errorf("ready after Close: HTTP %d, want 503", got)
	}
	if got := get(t, h, http.MethodGet, "/health", false).code; got != 200 {
		t.Errorf("/health after Close: HTTP %d, want 200 from the last results", got)
	}
}

func TestNewRejectsInvalidUTF8(t *testing.T) {
	if _, err := healthhandler.New(healthhandler.Options{Version: "\xff"}); !errors.Is(err, healthhandler.ErrInvalidOption) || !strings.Contains(err.Error(), "Version") {
		t.Errorf("New with invalid UTF-8 Version = %v, want ErrInvalidOption naming Version", err)
	}
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
	if v := rep.Checks["odd:zero"][0].ObservedValue; v != float64(0) {
		t.Errorf("zero value = %#v, want 0 kept", v)
	}
	if v := fmt.Sprint(rep.Checks["odd:object"][0].ObservedValue); v != "map[n:0 url:redis://:***@h:6379]" {
		t.Errorf("object value = %s, want scrubbed and copied", v)
	}
	if bad := rep.Checks["odd:bad"][0]; bad.ObservedValue != nil || !strings.Contains(bad.Output, "not encodable") {
		t.Errorf("unencodable value = %+v, want dropped with a note", bad)
	}
	if st := rep.Checks["odd:status"][0]; st.Status != healthhandler.StatusFail || !strings.Contains(st.Output, "unknown status broken") {
		t.Errorf("unknown status = %+v, want fail with a note", st)
	}
}

// TestDetailsBehindSameHostProxy: behind a reverse proxy on the same host
// every request comes from loopback, with X-Forwarded-For or Forwarded
// naming the real client. Neither the default nor BearerToken shows details
// to such a request; only the token does.
func TestDetailsBehindSameHostProxy(t *testing.T) {
	const token = "health-T0ken-for-tests"
	for _, tc := range []struct {
		name    string
		show    func(*http.Request) bool
		header  map[string]string
		details bool
	}{
		{"nothing configured, X-Forwarded-For", nil, map[string]string{"X-Forwarded-For": "203.0.113.9"}, false},
		{"nothing configured, Forwarded", nil, map[string]string{"Forwarded": "for=203.0.113.9"}, false},
		{"nothing configured, no forwarding header", nil, nil, false},
		{"empty token", healthhandler.BearerToken(""), nil, false},
		{"token, none sent", healthhandler.BearerToken(token), map[string]string{"X-Forwarded-For": "127.0.0.1"}, false},
		{"token, wrong one", healthhandler.BearerToken(token), map[string]string{"Authorization": "Bearer " + token + "x"}, false},
		{"token, basic scheme", healthhandler.BearerToken(token), map[string]string{"Authorization": "Basic " + token}, false},
		{"token, right one", healthhandler.BearerToken(token), map[string]string{"Authorization": "bearer " + token}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHandler(t, healthhandler.Options{ShowDetails: tc.show})
			for _, c := range goldenChecks("fail") {
				mustAdd(t, h, c)
			}
			waitChecked(t, h)
			backend := httptest.NewServer(h)
			defer backend.Close()
			target, err := url.Parse(backend.URL)
			if err != nil {
				t.Fatal(err)
			}
			front := httptest.NewServer(httputil.NewSingleHostReverseProxy(target)) // adds X-Forwarded-For
			defer front.Close()
			req, err := http.NewRequest(http.MethodGet, front.URL+"/health", nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := front.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Contains(body, []byte("componentId")); got != tc.details {
				t.Errorf("details shown = %v, want %v:\n%s", got, tc.details, body)
			}
		})
	}
}

// second returns its second argument: the error of a check constructor.
func second(_ healthhandler.Check, err error) error { return err }
