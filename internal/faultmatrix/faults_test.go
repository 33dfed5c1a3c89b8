package faultmatrix

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"

	"github.com/steadfast-go/steadfast/internal/faultproxy"
	"github.com/steadfast-go/steadfast/internal/redistest"
	"github.com/steadfast-go/steadfast/internal/testlog"
)

// env is what faults act on: the real server the cache uses, a second
// server to replicate from, the proxy in front of the first, and a raw
// client to write under the cache's keys.
type env struct {
	t       *testing.T
	srv     *redistest.Server
	master  *redistest.Server // REPLICAOF target, no password
	dataDir string            // where srv keeps dump.rdb
	proxy   *faultproxy.Proxy
	raw     *redis.Client // straight to srv, with the password

	password, rotated string // the server's password, and the one a fault rotates to

	redisLogs *testlog.Buffer // go-redis's own log lines

	// keys lists the cache keys of every resource under the running
	// phase's cache; set by the phase before the fault is injected.
	keys func() []string
}

// cmd sends a raw command to srv and fails the test if it fails.
func (e *env) cmd(args ...string) string {
	e.t.Helper()
	r, err := e.srv.Command(args...)
	assert.NoError(e.t, err, "fault: redis %v", args)
	return r
}

// waitAnswers waits until srv answers PING (after a pause ends, say).
func (e *env) waitAnswers() {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := e.srv.Command("PING"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			assert.Fail(e.t, "fault: redis does not answer after the fault cleared")
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fault is one row of the matrix.
type fault struct {
	name string
	// viaProxy puts the proxy (in pass mode) between the client and srv.
	viaProxy bool
	// noPosts keeps invalidating requests out of the load, for faults that
	// bring back an older dataset on purpose.
	noPosts bool
	// inject starts the fault and returns what clears it, which may block
	// until the fault is over (a DEBUG SLEEP ending). A nil func means the
	// fault is a single event, over once inject returns.
	inject func(e *env) (clearFault func())
	// atStart injects the fault before the stack is built, so that the
	// application starts with Redis failing; the fault then lasts the
	// whole "before" span too, and there is no baseline.
	atStart bool
	// during overrides how long the fault lasts before clear is called.
	during time.Duration
	// health lists the texts of which /health must show one, with a status
	// other than pass, while the fault lasts: the specific error, not the
	// generic "redis unavailable". Nil: the fault makes Redis fail no
	// operation, so there is nothing /health should report.
	health []string
	// healthSlow, if set, is a redis:responseTime that also counts as
	// showing the fault: a slow server may still answer the check in time.
	healthSlow time.Duration
	// healthBug is the open bug that keeps /health from showing this
	// fault, if any.
	healthBug string
	// near turns the near cache on (resilience.Options.NearCache).
	near bool
}

// Specific errors /health may show. A Redis that does not answer in time
// gives a timeout; a closed one a refused connect, or EOF and resets on
// connections it had.
var (
	timeoutTexts = []string{"timeout", "deadline"}
	downTexts    = []string{"refused", "EOF", "reset", "broken pipe"}
)

// faults is the matrix, one fault at a time, then in quick succession.
func faults() []fault {
	return withNearCache([]fault{
		{
			name: "kill -9, restart (RDB kept)", noPosts: true,
			inject: func(e *env) func() {
				e.cmd("SAVE")
				e.srv.Kill()
				return e.srv.Restart
			},
			health: downTexts,
		},
		{
			name: "kill -9, restart empty",
			inject: func(e *env) func() {
				e.srv.Kill()
				return func() {
					e.removeDump()
					e.srv.Restart()
				}
			},
			health: downTexts,
		},
		{
			name: "down at start-up", atStart: true,
			inject: func(e *env) func() {
				e.srv.Kill()
				return func() {
					e.removeDump()
					e.srv.Restart()
				}
			},
			health: downTexts,
		},
		{
			name: "SIGSTOP / SIGCONT",
			inject: func(e *env) func() {
				e.srv.Pause()
				return e.srv.Resume
			},
			health: timeoutTexts,
		},
		{
			name: "DEBUG SLEEP 1s",
			inject: func(e *env) func() {
				done := make(chan struct{})
				go func() {
					defer close(done)
					e.cmd("DEBUG", "SLEEP", "1")
				}()
				return func() { <-done }
			},
			during: time.Nanosecond, // clear waits for the sleep itself
			health: timeoutTexts,
		},
		{
			name:       "slow (DEBUG SLEEP 30ms loop)",
			inject:     func(e *env) func() { return e.loop("DEBUG", "SLEEP", "0.03") },
			health:     timeoutTexts,
			healthSlow: 10 * time.Millisecond,
		},
		{
			name: "CLIENT PAUSE 1s",
			inject: func(e *env) func() {
				end := time.Now().Add(faultDuration)
				e.cmd("CLIENT", "PAUSE", strconv.FormatInt(faultDuration.Milliseconds(), 10), "ALL")
				return func() {
					time.Sleep(time.Until(end)) // CLIENT UNPAUSE is itself paused: wait for the end
					e.waitAnswers()
				}
			},
			health: timeoutTexts,
		},
		{
			name: "REPLICAOF (READONLY)",
			inject: func(e *env) func() {
				e.cmd("REPLICAOF", "127.0.0.1", strconv.Itoa(e.master.Port()))
				return func() { e.cmd("REPLICAOF", "NO", "ONE") }
			},
			health:    []string{"READONLY", "LOADING", "MASTERDOWN"},
			healthBug: bugHealthBlindToWrites,
		},
		{
			name: "maxmemory noeviction (OOM)",
			inject: func(e *env) func() {
				e.cmd("CONFIG", "SET", "maxmemory-policy", "noeviction")
				e.cmd("CONFIG", "SET", "maxmemory", "1")
				return func() { e.cmd("CONFIG", "SET", "maxmemory", "0") }
			},
			health:    []string{"OOM"},
			healthBug: bugHealthBlindToWrites,
		},
		{
			name: "requirepass rotated",
			inject: func(e *env) func() {
				e.cmd("CONFIG", "SET", "requirepass", e.rotated)
				e.srv.SetPassword(e.rotated)
				// Connections already authenticated stay so; drop them, as a
				// restart with the new password would.
				e.cmd("CLIENT", "KILL", "TYPE", "normal")
				return func() {
					e.cmd("CONFIG", "SET", "requirepass", e.password)
					e.srv.SetPassword(e.password)
				}
			},
			health: []string{"WRONGPASS", "NOAUTH", "auth"},
		},
		{
			name: "FLUSHALL",
			inject: func(e *env) func() {
				e.cmd("FLUSHALL")
				return nil
			},
		},
		{
			name: "proxy blackhole", viaProxy: true,
			inject: func(e *env) func() { return e.proxyMode(faultproxy.Blackhole) },
			health: timeoutTexts,
		},
		{
			name: "proxy reset mid-reply", viaProxy: true,
			inject: func(e *env) func() { return e.proxyMode(faultproxy.Reset) },
			health: []string{"reset", "EOF", "broken pipe"},
		},
		{
			name: "proxy truncated reply", viaProxy: true,
			inject: func(e *env) func() { return e.proxyMode(faultproxy.Truncate) },
			health: []string{"EOF", "reset", "unexpected", "broken pipe"},
		},
		{
			name:   "garbage: random bytes",
			inject: func(e *env) func() { e.garbage(randomBytes); return nil },
		},
		{
			name:   "garbage: truncated entries",
			inject: func(e *env) func() { e.garbage(truncated); return nil },
		},
		{
			name:   "garbage: entry of another version",
			inject: func(e *env) func() { e.garbage(otherVersion); return nil },
		},
		{
			name: "quick succession", viaProxy: true,
			inject: func(e *env) func() { e.succession(); return nil },
			health: append(slices.Clone(downTexts), timeoutTexts...),
		},
	})
}

// nearFaults are the faults run a second time with the near cache on:
// each loses the invalidation stream (or, FLUSHALL, sends one push for
// everything), which must stop the near cache serving until Redis
// answers again.
var nearFaults = []string{"kill -9, restart empty", "SIGSTOP / SIGCONT", "proxy blackhole", "FLUSHALL"}

// withNearCache inserts, before the last row (the quick succession), the
// near-cache runs of nearFaults.
func withNearCache(fs []fault) []fault {
	var near []fault
	for _, f := range fs {
		if slices.Contains(nearFaults, f.name) {
			f.name = "near cache: " + f.name
			f.near = true
			near = append(near, f)
		}
	}
	last := len(fs) - 1
	return append(append(fs[:last:last], near...), fs[last])
}

// removeDump deletes the server's snapshot, so that it restarts empty.
func (e *env) removeDump() {
	if err := os.Remove(filepath.Join(e.dataDir, "dump.rdb")); !errors.Is(err, os.ErrNotExist) {
		assert.NoError(e.t, err, "fault: remove dump.rdb")
	}
}

// loop sends the command over and over until the returned clear is called.
func (e *env) loop(args ...string) func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			e.cmd(args...)
		}
	}()
	return func() { close(stop); wg.Wait() }
}

