package middleware

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// spyWriter is an http.ResponseWriter that records what reaches it,
// including calls to the optional interfaces the recorder delegates to.
type spyWriter struct {
	header       http.Header
	statuses     []int         // every WriteHeader call, 1xx included
	sentHeaders  []http.Header // a copy of the header map at each call
	body         bytes.Buffer
	flushes      int
	readFroms    int
	writeStrings int
}

var (
	_ http.ResponseWriter = (*spyWriter)(nil)
	_ http.Flusher        = (*spyWriter)(nil)
	_ io.ReaderFrom       = (*spyWriter)(nil)
	_ io.StringWriter     = (*spyWriter)(nil)
)

func newSpy() *spyWriter { return &spyWriter{header: make(http.Header)} }

func (s *spyWriter) Header() http.Header { return s.header }

func (s *spyWriter) WriteHeader(code int) {
	s.statuses = append(s.statuses, code)
	s.sentHeaders = append(s.sentHeaders, s.header.Clone())
}

func (s *spyWriter) Write(p []byte) (int, error) {
	if len(s.statuses) == 0 {
		s.WriteHeader(http.StatusOK)
	}
	return s.body.Write(p)
}

func (s *spyWriter) WriteString(str string) (int, error) {
	s.writeStrings++
	return s.Write([]byte(str))
}

func (s *spyWriter) ReadFrom(src io.Reader) (int64, error) {
	s.readFroms++
	if len(s.statuses) == 0 {
		s.WriteHeader(http.StatusOK)
	}
	return s.body.ReadFrom(src)
}

func (s *spyWriter) Flush() { s.flushes++ }

// finalStatus is the last non-1xx status the spy got, or 0.
func (s *spyWriter) finalStatus() int {
	for i := len(s.statuses) - 1; i >= 0; i-- {
		if s.statuses[i] >= 200 || s.statuses[i] == http.StatusSwitchingProtocols {
			return s.statuses[i]
		}
	}
	return 0
}

// plainWriter hides every optional interface of the writer it holds.
type plainWriter struct{ http.ResponseWriter }

// holdStatus is a hold decision that holds one status.
func holdStatus(code int) func(int, http.Header) bool {
	return func(status int, _ http.Header) bool { return status == code }
}

func TestRecorderPassThrough(t *testing.T) {
	var pool recorderPool
	spy := newSpy()
	rec := pool.get(spy, recorderConfig{})

	rec.Header().Set("X-A", "1")
	assert.Equal(t, "1", spy.header.Get("X-A"), "pass-through Header() is not the client's map: client has %v", spy.header)
	rec.WriteHeader(http.StatusCreated)
	rec.WriteHeader(http.StatusInternalServerError) // ignored
	_, err := rec.Write([]byte("hi"))
	require.NoError(t, err)
	rec.finish()

	assert.Equal(t, []int{http.StatusCreated}, spy.statuses, "client statuses")
	assert.Equal(t, "hi", spy.body.String(), "client body")
	assert.True(t, rec.Status() == http.StatusCreated && rec.Committed() && !rec.Held() && rec.Written() == 2,
		"Status, Committed, Held, Written = %d, %t, %t, %d; want 201, true, false, 2",
		rec.Status(), rec.Committed(), rec.Held(), rec.Written())
	assert.Empty(t, rec.Body(), "Body() without capture")
}

