//go:build unix

package redisproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
)

// Errors returned by [Start] and the methods of [Server].
var (
	// ErrExited means redis-server exited while starting, on every attempt
	// (its port stayed taken, say). The error that wraps it ends with the
	// last lines of the server's log.
	ErrExited = errors.New("redisproc: redis-server exited at start")
	// ErrNotRunning means no redis-server process is running to signal.
	ErrNotRunning = errors.New("redisproc: redis-server is not running")
	// ErrClosed means the [Server] was closed: it starts no more processes.
	ErrClosed = errors.New("redisproc: server closed")
)

// Options configure a server. The zero value runs the redis-server found
// on PATH with no password and no persistence.
type Options struct {
	// Binary is the path of redis-server. If empty, it is looked up on PATH.
	Binary string
	// Password, if set, is required by the server (--requirepass) and sent
	// with AUTH by [Server.Command]. If empty, the server has none.
	Password string
	// Args are extra redis-server arguments, such as "--maxmemory", "1mb".
	// They come after the package's own and so can override them. Nil adds
	// none.
	Args []string
	// Config, if set, is written to a file in the server's directory that
	// is passed as the first argument: redis-sentinel needs one it can
	// rewrite. Empty passes none.
	Config string
}

// Server is one redis-server process, or its absence, on a 127.0.0.1 port
// it keeps for its whole life: [Server.Kill] stops the process and
// [Server.Restart] or [Server.Launch] starts a new one on the same port,
// with the same arguments and an empty data set.
//
// Create one with [Start]; the zero value is not usable. Its methods are
// safe for concurrent use, but concurrent Launch and Restart calls fight
// over the one process. [Server.Close] kills the process and removes its
// directory.
type Server struct {
	bin  string
	dir  string
	port int
	args []string // Options.Args
	conf string   // Options.Config's file, or ""

	mu       sync.Mutex
	password string
	cmd      *exec.Cmd
	done     chan struct{} // closed once cmd has exited and been reaped
	closed   bool
}

// Start runs redis-server on a free 127.0.0.1 port, in a new temporary
// directory, and waits until it answers PING (see [Server.Restart] for how
// long and how often it tries). On error nothing is left running.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := program(opts.Binary, "redis-server")
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "redisproc-")
	if err != nil {
		return nil, fmt.Errorf("redis dir: %w", err)
	}
	s := &Server{bin: bin, dir: dir, port: port, args: slices.Clone(opts.Args), password: opts.Password}
	if opts.Config != "" {
		s.conf = filepath.Join(dir, "redis.conf")
		if err := os.WriteFile(s.conf, []byte(opts.Config), 0o600); err != nil {
			return nil, errors.Join(fmt.Errorf("redis config: %w", err), s.Close())
		}
	}
	if err := s.Restart(ctx); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

// program returns path, or when it is empty the program name found on
// PATH.
func program(path, name string) (string, error) {
	if path != "" {
		return path, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("find %s: %w", name, err)
	}
	return p, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Dir is the server's directory, which holds its log and files.
func (s *Server) Dir() string { return s.dir }

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's TCP port.
func (s *Server) Port() int { return s.port }

// URL is a redis:// URL for the server's database 0, with its password if
// it has one.
func (s *Server) URL() string { return s.url().String() }

// String is the server's URL with the password masked, for logs and
// failure messages.
func (s *Server) String() string { return s.url().Redacted() }

func (s *Server) url() *url.URL {
	u := &url.URL{Scheme: "redis", Host: s.Addr(), Path: "/0"}
	if p := s.currentPassword(); p != "" {
		u.User = url.UserPassword("", p)
	}
	return u
}

// PID is the process id of the running server, or 0 when none is running
// (it was killed, or exited). A paused server is running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	select {
	case <-s.done:
		return 0
	default:
		return s.cmd.Process.Pid
	}
}

// SetPassword records the password the server now requires, after the
// caller changed it with CONFIG SET requirepass: [Server.Command] and
// [Server.URL] use it, and later restarts require it. Empty means none.
func (s *Server) SetPassword(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.password = p
}

func (s *Server) currentPassword() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.password
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close kills the server and removes its directory. Later calls do
// nothing and return nil.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.Kill()
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove redis dir: %w", err)
	}
	return nil
}
