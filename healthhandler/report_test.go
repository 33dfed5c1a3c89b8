package healthhandler_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/healthhandler"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

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
				assert.Equal(t, tc.code, res.code, "details=%v: HTTP code", details)
				assert.Equal(t, tc.status, decode(t, res.body).Status, "details=%v: status", details)
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
	require.NoError(t, json.Indent(&got, body, "", "  "), "indent")
	if *update {
		require.NoError(t, os.WriteFile(path, got.Bytes(), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "read golden file (run with -update to create it)")
	assert.Equal(t, string(want), got.String(), "%s differs", path)
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
			assert.Equal(t, tc.wantStatus, decode(t, res.body).Status, "/health status")
			assert.Equal(t, tc.wantCode, res.code, "/health HTTP code")
			assert.Equal(t, tc.wantReady, get(t, h, http.MethodGet, "/health/ready", false).code, "/health/ready HTTP code")
			st := h.Stats()
			assert.Equal(t, tc.wantStatus, st.Status, "Stats = %+v", st)
			assert.Equal(t, tc.wantReady == 200, st.Ready, "Stats = %+v", st)
		})
	}
}
