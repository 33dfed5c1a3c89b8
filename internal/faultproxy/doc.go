// Package faultproxy is a TCP proxy for tests that puts network faults
// between a client and its server.
//
// [New] listens on a free 127.0.0.1 port and forwards every connection to
// an upstream address. [Proxy.SetMode] switches, at run time and for
// connections already open as well as new ones, between:
//
//   - [Pass]: bytes flow both ways unchanged;
//   - [Blackhole]: connections are accepted, and nothing is forwarded or
//     answered any more; what either side sends is dropped;
//   - [Reset]: the next reply chunk from upstream is forwarded only in part,
//     then the client connection is reset (RST, by closing it with
//     SO_LINGER 0);
//   - [Truncate]: the same, but the client connection is closed normally
//     (FIN), so the client reads the start of a reply and then EOF.
//
// [Proxy.Close] closes the listener and every connection and waits for all
// of the proxy's goroutines. The package is for tests only: it has no
// timeouts of its own and trusts both ends.
package faultproxy
