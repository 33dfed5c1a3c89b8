package healthhandler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/healthhandler"
	"github.com/steadfast-go/steadfast/resilience"
)

// t0 is the reports' clock in tests that compare bytes.
var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return t0 }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// detailsHeader marks a request allowed to see details in these tests.
const detailsHeader = "X-Test-Details"

func showDetails(r *http.Request) bool { return r.Header.Get(detailsHeader) == "yes" }

// newHandler builds a Handler closed when the test ends.
func newHandler(t *testing.T, opts healthhandler.Options) *healthhandler.Handler {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discard()
	}
	h, err := healthhandler.New(opts)
	require.NoError(t, err, "New")
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func mustAdd(t *testing.T, h *healthhandler.Handler, c healthhandler.Check) {
	t.Helper()
	require.NoError(t, h.Add(c), "Add(%q)", c.Name)
}

// mustCheck returns a function that returns a check constructor's Check,
// failing t when the constructor returned an error.
func mustCheck(t testing.TB) func(healthhandler.Check, error) healthhandler.Check {
	return func(c healthhandler.Check, err error) healthhandler.Check {
		t.Helper()
		require.NoError(t, err, "check constructor")
		return c
	}
}

// second returns its second argument: the error of a check constructor.
func second(_ healthhandler.Check, err error) error { return err }

func waitChecked(t *testing.T, h *healthhandler.Handler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, h.WaitChecked(ctx), "WaitChecked")
}

// fixed returns a Run giving the same result every time.
func fixed(obs []healthhandler.Observation, err error) func(context.Context) ([]healthhandler.Observation, error) {
	return func(context.Context) ([]healthhandler.Observation, error) { return obs, err }
}

