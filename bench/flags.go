//go:build unix

package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"time"
)

// requireRedisEnv turns a missing redis-server from a skip into a failure,
// as it does for the tests.
const requireRedisEnv = "STEADFAST_REQUIRE_REDIS"

// flags are the program's settings.
type flags struct {
	duration       time.Duration
	rounds         int
	conns          int
	work           time.Duration
	fault          time.Duration
	trials         int
	topoTrials     int
	coherence      int
	memKeys        int
	stampede       int
	healthRate     float64
	healthDuration time.Duration
	jsonPath       string
	redisServer    string
	cpuProfile     string
	memProfile     string
	verbose        bool
	nearReplica    string
}

func parseFlags(args []string) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.DurationVar(&f.duration, "duration", 500*time.Millisecond, "length of one hit run of one configuration")
	fs.IntVar(&f.rounds, "rounds", 8, "hit runs per configuration, interleaved across configurations")
	fs.IntVar(&f.conns, "conns", 16, "load generator connections (closed loop, keep-alive)")
	fs.DurationVar(&f.work, "work", 2*time.Millisecond, "the origin handler's work per request")
	fs.DurationVar(&f.fault, "fault", 1500*time.Millisecond, "how long Redis stays killed or frozen in the outage and hang scenarios")
	fs.IntVar(&f.trials, "trials", 5, "resume trials per configuration")
	fs.IntVar(&f.topoTrials, "topology-trials", 4, "failovers per Sentinel and Cluster scenario (0: skip them)")
	fs.IntVar(&f.coherence, "coherence", 1000, "coherence trials: PUT on one near-cached server, then GETs on the other")
	fs.IntVar(&f.memKeys, "mem-keys", 100000, "distinct keys read through the near cache in the memory scenario")
	fs.IntVar(&f.stampede, "stampede", 1000, "concurrent requests for one cold URL in the stampede scenario")
	fs.Float64Var(&f.healthRate, "health-rate", 1000, "requests per second to /health in the health scenario")
	fs.DurationVar(&f.healthDuration, "health-duration", 5*time.Second, "length of the health scenario")
	fs.StringVar(&f.jsonPath, "json", filepath.Join(os.TempDir(), "bench-results.json"), "where to write the results as JSON")
	fs.StringVar(&f.redisServer, "redis-server", "", "path of redis-server (default: found on PATH)")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write CPU profiles of each configuration's first hit run to FILE.origin, FILE.floor, FILE.steadfast")
	fs.StringVar(&f.memProfile, "memprofile", "", "write allocation profiles before (FILE.base) and after steadfast's first hit run (FILE); compare with go tool pprof -base FILE.base")
	fs.BoolVar(&f.verbose, "v", false, "show the library's log lines (state changes) on stderr")
	fs.StringVar(&f.nearReplica, "near-replica", "", "internal: serve as one replica of the coherence scenario over the Redis at `ADDR`")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if f.duration <= 0 || f.rounds < 1 || f.conns < 1 || f.fault <= 0 || f.trials < 1 || f.stampede < 1 || f.coherence < 1 || f.memKeys < 1 ||
		f.healthRate <= 0 || f.healthDuration <= 0 || f.work < 0 {
		return f, errors.New("bench: durations, counts and rates must be above zero")
	}
	return f, nil
}
