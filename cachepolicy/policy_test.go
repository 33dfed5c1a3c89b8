package cachepolicy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name    string
		policy  Policy
		wantErr []string // substrings of the error; none: valid
	}{
		{name: "zero value", policy: Policy{}},
		{
			name: "full valid policy",
			policy: Policy{
				TTL: time.Minute, StaleWhileRevalidate: time.Second, StaleIfError: time.Hour,
				MaxBodyBytes: 10, KeyHeaders: []string{"accept-language", "X-Tenant", "X-Tenant"},
				Statuses: []int{100, 200, 599}, AllowAuthorization: true,
			},
		},
		{name: "negative TTL", policy: Policy{TTL: -time.Second}, wantErr: []string{"TTL -1s is negative"}},
		{name: "negative stale-while-revalidate", policy: Policy{StaleWhileRevalidate: -1}, wantErr: []string{"StaleWhileRevalidate"}},
		{name: "negative stale-if-error", policy: Policy{StaleIfError: -1}, wantErr: []string{"StaleIfError"}},
		{name: "negative body size", policy: Policy{MaxBodyBytes: -1}, wantErr: []string{"MaxBodyBytes -1 is negative"}},
		{name: "empty header name", policy: Policy{KeyHeaders: []string{""}}, wantErr: []string{`KeyHeaders[0] ""`}},
		{name: "header name with space", policy: Policy{KeyHeaders: []string{"Accept", "X Tenant"}}, wantErr: []string{`KeyHeaders[1] "X Tenant"`}},
		{name: "header name with colon", policy: Policy{KeyHeaders: []string{"X-A:"}}, wantErr: []string{`KeyHeaders[0] "X-A:"`}},
		{name: "status too small", policy: Policy{Statuses: []int{99}}, wantErr: []string{"Statuses[0] 99"}},
		{name: "status too large", policy: Policy{Statuses: []int{200, 600}}, wantErr: []string{"Statuses[1] 600"}},
		{name: "heuristic fraction above one", policy: Policy{HeuristicFraction: 1.5}, wantErr: []string{"HeuristicFraction 1.5"}},
		{name: "heuristic fraction negative", policy: Policy{HeuristicFraction: -0.1}, wantErr: []string{"HeuristicFraction"}},
		{name: "negative heuristic max", policy: Policy{HeuristicMax: -1}, wantErr: []string{"HeuristicMax"}},
		{name: "negative stale retention", policy: Policy{StaleRetention: -1}, wantErr: []string{"StaleRetention"}},
		{name: "negative variants", policy: Policy{MaxVariants: -1}, wantErr: []string{"MaxVariants -1"}},
		{name: "bad targeted field", policy: Policy{TargetedField: "a b"}, wantErr: []string{`TargetedField "a b"`}},
		{name: "targeted field", policy: Policy{TargetedField: "steadfast-cache-control", HeuristicFraction: 1, MaxVariants: 2}},
		{
			name:    "all problems reported",
			policy:  Policy{TTL: -1, MaxBodyBytes: -1, Statuses: []int{0}},
			wantErr: []string{"TTL", "MaxBodyBytes", "Statuses[0]"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.policy.Validate()
			if len(tc.wantErr) == 0 {
				assert.NoError(t, err, "Validate(%+v)", tc.policy)
				return
			}
			require.Error(t, err, "Validate(%+v)", tc.policy)
			assert.ErrorIs(t, err, ErrInvalidPolicy, "Validate(%+v)", tc.policy)
			for _, want := range tc.wantErr {
				assert.Contains(t, err.Error(), want, "Validate(%+v)", tc.policy)
			}
		})
	}
}