// newRedis guards a client of cfg; it is closed when the test ends. Its
// deadlines are generous (unless opts sets them) so that a loaded machine
// does not turn a slow answer into a failure.
func newRedis(t *testing.T, cfg resilience.Config, opts resilience.Options) *resilience.Redis {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discard()
	}
	if opts.OpTimeout == 0 {
		opts.OpTimeout = time.Second
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	r, err := resilience.NewRedis(cfg, opts)
	require.NoError(t, err, "NewRedis")
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// settle closes what a synctest bubble started and lets go-redis's
// background redials end: after failed dials go-redis starts a goroutine
// that sleeps a second before it notices its pool is closed, and a bubble
// whose main goroutine has returned lets no time pass. Close errors (a
// heartbeat that cannot remove itself from a Redis that is down) are
// expected here and tested elsewhere.
func settle(closers ...io.Closer) {
	for _, c := range closers {
		_ = c.Close()
	}
	time.Sleep(2 * time.Second)
}

// response is one answer of the handler.
type response struct {
	code   int
	header http.Header
	body   []byte
}

// get serves one request straight through h (no network) and checks the
// headers and, when there is a body, the draft's structure. It only
// asserts, so it may run on any goroutine.
func get(t *testing.T, h http.Handler, method, path string, details bool) response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if details {
		req.Header.Set(detailsHeader, "yes")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := response{code: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	assert.Equal(t, "no-store", res.header.Get("Cache-Control"), "%s %s: Cache-Control", method, path)
	if method == http.MethodGet && res.code != http.StatusMethodNotAllowed {
		assert.Equal(t, healthhandler.MediaType, res.header.Get("Content-Type"), "%s %s: Content-Type", method, path)
		checkDraftShape(t, res.body, details)
	}
	return res
}

func decode(t *testing.T, body []byte) healthhandler.Report {
	t.Helper()
	var r healthhandler.Report
	require.NoError(t, json.Unmarshal(body, &r), "decode report:\n%s", body)
	return r
}

// Fields the draft defines, at the top and in each check object.
var (
	draftTop   = []string{"status", "version", "releaseId", "notes", "output", "serviceId", "description", "checks", "links"}
	draftCheck = []string{"componentId", "componentType", "observedValue", "observedUnit", "status", "affectedEndpoints", "time", "output", "links"}
	draftKey   = regexp.MustCompile(`^[^:\s]+(:[^:\s]+)?$`)
)

// checkDraftShape checks a body field by field against the draft "Health
// Check Response Format for HTTP APIs": known fields only, a status of
// pass, warn or fail, checks keyed component:measurement, each an array of
// objects with a status and an RFC 3339 time. Only a detailed view may
// carry output on a pass (the draft says it SHOULD be left out). It only
// asserts, so it may run on any goroutine.
func checkDraftShape(t *testing.T, body []byte, details bool) {
	t.Helper()
	var top map[string]any
	if !assert.NoError(t, json.Unmarshal(body, &top), "body is not a JSON object:\n%s", body) {
		return
	}
	for k := range top {
		assert.Contains(t, draftTop, k, "top-level field %q is not in the draft", k)
	}
	checkStatus(t, "top-level", top["status"])
	for _, k := range []string{"version", "releaseId", "output", "serviceId", "description"} {
		if v, ok := top[k]; ok {
			s, isString := v.(string)
			assert.True(t, isString && s != "", "%s = %#v, want a non-empty string or no field", k, v)
		}
	}
	checks, ok := top["checks"]
	if !ok {
		return
	}
	obj, ok := checks.(map[string]any)
	if !assert.True(t, ok, "checks = %T, want an object", checks) {
		return
	}
	for key, v := range obj {
		assert.Regexp(t, draftKey, key, "check key %q is not component:measurement", key)
		arr, ok := v.([]any)
		if !assert.True(t, ok && len(arr) > 0, "checks[%q] = %T %v, want a non-empty array", key, v, v) {
			continue
		}
		for i, e := range arr {
			item, ok := e.(map[string]any)
			if !assert.True(t, ok, "checks[%q][%d] = %T, want an object", key, i, e) {
				continue
			}
			where := fmt.Sprintf("checks[%q][%d]", key, i)
			for f := range item {
				assert.Contains(t, draftCheck, f, "%s: field %q is not in the draft", where, f)
			}
			checkStatus(t, where, item["status"])
			ts, _ := item["time"].(string)
			_, err := time.Parse(time.RFC3339, ts)
			assert.NoError(t, err, "%s: time %q is not RFC 3339", where, ts)
			if ct, ok := item["componentType"]; ok {
				assert.Contains(t, []any{"component", "datastore", "system"}, ct, "%s: componentType %v, want component, datastore or system", where, ct)
			}
			for _, f := range []string{"componentId", "observedUnit", "output"} {
				if v, ok := item[f]; ok {
					assert.IsType(t, "", v, "%s: %s = %T, want a string", where, f, v)
				}
			}
			if item["status"] == "pass" && !details {
				assert.NotContains(t, item, "output", "%s: output on a pass (the draft says omit it): %v", where, item["output"])
			}
		}
	}
}

func checkStatus(t *testing.T, where string, v any) {
	t.Helper()
	assert.Contains(t, []any{"pass", "warn", "fail"}, v, "%s status = %#v, want pass, warn or fail", where, v)
}

// changes records OnChange events and lets a test wait for one.
type changes struct {
	mu     sync.Mutex
	all    []healthhandler.Change
	notify chan struct{}
}

func newChanges() *changes { return &changes{notify: make(chan struct{}, 1)} }

func (c *changes) record(ch healthhandler.Change) {
	c.mu.Lock()
	c.all = append(c.all, ch)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

func (c *changes) list() []healthhandler.Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.all)
}

// wait blocks until an event from index from on matches, or fails the
// test after limit; it returns the index after the match.
func (c *changes) wait(t *testing.T, from int, limit time.Duration, match func(healthhandler.Change) bool) int {
	t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		all := c.list()
		for i := from; i < len(all); i++ {
			if match(all[i]) {
				return i + 1
			}
		}
		select {
		case <-c.notify:
		case <-deadline.C:
			require.Failf(t, "no matching change", "none within %v; changes: %+v", limit, all)
		}
	}
}