func TestRecorderStatus(t *testing.T) {
	tests := []struct {
		name       string
		write      func(w http.ResponseWriter)
		wantStatus int
		wantCommit bool
	}{
		{"nothing written", func(http.ResponseWriter) {}, 0, false},
		{"implicit 200 on Write", func(w http.ResponseWriter) { _, _ = w.Write([]byte("x")) }, 200, true},
		{"implicit 200 on WriteString", func(w http.ResponseWriter) { _, _ = io.WriteString(w, "x") }, 200, true},
		{"implicit 200 on Flush", func(w http.ResponseWriter) { w.(http.Flusher).Flush() }, 200, true},
		{"implicit 200 on ReadFrom", func(w http.ResponseWriter) {
			_, _ = w.(io.ReaderFrom).ReadFrom(strings.NewReader("x"))
		}, 200, true},
		{"second WriteHeader ignored", func(w http.ResponseWriter) {
			w.WriteHeader(404)
			w.WriteHeader(200)
		}, 404, true},
		{"103 is not final", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(204)
		}, 204, true},
		{"only 103", func(w http.ResponseWriter) { w.WriteHeader(http.StatusEarlyHints) }, 0, false},
		{"101 is final", func(w http.ResponseWriter) { w.WriteHeader(http.StatusSwitchingProtocols) }, 101, true},
	}
	for _, hold := range []bool{false, true} {
		for _, tc := range tests {
			name := tc.name
			if hold {
				name += "/hold mode"
			}
			t.Run(name, func(t *testing.T) {
				var pool recorderPool
				spy := newSpy()
				cfg := recorderConfig{}
				if hold {
					cfg.hold = holdStatus(http.StatusServiceUnavailable)
				}
				rec := pool.get(spy, cfg)
				tc.write(rec)
				assert.Equal(t, tc.wantStatus, rec.Status(), "Status")
				assert.Equal(t, tc.wantCommit, rec.Committed(), "Committed")
				assert.Equal(t, tc.wantStatus, spy.finalStatus(), "client's final status")
			})
		}
	}
}

func TestRecorderHoldKeepsFailedResponseBack(t *testing.T) {
	var pool recorderPool
	spy := newSpy()
	spy.header.Set("X-Outer", "set before the handler")
	rec := pool.get(spy, recorderConfig{hold: holdStatus(http.StatusServiceUnavailable)})

	assert.Equal(t, "set before the handler", rec.Header().Get("X-Outer"), "handler sees X-Outer: want the client's value")
	rec.Header().Set("X-Failed", "1")
	rec.Header().Add("X-Outer", "added by the handler")
	rec.WriteHeader(http.StatusServiceUnavailable)
	_, err := io.WriteString(rec, "partial ")
	require.NoError(t, err)
	_, err = rec.ReadFrom(strings.NewReader("body"))
	require.NoError(t, err)

	require.True(t, rec.Held() && !rec.Committed(), "Held, Committed = %t, %t; want true, false", rec.Held(), rec.Committed())
	assert.False(t, len(spy.statuses) != 0 || spy.body.Len() != 0 || spy.readFroms != 0 || spy.writeStrings != 0,
		"held response reached the client: statuses %v, body %q", spy.statuses, spy.body.String())
	assert.True(t, len(spy.header) == 1 && len(spy.header["X-Outer"]) == 1, "held headers leaked into the client's map: %v", spy.header)
	assert.Equal(t, "partial body", string(rec.Body()), "held Body()")
	assert.Equal(t, "1", rec.ResponseHeader().Get("X-Failed"), "ResponseHeader() X-Failed")

	require.NoError(t, rec.sendHeld())
	assert.True(t, rec.Committed() && !rec.Held(), "after sendHeld Held, Committed = %t, %t; want false, true", rec.Held(), rec.Committed())
	assert.Equal(t, []int{503}, spy.statuses, "client statuses")
	got := spy.sentHeaders[0]
	assert.True(t, got.Get("X-Failed") == "1" && len(got["X-Outer"]) == 2, "client headers = %v, want X-Failed and both X-Outer values", got)
	assert.Equal(t, "partial body", spy.body.String(), "client body")
}

