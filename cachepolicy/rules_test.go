package cachepolicy

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ttlPolicy returns a policy told apart from others by its TTL in seconds.
func ttlPolicy(seconds int) Policy {
	return Policy{TTL: time.Duration(seconds) * time.Second}
}

func TestRulesFor(t *testing.T) {
	rules, err := NewRules(map[string]Policy{
		"GET /items/{id}":      ttlPolicy(1),
		"/items/":              ttlPolicy(2),
		"/echo":                ttlPolicy(3),
		"api.example.com/":     ttlPolicy(4),
		"GET /dir/":            ttlPolicy(5),
		"GET /only-get":        ttlPolicy(6),
		"POST /form":           ttlPolicy(7),
		"GET /files/{path...}": ttlPolicy(8),
		"GET /exact/{$}":       ttlPolicy(9),
	})
	require.NoError(t, err)

	tests := []struct {
		name   string
		method string
		target string
		want   int // TTL seconds of the matched policy; 0: no match
	}{
		{name: "method pattern wins over method-less prefix", method: "GET", target: "/items/42", want: 1},
		{name: "HEAD matches GET pattern", method: "HEAD", target: "/items/42", want: 1},
		{name: "POST falls to method-less prefix", method: "POST", target: "/items/42", want: 2},
		{name: "deeper path falls to prefix", method: "GET", target: "/items/42/parts", want: 2},
		{name: "prefix root", method: "GET", target: "/items/", want: 2},
		{name: "method-less exact GET", method: "GET", target: "/echo", want: 3},
		{name: "method-less exact DELETE", method: "DELETE", target: "/echo", want: 3},
		{name: "exact pattern is not a prefix", method: "GET", target: "/echo/more", want: 0},
		{name: "host pattern for its host", method: "GET", target: "http://api.example.com/anything", want: 4},
		{name: "host pattern with port", method: "GET", target: "http://api.example.com:8080/anything", want: 4},
		{name: "host pattern outranks exact path pattern", method: "GET", target: "http://api.example.com/echo", want: 4},
		{name: "other host gets path rule", method: "GET", target: "http://www.example.com/echo", want: 3},
		{name: "trailing slash redirect is no match", method: "GET", target: "/dir", want: 0},
		{name: "unclean path redirect is no match", method: "GET", target: "/x/../dir/", want: 0},
		{name: "dir prefix", method: "GET", target: "/dir/a", want: 5},
		{name: "method not allowed is no match", method: "POST", target: "/only-get", want: 0},
		{name: "POST pattern", method: "POST", target: "/form", want: 7},
		{name: "GET on POST pattern", method: "GET", target: "/form", want: 0},
		{name: "rest wildcard", method: "GET", target: "/files/a/b/c.txt", want: 8},
		{name: "end anchor", method: "GET", target: "/exact/", want: 9},
		{name: "end anchor not prefix", method: "GET", target: "/exact/x", want: 0},
		{name: "not found", method: "GET", target: "/nowhere", want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := rules.For(newRequest(tc.method, tc.target))
			got := int(p.TTL / time.Second)
			assert.Equal(t, tc.want, got, "For(%s %s): policy TTL", tc.method, tc.target)
			assert.Equal(t, tc.want != 0, ok, "For(%s %s): ok", tc.method, tc.target)
		})
	}
}

// TestRulesForHostOutranksPath pins ServeMux's precedence: a pattern with a
// host is more specific than one without, whatever the path length.
func TestRulesForHostOutranksPath(t *testing.T) {
	rules, err := NewRules(map[string]Policy{"/a/b/": ttlPolicy(1), "example.com/": ttlPolicy(2)})
	require.NoError(t, err)
	p, ok := rules.For(newRequest("GET", "http://example.com/a/b/c"))
	require.True(t, ok)
	assert.Equal(t, 2*time.Second, p.TTL, "host pattern should win")
}

func TestRulesNilAndZero(t *testing.T) {
	req := newRequest("GET", "/x")
	var nilRules *Rules
	_, ok := nilRules.For(req)
	assert.False(t, ok, "nil rules")
	_, ok = (&Rules{}).For(req)
	assert.False(t, ok, "zero rules")
	empty, err := NewRules(nil)
	require.NoError(t, err)
	_, ok = empty.For(req)
	assert.False(t, ok, "rules from a nil map")
	full, err := NewRules(map[string]Policy{"/": {}})
	require.NoError(t, err)
	_, ok = full.For(nil)
	assert.False(t, ok, "nil request")
	_, ok = full.For(&http.Request{Method: "GET"})
	assert.False(t, ok, "request without URL")
}

