package middleware

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRecorderPoolReuse(t *testing.T) {
	var pool recorderPool
	spy := newSpy()
	rec := pool.get(spy, recorderConfig{hold: holdStatus(http.StatusServiceUnavailable), capture: true})
	rec.Header().Set("X-Old", "1")
	rec.WriteHeader(http.StatusServiceUnavailable)
	_, _ = rec.Write([]byte("old"))
	pool.put(rec)

	spy2 := newSpy()
	rec = pool.get(spy2, recorderConfig{})
	assert.False(t, rec.Status() != 0 || rec.Held() || rec.Committed() || len(rec.Body()) != 0 || rec.Overflowed() || rec.Written() != 0,
		"recycled recorder carries state: Status %d Held %t Committed %t Body %q Overflowed %t Written %d",
		rec.Status(), rec.Held(), rec.Committed(), rec.Body(), rec.Overflowed(), rec.Written())
	assert.Empty(t, rec.Header().Get("X-Old"), "recycled recorder header = %v, want the new client's", rec.Header())
	_, _ = rec.Write([]byte("new"))
	assert.Equal(t, "new", spy2.body.String(), "new client's body")
	assert.Empty(t, spy.body.String(), "old client's body")
}
