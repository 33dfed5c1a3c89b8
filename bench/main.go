//go:build unix

// Command bench compares, side by side and in one run, no cache
// ("origin"), the thinnest possible Redis cache ("floor": one plain
// go-redis GET per request), steadfast's middleware.Cache with default
// options ("steadfast") and the same with the near cache on
// ("steadfast+near"), first for speed on cache hits, then for how each
// behaves when Redis is killed, frozen, restarted, stampeded and health
// checked. It starts its own redis-server (and skips, exiting 0, when
// there is none), serves every configuration on 127.0.0.1, prints markdown
// tables and writes the numbers as JSON.
//
//	go run ./bench                 # about 40 s
//	go run ./bench -duration 10s   # longer hit runs
//
// Compare ratios within one run: absolute numbers move with the machine
// and whatever else it is doing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// quietLogger drops go-redis's log lines.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func main() {
	f, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if f.nearReplica != "" {
		if err := runReplica(f.nearReplica, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench replica:", err)
			os.Exit(1)
		}
		return
	}
	bin := f.redisServer
	if bin == "" {
		bin, err = exec.LookPath("redis-server")
		if err != nil {
			msg := "bench-compare: skipped: redis-server not found on PATH (install it, e.g. apt-get install redis-server, or pass -redis-server)"
			if os.Getenv(requireRedisEnv) == "1" {
				fmt.Fprintln(os.Stderr, msg+"; failing because "+requireRedisEnv+"=1")
				os.Exit(1)
			}
			fmt.Println(msg)
			return
		}
	}
	if !f.verbose {
		// go-redis logs every failed dial through a process-wide logger;
		// this program owns its process, and the tables say what happened.
		redis.SetLogger(quietLogger{})
	}
	if f.memProfile != "" {
		runtime.MemProfileRate = 4096 // fine enough to count the hit path's allocations
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, f, bin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}

// run does the whole comparison and prints the tables to out.
func run(ctx context.Context, f flags, bin string, out io.Writer) error {
	began := time.Now()
	logger := slog.New(slog.DiscardHandler)
	if f.verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	rp, err := startRedis(ctx, bin)
	if err != nil {
		return err
	}
	defer rp.close()
	progress := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%6.1fs  %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	progress("redis-server %s on %s", rp.version(), rp.addr())
	rpNear, err := startRedis(ctx, bin)
	if err != nil {
		return err
	}
	defer rpNear.close()

	rep := &Report{
		Command: strings.TrimSpace("go run ./bench " + strings.Join(os.Args[1:], " ")),
		Machine: Machine{
			CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), CPUModel: cpuModel(),
			OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(), Redis: rp.version(),
		},
	}
	before := runtime.NumGoroutine()
	c, err := buildAll(f, rp, rpNear, logger)
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			_ = c.close()
		}
	}()
	rep.Settings = Settings{
		Connections: f.conns, RoundSeconds: f.duration.Seconds(), Rounds: f.rounds, URLs: keys,
		OriginWorkMs: ms(f.work), BodyBytes: c.bodyBytes, FaultSeconds: f.fault.Seconds(),
		OpTimeoutMs: ms(c.opTimeout), StampedeClient: f.stampede,
	}

	if err := hitRuns(ctx, f, rp, c, rep, progress); err != nil {
		return err
	}
	if err := faultRuns(ctx, f, rp, c, rep, progress); err != nil {
		return err
	}

	progress("closing")
	closed = true
	if err := c.close(); err != nil {
		return err
	}

	rep.Goroutines = goroutinesLeft(before)
	if f.topoTrials > 0 {
		// After the goroutine count: go-redis's failover clients can leave
		// a resolver lookup or a sentinel listener behind for a while.
		rep.Topology = topologyRuns(ctx, f.work, f.topoTrials, logger, progress)
	}
	rep.Targets, rep.Notes = judge(rep, c)
	rep.Seconds = time.Since(began).Seconds()
	writeMarkdown(out, rep)
	if err := writeJSON(f.jsonPath, rep); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(out, "\nJSON: %s (%.0f s in all)\n", f.jsonPath, rep.Seconds)
	return nil
}

