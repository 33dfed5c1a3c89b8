//go:build unix

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/steadfast-go/steadfast/resilience"
)

// NearMemResult is the memory scenario: Keys distinct keys of ValueBytes
// each read twice (forwards, then backwards) through a Redis with the near
// cache at its defaults;
// what the near cache holds, and what the process's memory grew by.
type NearMemResult struct {
	Keys       int   `json:"keys"`
	ValueBytes int   `json:"value_bytes"`
	Entries    int   `json:"entries"`
	Bytes      int64 `json:"bytes"`
	MaxBytes   int64 `json:"max_bytes"`
	// HeapMiB is the live heap's growth after a GC; RSSMiB the growth of
	// the process's resident set (VmRSS), which also holds whatever the
	// runtime has not given back yet.
	HeapMiB float64 `json:"heap_mib"`
	RSSMiB  float64 `json:"rss_mib"`
	// RSSBeforeMiB and RSSAfterMiB are the whole process, load generator
	// and the other configurations' servers included.
	RSSBeforeMiB float64 `json:"rss_before_mib"`
	RSSAfterMiB  float64 `json:"rss_after_mib"`
	Hits         uint64  `json:"hits"`
}

// memValueBytes is about the size of a stored response of the hit runs.
const memValueBytes = 1200

func nearMemory(ctx context.Context, addr string, keys int, logger *slog.Logger) (NearMemResult, error) {
	res := NearMemResult{Keys: keys, ValueBytes: memValueBytes}
	raw := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	defer func() { _ = raw.Close() }()
	val := make([]byte, memValueBytes)
	for i := 0; i < keys; i += 1000 {
		pipe := raw.Pipeline()
		for j := i; j < min(i+1000, keys); j++ {
			pipe.Set(ctx, "mem:"+strconv.Itoa(j), val, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return res, fmt.Errorf("memory: fill: %w", err)
		}
	}

	heap0, rss0 := memNow()
	// A generous deadline: this measures memory, and a loaded machine
	// must not turn a slow read into a failed run.
	rdb, err := resilience.NewRedis(resilience.Config{Addr: addr}, resilience.Options{
		Logger: logger, OpTimeout: 2 * time.Second, NearCache: &resilience.NearCacheOptions{},
	})
	if err != nil {
		return res, err
	}
	defer func() { _ = rdb.Close() }()
	if err := waitNearServing(rdb); err != nil {
		return res, err
	}
	const workers = 8
	// The second pass goes backwards: the keys read last are the ones the
	// near cache kept (a forward scan larger than the bound would evict
	// every key just before it is read again).
	for pass := range 2 {
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := w; j < keys; j += workers {
					k := j
					if pass == 1 {
						k = keys - 1 - j
					}
					if _, err := rdb.Get(ctx, "mem:"+strconv.Itoa(k)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return res, fmt.Errorf("memory: get: %w", err)
		}
	}
	heap1, rss1 := memNow()
	st := rdb.Stats().NearCache
	res.Entries, res.Bytes, res.MaxBytes, res.Hits = st.Entries, st.Bytes, st.MaxBytes, st.Hits
	res.HeapMiB = float64(int64(heap1)-int64(heap0)) / (1 << 20)
	res.RSSMiB = float64(rss1-rss0) / (1 << 20)
	res.RSSBeforeMiB, res.RSSAfterMiB = float64(rss0)/(1<<20), float64(rss1)/(1<<20)
	if _, err := raw.FlushAll(ctx).Result(); err != nil {
		return res, fmt.Errorf("memory: flush: %w", err)
	}
	return res, nil
}

// memNow returns the live heap after a GC and the resident set size.
func memNow() (heap uint64, rss int64) {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, readRSS()
}

// readRSS reads VmRSS from /proc/self/status, in bytes; 0 where there is
// none.
func readRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
