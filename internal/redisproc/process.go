//go:build unix

package redisproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
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
	return lastLines(string(buf[:n]), logLines)
}

// lastLines is the last n lines of s, on one line.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
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
