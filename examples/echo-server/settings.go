package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/steadfast-go/steadfast/resilience"
)

// settings are the program's environment, parsed once at start-up.
type settings struct {
	addr             string
	redis            resilience.Config
	embedded         bool // no Redis configured: run miniredis in-process
	itemDelay        time.Duration
	workers          int
	upstreamFailRate float64
	celeryCheck      string // "", "events" or "ping"
	asynqCheck       bool
	healthToken      string // HEALTH_TOKEN: the bearer token that shows /health details
	// nearCache is NEAR_CACHE=on. Off by default: the near cache costs
	// memory (up to 32 MiB) and a heartbeat ping every 50 ms, pays off
	// only with real Redis (the embedded miniredis cannot track keys, so
	// it would turn itself off anyway), and a user turns it on knowing
	// that writes made outside Redis's view need their own invalidation.
	nearCache bool
}

// settingError is a malformed setting: the program exits with status 2.
type settingError struct{ msg string }

func (e *settingError) Error() string { return e.msg }

// loadSettings reads the environment. Every error names the variable and
// never shows a password.
func loadSettings() (settings, error) {
	get := func(k, def string) string {
		if v, ok := os.LookupEnv(k); ok && v != "" {
			return v
		}
		return def
	}
	s := settings{addr: get("ADDR", ":8080"), healthToken: get("HEALTH_TOKEN", "")}

	cfg, err := resilience.ConfigFromEnv()
	switch {
	case err == nil:
		s.redis = cfg
	case errors.Is(err, resilience.ErrNotConfigured):
		s.embedded = true // nothing set at all
	default:
		return s, &settingError{msg: err.Error()} // names the variable, password as ***
	}

	if s.itemDelay, err = time.ParseDuration(get("ITEM_DELAY", "50ms")); err != nil || s.itemDelay < 0 {
		return s, &settingError{msg: fmt.Sprintf("ITEM_DELAY=%q: want a duration such as 50ms", get("ITEM_DELAY", ""))}
	}
	if s.workers, err = strconv.Atoi(get("WORKERS", "1")); err != nil || s.workers < 0 {
		return s, &settingError{msg: fmt.Sprintf("WORKERS=%q: want a whole number from 0 up", get("WORKERS", ""))}
	}
	if s.upstreamFailRate, err = strconv.ParseFloat(get("UPSTREAM_FAIL_RATE", "0.3"), 64); err != nil || s.upstreamFailRate < 0 || s.upstreamFailRate > 1 {
		return s, &settingError{msg: fmt.Sprintf("UPSTREAM_FAIL_RATE=%q: want a number from 0 to 1", get("UPSTREAM_FAIL_RATE", ""))}
	}
	switch s.celeryCheck = get("CELERY_CHECK", ""); s.celeryCheck {
	case "", "events", "ping":
	default:
		return s, &settingError{msg: fmt.Sprintf("CELERY_CHECK=%q: want events or ping", s.celeryCheck)}
	}
	switch v := get("ASYNQ_CHECK", "0"); v {
	case "0", "1":
		s.asynqCheck = v == "1"
	default:
		return s, &settingError{msg: fmt.Sprintf("ASYNQ_CHECK=%q: want 0 or 1", v)}
	}
	switch v := get("NEAR_CACHE", "off"); v {
	case "on", "off":
		s.nearCache = v == "on"
	default:
		return s, &settingError{msg: fmt.Sprintf("NEAR_CACHE=%q: want on or off", v)}
	}
	return s, nil
}
