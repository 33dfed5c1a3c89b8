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
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// quietLogger drops go-redis's log lines.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

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
		h, err := health(ctx, rp, c.health.t, c.health.path, f.healthRate, f.healthDuration, c.health.interval)
		if err != nil {
			return err
		}
		rep.Health = &h
	}
	const pre = 500 * time.Millisecond
	for _, t := range cached {
		if err := settle(ctx, t, f.conns); err != nil {
			return err
		}
		progress("hang: %s (SIGSTOP for %v)", t.name, f.fault)
		h, err := hang(ctx, t.redisOf(rp), t, f.conns, pre, f.fault)
		if err != nil {
			return err
		}
		rep.Hang = append(rep.Hang, h)
	}
	for _, t := range cached {
		if err := settle(ctx, t, f.conns); err != nil {
			return err
		}
		progress("outage: %s (killed for %v)", t.name, f.fault)
		o, err := outage(ctx, t.redisOf(rp), t, f.conns, pre, f.fault, c.originHit)
		if err != nil {
			return err
		}
		rep.Outage = append(rep.Outage, o)
	}
	for _, t := range cached {
		if err := settle(ctx, t, f.conns); err != nil {
			return err
		}
		progress("resume: %s (%d trials)", t.name, f.trials)
		r, err := resume(ctx, t.redisOf(rp), t, f.trials)
		if err != nil {
			return err
		}
		rep.Resume = append(rep.Resume, r)
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
