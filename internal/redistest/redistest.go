// Package redistest starts real redis-server processes for fault tests.
//
// A test calls [Start] to get a server on a free loopback port. The server is
// stopped by its own PID when the test ends. When redis-server is not on PATH
// the test is skipped, unless STEADFAST_REQUIRE_REDIS=1 is set (as CI does),
// in which case it fails.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns a missing redis-server
// from a skip into a failure.
const RequireEnv = "STEADFAST_REQUIRE_REDIS"

// Options configure a server. The zero value starts a server with no
// password and no persistence.
type Options struct {
	// Password, if set, is required by the server (requirepass).
	Password string
	// Args are extra redis-server arguments, such as "--maxmemory", "1mb".
	Args []string
}

// Server is one redis-server process owned by a test. Its methods are safe
// for concurrent use.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	opts Options

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	paused bool
}

// Binary returns the path of redis-server, skipping (or failing, when
// [RequireEnv] is set) the test when it is missing.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("redis-server not found and %s=1: %v", RequireEnv, err)
		}
		t.Skipf("redis-server not found (set %s=1 to fail instead): %v", RequireEnv, err)
	}
	return bin
}

// Start starts a redis-server on a free 127.0.0.1 port and waits until it
// answers. The server is killed when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir(), port: FreePort(t), opts: opts}
	s.Restart()
	t.Cleanup(s.Kill)
	return s
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's TCP port.
func (s *Server) Port() int { return s.port }

// URL is a redis:// URL for the server, with its password if it has one.
func (s *Server) URL() string {
	if s.opts.Password != "" {
		return fmt.Sprintf("redis://:%s@%s/0", s.opts.Password, s.Addr())
	}
	return fmt.Sprintf("redis://%s/0", s.Addr())
}

// PID is the process id of the running server, or 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Restart starts the server again on the same port (with whatever data it
// persisted: none, by default) and waits until it answers. It kills a
// running server first.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		"--protected-mode", "no",
		"--enable-debug-command", "yes",
	}
	if s.opts.Password != "" {
		args = append(args, "--requirepass", s.opts.Password)
	}
	args = append(args, s.opts.Args...)
	var lastErr error
	for range 50 {
		cmd := exec.Command(s.bin, args...)
		cmd.Dir = s.dir
		log, err := os.Create(filepath.Join(s.dir, "redis.log"))
		if err != nil {
			s.t.Fatalf("redis log: %v", err)
		}
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			_ = log.Close()
			s.t.Fatalf("start redis-server: %v", err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); _ = log.Close(); close(done) }()
		s.mu.Lock()
		s.cmd, s.done, s.paused = cmd, done, false
		s.mu.Unlock()
		if lastErr = s.waitReady(done, 5*time.Second); lastErr == nil {
			return
		}
		s.Kill()
		time.Sleep(20 * time.Millisecond) // port may still be in TIME_WAIT or taken: try again
	}
	s.t.Fatalf("redis-server did not start on %s: %v", s.Addr(), lastErr)
}

func (s *Server) waitReady(done <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("redis-server exited")
		default:
		}
		if err := s.ping(); err == nil {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return errors.New("timed out waiting for PONG")
}

// ping sends a raw PING (with AUTH when a password is set) and expects PONG.
func (s *Server) ping() error {
	_, err := s.Command("PING")
	return err
}

// Command sends one command over a fresh raw connection (authenticating
// first when the server has a password) and returns the first reply line.
// It is for driving faults (DEBUG SLEEP, CONFIG SET, CLIENT PAUSE) without
// going through the client under test.
func (s *Server) Command(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return "", err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReader(c)
	if s.opts.Password != "" {
		if _, err := roundTrip(c, r, "AUTH", s.opts.Password); err != nil {
			return "", err
		}
	}
	return roundTrip(c, r, args...)
}

// SetPassword records the password the server now requires, for [Server.Command]
// and [Server.URL], after a test changed it with CONFIG SET requirepass.
func (s *Server) SetPassword(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Password = p
}

func roundTrip(c net.Conn, r *bufio.Reader, args ...string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "-") {
		return "", errors.New(line[1:])
	}
	if strings.HasPrefix(line, "$") && line != "$-1" {
		body, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		return strings.TrimRight(body, "\r\n"), nil
	}
	return line, nil
}

// Kill sends SIGKILL to the server and waits for it to exit. Killing a
// stopped server is fine; so is killing one that is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done, s.paused = nil, nil, false
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Pause stops the server with SIGSTOP: it keeps its socket open and its
// connections accepted, but answers nothing (a hung server).
func (s *Server) Pause() { s.signal(syscall.SIGSTOP, true) }

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() { s.signal(syscall.SIGCONT, false) }

func (s *Server) signal(sig syscall.Signal, paused bool) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		s.t.Fatalf("redis-server is not running")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal %v: %v", sig, err)
	}
	s.paused = paused
}

// WaitAccepting blocks until a TCP connection to the server's port
// succeeds or ctx ends. It is how tests time "Redis is back".
func (s *Server) WaitAccepting(ctx context.Context) error {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", s.Addr())
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}
