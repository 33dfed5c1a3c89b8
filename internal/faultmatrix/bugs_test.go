package faultmatrix

import (
	"os"
	"testing"
)

// strictEnv is the environment variable that makes every open bug fail
// the suite again, to check a fix.
const strictEnv = "STEADFAST_FAULT_STRICT"

// Contract violations the suite found and that are not fixed yet. While a
// bug is listed in openBugs, the matrix reports the checks it breaks (in
// the table and with t.Log) instead of failing them, and its focused
// regression test skips, naming it. STEADFAST_FAULT_STRICT=1 turns all of
// them back into failures. Delete a bug's entry once it is fixed: its
// regression test then guards the fix.
const (
	// bugInvalidationLost: a POST whose invalidating DEL fails (Redis
	// down, slow, read-only, breaker open) leaves the old entry in Redis,
	// and the cache serves it once Redis is back, although the POST
	// succeeded. Contract: "A successful POST/PUT/PATCH/DELETE
	// invalidates the cached GET of the same URL".
	bugInvalidationLost = "invalidation lost when Redis fails (middleware/cache.go invalidate)"
	// bugInvalidationRace: a miss whose handler ran before a POST stores
	// its (older) response after the POST's DEL, and the cache serves it
	// until the TTL ends. Same contract.
	bugInvalidationRace = "miss stored after a concurrent invalidation (middleware/cache.go invalidate / complete)"
	// bugHealthBlindToWrites: the Redis health check only PINGs, so a
	// server that answers PING but refuses every write (READONLY replica,
	// OOM under noeviction) shows "pass" unless the breaker happens to be
	// open. Contract: "/health reports the fault while it lasts, with the
	// specific error"; DESIGN.md lists READONLY and OOM as failures and
	// the check's "last error".
	bugHealthBlindToWrites = "health check blind to write failures (healthhandler/redis.go)"
)

// openBugs lists the bugs above that are still open.
var openBugs = map[string]bool{}

// knownBug reports whether bug is open and the suite is not strict, so
// that a check it breaks is reported rather than failed.
func knownBug(bug string) bool {
	return openBugs[bug] && os.Getenv(strictEnv) != "1"
}

// skipIfOpen skips a focused regression test while its bug is open.
func skipIfOpen(t *testing.T, bug string) {
	t.Helper()
	if knownBug(bug) {
		t.Skipf("open bug: %s (run with %s=1 to see it fail)", bug, strictEnv)
	}
}
