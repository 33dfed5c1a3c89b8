//go:build unix

package redisproc_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

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
			t.Fatalf("redis-server not found and %s=1: %v", requireEnv, err)
		}
		t.Skipf("redis-server not found (set %s=1 to fail instead): %v", requireEnv, err)
	}
	return bin
}

func start(t *testing.T, opts redisproc.Options) *redisproc.Server {
	t.Helper()
	opts.Binary = binary(t)
	s, err := redisproc.Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func command(t *testing.T, s *redisproc.Server, args ...string) string {
	t.Helper()
	got, err := s.Command(args...)
	if err != nil {
		t.Fatalf("Command(%q): %v", args, err)
	}
	return got
}

// rawPing sends PING without AUTH and returns the reply or the error's text.
func rawPing(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		t.Fatalf("write PING: %v", err)
	}
	got, err := redisproc.ReadReply(bufio.NewReader(c))
	if err != nil {
		return err.Error()
	}
	return got
}

func TestCommandReplies(t *testing.T) {
	s := start(t, redisproc.Options{Password: "s3cret", Args: []string{"--maxclients", "100"}})
	if got := rawPing(t, s.Addr()); !strings.HasPrefix(got, "NOAUTH") {
		t.Fatalf("PING without AUTH = %q, want NOAUTH: the password is not required", got)
	}
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
				if !errors.Is(err, redisproc.ErrNil) {
					t.Fatalf("Command(%q) = %q, %v; want ErrNil", tc.args, got, err)
				}
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Command(%q) = %q, %v; want an error containing %q", tc.args, got, err, tc.wantErr)
				}
			case err != nil || got != tc.want:
				t.Errorf("Command(%q) = %q, %v; want %q", tc.args, got, err, tc.want)
			}
		})
	}
}

func TestURL(t *testing.T) {
	s := start(t, redisproc.Options{Password: "p@ss"})
	if got, want := s.URL(), "redis://:p%40ss@"+s.Addr()+"/0"; got != want {
		t.Errorf("URL() = %q, want %q", got, want)
	}
	if got := s.String(); strings.Contains(got, "p%40ss") || !strings.Contains(got, s.Addr()) {
		t.Errorf("String() = %q, want the address without the password", got)
	}
	command(t, s, "CONFIG", "SET", "requirepass", "")
	s.SetPassword("")
	if got, want := s.URL(), "redis://"+s.Addr()+"/0"; got != want {
		t.Errorf("after SetPassword(\"\"): URL() = %q, want %q", got, want)
	}
}

func TestPauseResume(t *testing.T) {
	s := start(t, redisproc.Options{})
	pid := s.PID()
	if err := s.Pause(); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if got, err := s.Command("PING"); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("PING to a paused server = %q, %v; want a deadline error", got, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	if _, err := s.WaitAccepting(ctx); err != nil {
		t.Fatalf("WaitAccepting on a paused server: %v, want it accepting", err)
	}
	if err := s.Resume(); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if got := command(t, s, "PING"); got != "PONG" {
		t.Errorf("PING after Resume = %q, want PONG", got)
	}
	if got := s.PID(); got != pid {
		t.Errorf("PID after Pause and Resume = %d, want %d (the same process)", got, pid)
	}
}

func TestKillRestart(t *testing.T) {
	s := start(t, redisproc.Options{Password: "one"})
	port, pid := s.Port(), s.PID()
	command(t, s, "SET", "k", "v")

	s.Kill()
	if got := s.PID(); got != 0 {
		t.Errorf("PID after Kill = %d, want 0", got)
	}
	if _, err := s.Command("PING"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("PING after Kill: %v, want connection refused", err)
	}
	if err := s.Pause(); !errors.Is(err, redisproc.ErrNotRunning) {
		t.Errorf("Pause after Kill: %v, want ErrNotRunning", err)
	}
	short, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.WaitAccepting(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitAccepting with nothing listening: %v, want the context's deadline", err)
	}
	s.Kill() // killing nothing is fine

	if err := s.Restart(t.Context()); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if got := s.PID(); got == 0 || got == pid {
		t.Errorf("PID after Restart = %d, want a new process (was %d)", got, pid)
	}
	if got := s.Port(); got != port {
		t.Errorf("Port after Restart = %d, want %d", got, port)
	}
	if got, err := s.Command("GET", "k"); !errors.Is(err, redisproc.ErrNil) {
		t.Errorf("GET k after Restart = %q, %v; want ErrNil (nothing persisted)", got, err)
	}

	// A changed password is kept across restarts.
	command(t, s, "CONFIG", "SET", "requirepass", "two")
	s.SetPassword("two")
	if err := s.Restart(t.Context()); err != nil {
		t.Fatalf("Restart with the new password: %v", err)
	}
	if got := rawPing(t, s.Addr()); !strings.HasPrefix(got, "NOAUTH") {
		t.Errorf("PING without AUTH after Restart = %q, want NOAUTH", got)
	}
	if got := command(t, s, "PING"); got != "PONG" {
		t.Errorf("PING with the new password = %q, want PONG", got)
	}
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
	if err := s.Launch(); err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if at := <-accepted; at.Before(before) {
		t.Fatalf("WaitAccepting = %v, want a time after Launch began (%v)", at, before)
	}
	if s.PID() == 0 {
		t.Error("PID after Launch = 0, want the new process")
	}
}

func TestRestartPortTaken(t *testing.T) {
	s := start(t, redisproc.Options{})
	s.Kill()
	l, err := net.Listen("tcp", s.Addr())
	if err != nil {
		t.Fatalf("hold the port: %v", err)
	}
	err = s.Restart(t.Context())
	_ = l.Close()
	if !errors.Is(err, redisproc.ErrExited) || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Restart with the port taken: %v; want ErrExited with the log's reason", err)
	}
	if got := s.PID(); got != 0 {
		t.Errorf("PID after a failed Restart = %d, want 0", got)
	}
	if err := s.Restart(t.Context()); err != nil {
		t.Fatalf("Restart once the port is free: %v", err)
	}
	if got := command(t, s, "PING"); got != "PONG" {
		t.Errorf("PING = %q, want PONG", got)
	}
}

func TestClose(t *testing.T) {
	s := start(t, redisproc.Options{})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	if got := s.PID(); got != 0 {
		t.Errorf("PID after Close = %d, want 0", got)
	}
	if err := s.Launch(); !errors.Is(err, redisproc.ErrClosed) {
		t.Errorf("Launch after Close: %v, want ErrClosed", err)
	}
	if err := s.Restart(t.Context()); !errors.Is(err, redisproc.ErrClosed) {
		t.Errorf("Restart after Close: %v, want ErrClosed", err)
	}
}

func TestStartMissingBinary(t *testing.T) {
	_, err := redisproc.Start(t.Context(), redisproc.Options{Binary: "/nonexistent/redis-server"})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Start with a missing binary: %v, want one wrapping os.ErrNotExist", err)
	}
}