func (e *env) proxyMode(m faultproxy.Mode) func() {
	e.proxy.SetMode(m)
	return func() { e.proxy.SetMode(faultproxy.Pass) }
}

// succession runs several faults back to back, each short, with little
// room between them: the breaker and the prober never settle.
func (e *env) succession() {
	step := func(d time.Duration) { time.Sleep(d) }
	e.srv.Kill()
	step(200 * time.Millisecond)
	e.removeDump()
	e.srv.Restart()
	step(100 * time.Millisecond)
	e.srv.Pause()
	step(300 * time.Millisecond)
	e.srv.Resume()
	step(50 * time.Millisecond)
	e.proxy.SetMode(faultproxy.Reset)
	step(200 * time.Millisecond)
	e.proxy.SetMode(faultproxy.Pass)
	e.cmd("FLUSHALL")
	step(100 * time.Millisecond)
	e.proxy.SetMode(faultproxy.Blackhole)
	step(300 * time.Millisecond)
	e.proxy.SetMode(faultproxy.Truncate)
	step(100 * time.Millisecond)
	e.proxy.SetMode(faultproxy.Pass)
	e.garbage(randomBytes)
}

// garbage overwrites the cache's entry of every resource with what spoil
// makes of it (nil where there was none).
func (e *env) garbage(spoil func(old []byte) []byte) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, key := range e.keys() {
		old, err := e.raw.Get(ctx, key).Bytes()
		if !errors.Is(err, redis.Nil) && !assert.NoError(e.t, err, "fault: get %s", key) {
			continue
		}
		assert.NoError(e.t, e.raw.Set(ctx, key, spoil(old), time.Minute).Err(), "fault: set %s", key)
	}
}

func randomBytes([]byte) []byte {
	b := make([]byte, 200)
	_, _ = rand.Read(b)
	return b
}

// truncated cuts an entry in two (or makes a cut-short header when there
// was none).
func truncated(old []byte) []byte {
	if len(old) < 2 {
		return []byte("sfc\x01\x00\x00")
	}
	return old[:len(old)/2]
}

// Offsets in a cache entry (see middleware/entry.go): magic "sfc", a
// version byte, a CRC-32C of everything after it.
const (
	entryVersionAt = 3
	entryCRCAt     = 4
)

// otherVersion turns an entry into a well-formed one of a version the
// cache does not know, checksum and all.
func otherVersion(old []byte) []byte {
	if len(old) < entryCRCAt+4 {
		old = append([]byte("sfc\x01\x00\x00\x00\x00"), make([]byte, 64)...)
	}
	b := append([]byte(nil), old...)
	b[entryVersionAt] = 2
	binary.BigEndian.PutUint32(b[entryCRCAt:], crc32.Checksum(b[entryCRCAt+4:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}
