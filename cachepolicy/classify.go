package cachepolicy

import (
	"strconv"
	"time"
)

// Freshness is the state of a stored response at the time of a request, as
// [Classify] reports it. The zero value is [Expired].
type Freshness int

const (
	// Expired means the stored response must not be served: run the
	// handler.
	Expired Freshness = iota
	// Fresh means the stored response is served as it is.
	Fresh
	// StaleRevalidate means the stored response is served now while one
	// refresh per key runs in the background.
	StaleRevalidate
	// StaleIfErrorOnly means the handler runs, and the stored response is
	// served only if the handler fails.
	StaleIfErrorOnly
)

// String returns the state's name, such as "fresh".
func (f Freshness) String() string {
	switch f {
	case Expired:
		return "expired"
	case Fresh:
		return "fresh"
	case StaleRevalidate:
		return "stale-while-revalidate"
	case StaleIfErrorOnly:
		return "stale-if-error"
	}
	return "Freshness(" + strconv.Itoa(int(f)) + ")"
}

// Classify says how a response stored at storedAt with lifetime l may be
// used at now for a request with directives rd.
//
// Without request directives: [Fresh] while its age is under l.Fresh, then
// [StaleRevalidate] for l.StaleWhileRevalidate, then [StaleIfErrorOnly]
// until l.StaleIfError past l.Fresh, then [Expired]. The stale windows run
// side by side, both counted from the end of freshness.
//
// Request directives: no-cache and max-age=0 force revalidation, so a fresh
// response is at best [StaleIfErrorOnly] (the handler runs; the stored copy
// covers its failure); so does a max-age the current age ([Lifetime.CurrentAge])
// exceeds, or a min-fresh the remaining freshness does not meet, and so
// does a response that said no-cache ([Lifetime.NoCache]). A max-stale the staleness is
// within makes a stale response [StaleRevalidate], unless l.MustRevalidate.
// only-if-cached is the caller's to handle.
//
// Freshness is counted from storedAt (see [Age]); the age a response had
// when it was stored is already taken off l.Fresh by [Storable], and counts
// for the request's max-age through l.Age.
func Classify(l Lifetime, storedAt, now time.Time, rd RequestDirectives) Freshness {
	age := Age(storedAt, now)
	fresh := max(l.Fresh, 0)
	current := l.CurrentAge(storedAt, now)
	revalidate := l.NoCache || rd.NoCache || (rd.HasMaxAge && (rd.MaxAge <= 0 || current > rd.MaxAge))

	if age < fresh {
		if l.NoCache {
			// Not usable unvalidated, not even for a failed handler,
			// unless the response itself granted that window.
			if l.StaleIfError > 0 {
				return StaleIfErrorOnly
			}
			return Expired
		}
		if revalidate || (rd.HasMinFresh && fresh-age < rd.MinFresh) {
			return StaleIfErrorOnly
		}
		return Fresh
	}

	stale := age - fresh
	if !revalidate && !rd.HasMinFresh {
		if stale < max(l.StaleWhileRevalidate, 0) {
			return StaleRevalidate
		}
		if rd.HasMaxStale && !l.MustRevalidate && stale <= rd.MaxStale {
			return StaleRevalidate
		}
	}
	if stale < max(l.StaleIfError, 0) {
		return StaleIfErrorOnly
	}
	return Expired
}

// Age returns how long a response stored at storedAt has been stored at
// now, never negative (a clock that went back gives 0): its resident time.
// The Age field of a response served from the cache is
// [Lifetime.CurrentAge], which adds the age it was stored with.
func Age(storedAt, now time.Time) time.Duration {
	return max(now.Sub(storedAt), 0)
}
