package healthhandler_test

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/healthhandler"
)

func TestDetailsOnlyForAllowedCallers(t *testing.T) {
	h := newHandler(t, healthhandler.Options{ShowDetails: showDetails})
	for _, c := range goldenChecks("fail") {
		mustAdd(t, h, c)
	}
	waitChecked(t, h)
	secretish := []string{"db-1.internal", "db-2.internal", "cache.internal", "i/o timeout", "componentId"}
	for _, path := range []string{"/health", "/health/ready"} {
		public := string(get(t, h, http.MethodGet, path, false).body)
		for _, s := range secretish {
			assert.NotContains(t, public, s, "public %s", path)
		}
		assert.Contains(t, public, "database unavailable", "public %s lacks the generic output", path)
		detailed := string(get(t, h, http.MethodGet, path, true).body)
		for _, s := range []string{"db-2.internal:5432", "database unavailable: read tcp db-2.internal:5432: i/o timeout"} {
			assert.Contains(t, detailed, s, "detailed %s", path)
		}
	}

	// Without ShowDetails nobody sees details, whatever the request.
	h2 := newHandler(t, healthhandler.Options{})
	for _, c := range goldenChecks("fail") {
		mustAdd(t, h2, c)
	}
	waitChecked(t, h2)
	assert.NotContains(t, string(get(t, h2, http.MethodGet, "/health", true).body), "db-2.internal", "details shown without ShowDetails")
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
			require.Equal(t, tc.code, res.code, "HTTP code; body %s", res.body)
			switch tc.method {
			case http.MethodHead:
				assert.Empty(t, res.body, "HEAD: want no body")
				assert.NotEqual(t, "0", res.header.Get("Content-Length"), "HEAD: headers %v; want the GET's length", res.header)
				assert.Equal(t, healthhandler.MediaType, res.header.Get("Content-Type"), "HEAD: headers %v; want the GET's type", res.header)
				return
			case http.MethodGet:
			default:
				assert.Equal(t, "GET, HEAD", res.header.Get("Allow"), "Allow")
				return
			}
			rep := decode(t, res.body)
			assert.Equal(t, "items-api", rep.ServiceID, "serviceId")
			if len(tc.checks) > 0 {
				assert.Equal(t, tc.checks, slices.Sorted(maps.Keys(rep.Checks)), "checks")
			}
			if tc.checks == nil {
				assert.Equal(t, healthhandler.StatusPass, rep.Status, "liveness = %+v, want pass", rep)
				assert.Empty(t, rep.Checks, "liveness = %+v, want no checks", rep)
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
		assert.Equal(t, 200, full.code, "pending /health: %+v", rep)
		assert.Equal(t, healthhandler.StatusWarn, rep.Status, "pending /health: %+v", rep)
		require.NotEmpty(t, rep.Checks["db"], "pending /health: %+v", rep)
		assert.Equal(t, "not yet checked", rep.Checks["db"][0].Output, "pending /health: %+v", rep)
		ready := get(t, h, http.MethodGet, "/health/ready", false)
		rep = decode(t, ready.body)
		assert.Equal(t, 503, ready.code, "pending /health/ready: %+v", rep)
		assert.Equal(t, "not yet checked", rep.Output, "pending /health/ready: %+v", rep)

		time.Sleep(time.Second)
		synctest.Wait()
		require.Equal(t, 200, get(t, h, http.MethodGet, "/health/ready", false).code, "ready after the first run")
		h.Drain()
		h.Drain()
		ready = get(t, h, http.MethodGet, "/health/ready", false)
		rep = decode(t, ready.body)
		assert.Equal(t, 503, ready.code, "draining /health/ready: %+v", rep)
		assert.Equal(t, healthhandler.StatusFail, rep.Status, "draining /health/ready: %+v", rep)
		assert.Equal(t, "draining", rep.Output, "draining /health/ready: %+v", rep)
		assert.Equal(t, 200, get(t, h, http.MethodGet, "/health", false).code, "draining /health (draining is not ill health)")
		assert.Equal(t, 200, get(t, h, http.MethodGet, "/health/live", false).code, "draining /health/live")
		st := h.Stats()
		assert.True(t, st.Draining, "Stats = %+v, want draining", st)
		assert.False(t, st.Ready, "Stats = %+v, want not ready", st)
	})
}

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
			assert.ErrorIs(t, err, healthhandler.ErrInvalidOption, "Add(%+v)", tc.check)
			assert.ErrorContains(t, err, tc.want, "Add(%+v)", tc.check)
		})
	}
	for name, err := range map[string]error{
		"Redis(nil)":   second(healthhandler.Redis(nil, healthhandler.RedisOptions{})),
		"Workers(nil)": second(healthhandler.Workers(nil, healthhandler.WorkersOptions{})),
	} {
		assert.ErrorIs(t, err, healthhandler.ErrInvalidOption, name)
		assert.ErrorContains(t, err, "nil client", name)
	}
	require.NoError(t, h.Close(), "Close")
	assert.ErrorIs(t, h.Add(healthhandler.Check{Name: "late", Run: run}), healthhandler.ErrClosed, "Add after Close")
	assert.NoError(t, h.WaitChecked(context.Background()), "WaitChecked after Close with every check run")
	assert.Equal(t, 503, get(t, h, http.MethodGet, "/health/ready", false).code, "ready after Close")
	assert.Equal(t, 200, get(t, h, http.MethodGet, "/health", false).code, "/health after Close, from the last results")
}

func TestNewRejectsInvalidUTF8(t *testing.T) {
	_, err := healthhandler.New(healthhandler.Options{Version: "\xff"})
	assert.ErrorIs(t, err, healthhandler.ErrInvalidOption, "New with invalid UTF-8 Version")
	assert.ErrorContains(t, err, "Version", "New with invalid UTF-8 Version")
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
			require.NoError(t, err)
			front := httptest.NewServer(httputil.NewSingleHostReverseProxy(target)) // adds X-Forwarded-For
			defer front.Close()
			req, err := http.NewRequest(http.MethodGet, front.URL+"/health", nil)
			require.NoError(t, err)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := front.Client().Do(req)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			if tc.details {
				assert.Contains(t, string(body), "componentId", "details not shown")
			} else {
				assert.NotContains(t, string(body), "componentId", "details shown")
			}
		})
	}
}
