//go:build unix

package redisproc_test

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/steadfast-go/steadfast/internal/redisproc"
)

// TestMain checks that no test leaves a goroutine behind (each process
// has one, waiting for it to exit).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// requireEnv turns a missing redis-server from a skip into a failure, as
// in internal/redistest.
const requireEnv = "STEADFAST_REQUIRE_REDIS"

// waitLimit bounds every wait in these tests; none is expected to come
// near it.
const waitLimit = 10 * time.Second

func binary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(requireEnv) == "1" {
			require.Failf(t, "redis-server not found", "%s=1: %v", requireEnv, err)
		}
		t.Skipf("redis-server not found (set %s=1 to fail instead): %v", requireEnv, err)
	}
	return bin
}

func start(t *testing.T, opts redisproc.Options) *redisproc.Server {
	t.Helper()
	opts.Binary = binary(t)
	s, err := redisproc.Start(t.Context(), opts)
	require.NoError(t, err, "Start")
	t.Cleanup(func() {
		assert.NoError(t, s.Close(), "Close")
	})
	return s
}

func command(t *testing.T, s *redisproc.Server, args ...string) string {
	t.Helper()
	got, err := s.Command(args...)
	require.NoError(t, err, "Command(%q)", args)
	return got
}

// rawPing sends PING without AUTH and returns the reply or the error's text.
func rawPing(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	require.NoError(t, err, "dial %s", addr)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	_, err = c.Write([]byte("*1\r\n$4\r\nPING\r\n"))
	require.NoError(t, err, "write PING")
	got, err := redisproc.ReadReply(bufio.NewReader(c))
	if err != nil {
		return err.Error()
	}
	return got
}

func TestCommandReplies(t *testing.T) {
	s := start(t, redisproc.Options{Password: "s3cret", Args: []string{"--maxclients", "100"}})
	got := rawPing(t, s.Addr())
	require.True(t, strings.HasPrefix(got, "NOAUTH"), "PING without AUTH = %q, want NOAUTH: the password is not required", got)
	command(t, s, "SET", "k", "a\r\nb")
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr string // a substring of the error; empty for none
		wantNil bool
	}{
		{name: "simple string", args: []string{"PING"}, want: "PONG"},
		{name: "bulk string", args: []string{"GET", "k"}, want: "a\r\nb"},
		{name: "integer", args: []string{"STRLEN", "k"}, want: "4"},
		{name: "array from extra args", args: []string{"CONFIG", "GET", "maxclients"}, want: "maxclients\n100"},
		{name: "no persistence", args: []string{"CONFIG", "GET", "save"}, want: "save\n"},
		{name: "debug command enabled", args: []string{"DEBUG", "SLEEP", "0"}, want: "OK"},
		{name: "nil", args: []string{"GET", "missing"}, wantNil: true},
		{name: "error reply", args: []string{"NOSUCHCOMMAND"}, wantErr: "unknown command"},
		{name: "no command", args: nil, wantErr: "empty command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Command(tc.args...)
			switch {
			case tc.wantNil:
				require.ErrorIs(t, err, redisproc.ErrNil, "Command(%q) = %q", tc.args, got)
			case tc.wantErr != "":
				require.ErrorContains(t, err, tc.wantErr, "Command(%q) = %q", tc.args, got)
			default:
				assert.NoError(t, err, "Command(%q) = %q", tc.args, got)
				assert.Equal(t, tc.want, got, "Command(%q)", tc.args)
			}
		})
	}
}

func TestURL(t *testing.T) {
	s := start(t, redisproc.Options{Password: "p@ss"})
	assert.Equal(t, "redis://:p%40ss@"+s.Addr()+"/0", s.URL(), "URL()")
	assert.NotContains(t, s.String(), "p%40ss", "String(), want the address without the password")
	assert.Contains(t, s.String(), s.Addr(), "String(), want the address without the password")
	command(t, s, "CONFIG", "SET", "requirepass", "")
	s.SetPassword("")
	assert.Equal(t, "redis://"+s.Addr()+"/0", s.URL(), "after SetPassword(\"\"): URL()")
}

