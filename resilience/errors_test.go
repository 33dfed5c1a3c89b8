package resilience

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// replyError returns the error go-redis gives for a Get that Redis answers
// with msg (as "-msg\r\n"), parsed by go-redis itself.
func replyError(t *testing.T, msg string) error {
	t.Helper()
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr(), PoolSize: 1, MaxRetries: -1})
	defer c.Close()
	ctx := ctxFor(t, waitLimit)
	// Connect first: the error hook answers every command, HELLO included.
	require.NoError(t, c.Ping(ctx).Err(), "ping miniredis")
	mr.SetError(msg)
	err := c.Get(ctx, "k").Err()
	require.Error(t, err, "Get answered by %q", msg)
	return err
}

// wrongTypeError is the error of a Get on a list, from a real reply.
func wrongTypeError(t *testing.T) error {
	t.Helper()
	mr := miniredis.RunT(t)
	_, err := mr.Lpush("list", "x")
	require.NoError(t, err)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	defer c.Close()
	err = c.Get(ctxFor(t, waitLimit), "list").Err()
	require.Error(t, err, "Get of a list")
	return err
}

// authError is the error of a client with a wrong password.
func authError(t *testing.T) error {
	t.Helper()
	mr := miniredis.RunT(t)
	mr.RequireAuth("right")
	c := redis.NewClient(&redis.Options{Addr: mr.Addr(), Password: "wrong", MaxRetries: -1})
	defer c.Close()
	err := c.Ping(ctxFor(t, waitLimit)).Err()
	require.Error(t, err, "Ping with a wrong password")
	return err
}

// refusedError is a real "connection refused" from a port nobody listens on.
func refusedError(t *testing.T) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	err = c.Get(ctxFor(t, waitLimit), "k").Err()
	require.Error(t, err, "Get from a closed port")
	return err
}

// timeoutError is a real read deadline expiry.
func timeoutError(t *testing.T) error {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	require.NoError(t, a.SetReadDeadline(time.Now()))
	_, err := a.Read(make([]byte, 1))
	var ne net.Error
	require.ErrorAs(t, err, &ne, "read past the deadline, want a timeout")
	require.True(t, ne.Timeout(), "read past the deadline: %v, want a timeout", err)
	return &net.OpError{Op: "read", Net: "tcp", Err: err}
}

func TestIsFailure(t *testing.T) {
	tests := []struct {
		name string
		err  func(t *testing.T) error
		want bool
	}{
		{"nil", func(*testing.T) error { return nil }, false},
		{"redis.Nil", func(*testing.T) error { return redis.Nil }, false},
		{"wrapped redis.Nil", func(*testing.T) error { return fmt.Errorf("redis get: %w", redis.Nil) }, false},
		{"ErrNotFound", func(*testing.T) error { return ErrNotFound }, false},
		{"wrapped ErrNotFound", func(*testing.T) error { return fmt.Errorf("cache: %w", ErrNotFound) }, false},
		{"context.Canceled", func(*testing.T) error { return context.Canceled }, false},
		{"wrapped context.Canceled", func(*testing.T) error { return fmt.Errorf("redis get: %w", context.Canceled) }, false},
		{"WRONGTYPE reply", wrongTypeError, false},
		{"wrapped WRONGTYPE reply", func(t *testing.T) error { return fmt.Errorf("redis get: %w", wrongTypeError(t)) }, false},
		{"ERR reply", func(t *testing.T) error { return replyError(t, "ERR syntax error") }, false},
		{"NOSCRIPT reply", func(*testing.T) error { return redis.ErrNoScript }, false},

		{"LOADING reply", func(t *testing.T) error { return replyError(t, "LOADING Redis is loading the dataset in memory") }, true},
		{"wrapped LOADING reply", func(t *testing.T) error {
			return fmt.Errorf("redis get: %w", replyError(t, "LOADING Redis is loading the dataset in memory"))
		}, true},
		{"READONLY reply", func(t *testing.T) error {
			return replyError(t, "READONLY You can't write against a read only replica.")
		}, true},
		{"OOM reply", func(t *testing.T) error {
			return replyError(t, "OOM command not allowed when used memory > 'maxmemory'.")
		}, true},
		{"MASTERDOWN reply", func(t *testing.T) error {
			return replyError(t, "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.")
		}, true},
		{"NOAUTH reply", func(t *testing.T) error { return replyError(t, "NOAUTH Authentication required.") }, true},
		{"WRONGPASS reply", func(t *testing.T) error {
			return replyError(t, "WRONGPASS invalid username-password pair or user is disabled.")
		}, true},
		{"wrong password at connect", authError, true},
		{"BUSY reply", func(t *testing.T) error {
			return replyError(t, "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.")
		}, true},
		{"TRYAGAIN reply", func(t *testing.T) error {
			return replyError(t, "TRYAGAIN Multiple keys request during rehashing of slot")
		}, true},
		{"CLUSTERDOWN reply", func(t *testing.T) error { return replyError(t, "CLUSTERDOWN The cluster is down") }, true},
		{"max clients reply", func(t *testing.T) error { return replyError(t, "ERR max number of clients reached") }, true},
		{"connection refused", refusedError, true},
		{"wrapped connection refused", func(t *testing.T) error { return fmt.Errorf("redis get: %w", refusedError(t)) }, true},
		{"i/o timeout", timeoutError, true},
		{"context.DeadlineExceeded", func(*testing.T) error { return context.DeadlineExceeded }, true},
		{"wrapped context.DeadlineExceeded", func(*testing.T) error {
			return fmt.Errorf("redis get: %w", context.DeadlineExceeded)
		}, true},
		{"io.EOF", func(*testing.T) error { return io.EOF }, true},
		{"io.ErrUnexpectedEOF", func(*testing.T) error { return io.ErrUnexpectedEOF }, true},
		{"pool timeout", func(*testing.T) error { return redis.ErrPoolTimeout }, false},
		{"wrapped pool timeout", func(*testing.T) error { return fmt.Errorf("redis get: %w", redis.ErrPoolTimeout) }, false},
		{"client closed", func(*testing.T) error { return redis.ErrClosed }, true},
		{"ErrUnavailable", func(*testing.T) error { return ErrUnavailable }, true},
		{"breaker open", func(*testing.T) error { return circuitbreaker.ErrOpen }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err(t)
			assert.Equal(t, tc.want, IsFailure(err), "IsFailure(%v)", err)
		})
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		name string
		err  func(t *testing.T) error
		want bool
	}{
		{"connection refused", refusedError, true},
		{"io.EOF", func(*testing.T) error { return io.EOF }, true},
		{"LOADING reply", func(t *testing.T) error { return replyError(t, "LOADING Redis is loading the dataset in memory") }, true},
		{"miss", func(*testing.T) error { return redis.Nil }, false},
		{"WRONGTYPE reply", wrongTypeError, false},
		{"caller cancelled", func(*testing.T) error { return fmt.Errorf("redis get: %w", context.Canceled) }, false},
		{"breaker open", func(*testing.T) error { return circuitbreaker.ErrOpen }, false},
		{"deadline", func(*testing.T) error { return context.DeadlineExceeded }, false},
		{"i/o timeout", timeoutError, false},
		{"READONLY reply", func(t *testing.T) error {
			return replyError(t, "READONLY You can't write against a read only replica.")
		}, false},
		{"OOM reply", func(t *testing.T) error {
			return replyError(t, "OOM command not allowed when used memory > 'maxmemory'.")
		}, false},
		{"wrong password", authError, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err(t)
			assert.Equal(t, tc.want, retryable(err), "retryable(%v)", err)
		})
	}
}
