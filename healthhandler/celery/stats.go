package celery

import (
	"slices"
	"strings"
	"time"
)

// Worker describes one worker the listener heard of, in
// [Stats].
type Worker struct {
	// Hostname is the worker's node name, such as "celery@host1".
	Hostname string
	// Alive says whether the worker beat within the last two of its
	// heartbeat intervals and did not announce it went offline.
	Alive bool
	// Offline says the worker announced a warm shutdown.
	Offline bool
	// Active and Processed are the tasks the worker was running and had
	// run, from its last event.
	Active, Processed int64
	// Freq is the worker's heartbeat interval, from its last event.
	Freq time.Duration
	// LastHeard is when its last worker-online or worker-heartbeat event
	// arrived, by [Options.Now].
	LastHeard time.Time
	// Skew is LastHeard minus the timestamp the worker wrote into that
	// event: the difference between the two clocks, plus the time the
	// event took to arrive. It is zero when the event had no timestamp.
	Skew time.Duration
}

// Stats is a snapshot of an [Events].
type Stats struct {
	// Connected says whether the listener is subscribed now; Since is
	// when it subscribed (zero when it is not).
	Connected bool
	Since     time.Time
	// LastError says why the listener is not subscribed; empty while it
	// is.
	LastError string
	// Events counts the messages received; Malformed those skipped
	// because they were not valid Celery worker events, and LastMalformed
	// says what was wrong with the latest one.
	Events, Malformed uint64
	LastMalformed     string
	// Workers lists the workers heard of, alive or dead for less than
	// ten minutes, sorted by Hostname.
	Workers []Worker
}

// Stats returns a snapshot of what the listener knows. It does no I/O.
func (e *Events) Stats() Stats { return e.stats(e.now()) }

func (e *Events) stats(now time.Time) Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Stats{
		Connected: e.connected, LastError: e.lastErr,
		Events: e.events, Malformed: e.malformed, LastMalformed: e.lastBad,
		Workers: make([]Worker, 0, len(e.workers)),
	}
	if e.connected {
		st.Since = e.since
	}
	for host, w := range e.workers {
		if now.Sub(w.expires) > celeryForget {
			delete(e.workers, host)
			continue
		}
		st.Workers = append(st.Workers, Worker{
			Hostname: host, Alive: !w.offline && now.Before(w.expires), Offline: w.offline,
			Active: w.active, Processed: w.processed, Freq: w.freq,
			LastHeard: w.heard, Skew: w.skew,
		})
	}
	slices.SortFunc(st.Workers, func(a, b Worker) int { return strings.Compare(a.Hostname, b.Hostname) })
	return st
}
