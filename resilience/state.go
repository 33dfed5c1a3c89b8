package resilience

import (
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
)

// State is the circuit breaker's view of Redis.
type State int

// The states of a [Redis]. The zero value is StateClosed.
const (
	// StateClosed: Redis answers; operations go to it.
	StateClosed State = iota
	// StateOpen: Redis has been failing; operations return
	// [ErrUnavailable] at once while the prober waits for it to answer.
	StateOpen
	// StateHalfOpen: a trial operation is deciding between the two.
	StateHalfOpen
)

// String returns "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateOpen:
		return "open"
	case StateHalfOpen:
		return "half-open"
	}
	return "unknown"
}

func stateOf(s circuitbreaker.State) State {
	switch s {
	case circuitbreaker.OpenState:
		return StateOpen
	case circuitbreaker.HalfOpenState:
		return StateHalfOpen
	}
	return StateClosed
}

// StateChange describes one transition, for [Options.OnStateChange].
type StateChange struct {
	// From is the breaker's state before the transition, To the state
	// after it.
	From, To State
	// At is when it happened.
	At time.Time
	// Node is, in a cluster, the host:port of the node whose breaker
	// changed; empty for the breaker of the whole Redis.
	Node string
	// LastError is the redacted text of the last failure seen when the
	// breaker opened; empty when it closed.
	LastError string
}