func TestRecorderResetDropsAttempt(t *testing.T) {
	var pool recorderPool
	spy := newSpy()
	spy.header.Set("X-Outer", "1")
	cfg := recorderConfig{hold: holdStatus(http.StatusServiceUnavailable)}
	rec := pool.get(spy, cfg)

	rec.Header().Set("X-Attempt", "1")
	rec.Header().Del("X-Outer")
	rec.WriteHeader(http.StatusServiceUnavailable)
	_, _ = rec.Write([]byte("attempt 1 failed"))

	rec.reset(spy, cfg)
	require.False(t, rec.Status() != 0 || rec.Held() || len(rec.Body()) != 0 || rec.Written() != 0,
		"after reset Status %d Held %t Body %q Written %d; want a fresh recorder",
		rec.Status(), rec.Held(), rec.Body(), rec.Written())
	got := rec.Header()
	assert.True(t, got.Get("X-Attempt") == "" && got.Get("X-Outer") == "1", "after reset the handler sees %v, want only the client's X-Outer", got)
	rec.Header().Set("X-Attempt", "2")
	rec.Header().Del("X-Outer")
	_, _ = rec.Write([]byte("attempt 2 ok"))
	rec.finish()

	assert.Equal(t, []int{200}, spy.statuses, "client statuses")
	assert.Equal(t, "attempt 2 ok", spy.body.String(), "client body: want only the second attempt")
	assert.True(t, spy.header.Get("X-Attempt") == "2" && spy.header.Get("X-Outer") == "",
		"client header = %v, want X-Attempt 2 and X-Outer deleted by the handler", spy.header)
}

func TestRecorderHeldResponseCommits(t *testing.T) {
	tests := []struct {
		name         string
		write        func(w http.ResponseWriter)
		wantBody     string
		wantFlushes  int
		wantOverflow bool
	}{
		{
			name: "too large to hold",
			write: func(w http.ResponseWriter) {
				_, _ = w.Write([]byte("abc"))
				_, _ = w.Write([]byte("defgh"))
			},
			wantBody:     "abcdefgh",
			wantOverflow: true,
		},
		{
			name: "flushed",
			write: func(w http.ResponseWriter) {
				_, _ = w.Write([]byte("ab"))
				w.(http.Flusher).Flush()
				_, _ = w.Write([]byte("cd"))
			},
			wantBody:    "abcd",
			wantFlushes: 1,
		},
		{
			name: "flushed through ResponseController",
			write: func(w http.ResponseWriter) {
				_, _ = w.Write([]byte("ab"))
				_ = http.NewResponseController(w).Flush()
			},
			wantBody:    "ab",
			wantFlushes: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var pool recorderPool
			spy := newSpy()
			rec := pool.get(spy, recorderConfig{hold: holdStatus(http.StatusServiceUnavailable), limit: 5})
			rec.WriteHeader(http.StatusServiceUnavailable)
			tc.write(rec)

			assert.True(t, !rec.Held() && rec.Committed() && rec.Overflowed() == tc.wantOverflow,
				"Held, Committed, Overflowed = %t, %t, %t; want false, true, %t",
				rec.Held(), rec.Committed(), rec.Overflowed(), tc.wantOverflow)
			assert.Equal(t, []int{503}, spy.statuses, "client statuses")
			assert.Equal(t, tc.wantBody, spy.body.String(), "client body")
			assert.Equal(t, tc.wantFlushes, spy.flushes, "client flushes")
		})
	}
}

func TestRecorderCapture(t *testing.T) {
	var pool recorderPool
	spy := newSpy()
	rec := pool.get(spy, recorderConfig{capture: true, limit: 5})

	for _, s := range []string{"abc", "de"} {
		_, _ = rec.Write([]byte(s))
	}
	assert.Equal(t, "abcde", string(rec.Body()), "Body")
	assert.False(t, rec.Overflowed(), "Overflowed() within the limit")
	_, _ = io.WriteString(rec, "f")
	_, _ = rec.ReadFrom(strings.NewReader("gh"))
	assert.True(t, rec.Overflowed(), "Overflowed() = false past the limit")
	assert.Equal(t, "abcdefgh", spy.body.String(), "client body: want all of it: streaming goes on past the limit")
	assert.True(t, spy.readFroms == 0 && spy.writeStrings == 0,
		"capture bypassed: client ReadFrom %d, WriteString %d calls, want 0", spy.readFroms, spy.writeStrings)
	assert.EqualValues(t, 8, rec.Written(), "Written()")
}

