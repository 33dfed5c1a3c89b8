package celery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/redis/go-redis/v9"
)

// Timings of the event listener.
const (
	// celeryReconnectMin and celeryReconnectMax bound the wait between
	// attempts to subscribe again after the connection was lost, as the
	// reconnect prober of package resilience does.
	celeryReconnectMin = 100 * time.Millisecond
	celeryReconnectMax = time.Second
	// celerySubscribeTimeout bounds the wait for Redis to confirm the
	// subscription.
	celerySubscribeTimeout = 2 * time.Second
	// celeryIdle is how long the subscription may be silent before the
	// listener sends a PING on it, and then how long it waits for the
	// answer before it calls the connection dead. Celery workers beat
	// every 2 s, so a silent connection is rare while workers run.
	celeryIdle = 5 * time.Second
)

// errSessionEnded marks the end of a subscription that had been
// established: the listener starts a fresh round of attempts for it, with
// a short first wait, instead of going on with the longer waits of the
// attempts before it.
var errSessionEnded = errors.New("subscription ended")

// listen subscribes, and subscribes again whenever the subscription is
// lost, until Close. failsafe-go spaces the attempts; each subscription
// that stood and then broke starts a new round of attempts, so the first
// one comes at once.
func (e *Events) listen(ctx context.Context) {
	defer close(e.done)
	policy := retrypolicy.NewBuilder[any]().
		HandleIf(func(_ any, err error) bool {
			return err != nil && ctx.Err() == nil && !errors.Is(err, errSessionEnded)
		}).
		WithMaxAttempts(-1).
		WithBackoff(celeryReconnectMin, celeryReconnectMax).
		WithJitterFactor(0.2).
		ReturnLastFailure().
		Build()
	exec := failsafe.With[any](policy).WithContext(ctx)
	for ctx.Err() == nil {
		_ = exec.Run(func() error { return e.session(ctx) })
	}
}

// session subscribes once and handles messages until the connection
// fails or ctx ends. It always returns an error.
func (e *Events) session(ctx context.Context) error {
	ps := e.rdb.Client().PSubscribe(ctx, e.pattern)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		_ = ps.Close()
		return ctx.Err()
	}
	e.ps = ps
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		if e.ps == ps {
			e.ps = nil
		}
		e.mu.Unlock()
		_ = ps.Close()
	}()

	msg, err := ps.ReceiveTimeout(ctx, celerySubscribeTimeout)
	if err == nil {
		if _, ok := msg.(*redis.Subscription); !ok {
			err = fmt.Errorf("unexpected %T before the subscription", msg)
		}
	}
	if err != nil {
		return e.noteLost(ctx, fmt.Errorf("celery events: subscribe: %w", err), false)
	}
	e.noteSubscribed()

	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, celeryIdle)
		if err != nil {
			switch {
			case ctx.Err() != nil:
			case isTimeout(err) && !pinged:
				pinged = true
				if err = ps.Ping(ctx); err == nil {
					continue
				}
			case isTimeout(err):
				err = errors.New("no answer to PING")
			}
			return e.noteLost(ctx, fmt.Errorf("celery events: receive: %w", err), true)
		}
		pinged = false
		if m, ok := msg.(*redis.Message); ok {
			e.handle(m.Payload)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// noteSubscribed records that the subscription stands, logging it when
// it comes back after a loss.
func (e *Events) noteSubscribed() {
	e.mu.Lock()
	wasLost := e.lost
	e.connected, e.since, e.lastErr, e.lost = true, e.now(), "", false
	e.mu.Unlock()
	if wasLost {
		e.log.Info("celery events: listening again", slog.String(logKeyCheck, e.opts.Name))
	}
	e.notified()
}

func (e *Events) notified() {
	if e.notify != nil {
		e.notify()
	}
}

// noteLost records why the listener is not subscribed and logs the first
// failure after a success. It returns err, marked as the end of a
// subscription when one had stood for a while (a subscription that breaks
// at once goes on with the waits of the attempts before it).
func (e *Events) noteLost(ctx context.Context, err error, established bool) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	msg := err.Error()
	e.mu.Lock()
	stood := established && e.now().Sub(e.since) >= celeryReconnectMax
	e.connected, e.lastErr = false, msg
	logIt := !e.lost
	e.lost = true
	e.mu.Unlock()
	if logIt {
		e.log.Warn("celery events: not listening; retrying", slog.String(logKeyCheck, e.opts.Name), slog.String(logKeyError, msg))
	}
	e.notified()
	if stood {
		return fmt.Errorf("%w: %w", errSessionEnded, err)
	}
	return err
}
