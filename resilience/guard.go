package resilience

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/redis/go-redis/v9"
)

// TrialInterval is the shortest time between two trial operations that
// traffic runs while a breaker is open (see [Redis]).
const TrialInterval = 25 * time.Millisecond

// logKeyNode is the log attribute of a cluster node's address.
const logKeyNode = "node"

// guard is one circuit breaker with the prober and trials that close it
// again: the whole Redis's or, in a cluster, one node's.
type guard struct {
	r *Redis
	// node is the cluster node's host:port; empty for the whole Redis.
	node string

	cb    circuitbreaker.CircuitBreaker[any]
	retry failsafe.Executor[any] // breaker inside retry, for idempotent ops
	once  failsafe.Executor[any] // breaker only

	wake chan struct{} // size 1: the breaker opened, probe
	// gone is closed when a node guard is dropped (the node serves no
	// slot any more); nil for the whole Redis's guard.
	gone chan struct{}
	// gen numbers a node guard among those of its cluster (see
	// clusterGuards.pruneTo); zero for the whole Redis's guard.
	gen uint64
	// probe pings what the guard guards, on a connection of its own.
	probe func(ctx context.Context) error

	since     atomic.Int64 // state entered, unix nanos
	downSince atomic.Int64 // last left closed, unix nanos
	trialAt   atomic.Int64 // last trial started (or breaker opened), unix nanos
	trialing  atomic.Bool  // a trial operation is running
	// spare is a fresh client for trials, made by the prober while the
	// breaker is open (whole Redis only, when the client is ours).
	spare atomic.Pointer[clientRef]
}

// renewSpare gives trials a new fresh client and closes the one it
// replaces (idle: a trial takes the spare out while it runs).
func (r *Redis) renewSpare(g *guard) {
	if g.node != "" || r.fresh == nil {
		return
	}
	if old := g.spare.Swap(&clientRef{c: r.fresh()}); old != nil {
		_ = old.c.Close()
	}
}

// dropSpare closes the spare, if any.
func (g *guard) dropSpare() {
	if old := g.spare.Swap(nil); old != nil {
		_ = old.c.Close()
	}
}

func (r *Redis) newGuard(node string, probe func(ctx context.Context) error) *guard {
	o := r.opts
	g := &guard{r: r, node: node, probe: probe, wake: make(chan struct{}, 1)}
	g.since.Store(o.Now().UnixNano())
	g.cb = circuitbreaker.NewBuilder[any]().
		HandleIf(func(_ any, err error) bool { return IsFailure(err) }).
		WithFailureThreshold(uint(o.FailureThreshold)).
		WithSuccessThreshold(1).
		WithDelay(o.BreakerDelay).
		OnStateChanged(g.onStateChanged).
		Build()
	rp := retrypolicy.NewBuilder[any]().
		HandleIf(func(_ any, err error) bool { return retryable(err) }).
		WithMaxAttempts(o.MaxAttempts).
		WithBackoff(o.RetryBackoff, o.RetryMaxBackoff).
		WithJitterFactor(0.25).
		ReturnLastFailure().
		OnRetry(func(failsafe.ExecutionEvent[any]) { r.st.retries.Add(1) }).
		Build()
	g.retry = failsafe.With[any](rp, g.cb)
	g.once = failsafe.With[any](g.cb)
	return g
}

// dropped reports whether g was dropped (its node serves no slot).
func (g *guard) dropped() bool {
	if g.gone == nil {
		return false
	}
	select {
	case <-g.gone:
		return true
	default:
		return false
	}
}

// State returns the guard's breaker state.
func (g *guard) State() State { return stateOf(g.cb.State()) }

// claimTrial reports whether the caller may run a trial operation while
// the breaker is open: at most one at a time, and at most one every
// [TrialInterval], by the clock [Options].Now. Budget: an atomic load when
// it says no.
func (g *guard) claimTrial() bool {
	now := g.r.opts.Now().UnixNano()
	last := g.trialAt.Load()
	if now-last < int64(TrialInterval) {
		return false
	}
	if !g.trialing.CompareAndSwap(false, true) {
		return false
	}
	if !g.trialAt.CompareAndSwap(last, now) {
		g.trialing.Store(false)
		return false
	}
	return true
}