// hitRuns measures every configuration on cache hits, in interleaved
// rounds, after a harness baseline for allocations.
func hitRuns(ctx context.Context, f flags, rp *redisProc, c *configs, rep *Report, progress func(string, ...any)) error {
	for _, t := range c.targets {
		if err := warm(ctx, t, itemPath, keys); err != nil {
			return err
		}
	}
	baseline := max(f.duration, time.Second)
	progress("harness baseline (%d connections, %v)", f.conns, baseline)
	base, err := measure(ctx, nil, hitLoad(c.static, f.conns, baseline))
	if err != nil {
		return err
	}
	rep.Settings.HarnessAllocs = base.allocsPerReq()

	runs := map[string][]loadStats{}
	// static runs in the rounds too, as the ceiling: what the load
	// generator and net/http allow with no cache work at all.
	all := append(slices.Clone(c.targets), c.static)
	for round := range f.rounds {
		order := all
		if round%2 == 1 {
			order = reversed(order)
		}
		for _, t := range order {
			progress("hit run %d/%d: %s", round+1, f.rounds, t.name)
			first := t.name == "steadfast" && round == 0
			var stopProfile func()
			if round == 0 && f.cpuProfile != "" {
				if stopProfile, err = startCPUProfile(f.cpuProfile + "." + t.name); err != nil {
					return err
				}
			}
			if first && f.memProfile != "" {
				if err := writeAllocProfile(f.memProfile + ".base"); err != nil {
					return err
				}
			}
			s, err := measure(ctx, t.redisOf(rp), hitLoad(t, f.conns, f.duration))
			if stopProfile != nil {
				stopProfile()
			}
			if err != nil {
				return fmt.Errorf("hit run %s: %w", t.name, err)
			}
			if first && f.memProfile != "" {
				if err := writeAllocProfile(f.memProfile); err != nil {
					return err
				}
			}
			runs[t.name] = append(runs[t.name], s)
		}
	}
	for _, t := range all {
		rep.Hit = append(rep.Hit, hitResult(t.name, merge(runs[t.name]), rep.Settings.HarnessAllocs))
	}
	c.originHit = merge(runs["origin"])
	rep.Paired = pairRounds(runs["steadfast"], runs["floor"])
	rep.PairedNear = pairRounds(runs[nearName], runs["floor"])
	rep.PairedStatic = pairRounds(runs["static"], runs["floor"])
	return nil
}

func reversed(ts []target) []target {
	out := slices.Clone(ts)
	slices.Reverse(out)
	return out
}

// faultRuns runs the fault scenarios on floor and steadfast.
func faultRuns(ctx context.Context, f flags, rp *redisProc, c *configs, rep *Report, progress func(string, ...any)) error {
	cached := c.cached()
	for i, t := range cached {
		progress("stampede: %s", t.name)
		s, err := stampede(ctx, t, c.origins[t.name], f.stampede, i)
		if err != nil {
			return err
		}
		rep.Stampede = append(rep.Stampede, s)
	}
	if c.health != nil {
		progress("health: %s at %.0f req/s for %v", c.health.t.name, f.healthRate, f.healthDuration)
		h, err := health(ctx, rp, *c.health, f.healthRate, f.healthDuration)
		if err != nil {
			return err
		}
		rep.Health = &h
	}
	w := phases{pre: 500 * time.Millisecond, dur: f.fault}
	// Each Redis fault on every cached configuration in turn, each run
	// after the configuration has settled; run adds its result to rep.
	faults := []struct {
		name, detail string
		run          func(t target) error
	}{
		{"hang", fmt.Sprintf("SIGSTOP for %v", f.fault), func(t target) error {
			h, err := hang(ctx, t.redisOf(rp), t, f.conns, w)
			rep.Hang = append(rep.Hang, h)
			return err
		}},
		{"outage", fmt.Sprintf("killed for %v", f.fault), func(t target) error {
			o, err := outage(ctx, t.redisOf(rp), t, f.conns, w, c.originHit)
			rep.Outage = append(rep.Outage, o)
			return err
		}},
		{"resume", fmt.Sprintf("%d trials", f.trials), func(t target) error {
			r, err := resume(ctx, t.redisOf(rp), t, f.trials)
			rep.Resume = append(rep.Resume, r)
			return err
		}},
	}
	for _, fault := range faults {
		for _, t := range cached {
			if err := settle(ctx, t, f.conns); err != nil {
				return err
			}
			progress("%s: %s (%s)", fault.name, t.name, fault.detail)
			if err := fault.run(t); err != nil {
				return err // rep, with the failed run's zero result, is dropped
			}
		}
	}
	progress("coherence: two near-cached replica processes on one Redis, %d trials", f.coherence)
	co, err := coherence(ctx, c.nearRedis.addr(), f.coherence)
	if err != nil {
		return err
	}
	rep.Coherence = &co
	progress("near cache memory: %d distinct keys", f.memKeys)
	nm, err := nearMemory(ctx, c.nearRedis.addr(), f.memKeys, c.logger)
	if err != nil {
		return err
	}
	rep.NearMemory = &nm
	return nil
}
