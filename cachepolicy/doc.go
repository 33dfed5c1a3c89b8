// Package cachepolicy holds the pure decisions of steadfast's response cache:
// which routes are cached and how ([Policy], [Rules]), what a cached response
// is filed under ([Key]), what the Cache-Control fields of a request and a
// response say ([ParseRequest], [ParseResponse]), whether a response may be
// stored and for how long ([Storable]), whether a stored response may be
// served ([Classify]), whether a request is answered with 304
// ([NotModified]) and what the Cache-Status field says ([CacheStatus]).
//
// Nothing here does I/O, starts a goroutine, reads a clock or writes a
// response: headers and a time go in, a decision comes out. The middleware
// package calls these functions and does the rest. All functions are safe
// for concurrent use, and none panics on any input.
//
// The rules follow RFC 9111 (HTTP caching) for a shared cache, RFC 5861
// (stale-while-revalidate, stale-if-error), RFC 9110 (conditional requests)
// and RFC 9211 (Cache-Status), restricted to what a cache in front of a single
// application needs.
//
// # Cache poisoning
//
// A cache is poisoned when a response that depends on a request header is
// stored under a key that does not contain that header, so that an attacker's
// header value is replayed to everyone. [Key] uses only the method class, the
// scheme (from the TLS state, never from X-Forwarded-Proto), the Host, the
// path, the query and the headers a policy names in [Policy.KeyHeaders].
// Headers such as X-Forwarded-Host, X-Forwarded-Proto, X-Original-URL or
// Forwarded therefore never change the key, and [Storable] refuses any
// response whose Vary field names a header outside the key. A handler that
// reads such a header must either say so with Vary or the route's policy must
// list the header in KeyHeaders; otherwise it must not be cached. The same
// rule makes a route whose responses say Vary: Accept-Encoding (as a
// compressing handler below the cache does) cacheable only when its policy
// lists Accept-Encoding in KeyHeaders.
package cachepolicy
