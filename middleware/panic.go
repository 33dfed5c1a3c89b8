package middleware

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
)

// Panics. Breaker and Retry recover a handler's panic narrowly around
// next.ServeHTTP and, when they pass it on from the deferred call, re-panic
// there so the stack still shows where it started. A panic Retry passes on
// later, after deciding not to retry, travels as a *panicError that carries
// the original stack.

// panicError is a recovered panic value with the stack of the goroutine
// that raised it.
type panicError struct {
	value any
	stack []byte
}

// Error shows the value and the stack where it was raised, for whoever
// recovers it last and logs it.
func (p *panicError) Error() string {
	return fmt.Sprintf("%v\n\n%s", p.value, p.stack)
}

// Unwrap returns the panic value if it is an error.
func (p *panicError) Unwrap() error {
	err, _ := p.value.(error)
	return err
}

// logPanic logs a recovered panic once, with its stack.
func logPanic(logger *slog.Logger, r *http.Request, v any, attrs ...slog.Attr) {
	var stack []byte
	if pe, ok := v.(*panicError); ok {
		v, stack = pe.value, pe.stack
	} else {
		stack = debug.Stack()
	}
	attrs = append(attrs,
		slog.String(LogKeyMethod, r.Method),
		slog.String(LogKeyPath, r.URL.Path),
		slog.Any(LogKeyPanic, v),
		slog.String(LogKeyStack, string(stack)))
	logger.LogAttrs(r.Context(), slog.LevelError, "handler panic recovered", attrs...)
}

// asPanicError wraps a recovered value with the current stack, which still
// holds the frames that panicked, unless it already carries its own.
func asPanicError(v any) *panicError {
	if pe, ok := v.(*panicError); ok {
		return pe
	}
	return &panicError{value: v, stack: debug.Stack()}
}
