package faultmatrix

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/steadfast-go/steadfast/cachepolicy"
)

// outcome is what the monitor saw of one request.
type outcome struct {
	start, end  time.Time
	method      string
	res         resource
	status      int
	cacheStatus string
	problem     string // "" when the response was right
	stale       bool   // the problem is only a version older than the last invalidation
}

func (o outcome) latency() time.Duration { return o.end.Sub(o.start) }

// hit reports whether the response was served from the cache.
func (o outcome) hit() bool { return cacheStatusHas(o.cacheStatus, "hit") }

// cacheStatusHas reports whether a Cache-Status value has the parameter
// (such as "hit" or "fwd=bypass") in one of its members.
func cacheStatusHas(v, param string) bool {
	for member := range strings.SplitSeq(v, ",") {
		for p := range strings.SplitSeq(member, ";") {
			if strings.TrimSpace(p) == param {
				return true
			}
		}
	}
	return false
}

// monitor wraps the whole cached stack, outside the cache, and checks
// every response it writes: status, body, and version against the last
// invalidation that completed before the request started.
type monitor struct {
	mu       sync.Mutex
	floors   map[string]int64 // resource id -> version of the last POST answered
	outcomes []outcome
}

func newMonitor() *monitor { return &monitor{floors: make(map[string]int64)} }

func (m *monitor) floor(id string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.floors[id]
}

func (m *monitor) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := resourceOf(r)
		o := outcome{start: time.Now(), method: r.Method, res: res}
		floor := m.floor(res.id())
		c := &capture{ResponseWriter: w}
		next.ServeHTTP(c, r)
		o.end = time.Now()
		if c.header == nil { // nothing written: an empty 200
			c.header = w.Header().Clone()
		}
		o.status = c.statusCode()
		o.cacheStatus = c.header.Get("Cache-Status")
		o.problem, o.stale = m.judge(r.Method, res, floor, c)
		m.mu.Lock()
		m.outcomes = append(m.outcomes, o)
		m.mu.Unlock()
	})
}

// judge says what is wrong with the captured response ("" if nothing)
// and whether that is only staleness, and records the version a POST
// wrote.
func (m *monitor) judge(method string, res resource, floor int64, c *capture) (problem string, stale bool) {
	if code := c.statusCode(); code != http.StatusOK {
		return fmt.Sprintf("%s %s: status %d", method, res.id(), code), false
	}
	// Every response the cache touched says so (RFC 9211), and a hit
	// says how old it is.
	cs := c.header.Get("Cache-Status")
	cached := !strings.HasPrefix(res.path, controlPrefix)
	if cached && !strings.HasPrefix(cs, cachepolicy.CacheName+";") {
		return fmt.Sprintf("%s %s: Cache-Status %q, want %q's", method, res.id(), cs, cachepolicy.CacheName), false
	}
	if cacheStatusHas(cs, "hit") && c.header.Get("Age") == "" {
		return fmt.Sprintf("%s %s: a hit without Age", method, res.id()), false
	}
	if method == http.MethodHead {
		v, err := strconv.ParseInt(c.header.Get("X-Origin-Version"), 10, 64)
		switch {
		case c.body.Len() != 0:
			return fmt.Sprintf("HEAD %s: %d body bytes", res.id(), c.body.Len()), false
		case err != nil:
			return fmt.Sprintf("HEAD %s: no X-Origin-Version", res.id()), false
		case c.header.Get("Content-Length") != strconv.Itoa(len(originBody(http.MethodGet, res, v))):
			return fmt.Sprintf("HEAD %s: Content-Length %q does not match the body of version %d", res.id(), c.header.Get("Content-Length"), v), false
		case v < floor:
			return fmt.Sprintf("HEAD %s: version %d after version %d was written (stale after invalidation)", res.id(), v, floor), true
		}
		return "", false
	}
	problem, v, stale := checkBody(method, res, floor, c.body.String())
	if problem == "" && method == http.MethodPost {
		m.mu.Lock()
		m.floors[res.id()] = max(m.floors[res.id()], v)
		m.mu.Unlock()
	}
	return problem, stale
}

// between returns the outcomes of requests started in [from, to), sorted
// by start.
func (m *monitor) between(from, to time.Time) []outcome {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []outcome
	for _, o := range m.outcomes {
		if !o.start.Before(from) && o.start.Before(to) {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b outcome) int { return a.start.Compare(b.start) })
	return out
}

// capture passes a response through and keeps a copy of its status,
// header (as first written) and body.
type capture struct {
	http.ResponseWriter
	status int
	header http.Header
	body   bytes.Buffer
}

func (c *capture) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
		c.header = c.ResponseWriter.Header().Clone()
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *capture) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	c.body.Write(p)
	return c.ResponseWriter.Write(p)
}

// Flush keeps http.Flusher working through the capture.
func (c *capture) Flush() {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the writer underneath.
func (c *capture) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (c *capture) statusCode() int {
	if c.status == 0 {
		return http.StatusOK
	}
	return c.status
}

var _ http.Flusher = (*capture)(nil)