func TestRecorderCaptureWithHold(t *testing.T) {
	var pool recorderPool
	spy := newSpy()
	rec := pool.get(spy, recorderConfig{hold: holdStatus(http.StatusInternalServerError), capture: true, limit: 10})
	rec.Header().Set("Content-Type", "text/plain")
	_, _ = rec.Write([]byte("fresh"))
	rec.finish()

	require.True(t, !rec.Held() && rec.Status() == 200, "Held, Status = %t, %d; want false, 200", rec.Held(), rec.Status())
	assert.Equal(t, "fresh", string(rec.Body()), "captured Body()")
	assert.Equal(t, "text/plain", rec.ResponseHeader().Get("Content-Type"), "ResponseHeader() Content-Type")
	assert.Equal(t, "fresh", spy.body.String(), "client body")
}

func TestRecorderDelegates(t *testing.T) {
	var pool recorderPool
	spy := newSpy()
	rec := pool.get(spy, recorderConfig{hold: holdStatus(http.StatusServiceUnavailable)})

	_, _ = io.WriteString(rec, "a")
	_, _ = rec.ReadFrom(strings.NewReader("bc"))
	assert.Equal(t, 1, spy.writeStrings, "client WriteString calls")
	assert.Equal(t, 1, spy.readFroms, "client ReadFrom calls")
	assert.Equal(t, "abc", spy.body.String(), "client body")
	assert.EqualValues(t, 3, rec.Written(), "Written")
	assert.True(t, rec.Unwrap() == http.ResponseWriter(spy), "Unwrap() is not the client's writer")
}

func TestRecorderWithoutOptionalInterfaces(t *testing.T) {
	var pool recorderPool
	w := plainWriter{httptest.NewRecorder()}
	rec := pool.get(w, recorderConfig{})

	assert.ErrorIs(t, rec.FlushError(), http.ErrNotSupported, "FlushError()")
	_, _, err := rec.Hijack()
	assert.ErrorIs(t, err, http.ErrNotSupported, "Hijack() error")
	assert.False(t, rec.Hijacked(), "Hijacked() after a failed hijack")
	n, err := rec.ReadFrom(strings.NewReader("xyz"))
	assert.NoError(t, err, "ReadFrom")
	assert.EqualValues(t, 3, n, "ReadFrom")
}

func TestRecorderFinishHandsOverHeaders(t *testing.T) {
	var pool recorderPool
	spy := newSpy()
	rec := pool.get(spy, recorderConfig{hold: holdStatus(http.StatusServiceUnavailable)})
	rec.Header().Set("X-Only-Header", "1")
	rec.finish()

	assert.Equal(t, "1", spy.header.Get("X-Only-Header"), "client header X-Only-Header after finish")
	assert.True(t, len(spy.statuses) == 0 && rec.Status() == 0, "finish wrote a status: client %v, Status %d; want none", spy.statuses, rec.Status())
}

func TestRecorderInformationalInHoldMode(t *testing.T) {
	var pool recorderPool
	spy := newSpy()
	spy.header.Set("X-Outer", "1")
	rec := pool.get(spy, recorderConfig{hold: holdStatus(http.StatusServiceUnavailable)})

	rec.Header().Set("Link", "</a.css>; rel=preload")
	rec.WriteHeader(http.StatusEarlyHints)
	require.Equal(t, []int{103}, spy.statuses, "client statuses")
	assert.NotEmpty(t, spy.sentHeaders[0].Get("Link"), "103 went out without the handler's Link header")
	assert.True(t, spy.header.Get("Link") == "" && spy.header.Get("X-Outer") == "1", "client map after the 103 = %v, want it restored", spy.header)
	assert.True(t, !rec.Committed() && rec.Status() == 0, "after 103 Committed, Status = %t, %d; want false, 0", rec.Committed(), rec.Status())
	rec.WriteHeader(http.StatusServiceUnavailable)
	assert.True(t, rec.Held(), "final 503 after a 103 not held")
}

