package middleware

import (
	"errors"
	"fmt"
)

// ErrInvalidOption is wrapped by the errors constructors return for options
// they cannot use; the message names the field, in the form
// "middleware: RetryOptions.MaxDelay is negative (-1s): invalid option".
var ErrInvalidOption = errors.New("invalid option")

// invalidOption returns an error wrapping [ErrInvalidOption], in the
// package's one style: "middleware: " and the formatted text, which names
// the option (Type.Field).
func invalidOption(format string, args ...any) error {
	return fmt.Errorf("middleware: "+format+": %w", append(args, ErrInvalidOption)...)
}

// Attribute keys of the package's log lines.
const (
	// LogKeyBreaker is the breaker's name (BreakerOptions.Name).
	LogKeyBreaker = "breaker"
	// LogKeyFrom is the state a breaker left.
	LogKeyFrom = "from"
	// LogKeyTo is the state a breaker entered.
	LogKeyTo = "to"
	// LogKeyPanic is a recovered panic's value.
	LogKeyPanic = "panic"
	// LogKeyStack is the stack of the goroutine that panicked.
	LogKeyStack = "stack"
	// LogKeyMethod is the request method.
	LogKeyMethod = "method"
	// LogKeyPath is the request's URL path, without the query.
	LogKeyPath = "path"
)

// orDefault returns v, or def if v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
