package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Sizes of the test protocol: each request is reqSize bytes, answered by
// one write of replySize bytes.
const (
	reqSize   = 8
	replySize = 4096
)

// upstream is a tiny server for the test protocol. It records how many
// requests it answered.
type upstream struct {
	ln      net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
	answers int
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	u := &upstream{ln: ln}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			u.conns = append(u.conns, c)
			u.mu.Unlock()
			u.wg.Add(1)
			go u.serve(c)
		}
	}()
	t.Cleanup(u.close)
	return u
}

func (u *upstream) serve(c net.Conn) {
	defer u.wg.Done()
	req := make([]byte, reqSize)
	for {
		if _, err := io.ReadFull(c, req); err != nil {
			return
		}
		if _, err := c.Write(reply(req)); err != nil {
			return
		}
		u.mu.Lock()
		u.answers++
		u.mu.Unlock()
	}
}

func (u *upstream) answered() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.answers
}

func (u *upstream) close() {
	_ = u.ln.Close()
	u.mu.Lock()
	for _, c := range u.conns {
		_ = c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

// reply is the answer to req: req repeated to replySize bytes.
func reply(req []byte) []byte {
	return bytes.Repeat(req, replySize/len(req))
}

func newProxy(t *testing.T, addr string, opts Options) *Proxy {
	t.Helper()
	p, err := New(addr, opts)
	require.NoError(t, err, "New(%q, %+v)", addr, opts)
	t.Cleanup(func() {
		assert.NoError(t, p.Close(), "Close")
	})
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 2*time.Second)
	require.NoError(t, err, "dial proxy")
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// ask sends one request and reads until the whole reply, an error or a
// deadline of wait; it returns what arrived and the read error, if any.
func ask(t *testing.T, c net.Conn, req string, wait time.Duration) ([]byte, error) {
	t.Helper()
	require.Len(t, req, reqSize, "request %q", req)
	if _, err := c.Write([]byte(req)); err != nil {
		return nil, err
	}
	require.NoError(t, c.SetReadDeadline(time.Now().Add(wait)))
	got := make([]byte, replySize)
	n, err := io.ReadFull(c, got)
	return got[:n], err
}

func TestPass(t *testing.T) {
	u := startUpstream(t)
	p := newProxy(t, u.ln.Addr().String(), Options{})
	c := dial(t, p)
	for _, req := range []string{"request1", "request2"} {
		got, err := ask(t, c, req, 5*time.Second)
		require.NoError(t, err, "ask %q", req)
		require.True(t, bytes.Equal(got, reply([]byte(req))),
			"reply to %q: got %d bytes starting %q, want %d bytes of the request repeated", req, len(got), got[:min(16, len(got))], replySize)
	}
	s := p.Stats()
	assert.Equal(t, int64(1), s.Accepted, "Stats = %+v", s)
	assert.Equal(t, int64(1), s.Active, "Stats = %+v", s)
}

func TestBlackholeNewConnection(t *testing.T) {
	u := startUpstream(t)
	p := newProxy(t, u.ln.Addr().String(), Options{Mode: Blackhole})
	c := dial(t, p)
	got, err := ask(t, c, "request1", 100*time.Millisecond)
	require.True(t, isTimeout(err), "blackholed ask: got %d bytes, err %v; want nothing and a timeout", len(got), err)
	// It stays silent after the mode changes: it was never connected.
	p.SetMode(Pass)
	got, err = ask(t, c, "request2", 100*time.Millisecond)
	require.True(t, isTimeout(err), "ask after Pass on a connection accepted blackholed: got %d bytes, err %v; want a timeout", len(got), err)
	assert.Equal(t, 0, u.answered(), "upstream answered requests")
	assert.Equal(t, int64(2*reqSize), p.Stats().Dropped, "Stats.Dropped")
	// A new connection passes.
	c2 := dial(t, p)
	_, err = ask(t, c2, "request3", 5*time.Second)
	require.NoError(t, err, "ask on a new connection after Pass")
}

func TestBlackholeOpenConnection(t *testing.T) {
	u := startUpstream(t)
	p := newProxy(t, u.ln.Addr().String(), Options{})
	c := dial(t, p)
	_, err := ask(t, c, "request1", 5*time.Second)
	require.NoError(t, err, "ask before the fault")
	p.SetMode(Blackhole)
	got, err := ask(t, c, "request2", 100*time.Millisecond)
	require.True(t, isTimeout(err), "ask while blackholed: got %d bytes, err %v; want a timeout", len(got), err)
	p.SetMode(Pass)
	got, err = ask(t, c, "request3", 5*time.Second)
	require.NoError(t, err, "ask after the fault cleared")
	assert.True(t, bytes.Equal(got, reply([]byte("request3"))), "reply after the fault cleared starts %q, want the reply to request3", got[:16])
}

func TestCut(t *testing.T) {
	tests := []struct {
		name     string
		mode     Mode
		cutAfter int
		wantErr  func(error) bool
		wantLen  func(n int) bool
		stat     func(Stats) int64
	}{
		{
			name: "truncate half", mode: Truncate,
			wantErr: func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) },
			wantLen: func(n int) bool { return n > 0 && n < replySize },
			stat:    func(s Stats) int64 { return s.Truncations },
		},
		{
			name: "truncate after 10", mode: Truncate, cutAfter: 10,
			wantErr: func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) },
			wantLen: func(n int) bool { return n > 0 && n <= 10 },
			stat:    func(s Stats) int64 { return s.Truncations },
		},
		{
			name: "truncate after more than the reply", mode: Truncate, cutAfter: 10 * replySize,
			wantErr: func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) },
			wantLen: func(n int) bool { return n > 0 && n < replySize },
			stat:    func(s Stats) int64 { return s.Truncations },
		},
		{
			name: "reset", mode: Reset,
			wantErr: func(err error) bool { return errors.Is(err, syscall.ECONNRESET) },
			wantLen: func(n int) bool { return n < replySize },
			stat:    func(s Stats) int64 { return s.Resets },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := startUpstream(t)
			p := newProxy(t, u.ln.Addr().String(), Options{CutAfter: tc.cutAfter})
			c := dial(t, p)
			_, err := ask(t, c, "request1", 5*time.Second)
			require.NoError(t, err, "ask before the fault")
			p.SetMode(tc.mode)
			got, err := ask(t, c, "request2", 5*time.Second)
			require.True(t, tc.wantErr(err) && tc.wantLen(len(got)),
				"ask in mode %v (CutAfter %d): got %d bytes, err %v", tc.mode, tc.cutAfter, len(got), err)
			assert.Equal(t, int64(1), tc.stat(p.Stats()), "cut counter (Stats %+v)", p.Stats())
			// New connections are cut too, and pass again after Pass.
			c2 := dial(t, p)
			_, err = ask(t, c2, "request3", 5*time.Second)
			require.Error(t, err, "ask on a new connection in mode %v: whole reply, want a cut", tc.mode)
			p.SetMode(Pass)
			c3 := dial(t, p)
			_, err = ask(t, c3, "request4", 5*time.Second)
			require.NoError(t, err, "ask after Pass")
		})
	}
}

func TestUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	_ = ln.Close()
	p := newProxy(t, addr, Options{})
	c := dial(t, p)
	got, err := ask(t, c, "request1", 5*time.Second)
	require.True(t, err != nil && !isTimeout(err), "ask with upstream down: got %d bytes, err %v; want the connection closed", len(got), err)
	assert.Equal(t, int64(1), p.Stats().DialErrors, "Stats.DialErrors")
}

func TestCloseConns(t *testing.T) {
	u := startUpstream(t)
	p := newProxy(t, u.ln.Addr().String(), Options{})
	c := dial(t, p)
	_, err := ask(t, c, "request1", 5*time.Second)
	require.NoError(t, err)
	p.CloseConns()
	got, err := ask(t, c, "request2", 5*time.Second)
	require.True(t, err != nil && !isTimeout(err), "ask after CloseConns: got %d bytes, err %v; want the connection closed", len(got), err)
	c2 := dial(t, p)
	_, err = ask(t, c2, "request3", 5*time.Second)
	require.NoError(t, err, "ask on a new connection after CloseConns")
}

// TestClose checks that Close ends open connections in every state and
// returns only when they are gone (goleak in TestMain checks the rest).
func TestClose(t *testing.T) {
	u := startUpstream(t)
	p, err := New(u.ln.Addr().String(), Options{Mode: Truncate})
	require.NoError(t, err)
	passing := dial(t, p)
	truncated := dial(t, p)
	_, _ = ask(t, truncated, "request1", 5*time.Second) // cut; the proxy still reads it
	p.SetMode(Blackhole)
	blackholed := dial(t, p)
	_, err = blackholed.Write([]byte("request2"))
	require.NoError(t, err)
	waitFor(t, "the blackholed request dropped", func() bool { return p.Stats().Dropped >= reqSize })
	p.SetMode(Pass)
	_, err = ask(t, passing, "request3", 5*time.Second)
	require.NoError(t, err, "ask before Close")
	require.NoError(t, p.Close(), "Close")
	require.NoError(t, p.Close(), "second Close")
	assert.Equal(t, int64(0), p.Stats().Active, "Stats.Active after Close")
	for name, c := range map[string]net.Conn{"passing": passing, "blackholed": blackholed} {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		assert.True(t, err != nil && !isTimeout(err), "read on %s connection after Close: err %v, want it closed", name, err)
	}
	_, err = net.DialTimeout("tcp", p.Addr(), time.Second)
	assert.Error(t, err, "dial after Close succeeded, want refused")
}

func TestNewInvalid(t *testing.T) {
	tests := []struct {
		name     string
		upstream string
		opts     Options
	}{
		{"empty upstream", "", Options{}},
		{"negative CutAfter", "127.0.0.1:1", Options{CutAfter: -1}},
		{"unknown mode", "127.0.0.1:1", Options{Mode: Truncate + 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.upstream, tc.opts)
			if err == nil {
				_ = p.Close()
			}
			require.Error(t, err, "New(%q, %+v)", tc.upstream, tc.opts)
		})
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[Mode]string{Pass: "pass", Blackhole: "blackhole", Reset: "reset", Truncate: "truncate", 9: "Mode(9)"} {
		assert.Equal(t, want, m.String(), "Mode(%d).String()", int32(m))
	}
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			require.Failf(t, "timed out", "waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRate(t *testing.T) {
	up := startUpstream(t)
	const rate = 8 << 10
	p := newProxy(t, up.ln.Addr().String(), Options{Rate: rate})
	c := dial(t, p)
	start := time.Now()
	got, err := ask(t, c, "12345678", 10*time.Second)
	require.NoError(t, err)
	// A 4 KiB reply at 8 KiB/s: half a second.
	d := time.Since(start)
	assert.Len(t, got, replySize, "%d bytes at %d B/s in %v, want %d in about 500ms", len(got), rate, d, replySize)
	assert.GreaterOrEqual(t, d, 400*time.Millisecond, "%d bytes at %d B/s in %v, want %d in about 500ms", len(got), rate, d, replySize)
}
