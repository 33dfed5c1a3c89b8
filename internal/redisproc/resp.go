//go:build unix

package redisproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// ErrNil is returned by [Server.Command] and [ReadReply] for a nil reply
// (a missing key's GET, say), so that callers can tell it from an empty
// string.
var ErrNil = errors.New("redisproc: nil reply")

const (
	dialTimeout    = time.Second
	commandTimeout = 2 * time.Second // for the whole exchange, AUTH included
	maxDepth       = 8               // array nesting ReadReply accepts
	maxBulk        = 512 << 20       // longest bulk string, as redis-server's proto-max-bulk-len
)

// Command sends one command over a new connection, after AUTH when the
// server has a password, and returns the reply as [ReadReply] does. It is
// for driving faults (DEBUG SLEEP, CONFIG SET, CLIENT PAUSE) and reading
// INFO without going through a client under test. The connection is
// dialled within 1 s and the exchange must end within 2 s: a paused server
// makes Command fail with an error wrapping [os.ErrDeadlineExceeded].
// An error reply is returned as an error carrying the server's message.
func (s *Server) Command(args ...string) (string, error) {
	return s.command(context.Background(), args...)
}

// command is Command, cut short when ctx ends.
func (s *Server) command(ctx context.Context, args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("redisproc: empty command")
	}
	password := s.currentPassword()
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.DialContext(ctx, "tcp", s.Addr())
	if err != nil {
		return "", fmt.Errorf("redis %s: %w", args[0], err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(commandTimeout))
	defer context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })()
	r := bufio.NewReader(c)
	if password != "" {
		if _, err := roundTrip(c, r, "AUTH", password); err != nil {
			return "", fmt.Errorf("redis AUTH: %w", err)
		}
	}
	reply, err := roundTrip(c, r, args...)
	if err != nil {
		return "", fmt.Errorf("redis %s: %w", args[0], err)
	}
	return reply, nil
}

func roundTrip(w io.Writer, r *bufio.Reader, args ...string) (string, error) {
	if _, err := w.Write(appendCommand(nil, args)); err != nil {
		return "", err
	}
	return ReadReply(r)
}

// appendCommand appends args to b as a RESP array of bulk strings.
func appendCommand(b []byte, args []string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, "\r\n"...)
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, "\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	return b
}

// ReadReply reads one RESP2 reply from r and returns it as text: a simple
// string or an integer without its type byte, a bulk string's bytes, and
// an array's elements, nested arrays flattened, joined by "\n" (nil
// elements are empty). A nil bulk string or array is [ErrNil]; an error
// reply is an error whose text is the server's message ("ERR unknown
// command ..."). Anything else, lengths above 512 MiB and arrays nested
// deeper than 8 are errors.
func ReadReply(r *bufio.Reader) (string, error) {
	return readReply(r, 0)
}

func readReply(r *bufio.Reader, depth int) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := length(line)
		if err != nil || n < 0 {
			return "", err
		}
		return readBulk(r, n)
	case '*':
		n, err := length(line)
		if err != nil || n < 0 {
			return "", err
		}
		if depth >= maxDepth {
			return "", fmt.Errorf("reply nested deeper than %d arrays", maxDepth)
		}
		var b strings.Builder
		for i := range n {
			v, err := readReply(r, depth+1)
			if err != nil && !errors.Is(err, ErrNil) {
				return "", fmt.Errorf("array element %d of %d: %w", i+1, n, err)
			}
			if i > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(v)
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// length parses the length of a bulk string or array header: -1 is
// ErrNil (returned with n < 0), other negatives are errors.
func length(line string) (int64, error) {
	n, err := strconv.ParseInt(line[1:], 10, 64)
	switch {
	case err != nil:
		return 0, fmt.Errorf("length %q: %w", line, err)
	case n == -1:
		return -1, ErrNil
	case n < 0:
		return 0, fmt.Errorf("length %q: negative", line)
	case n > maxBulk:
		return 0, fmt.Errorf("length %q: above %d", line, int64(maxBulk))
	}
	return n, nil
}

// readBulk reads a bulk string's n bytes and its CRLF. It grows its buffer
// as bytes arrive, so that a length from a broken peer costs no memory.
func readBulk(r *bufio.Reader, n int64) (string, error) {
	var b strings.Builder
	if _, err := io.CopyN(&b, r, n+2); err != nil {
		return "", fmt.Errorf("bulk string: %w", err)
	}
	s := b.String()
	if !strings.HasSuffix(s, "\r\n") {
		return "", errors.New("bulk string: no CRLF after its bytes")
	}
	return s[:n], nil
}
