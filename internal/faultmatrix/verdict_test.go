package faultmatrix

import (
	"fmt"
	"strings"
)

// verdict collects what one attempt at a phase found, sorted by how much
// it depends on the machine's speed.
type verdict struct {
	// broken lists contract violations that no machine excuses: a 5xx, a
	// wrong body, a leaked goroutine, a password shown, an invalid /health
	// answer. They fail the phase at once.
	broken []string
	// late lists missed time bounds: latency, time to resume, /health
	// showing the fault or recovering in time. A machine busy with other
	// work can miss them once; a phase that misses them is run again, and
	// fails if the second attempt misses them too.
	late []string
	// notes are shown with go test -v: what /health said, known bugs.
	notes []string
}

func (v *verdict) fail(format string, args ...any) {
	v.broken = append(v.broken, fmt.Sprintf(format, args...))
}

func (v *verdict) slow(format string, args ...any) {
	v.late = append(v.late, fmt.Sprintf(format, args...))
}

func (v *verdict) note(format string, args ...any) {
	v.notes = append(v.notes, fmt.Sprintf(format, args...))
}

func joinLines(lines []string) string { return strings.Join(lines, "\n  ") }
