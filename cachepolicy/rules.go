package cachepolicy

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// ErrInvalidPattern is wrapped by the error of [NewRules] when a pattern is
// not a valid [http.ServeMux] pattern.
var ErrInvalidPattern = errors.New("invalid pattern")

// ErrPatternConflict is wrapped by the error of [NewRules] when two patterns
// conflict as [http.ServeMux] defines it: both match some request and
// neither is more specific, for example "/items/{id}" and "/items/{name}".
var ErrPatternConflict = errors.New("pattern conflict")

// Rules maps [http.ServeMux] patterns ("GET /items/{id}", "/static/",
// "example.com/") to policies. A request gets the policy of the pattern a
// ServeMux would route it to, with the same precedence, host matching,
// HEAD-matches-GET rule and path cleaning; a request a ServeMux would
// redirect or answer with 404 or 405 gets none. Matching follows the running
// program's ServeMux, including its GODEBUG httpmuxgo121 setting.
//
// Rules is safe for concurrent use. The zero Rules, like a nil *Rules,
// matches no request.
type Rules struct {
	mux *http.ServeMux
}

// rule is the placeholder handler registered for a pattern; it is never
// served, only found.
type rule struct {
	policy Policy
}

// ServeHTTP answers 500: a rule is looked up, never served.
func (*rule) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "cachepolicy: a rule is not a handler", http.StatusInternalServerError)
}

// NewRules returns rules for the patterns of m. Each policy is validated
// and copied, with its KeyHeaders put into canonical sorted form, so later
// changes to m or its slices do not reach the rules.
//
// The error names the first offending pattern, in sorted order, and wraps
// [ErrInvalidPolicy], [ErrInvalidPattern] or [ErrPatternConflict].
// NewRules never panics: each pattern is first registered alone in a
// scratch ServeMux, so that a panic there can only mean the pattern is
// invalid, then in the real one, where a panic can only mean a conflict;
// both panics are recovered right around the one registration call.
func NewRules(m map[string]Policy) (*Rules, error) {
	mux := http.NewServeMux()
	patterns := slices.Sorted(maps.Keys(m))
	for i, pattern := range patterns {
		p := m[pattern]
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("rule %q: %w", pattern, err)
		}
		r := &rule{policy: p.Normalize()}
		if err := register(http.NewServeMux(), pattern, r); err != nil {
			return nil, fmt.Errorf("rule %q: %w: %w", pattern, ErrInvalidPattern, err)
		}
		if err := register(mux, pattern, r); err != nil {
			return nil, conflictError(patterns[:i], pattern, err)
		}
	}
	return &Rules{mux: mux}, nil
}

// conflictError describes why pattern could not join the earlier ones. It
// finds the earlier pattern it conflicts with and keeps the last line of
// ServeMux's explanation, which says how the two overlap; the rest of that
// message names source lines inside this package and would mislead.
func conflictError(earlier []string, pattern string, err error) error {
	why := err.Error()
	if i := strings.LastIndexByte(why, '\n'); i >= 0 {
		why = strings.TrimSpace(why[i+1:])
	}
	nop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, other := range earlier {
		mux := http.NewServeMux()
		if register(mux, other, nop) == nil && register(mux, pattern, nop) != nil {
			return fmt.Errorf("rule %q: %w with rule %q: %s", pattern, ErrPatternConflict, other, why)
		}
	}
	return fmt.Errorf("rule %q: %w: %s", pattern, ErrPatternConflict, why)
}

// register calls mux.Handle and turns its panic, which is how ServeMux
// reports an invalid or conflicting pattern, into an error. Any other kind
// of panic value is not ServeMux's report and is passed on.
func register(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		switch v := recover().(type) {
		case nil:
		case error:
			err = v
		case string:
			err = errors.New(v)
		default:
			panic(v)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// For returns the policy of the rule req is routed to, and whether there is
// one. HEAD requests match GET patterns, as in ServeMux. To find the entry
// an unsafe request invalidates, ask with a GET copy of it.
//
// The returned policy shares its slices with the rules and with other
// callers: do not modify them.
func (r *Rules) For(req *http.Request) (Policy, bool) {
	if r == nil || r.mux == nil || req == nil || req.URL == nil {
		return Policy{}, false
	}
	h, _ := r.mux.Handler(req)
	if ru, ok := h.(*rule); ok {
		return ru.policy, true
	}
	return Policy{}, false
}