func TestNewRulesErrors(t *testing.T) {
	tests := []struct {
		name     string
		m        map[string]Policy
		wantErr  error
		contains string
	}{
		{name: "empty pattern", m: map[string]Policy{"": {}}, wantErr: ErrInvalidPattern, contains: `rule ""`},
		{name: "unclosed wildcard", m: map[string]Policy{"/items/{id": {}}, wantErr: ErrInvalidPattern, contains: `rule "/items/{id"`},
		{name: "bad method", m: map[string]Policy{"G@T /x": {}}, wantErr: ErrInvalidPattern, contains: `rule "G@T /x"`},
		{name: "no slash", m: map[string]Policy{"GET items": {}}, wantErr: ErrInvalidPattern, contains: `rule "GET items"`},
		{
			name:     "conflicting wildcards",
			m:        map[string]Policy{"/a/{x}": {}, "/a/{y}": {}},
			wantErr:  ErrPatternConflict,
			contains: `rule "/a/{y}": pattern conflict with rule "/a/{x}": `,
		},
		{
			name:     "same pattern spelled twice",
			m:        map[string]Policy{"GET /a": {}, "GET  /a": {}},
			wantErr:  ErrPatternConflict,
			contains: `rule "GET /a": pattern conflict with rule "GET  /a"`,
		},
		{
			name:     "invalid policy",
			m:        map[string]Policy{"/ok": {}, "/bad": {TTL: -time.Second}},
			wantErr:  ErrInvalidPolicy,
			contains: `rule "/bad": invalid policy: TTL -1s is negative`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rules *Rules
			var err error
			require.NotPanics(t, func() { rules, err = NewRules(tc.m) }, "NewRules(%v)", tc.m)
			require.Error(t, err, "NewRules(%v)", tc.m)
			assert.Nil(t, rules)
			assert.ErrorIs(t, err, tc.wantErr, "NewRules(%v): %v", tc.m, err)
			assert.Contains(t, err.Error(), tc.contains, "NewRules(%v)", tc.m)
		})
	}
}

func TestRegisterPassesOtherPanics(t *testing.T) {
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	err := register(http.NewServeMux(), "/", h)
	require.NoError(t, err)
	// A nil handler makes ServeMux panic with an error too.
	err = register(http.NewServeMux(), "/", nil)
	require.Error(t, err)
	assert.False(t, errors.Is(err, ErrPatternConflict), "register must not classify: %v", err)
}

func TestNewRulesCopiesAndNormalizes(t *testing.T) {
	headers := []string{"x-b", "X-A", "x-b"}
	statuses := []int{200}
	m := map[string]Policy{"/": {KeyHeaders: headers, Statuses: statuses}}
	rules, err := NewRules(m)
	require.NoError(t, err)
	headers[0], statuses[0] = "X-Changed", 500
	m["/"] = Policy{TTL: time.Hour}

	p, ok := rules.For(newRequest("GET", "/"))
	require.True(t, ok)
	assert.Equal(t, []string{"X-A", "X-B"}, p.KeyHeaders, "key headers canonical, sorted, unique, and copied")
	assert.Equal(t, []int{200}, p.Statuses, "statuses copied")
	assert.Zero(t, p.TTL, "map changes after NewRules must not matter")
}

func TestRulesConcurrentFor(t *testing.T) {
	rules, err := NewRules(map[string]Policy{"GET /items/{id}": ttlPolicy(1), "/": ttlPolicy(2)})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				target := "/items/" + strconv.Itoa(g*100+i)
				p, ok := rules.For(newRequest("GET", target))
				if !assert.True(t, ok, "wrong policy: none for %s", target) ||
					!assert.Equal(t, time.Second, p.TTL, "wrong policy for %s", target) {
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkRulesFor(b *testing.B) {
	rules, err := NewRules(map[string]Policy{"GET /items/{id}": ttlPolicy(1), "/": ttlPolicy(2)})
	require.NoError(b, err)
	req := newRequest("GET", "/items/42")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := rules.For(req); !ok {
			b.Fatal("no policy")
		}
	}
}
