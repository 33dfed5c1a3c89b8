package middleware

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"

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
	if spy.header.Get("X-A") != "1" {
		t.Errorf("pass-through Header() is not the client's map: client has %v", spy.header)
	}
	rec.WriteHeader(http.StatusCreated)
	rec.WriteHeader(http.StatusInternalServerError) // ignored
	if _, err := rec.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	rec.finish()

	if got, want := spy.statuses, []int{http.StatusCreated}; !slices.Equal(got, want) {
		t.Errorf("client got statuses %v, want %v", got, want)
	}
	if got := spy.body.String(); got != "hi" {
		t.Errorf("client body = %q, want %q", got, "hi")
	}
	if rec.Status() != http.StatusCreated || !rec.Committed() || rec.Held() || rec.Written() != 2 {
		t.Errorf("Status, Committed, Held, Written = %d, %t, %t, %d; want 201, true, false, 2",
			rec.Status(), rec.Committed(), rec.Held(), rec.Written())
	}
	if len(rec.Body()) != 0 {
		t.Errorf("Body() = %q without capture, want empty", rec.Body())
	}
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
				if rec.Status() != tc.wantStatus || rec.Committed() != tc.wantCommit {
					t.Errorf("Status, Committed = %d, %t; want %d, %t", rec.Status(), rec.Committed(), tc.wantStatus, tc.wantCommit)
				}
				if got := spy.finalStatus(); got != tc.wantStatus {
					t.Errorf("client's final status = %d, want %d", got, tc.wantStatus)
				}
			})
		}
	}
}

func TestRecorderHoldKeepsFailedResponseBack(t *testing.T) {
	var pool recorderPool
	spy := newSpy()
	spy.header.Set("X-Outer", "set before the handler")
	rec := pool.get(spy, recorderConfig{hold: holdStatus(http.StatusServiceUnavailable)})

	if got := rec.Header().Get("X-Outer"); got != "set before the handler" {
		t.Errorf("handler sees X-Outer %q, want the client's value", got)
	}
	rec.Header().Set("X-Failed", "1")
	rec.Header().Add("X-Outer", "added by the handler")
	rec.WriteHeader(http.StatusServiceUnavailable)
	if _, err := io.WriteString(rec, "partial "); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.ReadFrom(strings.NewReader("body")); err != nil {
		t.Fatal(err)
	}

	if !rec.Held() || rec.Committed() {
		t.Fatalf("Held, Committed = %t, %t; want true, false", rec.Held(), rec.Committed())
	}
	if len(spy.statuses) != 0 || spy.body.Len() != 0 || spy.readFroms != 0 || spy.writeStrings != 0 {
		t.Errorf("held response reached the client: statuses %v, body %q", spy.statuses, spy.body.String())
	}
	if got := spy.header; len(got) != 1 || len(got["X-Outer"]) != 1 {
		t.Errorf("held headers leaked into the client's map: %v", got)
	}
	if got := string(rec.Body()); got != "partial body" {
		t.Errorf("held Body() = %q, want %q", got, "partial body")
	}
	if got := rec.ResponseHeader().Get("X-Failed"); got != "1" {
		t.Errorf("ResponseHeader() X-Failed = %q, want 1", got)
	}

	if err := rec.sendHeld(); err != nil {
		t.Fatal(err)
	}
	if !rec.Committed() || rec.Held() {
		t.Errorf("after sendHeld Held, Committed = %t, %t; want false, true", rec.Held(), rec.Committed())
	}
	if got := spy.statuses; !slices.Equal(got, []int{503}) {
		t.Errorf("client statuses = %v, want [503]", got)
	}
	if got := spy.sentHeaders[0]; got.Get("X-Failed") != "1" || len(got["X-Outer"]) != 2 {
		t.Errorf("client headers = %v, want X-Failed and both X-Outer values", got)
	}
	if got := spy.body.String(); got != "partial body" {
		t.Errorf("client body = %q, want %q", got, "partial body")
	}
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
	if rec.Status() != 0 || rec.Held() || len(rec.Body()) != 0 || rec.Written() != 0 {
		t.Fatalf("after reset Status %d Held %t Body %q Written %d; want a fresh recorder",
			rec.Status(), rec.Held(), rec.Body(), rec.Written())
	}
	if got := rec.Header(); got.Get("X-Attempt") != "" || got.Get("X-Outer") != "1" {
		t.Errorf("after reset the handler sees %v, want only the client's X-Outer", got)
	}
	rec.Header().Set("X-Attempt", "2")
	rec.Header().Del("X-Outer")
	_, _ = rec.Write([]byte("attempt 2 ok"))
	rec.finish()

	if got := spy.statuses; !slices.Equal(got, []int{200}) {
		t.Errorf("client statuses = %v, want [200]", got)
	}
	if got := spy.body.String(); got != "attempt 2 ok" {
		t.Errorf("client body = %q, want only the second attempt", got)
	}
	if got := spy.header; got.Get("X-Attempt") != "2" || got.Get("X-Outer") != "" {
		t.Errorf("client header = %v, want X-Attempt 2 and X-Outer deleted by the handler", got)
	}
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

			if rec.Held() || !rec.Committed() || rec.Overflowed() != tc.wantOverflow {
				t.Errorf("Held, Committed, Overflowed = %t, %t, %t; want false, true, %t",
					rec.Held(), rec.Committed(), rec.Overflowed(), tc.wantOverflow)
			}
			if got := spy.statuses; !slices.Equal(got, []int{503}) {
				t.Errorf("client statuses = %v, want [503]", got)
			}
			if got := spy.body.String(); got != tc.wantBody {
				t.Errorf("client body = %q, want %q", got, tc.wantBody)
			}
			if spy.flushes != tc.wantFlushes {
				t.Errorf("client flushes = %d, want %d", spy.flushes, tc.wantFlushes)
			}
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
	if got := string(rec.Body()); got != "abcde" || rec.Overflowed() {
		t.Errorf("Body, Overflowed = %q, %t; want %q, false", got, rec.Overflowed(), "abcde")
	}
	_, _ = io.WriteString(rec, "f")
	_, _ = rec.ReadFrom(strings.NewReader("gh"))
	if !rec.Overflowed() {
		t.Error("Overflowed() = false past the limit")
	}
	if got := spy.body.String(); got != "abcdefgh" {
		t.Errorf("client body = %q, want all of it: streaming goes on past the limit", got)
	}
	if spy.readFroms != 0 || spy.writeStrings != 0 {
		t.Errorf("capture bypassed: client ReadFrom %d, WriteString %d calls, want 0", spy.readFroms, spy.writeStrings)
	}
	if rec.Written() != 8 {
		t.Errorf("Written() = %d, want 8", rec.Written())
	}
}

