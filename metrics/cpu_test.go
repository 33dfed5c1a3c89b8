//go:build linux

package metrics

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// rusageThread is Linux's RUSAGE_THREAD, which package syscall does not
// name.
const rusageThread = 1

// cpuTime locks the calling goroutine to its thread and returns the CPU
// time (user and system) that thread used so far: the benchmark loop's own
// work, without GC workers, background goroutines or other processes.
func cpuTime() time.Duration {
	runtime.LockOSThread()
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the thread's CPU time per op since start as
// cpu-ns/op: on a machine shared with other work, wall time per op
// measures the load, CPU time the code.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	runtime.UnlockOSThread()
	runtime.UnlockOSThread()
}
