//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"
)

// goroutinesLeft waits up to three seconds for the goroutine count to
// come back to before, and writes the stacks of any left to a file.
func goroutinesLeft(before int) GoroutineResult {
	deadline := time.Now().Add(3 * time.Second)
	n := runtime.NumGoroutine()
	for n > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	g := GoroutineResult{Before: before, After: n, Left: max(0, n-before)}
	if g.Left > 0 {
		path := filepath.Join(os.TempDir(), "bench-goroutines.txt")
		if fh, err := os.Create(path); err == nil {
			_ = pprof.Lookup("goroutine").WriteTo(fh, 2)
			_ = fh.Close()
			fmt.Fprintf(os.Stderr, "bench: %d goroutines left after Close; stacks in %s\n", g.Left, path)
		}
	}
	return g
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func startCPUProfile(path string) (func(), error) {
	fh, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(fh); err != nil {
		_ = fh.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); _ = fh.Close() }, nil
}

func writeAllocProfile(path string) error {
	fh, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("mem profile: %w", err)
	}
	defer func() { _ = fh.Close() }()
	if err := pprof.Lookup("allocs").WriteTo(fh, 0); err != nil {
		return fmt.Errorf("mem profile: %w", err)
	}
	return nil
}