func TestRecorderCaptureWithHold(t *testing.T) {
	var pool recorderPool
	spy := newSpy()
	rec := pool.get(spy, recorderConfig{hold: holdStatus(http.StatusInternalServerError), capture: true, limit: 10})
	rec.Header().Set("Content-Type", "text/plain")
	_, _ = rec.Write([]byte("fresh"))
	rec.finish()

	if rec.Held() || rec.Status() != 200 {
		t.Fatalf("Held, Status = %t, %d; want false, 200", rec.Held(), rec.Status())
	}
	if got := string(rec.Body()); got != "fresh" {
		t.Errorf("captured Body() = %q, want %q", got, "fresh")
	}
	if got := rec.ResponseHeader().Get("Content-Type"); got != "text/plain" {
		t.Errorf("ResponseHeader() Content-Type = %q, want text/plain", got)
	}
	if got := spy.body.String(); got != "fresh" {
		t.Errorf("client body = %q, want %q", got, "fresh")
	}
}

func TestRecorderDelegates(t *testing.T) {
	var pool recorderPool
	spy := newSpy()
	rec := pool.get(spy, recorderConfig{hold: holdStatus(http.StatusServiceUnavailable)})

	_, _ = io.WriteString(rec, "a")
	_, _ = rec.ReadFrom(strings.NewReader("bc"))
	if spy.writeStrings != 1 || spy.readFroms != 1 {
		t.Errorf("client WriteString, ReadFrom calls = %d, %d; want 1, 1", spy.writeStrings, spy.readFroms)
	}
	if got := spy.body.String(); got != "abc" || rec.Written() != 3 {
		t.Errorf("client body %q, Written %d; want %q, 3", got, rec.Written(), "abc")
	}
	if rec.Unwrap() != http.ResponseWriter(spy) {
		t.Error("Unwrap() is not the client's writer")
	}
}

func TestRecorderWithoutOptionalInterfaces(t *testing.T) {
	var pool recorderPool
	w := plainWriter{httptest.NewRecorder()}
	rec := pool.get(w, recorderConfig{})

	if err := rec.FlushError(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("FlushError() = %v, want http.ErrNotSupported", err)
	}
	if _, _, err := rec.Hijack(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("Hijack() error = %v, want http.ErrNotSupported", err)
	}
	if rec.Hijacked() {
		t.Error("Hijacked() after a failed hijack")
	}
	if n, err := rec.ReadFrom(strings.NewReader("xyz")); n != 3 || err != nil {
		t.Errorf("ReadFrom = %d, %v; want 3, nil", n, err)
	}
}

