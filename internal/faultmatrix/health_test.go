package faultmatrix

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// healthDoc is the part of an application/health+json document the suite
// reads.
type healthDoc struct {
	Status string `json:"status"`
	Checks map[string][]struct {
		Status        string `json:"status"`
		Output        string `json:"output"`
		ObservedValue any    `json:"observedValue"`
		ObservedUnit  string `json:"observedUnit"`
	} `json:"checks"`
}

// responseTime returns the largest redis:responseTime of a report, or 0.
func responseTime(body string) time.Duration {
	var doc healthDoc
	if json.Unmarshal([]byte(body), &doc) != nil {
		return 0
	}
	var d time.Duration
	for _, r := range doc.Checks["redis:responseTime"] {
		if v, ok := r.ObservedValue.(float64); ok && r.ObservedUnit == "ms" {
			d = max(d, time.Duration(v*float64(time.Millisecond)))
		}
	}
	return d
}

// healthPoll is one GET /health.
type healthPoll struct {
	at          time.Time
	detailed    bool // asked with details
	code        int
	contentType string
	body        string
	err         error
}

type healthPoller struct {
	stop    func()
	results func() []healthPoll
}

// startHealthPoller asks url every 20 ms until stop is called; one request
// in four asks for the public view, the others for details.
func startHealthPoller(url string) *healthPoller {
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	done := make(chan struct{})
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		out []healthPoll
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			p := healthPoll{at: time.Now(), detailed: n%4 != 0}
			req, err := http.NewRequest(http.MethodGet, url, nil)
			if err == nil {
				if p.detailed {
					req.Header.Set(detailsHeader, "1")
				}
				var resp *http.Response
				if resp, err = client.Do(req); err == nil {
					var b strings.Builder
					_, err = ioCopy(&b, resp)
					p.code, p.contentType, p.body = resp.StatusCode, resp.Header.Get("Content-Type"), b.String()
				}
			}
			p.err = err
			mu.Lock()
			out = append(out, p)
			mu.Unlock()
		}
	}()
	return &healthPoller{
		stop: func() { close(done); wg.Wait(); tr.CloseIdleConnections() },
		results: func() []healthPoll {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(out)
		},
	}
}

func ioCopy(w io.Writer, resp *http.Response) (int64, error) {
	defer func() { _ = resp.Body.Close() }()
	return io.Copy(w, resp.Body)
}

