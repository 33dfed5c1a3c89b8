package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/resilience"
)

// newTestItems is the item store on a miniredis, with no simulated work.
func newTestItems(t *testing.T) (*items, *miniredis.Miniredis) {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb, err := resilience.NewRedis(resilience.Config{Addr: mr.Addr()}, resilience.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	return newItems(0, rdb, slog.New(slog.DiscardHandler)), mr
}

func serveItem(s *items, method, id, body string) *httptest.ResponseRecorder {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", s.get)
	mux.HandleFunc("PUT /items/{id}", s.put)
	rr := httptest.NewRecorder()
	mux.ServeHTTP(rr, httptest.NewRequest(method, "/items/"+id, strings.NewReader(body)))
	return rr
}

// TestItemStoreBounded: reading ids stores nothing, and changes stop at
// maxItems new ids, so no client can grow the store without end.
func TestItemStoreBounded(t *testing.T) {
	s, _ := newTestItems(t)
	for i := range 1000 {
		rr := serveItem(s, http.MethodGet, fmt.Sprint("read-", i), "")
		require.Equal(t, http.StatusOK, rr.Code)
	}
	assert.Empty(t, s.data, "GETs of made-up ids were stored")
	first := serveItem(s, http.MethodGet, "7", "").Body.String()
	assert.Equal(t, first, serveItem(s, http.MethodGet, "7", "").Body.String(), "an unchanged item reads the same twice")

	for i := range maxItems {
		s.data[fmt.Sprint("full-", i)] = item{}
	}
	rr := serveItem(s, http.MethodPut, "one-too-many", `{"name":"x"}`)
	assert.Equal(t, http.StatusInsufficientStorage, rr.Code, "PUT of a new id into a full store")
	assert.Len(t, s.data, maxItems)
	rr = serveItem(s, http.MethodPut, "full-3", `{"name":"x"}`)
	assert.Equal(t, http.StatusOK, rr.Code, "PUT of a stored id into a full store: %s", rr.Body)
}

// TestTaskQueueBounded: PUTs queue tasks up to maxTasks, then drop them.
func TestTaskQueueBounded(t *testing.T) {
	s, mr := newTestItems(t)
	for i := range 5 {
		require.Equal(t, http.StatusOK, serveItem(s, http.MethodPut, fmt.Sprint(i), `{"name":"x"}`).Code)
	}
	got, err := mr.List(taskQueue)
	require.NoError(t, err)
	assert.Equal(t, []string{"reindex 0", "reindex 1", "reindex 2", "reindex 3", "reindex 4"}, got)

	for i := len(got); i < maxTasks; i++ {
		_, err := mr.Push(taskQueue, "filler")
		require.NoError(t, err)
	}
	for i := range 20 {
		rr := serveItem(s, http.MethodPut, fmt.Sprint("more-", i), `{"name":"x"}`)
		require.Equal(t, http.StatusOK, rr.Code, "the change is made even when its task is dropped")
	}
	got, err = mr.List(taskQueue)
	require.NoError(t, err)
	assert.Len(t, got, maxTasks, "task queue length after PUTs into a full queue")
	assert.Equal(t, "filler", got[len(got)-1], "queued tasks are kept, new ones dropped")
}

// TestHealthDetailsNeedToken: the example shows /health details only to
// callers that send HEALTH_TOKEN, never for being on loopback, with or
// without a forwarding header; with no token set, to nobody.
func TestHealthDetailsNeedToken(t *testing.T) {
	const token = "T0ken-for-health-tests"
	detailed := func(s *server, header ...string) bool {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, s.base+"/health", nil)
		require.NoError(t, err)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return strings.Contains(string(b), "componentId")
	}

	s := startServer(t, "HEALTH_TOKEN="+token)
	until(t, 10*time.Second, "details for the token", func() bool { return detailed(s, "Authorization", "Bearer "+token) })
	assert.False(t, detailed(s), "details for a loopback caller with no token")
	assert.False(t, detailed(s, "X-Forwarded-For", "203.0.113.9"), "details through a same-host proxy")
	assert.False(t, detailed(s, "Forwarded", "for=203.0.113.9"), "details through a same-host proxy")
	assert.False(t, detailed(s, "Authorization", "Bearer wrong"), "details for a wrong token")

	open := startServer(t)
	assert.False(t, detailed(open), "details with HEALTH_TOKEN unset")
	assert.False(t, detailed(open, "Authorization", "Bearer "), "details for an empty token with HEALTH_TOKEN unset")
}