// runTrial runs fn as a trial while g's breaker is open: outside the
// breaker, under the operation deadline, on a fresh client when the client
// is ours (so that the old pool's dial back-off cannot fail it). When
// Redis answers, that client is swapped in and the breaker closes: the
// request that ran the trial was a cache operation, and so are the next.
func (r *Redis) runTrial(ctx context.Context, g *guard, op string, timeout time.Duration, fn func(context.Context, redis.UniversalClient) error) error {
	r.st.trials.Add(1)
	start := time.Now()
	deadline := start.Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	opCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	// The spare is a fresh client the prober made: building one here could
	// block the request (go-redis may resolve the address as it builds).
	var c redis.UniversalClient
	spare := g.spare.Swap(nil)
	if spare != nil {
		c = spare.c
	} else {
		c = r.client.Load().c
	}
	waitCtx, cancelWait := context.WithDeadline(context.WithoutCancel(ctx), deadline.Add(execGrace))
	defer cancelWait()
	// The trial is judged where it runs: held past its deadline by
	// go-redis (a fresh client asking the sentinels for the master, say),
	// the caller stops waiting, but a late answer still closes the
	// breaker and swaps the client in, and a late failure still gives
	// the spare back.
	err := r.bounded(waitCtx, func() error {
		defer g.trialing.Store(false)
		err := fn(opCtx, c)
		return r.judgeTrial(ctx, g, op, start, spare, err)
	})
	if errors.Is(err, errAbandoned) {
		return fmt.Errorf("redis %s: %w", op, err)
	}
	return err
}

// judgeTrial records a trial's outcome err and acts on it: Redis
// answered, so the breaker closes (and the spare it ran on, if any, is
// swapped in); Redis failed, or said nothing, so the spare goes back.
func (r *Redis) judgeTrial(ctx context.Context, g *guard, op string, start time.Time, spare *clientRef, err error) error {
	took := time.Since(start)
	r.st.record(took, err)
	r.observe(op, took, err)
	if !IsFailure(err) && !answered(err) {
		// No failure, but no word from Redis either (the pool had no
		// connection free, the operation's own error): the trial proves
		// nothing, and the breaker stays open for the next one.
		r.returnSpare(g, spare)
		return fmt.Errorf("redis %s: %w", op, err)
	}
	if !IsFailure(err) {
		if g.dropped() {
			// The key led elsewhere meanwhile: the node's breaker says
			// nothing about it.
			return err
		}
		if spare != nil {
			if old := r.swapClient(spare.c); old != nil {
				r.retire(old)
			}
		}
		r.markSuccess()
		g.cb.Close()
		if err == nil || errors.Is(err, redis.Nil) {
			return err
		}
		return fmt.Errorf("redis %s: %w", op, err)
	}
	r.returnSpare(g, spare)
	r.st.noteError(r.opts.Now(), err)
	r.st.failures.Add(1)
	if cerr := ctx.Err(); errors.Is(cerr, context.Canceled) {
		return fmt.Errorf("redis %s: %w", op, cerr)
	}
	return fmt.Errorf("redis %s: %w", op, err)
}

// errAbandoned is the error of an operation still running at its
// deadline plus execGrace: the caller stops waiting for it. It is a
// deadline that passed, so a failure.
var errAbandoned = fmt.Errorf("still running at its deadline, not waited for: %w", context.DeadlineExceeded)

// bounded runs op in a goroutine of its own and waits for it until limit
// ends, then returns errAbandoned without it: whatever go-redis does past
// the deadline (a dial that asks the sentinels for the master under a
// lock that ignores contexts, a connection pool busy closing the
// connections of an old master, a goroutine the loaded machine did not
// run in time), the caller is not held. op runs on to its own end, and
// the breaker still judges Redis by it. It must not write what the
// caller reads after an error. Budget: one goroutine and one channel per
// operation (see BenchmarkGet).
func (r *Redis) bounded(limit context.Context, op func() error) error {
	done := make(chan error, 1)
	go func() { done <- op() }()
	select {
	case err := <-done:
		return err
	case <-limit.Done():
	}
	select {
	case err := <-done: // it ended just now: its own answer
		return err
	default:
	}
	r.st.abandoned.Add(1)
	return errAbandoned
}

