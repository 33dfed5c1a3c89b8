package middleware

import (
	"net/http"
	"testing"
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
	if rec.Status() != 0 || rec.Held() || rec.Committed() || len(rec.Body()) != 0 || rec.Overflowed() || rec.Written() != 0 {
		t.Errorf("recycled recorder carries state: Status %d Held %t Committed %t Body %q",
			rec.Status(), rec.Held(), rec.Committed(), rec.Body())
	}
	if got := rec.Header(); got.Get("X-Old") != "" {
		t.Errorf("recycled recorder header = %v, want the new client's", got)
	}
	_, _ = rec.Write([]byte("new"))
	if spy2.body.String() != "new" || spy.body.Len() != 0 {
		t.Errorf("bodies: new client %q, old client %q; want %q, empty", spy2.body.String(), spy.body.String(), "new")
	}
}
