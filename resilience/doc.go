// Package resilience is the guarded Redis connection the rest of steadfast
// is built on.
//
// [ConfigFromEnv] reads REDIS_URL, or REDISHOST and REDISPORT (with
// REDISUSER, REDIS_PASSWORD and REDIS_DB), and reports exactly what is
// missing or malformed without ever showing a password.
//
// [NewRedis] (or [Wrap], for a client the caller built) gives a [Redis]
// whose operations fail fast instead of hanging: every operation has a
// short deadline, idempotent ones are retried with backoff, and a circuit
// breaker (both from failsafe-go) stops calling Redis at all while it is
// down, returning [ErrUnavailable] at once. A background prober notices
// when Redis answers again and closes the breaker, so callers resume
// without a restart and without having to send traffic first.
//
// [Options].NearCache turns on a near cache ([NearCacheOptions]): go-redis's
// client-side caching serves [Redis.Get] hits from process memory, kept
// coherent by Redis's invalidation pushes, and stops serving whenever
// those pushes may have been lost.
//
// [Retry] runs a background task (a worker's job) with exponential backoff,
// logging each failure instead of crashing.
package resilience