// serveWith runs handler behind a real server, with its ResponseWriter
// wrapped in a recorder made by cfg; recs receives the recorder once the
// handler returned.
func serveWith(t *testing.T, cfg recorderConfig, handler http.HandlerFunc) (*httptest.Server, chan *recorder) {
	t.Helper()
	recs := make(chan *recorder, 1)
	var pool recorderPool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := pool.get(w, cfg)
		handler(rec, r)
		rec.finish()
		recs <- rec
	}))
	t.Cleanup(srv.Close)
	return srv, recs
}

func TestRecorderHijackOnServer(t *testing.T) {
	srv, recs := serveWith(t, recorderConfig{hold: holdStatus(http.StatusServiceUnavailable)},
		func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Lost", "1")
			conn, brw, err := http.NewResponseController(w).Hijack()
			if !assert.NoError(t, err, "Hijack") {
				return
			}
			defer conn.Close()
			_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
			_ = brw.Flush()
		})
	resp, err := srv.Client().Get(srv.URL)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "hijacked", string(body), "body")
	rec := <-recs
	assert.True(t, rec.Hijacked() && rec.Committed(), "Hijacked, Committed = %t, %t; want true, true", rec.Hijacked(), rec.Committed())
}

func TestRecorderFlushOnServer(t *testing.T) {
	proceed := make(chan struct{})
	srv, recs := serveWith(t, recorderConfig{hold: holdStatus(http.StatusServiceUnavailable)},
		func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "first\n")
			assert.NoError(t, http.NewResponseController(w).Flush(), "Flush")
			<-proceed // the client has read the first line
			_, _ = io.WriteString(w, "second\n")
		})
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		close(proceed)
		require.NoError(t, err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	close(proceed)
	require.NoError(t, err, "first line: want it flushed before the handler went on")
	require.Equal(t, "first\n", line, "first line: want it flushed before the handler went on")
	rest, _ := io.ReadAll(br)
	assert.Equal(t, "second\n", string(rest), "rest")
	assert.EqualValues(t, 13, (<-recs).Written(), "Written()")
}

func TestRecorderReadFromAndDeadlineOnServer(t *testing.T) {
	big := strings.Repeat("0123456789", 10000)
	srv, recs := serveWith(t, recorderConfig{}, func(w http.ResponseWriter, _ *http.Request) {
		// Reaches the connection through Unwrap.
		assert.NoError(t, http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Minute)), "SetWriteDeadline")
		_, _ = w.(io.ReaderFrom).ReadFrom(strings.NewReader(big))
	})
	resp, err := srv.Client().Get(srv.URL)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.True(t, string(body) == big, "body is %d bytes, want %d", len(body), len(big))
	rec := <-recs
	assert.True(t, rec.Written() == int64(len(big)) && rec.Status() == 200, "Written, Status = %d, %d; want %d, 200", rec.Written(), rec.Status(), len(big))
}

func TestRecorderEarlyHintsOnServer(t *testing.T) {
	srv, recs := serveWith(t, recorderConfig{hold: holdStatus(http.StatusServiceUnavailable)},
		func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			_, _ = io.WriteString(w, "final")
		})
	var hints []int
	var hintLink string
	trace := &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			hints = append(hints, code)
			hintLink = h.Get("Link")
			return nil
		},
	}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, srv.URL, nil)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.True(t, slices.Equal(hints, []int{103}) && hintLink != "", "1xx responses %v with Link %q; want one 103 with the Link", hints, hintLink)
	assert.Equal(t, 200, resp.StatusCode, "final response status")
	assert.Equal(t, "final", string(body), "final response body")
	assert.Equal(t, 200, (<-recs).Status(), "Status()")
}
