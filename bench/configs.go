//go:build unix

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/steadfast-go/steadfast/internal/loadgen"
	"github.com/steadfast-go/steadfast/resilience"
)

// nearName is the configuration with the near cache on.
const nearName = "steadfast+near"

// waitNearServing waits until rdb's near cache serves, for up to 5 s.
func waitNearServing(rdb *resilience.Redis) error {
	deadline := time.Now().Add(5 * time.Second)
	for !rdb.Stats().NearCache.Serving {
		if time.Now().After(deadline) {
			return fmt.Errorf("near cache not serving after 5 s: %s", rdb.Stats().NearCache.Reason)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// Paths every configuration serves. itemPath and coldPath go through the
// configuration's cache; rawPath never does (it warms connections).
const (
	itemPath = "/item/"
	coldPath = "/cold/"
	rawPath  = "/raw/"
)

// origin is the application handler every configuration serves: a fixed
// amount of work (a timer, like a database call), then about 1 KiB of JSON
// built for the path, cacheable for a minute by shared caches.
type origin struct {
	work  time.Duration
	mu    sync.Mutex
	byURL map[string]int // runs per cold URL, for the stampede
}

func newOrigin(work time.Duration) *origin {
	return &origin{work: work, byURL: map[string]int{}}
}

type item struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
	Price       int      `json:"price_cents"`
	Stock       int      `json:"stock"`
	Updated     string   `json:"updated"`
}

// filler pads the item to about 1 KiB of JSON.
var filler = strings.Repeat("A sturdy item that ships in two days. ", 22)

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer timeOrigin(r)()
	if strings.HasPrefix(r.URL.Path, coldPath) {
		o.mu.Lock()
		o.byURL[r.URL.Path]++
		o.mu.Unlock()
	}
	if o.work > 0 {
		t := time.NewTimer(o.work)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	id := r.PathValue("id")
	body, err := json.Marshal(item{
		ID: id, Name: "item " + id, Description: filler,
		Tags: []string{"bench", "steadfast", "json"}, Price: 1999, Stock: 42,
		Updated: "2025-01-01T00:00:00Z",
	})
	if err != nil {
		http.Error(w, "encode", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(body)
}

// coldRuns returns how many times the origin ran for path.
func (o *origin) coldRuns(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.byURL[path]
}

// floorCache is the thinnest Redis cache there can be: one plain go-redis
// GET per request, the stored body written as it is; on a miss the origin
// runs and its body is stored with SET, in the request. On any Redis error
// it serves the origin, so an outage does not fail requests; it has no
// deadline of its own, no breaker and no coalescing: go-redis defaults.
type floorCache struct {
	rdb  *redis.Client
	next http.Handler
}

const floorTTL = time.Minute

func (f *floorCache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := "floor:" + r.URL.Path
	val, err := f.rdb.Get(r.Context(), key).Bytes()
	if err == nil {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Status", "floor; hit")
		_, _ = w.Write(val)
		return
	}
	if errors.Is(err, redis.Nil) {
		w.Header().Set("Cache-Status", "floor; fwd=miss")
	} else {
		w.Header().Set("Cache-Status", "floor; fwd=bypass")
	}
	tee := &teeWriter{ResponseWriter: w, status: http.StatusOK}
	f.next.ServeHTTP(tee, r)
	if errors.Is(err, redis.Nil) && tee.status == http.StatusOK {
		_ = f.rdb.Set(r.Context(), key, tee.body, floorTTL).Err()
	}
}

// teeWriter passes a response on and keeps a copy of its body.
type teeWriter struct {
	http.ResponseWriter
	status int
	body   []byte
}

func (t *teeWriter) WriteHeader(code int) {
	t.status = code
	t.ResponseWriter.WriteHeader(code)
}

func (t *teeWriter) Write(p []byte) (int, error) {
	t.body = append(t.body, p...)
	return t.ResponseWriter.Write(p)
}

// server serves one configuration on a 127.0.0.1 port of its own.
type server struct {
	name   string
	url    string
	srv    *http.Server
	timer  *timer // server-side timing for the fault scenarios
	served chan struct{}
	// closers run in order when the server is closed (the cache, the
	// Redis client, ...), after the HTTP server.
	closers []func() error
}

func serve(name string, h http.Handler) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for %s: %w", name, err)
	}
	tm := &timer{next: h}
	s := &server{
		name:   name,
		url:    "http://" + ln.Addr().String(),
		srv:    &http.Server{Handler: tm, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute},
		timer:  tm,
		served: make(chan struct{}),
	}
	go func() {
		defer close(s.served)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// close stops the HTTP server, waits for its goroutine, then runs the
// closers, and returns the first error.
func (s *server) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	<-s.served
	for _, c := range s.closers {
		if cerr := c(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("close %s: %w", s.name, err)
	}
	return nil
}

// routes is the mux every configuration serves: cached paths through
// wrap, the raw path without it.
func routes(o *origin, wrap func(http.Handler) http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	cached := wrap(o)
	mux.Handle("GET "+itemPath+"{id}", cached)
	mux.Handle("GET "+coldPath+"{id}", cached)
	mux.Handle("GET "+rawPath+"{id}", o)
	return mux
}

func serveOrigin(o *origin) (*server, error) {
	return serve("origin", routes(o, func(h http.Handler) http.Handler { return h }))
}

func serveFloor(o *origin, redisAddr string) (*server, error) {
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	s, err := serve("floor", routes(o, func(h http.Handler) http.Handler { return &floorCache{rdb: rdb, next: h} }))
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	s.closers = append(s.closers, rdb.Close)
	return s, nil
}

// staticHandler writes a prebuilt body: the harness baseline, for the
// allocations of the load generator and net/http alone.
type staticHandler struct{ body []byte }

func (s staticHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(s.body)
}

// healthTarget is where and how often the health scenario looks.
type healthTarget struct {
	t        target
	path     string
	interval time.Duration
}

// configs are the servers under comparison.
type configs struct {
	static    target   // harness baseline
	targets   []target // origin, floor, steadfast: the hit runs, in order
	origins   map[string]*origin
	health    *healthTarget
	opTimeout time.Duration // steadfast's Redis operation deadline
	bodyBytes int
	originHit merged     // origin's hit runs, for the outage's added latency
	nearRedis *redisProc // steadfast+near's own redis-server
	logger    *slog.Logger
	servers   []*server
}

// cached returns the targets with a Redis cache.
func (c *configs) cached() []target {
	var out []target
	for _, t := range c.targets {
		if t.name != "origin" {
			out = append(out, t)
		}
	}
	return out
}

func (c *configs) close() error {
	var errs []error
	for _, s := range c.servers {
		errs = append(errs, s.close())
	}
	return errors.Join(errs...)
}

// buildAll starts every configuration's server.
//
// steadfast+near gets a redis-server of its own, rpNear: its near cache
// pings Redis every 50 ms to know that invalidations still flow, and
// those PINGs must not count in the health scenario's PINGs.
func buildAll(f flags, rp, rpNear *redisProc, logger *slog.Logger) (*configs, error) {
	c := &configs{origins: map[string]*origin{}, logger: logger}
	ok := false
	defer func() {
		if !ok {
			_ = c.close()
		}
	}()
	add := func(s *server, err error) (*server, error) {
		if err == nil {
			c.servers = append(c.servers, s)
		}
		return s, err
	}

	sample := httptestBody(newOrigin(0))
	c.bodyBytes = len(sample)
	st, err := add(serve("static", staticHandler{body: sample}))
	if err != nil {
		return nil, err
	}
	c.static = target{name: "static", srv: st}

	for _, name := range []string{"origin", "floor"} {
		o := newOrigin(f.work)
		c.origins[name] = o
		var s *server
		if name == "origin" {
			s, err = add(serveOrigin(o))
		} else {
			s, err = add(serveFloor(o, rp.addr()))
		}
		if err != nil {
			return nil, err
		}
		c.targets = append(c.targets, target{name: name, srv: s})
	}

	o := newOrigin(f.work)
	c.origins["steadfast"] = o
	sf, err := serveSteadfast("steadfast", o, rp.addr(), nil, logger)
	if err != nil {
		return nil, err
	}
	c.servers = append(c.servers, sf.srv)
	t := target{name: "steadfast", srv: sf.srv, breaker: sf.breaker, stats: sf.stats}
	c.targets = append(c.targets, t)
	c.opTimeout = sf.opTimeout
	if sf.healthPath != "" {
		c.health = &healthTarget{t: t, path: sf.healthPath, interval: sf.healthInterval}
	}

	on := newOrigin(f.work)
	c.origins[nearName] = on
	sn, err := serveSteadfast(nearName, on, rpNear.addr(), &resilience.NearCacheOptions{}, logger)
	if err != nil {
		return nil, err
	}
	c.servers = append(c.servers, sn.srv)
	c.targets = append(c.targets, target{name: nearName, srv: sn.srv, breaker: sn.breaker, stats: sn.stats, redis: rpNear})
	c.nearRedis = rpNear
	if err := waitNearServing(sn.rdb); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// httptestBody returns the body the origin writes for item 0.
func httptestBody(o *origin) []byte {
	mux := routes(o, func(h http.Handler) http.Handler { return h })
	rec := &bodyRecorder{header: http.Header{}}
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1"+rawPath+"0", nil)
	mux.ServeHTTP(rec, req)
	return rec.body
}

type bodyRecorder struct {
	header http.Header
	body   []byte
}

func (r *bodyRecorder) Header() http.Header { return r.header }
func (r *bodyRecorder) WriteHeader(int)     {}
func (r *bodyRecorder) Write(p []byte) (int, error) {
	r.body = append(r.body, p...)
	return len(p), nil
}

// hitLoad is the load of a hit run: GETs cycling through the warmed URLs.
func hitLoad(t target, conns int, d time.Duration) loadgen.Options {
	return loadgen.Options{
		Request:     cycling(t.srv.url, itemPath, conns, keys),
		Connections: conns,
		Duration:    d,
		Classify:    classify,
	}
}