// answered reports whether err, from a trial operation that is no
// failure, shows that Redis answered: a reply (a value, a miss, an error
// reply), or a value too large to arrive in time, whose size Redis sent.
// redis.ErrPoolTimeout is no answer: the pool's connections were all taken
// (by dials to a Redis that is down, say), and nothing reached Redis.
func answered(err error) bool {
	var re redis.Error
	return err == nil || errors.Is(err, redis.Nil) || errors.Is(err, ErrSlowTransfer) || errors.As(err, &re)
}

// returnSpare gives the spare a failed or inconclusive trial took back to
// g, unless the prober made a newer one meanwhile; nil is no spare.
func (r *Redis) returnSpare(g *guard, spare *clientRef) {
	if spare == nil {
		return
	}
	if !g.spare.CompareAndSwap(nil, spare) {
		_ = spare.c.Close() // the prober made a newer one meanwhile
	} else if r.closed.Load() {
		g.dropSpare()
	}
}

// swapClient makes c the client in use and returns the one it replaces.
func (r *Redis) swapClient(c redis.UniversalClient) redis.UniversalClient {
	ref := &clientRef{c: c}
	ref.ready.Store(r.cluster == nil)
	if old := r.client.Swap(ref); old != nil {
		return old.c
	}
	return nil
}

// retire closes a replaced client once operations already running on it
// have had their deadline, in a goroutine the Redis owns.
func (r *Redis) retire(old redis.UniversalClient) {
	r.bgMu.Lock()
	if r.closed.Load() {
		r.bgMu.Unlock()
		_ = old.Close()
		return
	}
	r.wg.Add(1)
	r.bgMu.Unlock()
	go func() {
		defer r.wg.Done()
		r.closeAfterGrace(old)
	}()
}

// closeAfterGrace waits two operation deadlines (or until the Redis
// closes) and closes old.
func (r *Redis) closeAfterGrace(old redis.UniversalClient) {
	grace := time.NewTimer(2*r.opts.OpTimeout + 10*time.Millisecond)
	defer grace.Stop()
	select {
	case <-grace.C:
	case <-r.done:
	}
	if err := old.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		r.log.Debug("closing replaced redis client", slog.String(logKeyError, err.Error()))
	}
}

func (g *guard) onStateChanged(ev circuitbreaker.StateChangedEvent) {
	r := g.r
	now := r.opts.Now()
	from, to := stateOf(ev.OldState), stateOf(ev.NewState)
	g.since.Store(now.UnixNano())
	r.trans.count(to)
	change := StateChange{From: from, To: to, At: now, Node: g.node}
	attrs := []any{slog.String(logKeyRedis, r.name)}
	if g.node != "" {
		attrs = append(attrs, slog.String(logKeyNode, g.node))
	}
	switch to {
	case StateOpen:
		g.trialAt.Store(now.UnixNano())
		change.LastError = r.st.lastErr()
		if g.node == "" {
			r.nearPause()
		}
		if from == StateClosed {
			g.downSince.Store(now.UnixNano())
			r.log.Warn("redis unavailable: serving without it until it answers",
				append(attrs, slog.String(logKeyError, change.LastError))...)
		}
		select {
		case g.wake <- struct{}{}:
		default:
		}
	case StateClosed:
		// Down since it left closed, through any half-open trials.
		downSince := time.Unix(0, g.downSince.Load())
		r.log.Info("redis available again", append(attrs, slog.Duration(logKeyDown, now.Sub(downSince)))...)
	case StateHalfOpen:
		r.log.Debug("redis breaker half-open", attrs...)
	}
	if r.opts.OnStateChange != nil {
		r.opts.OnStateChange(change)
	}
}
