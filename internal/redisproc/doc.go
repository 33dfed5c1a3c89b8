// Package redisproc starts and controls real redis-server processes, for
// the fault tests (through internal/redistest) and for the bench program.
//
// [Start] runs redis-server on a free 127.0.0.1 port, without persistence
// and with DEBUG enabled, in its own process group (on Linux it is also
// killed when the program that started it dies). The [Server] it returns
// can be killed (SIGKILL), paused (SIGSTOP), resumed (SIGCONT) and
// restarted on the same port, and can be sent raw commands over a fresh
// connection, so that faults are driven without going through the client
// under test. Errors are returned, never logged: the caller decides
// whether one fails a test or ends a program.
//
// The package needs a Unix system: it signals process groups.
package redisproc
