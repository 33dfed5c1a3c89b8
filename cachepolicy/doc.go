// Package cachepolicy holds the pure decisions of steadfast's response cache:
// which routes are cached and how ([Policy], [Rules]), what a cached response
// is filed under ([Key], and [AppendVariantKey] for responses that say
// Vary), what the Cache-Control fields of a request and a response say
// ([ParseRequest], [ParseResponse], [ParseTargeted] for CDN-Cache-Control
// and the cache's own targeted field), whether a response may be stored,
// which of its fields and for how long ([Storable], [FieldFilter]),
// whether a stored response may be served ([Classify]), how it is
// revalidated ([Validators], [UpdateHeader]), whether a request is
// answered with 304 ([NotModified]) or 206 ([SelectRange]), how dates are
// read ([ParseHTTPDate]) and what the Cache-Status field says
// ([CacheStatus]).
//
// Nothing here does I/O, starts a goroutine, reads a clock or writes a
// response: headers and a time go in, a decision comes out. The middleware
// package calls these functions and does the rest. All functions are safe
// for concurrent use, and none panics on any input.
//
// The rules follow RFC 9111 (HTTP caching) for a shared cache, RFC 5861
// (stale-while-revalidate, stale-if-error), RFC 9110 (conditional and range
// requests), RFC 9213 (targeted cache control) and RFC 9211
// (Cache-Status), restricted to what a cache in front of a single
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
// Forwarded therefore never change the key. A response whose Vary field
// names a header outside the key is stored as a variant, under
// [AppendVariantKey], whose key holds that header's normalised value: the
// response reaches only requests with the same value. A handler that reads
// such a header must therefore say so with Vary, or the route's policy
// must list the header in KeyHeaders; otherwise it must not be cached.
// "Vary: *" is never stored.
package cachepolicy