func TestPolicyAllowsStatus(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		code     int
		want     bool
	}{
		{name: "default 200", code: 200, want: true},
		{name: "default 203", code: 203, want: true},
		{name: "default 204", code: 204, want: true},
		{name: "default 300", code: 300, want: true},
		{name: "default 301", code: 301, want: true},
		{name: "default 308", code: 308, want: true},
		{name: "default 404", code: 404, want: true},
		{name: "default 405", code: 405, want: true},
		{name: "default 410", code: 410, want: true},
		{name: "default 414", code: 414, want: true},
		{name: "default 501", code: 501, want: true},
		{name: "default not 201", code: 201, want: false},
		{name: "default not 206", code: 206, want: false},
		{name: "default not 302", code: 302, want: false},
		{name: "default not 304", code: 304, want: false},
		{name: "default not 500", code: 500, want: false},
		{name: "default not 503", code: 503, want: false},
		{name: "empty non-nil list is the default", statuses: []int{}, code: 200, want: true},
		{name: "own list", statuses: []int{200, 302}, code: 302, want: true},
		{name: "own list replaces default", statuses: []int{200, 302}, code: 404, want: false},
		{name: "own list never 206", statuses: []int{206}, code: 206, want: false},
		{name: "own list never 304", statuses: []int{304}, code: 304, want: false},
		{name: "own list never 1xx", statuses: []int{103}, code: 103, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Policy{Statuses: tc.statuses}.AllowsStatus(tc.code)
			assert.Equal(t, tc.want, got, "Statuses %v, AllowsStatus(%d)", tc.statuses, tc.code)
		})
	}
}

func TestUnderstood(t *testing.T) {
	for _, code := range []int{200, 203, 204, 301, 302, 307, 308, 404, 410, 500, 503} {
		assert.True(t, understood(code), "%d is understood", code)
	}
	for _, code := range []int{100, 206, 299, 304, 306, 418, 599, 999} {
		assert.False(t, understood(code), "%d is not understood", code)
	}
}

func TestDefaultStatusesMatchesTable(t *testing.T) {
	got := DefaultStatuses()
	for code := 0; code < 1000; code++ {
		assert.Equal(t, isDefaultStatus(code), contains(got, code), "status %d", code)
	}
	got[0] = 999
	assert.Equal(t, 200, DefaultStatuses()[0], "DefaultStatuses must return a fresh copy")
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestPolicyBodyLimit(t *testing.T) {
	assert.Equal(t, DefaultMaxBodyBytes, Policy{}.BodyLimit(), "zero MaxBodyBytes")
	assert.Equal(t, int64(1<<20), DefaultMaxBodyBytes, "1 MiB")
	assert.Equal(t, int64(512), Policy{MaxBodyBytes: 512}.BodyLimit(), "explicit MaxBodyBytes")
}

func TestPolicyNormalize(t *testing.T) {
	p := Policy{KeyHeaders: []string{"x-b", "X-A", "x-b", "accept"}, Statuses: []int{200, 404}}
	n := p.Normalize()
	assert.Equal(t, []string{"Accept", "X-A", "X-B"}, n.KeyHeaders, "canonical, sorted, unique")
	assert.Equal(t, n, n.Normalize(), "Normalize is idempotent")
	assert.True(t, canonicalSorted(n.KeyHeaders), "fast key path applies")

	n.KeyHeaders[0], n.Statuses[0] = "Changed", 500
	assert.Equal(t, "x-b", p.KeyHeaders[0], "Normalize must copy KeyHeaders")
	assert.Equal(t, 200, p.Statuses[0], "Normalize must copy Statuses")

	zero := Policy{}.Normalize()
	assert.Nil(t, zero.KeyHeaders, "nil KeyHeaders stay nil")
	assert.Nil(t, zero.Statuses, "nil Statuses stay nil")
}

func TestPolicyNormalizeKeepsKeys(t *testing.T) {
	req := newRequest("GET", "/x?a=1", "X-A", "1", "X-B", "2", "Accept", "text/html")
	policies := []Policy{
		{},
		{KeyHeaders: []string{"x-b", "X-A", "x-b"}},
		{KeyHeaders: []string{"accept"}},
		{KeyHeaders: []string{"X-B", "X-A"}},
	}
	for _, p := range policies {
		assert.Equal(t, Key("k:", req, p), Key("k:", req, p.Normalize()), "KeyHeaders %q", p.KeyHeaders)
	}
}
