package healthhandler_test

import (
	"bytes"
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

	"github.com/steadfast-go/steadfast/healthhandler"
)

// t0 is the reports' clock in tests that compare bytes.
var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return t0 }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// detailsHeader marks a request allowed to see details in these tests.
const detailsHeader = "X-Test-Details"

func showDetails(r *http.Request) bool { return r.Header.Get(detailsHeader) == "yes" }

// response is one answer of the handler.
type response struct {
	code   int
	header http.Header
	body   []byte
}

// get serves one request straight through h (no network) and checks the
// headers and, when there is a body, the draft's structure.
func get(t *testing.T, h http.Handler, method, path string, details bool) response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if details {
		req.Header.Set(detailsHeader, "yes")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := response{code: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	if got := res.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("%s %s: Cache-Control %q, want no-store", method, path, got)
	}
	if method == http.MethodGet && res.code != http.StatusMethodNotAllowed {
		if got := res.header.Get("Content-Type"); got != healthhandler.MediaType {
			t.Errorf("%s %s: Content-Type %q, want %q", method, path, got, healthhandler.MediaType)
		}
		checkDraftShape(t, res.body, details)
	}
	return res
}

func decode(t *testing.T, body []byte) healthhandler.Report {
	t.Helper()
	var r healthhandler.Report
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("decode report: %v\n%s", err, body)
	}
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
// carry output on a pass (the draft says it SHOULD be left out).
func checkDraftShape(t *testing.T, body []byte, details bool) {
	t.Helper()
	var top map[string]any
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, body)
	}
	for k := range top {
		if !slices.Contains(draftTop, k) {
			t.Errorf("top-level field %q is not in the draft", k)
		}
	}
	checkStatus(t, "top-level", top["status"])
	for _, k := range []string{"version", "releaseId", "output", "serviceId", "description"} {
		if v, ok := top[k]; ok {
			if s, isString := v.(string); !isString || s == "" {
				t.Errorf("%s = %#v, want a non-empty string or no field", k, v)
			}
		}
	}
	checks, ok := top["checks"]
	if !ok {
		return
	}
	obj, ok := checks.(map[string]any)
	if !ok {
		t.Fatalf("checks = %T, want an object", checks)
	}
	for key, v := range obj {
		if !draftKey.MatchString(key) {
			t.Errorf("check key %q is not component:measurement", key)
		}
		arr, ok := v.([]any)
		if !ok || len(arr) == 0 {
			t.Errorf("checks[%q] = %T %v, want a non-empty array", key, v, v)
			continue
		}
		for i, e := range arr {
			item, ok := e.(map[string]any)
			if !ok {
				t.Errorf("checks[%q][%d] = %T, want an object", key, i, e)
				continue
			}
			where := fmt.Sprintf("checks[%q][%d]", key, i)
			for f := range item {
				if !slices.Contains(draftCheck, f) {
					t.Errorf("%s: field %q is not in the draft", where, f)
				}
			}
			checkStatus(t, where, item["status"])
			ts, _ := item["time"].(string)
			if _, err := time.Parse(time.RFC3339, ts); err != nil {
				t.Errorf("%s: time %q is not RFC 3339: %v", where, ts, err)
			}
			if ct, ok := item["componentType"]; ok && !slices.Contains([]any{"component", "datastore", "system"}, ct) {
				t.Errorf("%s: componentType %v, want component, datastore or system", where, ct)
			}
			for _, f := range []string{"componentId", "observedUnit", "output"} {
				if v, ok := item[f]; ok {
					if _, isString := v.(string); !isString {
						t.Errorf("%s: %s = %T, want a string", where, f, v)
					}
				}
			}
			if item["status"] == "pass" {
				if _, ok := item["output"]; ok && !details {
					t.Errorf("%s: output on a pass (the draft says omit it): %v", where, item["output"])
				}
			}
		}
	}
}

func checkStatus(t *testing.T, where string, v any) {
	t.Helper()
	if !slices.Contains([]any{"pass", "warn", "fail"}, v) {
		t.Errorf("%s status = %#v, want pass, warn or fail", where, v)
	}
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
			t.Fatalf("no matching change within %v; changes: %+v", limit, all)
		}
	}
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

var _ io.Writer = (*syncBuffer)(nil)