func TestRecorderFinishHandsOverHeaders(t *testing.T) {
	var pool recorderPool
	spy := newSpy()
	rec := pool.get(spy, recorderConfig{hold: holdStatus(http.StatusServiceUnavailable)})
	rec.Header().Set("X-Only-Header", "1")
	rec.finish()

	if got := spy.header.Get("X-Only-Header"); got != "1" {
		t.Errorf("client header X-Only-Header = %q after finish, want 1", got)
	}
	if len(spy.statuses) != 0 || rec.Status() != 0 {
		t.Errorf("finish wrote a status: client %v, Status %d; want none", spy.statuses, rec.Status())
	}
}

func TestRecorderInformationalInHoldMode(t *testing.T) {
	var pool recorderPool
	spy := newSpy()
	spy.header.Set("X-Outer", "1")
	rec := pool.get(spy, recorderConfig{hold: holdStatus(http.StatusServiceUnavailable)})

	rec.Header().Set("Link", "</a.css>; rel=preload")
	rec.WriteHeader(http.StatusEarlyHints)
	if got := spy.statuses; !slices.Equal(got, []int{103}) {
		t.Fatalf("client statuses = %v, want [103]", got)
	}
	if got := spy.sentHeaders[0].Get("Link"); got == "" {
		t.Error("103 went out without the handler's Link header")
	}
	if got := spy.header; got.Get("Link") != "" || got.Get("X-Outer") != "1" {
		t.Errorf("client map after the 103 = %v, want it restored", got)
	}
	if rec.Committed() || rec.Status() != 0 {
		t.Errorf("after 103 Committed, Status = %t, %d; want false, 0", rec.Committed(), rec.Status())
	}
	rec.WriteHeader(http.StatusServiceUnavailable)
	if !rec.Held() {
		t.Error("final 503 after a 103 not held")
	}
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
			if err != nil {
				t.Errorf("Hijack: %v", err)
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
	if string(body) != "hijacked" {
		t.Errorf("body = %q, want %q", body, "hijacked")
	}
	rec := <-recs
	if !rec.Hijacked() || !rec.Committed() {
		t.Errorf("Hijacked, Committed = %t, %t; want true, true", rec.Hijacked(), rec.Committed())
	}
}

func TestRecorderFlushOnServer(t *testing.T) {
	proceed := make(chan struct{})
	srv, recs := serveWith(t, recorderConfig{hold: holdStatus(http.StatusServiceUnavailable)},
		func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "first\n")
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("Flush: %v", err)
			}
			<-proceed // the client has read the first line
			_, _ = io.WriteString(w, "second\n")
		})
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		close(proceed)
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	close(proceed)
	if err != nil || line != "first\n" {
		t.Fatalf("first line = %q, %v; want it flushed before the handler went on", line, err)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "second\n" {
		t.Errorf("rest = %q, want %q", rest, "second\n")
	}
	if rec := <-recs; rec.Written() != 13 {
		t.Errorf("Written() = %d, want 13", rec.Written())
	}
}

func TestRecorderReadFromAndDeadlineOnServer(t *testing.T) {
	big := strings.Repeat("0123456789", 10000)
	srv, recs := serveWith(t, recorderConfig{}, func(w http.ResponseWriter, _ *http.Request) {
		// Reaches the connection through Unwrap.
		if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("SetWriteDeadline: %v", err)
		}
		_, _ = w.(io.ReaderFrom).ReadFrom(strings.NewReader(big))
	})
	resp, err := srv.Client().Get(srv.URL)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != big {
		t.Errorf("body is %d bytes, want %d", len(body), len(big))
	}
	if rec := <-recs; rec.Written() != int64(len(big)) || rec.Status() != 200 {
		t.Errorf("Written, Status = %d, %d; want %d, 200", rec.Written(), rec.Status(), len(big))
	}
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
	if !slices.Equal(hints, []int{103}) || hintLink == "" {
		t.Errorf("1xx responses %v with Link %q; want one 103 with the Link", hints, hintLink)
	}
	if resp.StatusCode != 200 || string(body) != "final" {
		t.Errorf("final response %d %q, want 200 %q", resp.StatusCode, body, "final")
	}
	if rec := <-recs; rec.Status() != 200 {
		t.Errorf("Status() = %d, want 200", rec.Status())
	}
}