// checkHealth checks every /health answer of a phase: always valid, never
// a secret, never 503 (Redis is not critical); showing the fault, with its
// specific error, while it lasted; back to pass after it. It returns a
// short summary for the table.
func checkHealth(v *verdict, polls []healthPoll, f fault, injected, cleared time.Time, secrets ...string) string {
	if len(polls) == 0 {
		v.slow("/health was never answered")
		return "no answer"
	}
	var bad, failed []string
	status := make([]string, len(polls))
	for i, p := range polls {
		status[i] = "?"
		var doc healthDoc
		switch {
		case p.err != nil:
			failed = append(failed, p.err.Error())
			continue
		case p.code != http.StatusOK:
			bad = append(bad, fmt.Sprintf("status %d (Redis is not critical: want 200)", p.code))
		case !strings.HasPrefix(p.contentType, "application/health+json"):
			bad = append(bad, fmt.Sprintf("Content-Type %q", p.contentType))
		}
		for _, s := range secrets {
			if strings.Contains(p.body, s) {
				bad = append(bad, "a password in the body")
			}
		}
		if !p.detailed && strings.Contains(p.body, "127.0.0.1") {
			bad = append(bad, fmt.Sprintf("the public view names the host: %s", clip(p.body)))
		}
		if err := json.Unmarshal([]byte(p.body), &doc); err != nil {
			bad = append(bad, fmt.Sprintf("body %q: %v", clip(p.body), err))
			continue
		}
		if doc.Status != "pass" && doc.Status != "warn" {
			bad = append(bad, fmt.Sprintf("status %q (Redis is not critical: want pass or warn)", doc.Status))
		}
		hasRedis := false
		for k := range doc.Checks {
			// "redis" alone while the check has not run yet.
			hasRedis = hasRedis || k == "redis" || strings.HasPrefix(k, "redis:")
		}
		if !hasRedis {
			bad = append(bad, fmt.Sprintf("no redis check in %q", clip(p.body)))
		}
		status[i] = doc.Status
	}
	if len(bad) > 0 {
		v.fail("%d bad /health answers of %d, first: %s", len(bad), len(polls), bad[0])
	}
	if len(failed) > 0 { // the poller's own 2 s timeout: the machine, not the handler
		v.slow("%d /health requests of %d got no answer, first: %s", len(failed), len(polls), failed[0])
	}

	// What the detailed view said while the fault lasted.
	var said []string
	seen := ""
	var slowest time.Duration
	for i, p := range polls {
		if !p.detailed || p.at.Before(injected) || p.at.After(cleared) {
			continue
		}
		slowest = max(slowest, responseTime(p.body))
		for _, o := range outputs(p.body) {
			if !slices.Contains(said, status[i]+": "+o) {
				said = append(said, status[i]+": "+o)
			}
		}
		if seen == "" && status[i] != "pass" && status[i] != "?" {
			seen = containsAny(p.body, f.health)
		}
	}
	v.note("/health while the fault lasted:\n  %s", joinLines(said))
	summary := "n/a"
	switch {
	case f.health == nil:
	case seen != "":
		summary = fmt.Sprintf("%q shown", seen)
	case f.healthSlow > 0 && slowest >= f.healthSlow:
		summary = fmt.Sprintf("responseTime %v", slowest.Round(time.Millisecond))
	case f.healthBug != "" && knownBug(f.healthBug):
		summary = "not shown (open bug)"
		v.note("/health never showed the fault (warn with one of %q) while it lasted: open bug %q", f.health, f.healthBug)
	default:
		summary = "not shown"
		v.slow("/health never showed the fault (warn with one of %q, or a responseTime of %v or more) while it lasted; it said (largest responseTime %v):\n  %s",
			f.health, f.healthSlow, slowest, joinLines(said))
	}

	// Recovered: some answer after the fault cleared says pass, and so
	// does one of the last half second's (a single check that overran
	// its deadline on a busy machine is not a failing Redis).
	recovered := -1
	for i, p := range polls {
		if p.at.After(cleared) && status[i] == "pass" {
			recovered = i
			break
		}
	}
	end := polls[len(polls)-1].at
	passing := false
	for i := len(polls) - 1; i >= 0 && end.Sub(polls[i].at) <= 500*time.Millisecond; i-- {
		passing = passing || status[i] == "pass"
	}
	if recovered < 0 || !passing {
		last := polls[len(polls)-1]
		v.slow("/health does not say pass at the end of the phase, %v after the fault cleared: %s", last.at.Sub(cleared).Round(time.Millisecond), last.body)
		return summary + ", no recovery"
	}
	return fmt.Sprintf("%s, pass +%dms", summary, max(0, polls[recovered].at.Sub(cleared).Milliseconds()))
}

// outputs returns the distinct output texts of a report's checks.
func outputs(body string) []string {
	var doc healthDoc
	if json.Unmarshal([]byte(body), &doc) != nil {
		return nil
	}
	var out []string
	for _, results := range doc.Checks {
		for _, r := range results {
			if r.Output != "" && !slices.Contains(out, r.Output) {
				out = append(out, r.Output)
			}
		}
	}
	slices.Sort(out)
	return out
}

// containsAny returns the first of texts that s contains, ignoring case,
// or "".
func containsAny(s string, texts []string) string {
	ls := strings.ToLower(s)
	for _, w := range texts {
		if strings.Contains(ls, strings.ToLower(w)) {
			return w
		}
	}
	return ""
}
