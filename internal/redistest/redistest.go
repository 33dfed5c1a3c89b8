// Package redistest starts real redis-server processes for fault tests.
//
// A test calls [Start] to get a server on a free loopback port. The server is
// stopped by its own PID when the test ends. When redis-server is not on PATH
// the test is skipped, unless STEADFAST_REQUIRE_REDIS=1 is set (as CI does),
// in which case it fails.
//
// The processes are run by internal/redisproc; this package turns its
// errors into test failures.
package redistest

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"testing"

	"github.com/steadfast-go/steadfast/internal/redisproc"
)

// RequireEnv is the environment variable that turns a missing redis-server
// from a skip into a failure.
const RequireEnv = "STEADFAST_REQUIRE_REDIS"

// nilReply is what [Server.Command] returns for a nil reply: the RESP
// text of one.
const nilReply = "$-1"

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
	t   testing.TB
	srv *redisproc.Server
}

// Binary returns the path of redis-server, skipping (or failing, when
// [RequireEnv] is set) the test when it is missing.
func Binary(t testing.TB) string {
	t.Helper()
	return program(t, "redis-server")
}

// Start starts a redis-server on a free 127.0.0.1 port, with DEBUG
// enabled, and waits until it answers. The server is killed when the test
// ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	srv, err := redisproc.Start(context.Background(), redisproc.Options{
		Binary: Binary(t), Password: opts.Password, Args: opts.Args,
	})
	return &Server{t: t, srv: closedAtEnd(t, "redis-server", srv, err)}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := redisproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.srv.Addr() }

// Port is the server's TCP port.
func (s *Server) Port() int { return s.srv.Port() }

// URL is a redis:// URL for the server, with its password if it has one.
func (s *Server) URL() string { return s.srv.URL() }

// PID is the process id of the running server, or 0 when it is not running.
func (s *Server) PID() int { return s.srv.PID() }

// Restart starts the server again on the same port (with whatever data it
// persisted: none, by default) and waits until it answers. It kills a
// running server first, and tries again for about a second while the port
// is still taken.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.srv.Restart(context.Background()); err != nil {
		s.t.Fatalf("restart redis-server: %v", err)
	}
}

// Command sends one command over a fresh raw connection (authenticating
// first when the server has a password) and returns the reply as text: a
// simple string or an integer without its type byte ("OK", "1"), a bulk
// string's bytes, an array's elements joined by "\n", and "$-1" for a nil
// reply. An error reply is an error with the server's message. It is for
// driving faults (DEBUG SLEEP, CONFIG SET, CLIENT PAUSE) without going
// through the client under test.
func (s *Server) Command(args ...string) (string, error) {
	reply, err := s.srv.Command(args...)
	if errors.Is(err, redisproc.ErrNil) {
		return nilReply, nil
	}
	return reply, err
}

// SetPassword records the password the server now requires, for [Server.Command],
// [Server.URL] and later restarts, after a test changed it with CONFIG SET
// requirepass.
func (s *Server) SetPassword(p string) { s.srv.SetPassword(p) }

// Kill sends SIGKILL to the server and waits for it to exit. Killing a
// stopped server is fine; so is killing one that is not running.
func (s *Server) Kill() { s.srv.Kill() }

// Pause stops the server with SIGSTOP: it keeps its socket open and its
// connections accepted, but answers nothing (a hung server).
func (s *Server) Pause() {
	s.t.Helper()
	if err := s.srv.Pause(); err != nil {
		s.t.Fatalf("pause redis-server: %v", err)
	}
}

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() {
	s.t.Helper()
	if err := s.srv.Resume(); err != nil {
		s.t.Fatalf("resume redis-server: %v", err)
	}
}

// WaitAccepting blocks until a TCP connection to the server's port
// succeeds or ctx ends. It is how tests time "Redis is back".
func (s *Server) WaitAccepting(ctx context.Context) error {
	_, err := s.srv.WaitAccepting(ctx)
	return err
}

// program returns the path of a Redis program, skipping (or failing, when
// [RequireEnv] is set) the test when it is missing.
func program(t testing.TB, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%s not found and %s=1: %v", name, RequireEnv, err)
		}
		t.Skipf("%s not found (set %s=1 to fail instead): %v", name, RequireEnv, err)
	}
	return bin
}

// StartSentinel starts a master, a replica and three sentinels on free
// 127.0.0.1 ports (see [redisproc.StartSentinel]); they are stopped when
// the test ends. It skips without redis-sentinel, as [Binary] does.
func StartSentinel(t testing.TB, opts redisproc.SentinelOptions) *redisproc.Sentinel {
	t.Helper()
	opts.Binary = Binary(t)
	opts.SentinelBinary = program(t, "redis-sentinel")
	st, err := redisproc.StartSentinel(context.Background(), opts)
	return closedAtEnd(t, "sentinel", st, err)
}

// StartCluster starts a Redis Cluster of redis-server processes on free
// 127.0.0.1 ports (see [redisproc.StartCluster]); they are stopped when
// the test ends. It skips without redis-cli, as [Binary] does.
func StartCluster(t testing.TB, opts redisproc.ClusterOptions) *redisproc.Cluster {
	t.Helper()
	opts.Binary = Binary(t)
	opts.CLI = program(t, "redis-cli")
	c, err := redisproc.StartCluster(context.Background(), opts)
	return closedAtEnd(t, "cluster", c, err)
}

// closedAtEnd fails the test when what did not start (err), and otherwise
// returns c, which it closes when the test ends.
func closedAtEnd[C io.Closer](t testing.TB, what string, c C, err error) C {
	t.Helper()
	if err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close %s: %v", what, err)
		}
	})
	return c
}
