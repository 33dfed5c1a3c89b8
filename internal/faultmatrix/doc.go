// Package faultmatrix is steadfast's fault-matrix reliability suite. It is a
// test-only package: everything in it lives in _test.go files, and it
// exports nothing.
//
// The suite puts the response cache (middleware.Cache), the health handler
// (healthhandler) and the guarded Redis client (resilience) under steady
// concurrent load against a real redis-server, and injects faults one at a
// time and then in quick succession: a killed and restarted server, a hung
// or slow one, a paused one, a read-only replica, an out-of-memory server,
// a rotated password, a flushed dataset, a TCP proxy that blackholes,
// resets or truncates, and garbage under the cache's own keys. For every
// fault it checks the contracts of DESIGN.md (no 5xx because of Redis, no
// wrong body, bounded latency, caching resumes, /health reports the fault
// without secrets and recovers, no goroutine left, no password logged) and
// prints a table with t.Log, shown by go test -v:
//
//	go test -race -v -run TestFaultMatrix ./internal/faultmatrix/
//
// STEADFAST_FAULT_TABLE=1 also prints the table on standard output; set to
// a file name, it writes the table there (for CI to keep).
//
// Contract violations the suite found and that are not fixed yet are
// listed in bugs_test.go: the checks they break are reported instead of
// failed, and their focused regression tests skip, naming the bug, until
// the entry is removed. STEADFAST_FAULT_STRICT=1 fails them all.
//
// The suite takes about 75 s under -race and is skipped with -short. It
// needs redis-server on PATH and skips without it (fails instead with
// STEADFAST_REQUIRE_REDIS=1). All traffic stays on 127.0.0.1.
package faultmatrix
