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
	"strings"
	"sync"
	"syscall"
	"time"
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

const (
	// startAttempts and retryDelay bound how often Restart launches again a
	// process that exited at start: the port gets about a second to be
	// free again (a listener that has not quite gone, another process that
	// held it for a moment).
	startAttempts = 50
	retryDelay    = 20 * time.Millisecond
	// answerLimit is how long one launched process may take to answer PING.
	answerLimit = 5 * time.Second
	pingEvery   = 2 * time.Millisecond
	// WaitAccepting dials every acceptEvery, each dial bounded by
	// acceptDial, so that it sees the port open within half a millisecond.
	acceptEvery = 500 * time.Microsecond
	acceptDial  = 100 * time.Millisecond

	logName     = "redis.log"
	logTailSize = 1024 // bytes of the log read for an ErrExited message
	logLines    = 3    // lines of it kept
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
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			return nil, fmt.Errorf("find redis-server: %w", err)
		}
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

// Restart kills a running server, starts a new one on the same port (with
// nothing in it: nothing is persisted) and waits until it answers PING.
// When the new process exits at start, as it does while the port is taken,
// Restart tries again every 20 ms, 50 times in all, and then returns an
// error wrapping [ErrExited]. A process that neither answers nor exits
// within 5 s is killed and an error returned. Restart returns [ErrClosed]
// after [Server.Close], and ctx's error when ctx ends first.
func (s *Server) Restart(ctx context.Context) error {
	var err error
	for attempt := range startAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("restart redis-server on %s: %w (last attempt: %w)", s.Addr(), ctx.Err(), err)
			case <-time.After(retryDelay):
			}
		}
		s.Kill()
		done, lerr := s.launch()
		if lerr != nil {
			return lerr
		}
		if err = s.waitAnswer(ctx, done); !errors.Is(err, ErrExited) {
			return err
		}
	}
	return err
}

// waitAnswer polls with PING until the process that will close done
// answers, exits or takes too long.
func (s *Server) waitAnswer(ctx context.Context, done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, answerLimit)
	defer cancel()
	// A PING in flight ends when the process exits: what holds the port
	// then may be another program, which accepts and never replies.
	pctx, stopPing := context.WithCancel(ctx)
	defer stopPing()
	go func() {
		select {
		case <-done:
			stopPing()
		case <-pctx.Done():
		}
	}()
	for {
		if _, err := s.command(pctx, "PING"); err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%w on %s: %s", ErrExited, s.Addr(), s.logTail())
		case <-ctx.Done():
			s.Kill()
			return fmt.Errorf("redis-server on %s did not answer PING: %w", s.Addr(), ctx.Err())
		case <-time.After(pingEvery):
		}
	}
}

// Launch kills a running server and starts a new process on the same port
// without waiting for it to answer: for a caller that times the restart
// itself with [Server.WaitAccepting]. It returns [ErrClosed] after
// [Server.Close].
func (s *Server) Launch() error {
	s.Kill()
	_, err := s.launch()
	return err
}

// launch starts a process and returns the channel closed when it exits.
func (s *Server) launch() (<-chan struct{}, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("redis log: %w", err)
	}
	s.mu.Lock()
	if s.closed { // closed meanwhile
		s.mu.Unlock()
		_ = logf.Close()
		return nil, ErrClosed
	}
	cmd := exec.Command(s.bin, s.argsLocked()...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		_ = logf.Close()
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go reap(cmd, logf, done)
	old, oldDone := s.cmd, s.done
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if old != nil { // a concurrent Launch started one meanwhile: keep one
		_ = old.Process.Kill()
		<-oldDone
	}
	return done, nil
}

// reap waits for the process to exit, closes its log and then done. It is
// the one goroutine each process has; [Server.Kill] waits for it.
func reap(cmd *exec.Cmd, log *os.File, done chan<- struct{}) {
	_ = cmd.Wait()
	_ = log.Close()
	close(done)
}

// argsLocked is the command line; s.mu is held.
func (s *Server) argsLocked() []string {
	var args []string
	if s.conf != "" {
		args = append(args, s.conf)
	}
	args = append(args,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		"--protected-mode", "no",
		"--enable-debug-command", "yes",
	)
	if s.password != "" {
		args = append(args, "--requirepass", s.password)
	}
	return append(args, s.args...)
}

// logTail is the last lines of the server's log, on one line.
func (s *Server) logTail() string {
	f, err := os.Open(filepath.Join(s.dir, logName))
	if err != nil {
		return "no log: " + err.Error()
	}
	defer func() { _ = f.Close() }()
	buf := make([]byte, logTailSize)
	off := int64(0)
	if st, err := f.Stat(); err == nil && st.Size() > logTailSize {
		off = st.Size() - logTailSize
	}
	n, _ := f.ReadAt(buf, off)
	lines := strings.Split(strings.TrimSpace(string(buf[:n])), "\n")
	if len(lines) > logLines {
		lines = lines[len(lines)-logLines:]
	}
	return strings.Join(lines, " | ")
}

// Kill sends SIGKILL to the server and waits until it has exited. Killing
// a paused server is fine; so is killing one that is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Pause stops the server with SIGSTOP: the kernel still accepts
// connections on its port, and nothing answers them (a hung server). It
// returns [ErrNotRunning] when no server is running.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT. It returns
// [ErrNotRunning] when no server is running.
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return ErrNotRunning
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal redis-server: %w", err)
	}
	return nil
}

// WaitAccepting dials the server's port every half millisecond until a
// connection is accepted, and returns when that was; or ctx's error when
// ctx ends first. It is how callers time "Redis is back": a paused server
// counts as accepting.
func (s *Server) WaitAccepting(ctx context.Context) (time.Time, error) {
	d := net.Dialer{Timeout: acceptDial}
	for {
		c, err := d.DialContext(ctx, "tcp", s.Addr())
		if err == nil {
			at := time.Now()
			_ = c.Close()
			return at, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(acceptEvery):
		}
	}
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