func TestPauseResume(t *testing.T) {
	s := start(t, redisproc.Options{})
	pid := s.PID()
	require.NoError(t, s.Pause(), "Pause")
	got, err := s.Command("PING")
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "PING to a paused server = %q; want a deadline error", got)
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	_, err = s.WaitAccepting(ctx)
	require.NoError(t, err, "WaitAccepting on a paused server, want it accepting")
	require.NoError(t, s.Resume(), "Resume")
	assert.Equal(t, "PONG", command(t, s, "PING"), "PING after Resume")
	assert.Equal(t, pid, s.PID(), "PID after Pause and Resume (the same process)")
}

func TestKillRestart(t *testing.T) {
	s := start(t, redisproc.Options{Password: "one"})
	port, pid := s.Port(), s.PID()
	command(t, s, "SET", "k", "v")

	s.Kill()
	assert.Zero(t, s.PID(), "PID after Kill")
	_, err := s.Command("PING")
	assert.ErrorIs(t, err, syscall.ECONNREFUSED, "PING after Kill, want connection refused")
	assert.ErrorIs(t, s.Pause(), redisproc.ErrNotRunning, "Pause after Kill")
	short, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err = s.WaitAccepting(short)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "WaitAccepting with nothing listening, want the context's deadline")
	s.Kill() // killing nothing is fine

	require.NoError(t, s.Restart(t.Context()), "Restart")
	newPID := s.PID()
	assert.True(t, newPID != 0 && newPID != pid, "PID after Restart = %d, want a new process (was %d)", newPID, pid)
	assert.Equal(t, port, s.Port(), "Port after Restart")
	got, err := s.Command("GET", "k")
	assert.ErrorIs(t, err, redisproc.ErrNil, "GET k after Restart = %q; want ErrNil (nothing persisted)", got)

	// A changed password is kept across restarts.
	command(t, s, "CONFIG", "SET", "requirepass", "two")
	s.SetPassword("two")
	require.NoError(t, s.Restart(t.Context()), "Restart with the new password")
	ping := rawPing(t, s.Addr())
	assert.True(t, strings.HasPrefix(ping, "NOAUTH"), "PING without AUTH after Restart = %q, want NOAUTH", ping)
	assert.Equal(t, "PONG", command(t, s, "PING"), "PING with the new password")
}

func TestLaunchWaitAccepting(t *testing.T) {
	s := start(t, redisproc.Options{})
	s.Kill()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	accepted := make(chan time.Time, 1)
	go func() {
		at, _ := s.WaitAccepting(ctx)
		accepted <- at
	}()
	before := time.Now()
	require.NoError(t, s.Launch(), "Launch")
	at := <-accepted
	require.False(t, at.Before(before), "WaitAccepting = %v, want a time after Launch began (%v)", at, before)
	assert.NotZero(t, s.PID(), "PID after Launch = 0, want the new process")
}

func TestRestartPortTaken(t *testing.T) {
	s := start(t, redisproc.Options{})
	s.Kill()
	l, err := net.Listen("tcp", s.Addr())
	require.NoError(t, err, "hold the port")
	err = s.Restart(t.Context())
	_ = l.Close()
	require.ErrorIs(t, err, redisproc.ErrExited, "Restart with the port taken; want ErrExited with the log's reason")
	require.ErrorContains(t, err, "in use", "Restart with the port taken; want ErrExited with the log's reason")
	assert.Zero(t, s.PID(), "PID after a failed Restart")
	require.NoError(t, s.Restart(t.Context()), "Restart once the port is free")
	assert.Equal(t, "PONG", command(t, s, "PING"), "PING")
}

func TestClose(t *testing.T) {
	s := start(t, redisproc.Options{})
	require.NoError(t, s.Close(), "Close")
	assert.NoError(t, s.Close(), "second Close")
	assert.Zero(t, s.PID(), "PID after Close")
	assert.ErrorIs(t, s.Launch(), redisproc.ErrClosed, "Launch after Close")
	assert.ErrorIs(t, s.Restart(t.Context()), redisproc.ErrClosed, "Restart after Close")
}

func TestStartMissingBinary(t *testing.T) {
	_, err := redisproc.Start(t.Context(), redisproc.Options{Binary: "/nonexistent/redis-server"})
	assert.ErrorIs(t, err, os.ErrNotExist, "Start with a missing binary")
}
