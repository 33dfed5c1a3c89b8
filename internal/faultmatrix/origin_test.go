package faultmatrix

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The resources the load asks for: every path with and without a query,
// under two Host names, so that a body served for another path, query or
// host is caught. Each has its own body and version.
var (
	loadHosts   = []string{"a.example", "b.example"}
	loadPaths   = []string{"/items/0", "/items/1", "/items/2", "/items/3", "/items/4", "/items/5"}
	loadQueries = []string{"", "lang=de"}
)

// resource is one URL under one Host.
type resource struct {
	host, path, query string
}

// id names the resource the way the cache key does: lower-case host,
// path and query.
func (r resource) id() string { return r.host + r.path + "?" + r.query }

// target is the request URI of the resource.
func (r resource) target() string {
	if r.query == "" {
		return r.path
	}
	return r.path + "?" + r.query
}

// allResources lists every resource of the load, in a fixed order.
func allResources() []resource {
	var rs []resource
	for _, h := range loadHosts {
		for _, p := range loadPaths {
			for _, q := range loadQueries {
				rs = append(rs, resource{host: h, path: p, query: q})
			}
		}
	}
	return rs
}

func resourceOf(r *http.Request) resource {
	return resource{host: strings.ToLower(r.Host), path: r.URL.EscapedPath(), query: r.URL.RawQuery}
}

// origin is the application behind the cache. Every answer names the
// method, host, path and query it answers and the resource's version; a
// POST bumps the version (and the cache must then stop serving the old
// one). Each request costs work, the "item's work" of the latency bound.
type origin struct {
	work     time.Duration
	mu       sync.Mutex
	versions map[string]int64
	calls    int64
	// gate, if set, is called by GET requests after the version was read
	// and before the answer is written; a test blocks in it to hold a
	// response back.
	gate func(r *http.Request)
}

// setGate sets the origin's gate (nil removes it).
func (o *origin) setGate(gate func(r *http.Request)) {
	o.mu.Lock()
	o.gate = gate
	o.mu.Unlock()
}

func newOrigin(work time.Duration) *origin {
	return &origin{work: work, versions: make(map[string]int64)}
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	time.Sleep(o.work) // the item's work: simulated, the handler is the clock here
	res := resourceOf(r)
	o.mu.Lock()
	o.calls++
	if r.Method == http.MethodPost {
		o.versions[res.id()]++
	}
	v := o.versions[res.id()]
	gate := o.gate
	o.mu.Unlock()
	if gate != nil && r.Method == http.MethodGet {
		gate(r)
	}
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet // HEAD announces the GET body
	}
	body := originBody(method, res, v)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("X-Origin-Version", strconv.FormatInt(v, 10))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write([]byte(body))
}

// callCount is how many requests reached the origin.
func (o *origin) callCount() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.calls
}

// originBody is the body the origin gives for a method, resource and
// version. The padding makes it long enough that a cut reply would show.
func originBody(method string, res resource, version int64) string {
	return fmt.Sprintf("method=%s host=%s path=%s query=%s version=%d\n%s\n",
		method, res.host, res.path, res.query, version, strings.Repeat("steadfast ", 40))
}

// checkBody says what is wrong with body as the answer to a request with
// method for res, given that the resource's version was at least floor
// when the request started (the last invalidating POST had completed). It
// returns "" when the body is right, the version the body carries, and
// whether the only fault is that the version is older than floor (a stale
// entry served after its invalidation).
func checkBody(method string, res resource, floor int64, body string) (problem string, version int64, stale bool) {
	problem, version = checkOrigin(method, res, body)
	if problem == "" && version < floor {
		return fmt.Sprintf("%s %s got version %d after version %d was written (stale after invalidation)", method, res.id(), version, floor), version, true
	}
	return problem, version, false
}

// checkOrigin says what is wrong with body as the answer to method for
// res, the version aside.
func checkOrigin(method string, res resource, body string) (problem string, version int64) {
	line, _, ok := strings.Cut(body, "\n")
	if !ok {
		return fmt.Sprintf("body %q is not an origin body", clip(body)), 0
	}
	f := map[string]string{}
	for _, kv := range strings.Fields(line) {
		k, v, _ := strings.Cut(kv, "=")
		f[k] = v
	}
	version, err := strconv.ParseInt(f["version"], 10, 64)
	if err != nil {
		return fmt.Sprintf("body %q has no version", clip(line)), 0
	}
	if want := originBody(f["method"], resource{f["host"], f["path"], f["query"]}, version); body != want {
		return fmt.Sprintf("body starting %q is cut or altered", clip(line)), version
	}
	wantMethod := method
	if method == http.MethodHead {
		wantMethod = http.MethodGet
	}
	switch {
	case f["method"] != wantMethod:
		return fmt.Sprintf("%s got the body of a %s", method, f["method"]), version
	case f["host"] != res.host || f["path"] != res.path || f["query"] != res.query:
		return fmt.Sprintf("%s %s got the body of %s", method, res.id(), resource{f["host"], f["path"], f["query"]}.id()), version
	}
	return "", version
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
