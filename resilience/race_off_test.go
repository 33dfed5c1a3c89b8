//go:build !race

package resilience

// raceEnabled: the race detector slows every goroutine several times over.
const raceEnabled = false
