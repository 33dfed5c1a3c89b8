package middleware

import (
	"context"
	"log/slog"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
)

// BreakerStateChange describes one state change of a [Breaker].
type BreakerStateChange struct {
	Name string       // BreakerOptions.Name
	From BreakerState // the state left
	To   BreakerState // the state entered
	At   time.Time    // when the change happened
}

// BreakerStats is a snapshot of a [Breaker]'s state and counts. The figures
// are read one after the other, not atomically together.
type BreakerStats struct {
	// State is the current state, and Since when it began (or when the
	// breaker was made, if it never changed state).
	State BreakerState
	Since time.Time

	// Executions, Failures and Successes count the requests recorded in
	// the current state: in the closed state over the last FailureThreshold
	// requests, in the half-open state over the trials. While open they
	// are those of the closed state that opened it.
	Executions uint64
	Failures   uint64
	Successes  uint64

	// Rejected counts the requests turned away since the breaker was made.
	Rejected uint64

	// Opens, HalfOpens and Closes count the changes into each state since
	// the breaker was made.
	Opens, HalfOpens, Closes uint64
}

// stateChanged is failsafe's state change listener: one log line, the
// callback, and the time for Stats.
func (b *Breaker) stateChanged(e circuitbreaker.StateChangedEvent) {
	change := BreakerStateChange{
		Name: b.name,
		From: breakerState(e.OldState),
		To:   breakerState(e.NewState),
		At:   time.Now(),
	}
	b.mu.Lock()
	b.since = change.At
	b.state = change.To
	b.gen++
	b.spare = 0
	b.mu.Unlock()
	b.trans.count(change.To)

	level := slog.LevelInfo
	if change.To == BreakerOpen {
		level = slog.LevelWarn
	}
	b.logger.LogAttrs(context.Background(), level, "circuit breaker state changed",
		slog.String(LogKeyBreaker, b.name),
		slog.String(LogKeyFrom, change.From.String()),
		slog.String(LogKeyTo, change.To.String()))
	if b.onStateChange != nil {
		b.onStateChange(change)
	}
}

// breakerState translates failsafe's state.
func breakerState(s circuitbreaker.State) BreakerState {
	switch s {
	case circuitbreaker.OpenState:
		return BreakerOpen
	case circuitbreaker.HalfOpenState:
		return BreakerHalfOpen
	default:
		return BreakerClosed
	}
}

// Stats returns the breaker's current state and counts.
func (b *Breaker) Stats() BreakerStats {
	m := b.cb.Metrics()
	b.mu.Lock()
	since := b.since
	b.mu.Unlock()
	return BreakerStats{
		State:      breakerState(b.cb.State()),
		Since:      since,
		Executions: uint64(m.Executions()),
		Failures:   uint64(m.Failures()),
		Successes:  uint64(m.Successes()),
		Rejected:   b.rejected.Load(),
		Opens:      b.trans.opens.Load(),
		HalfOpens:  b.trans.halfOpens.Load(),
		Closes:     b.trans.closes.Load(),
	}
}
