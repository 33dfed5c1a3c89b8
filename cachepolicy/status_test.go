package cachepolicy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestCacheStatusString(t *testing.T) {
	tests := []struct {
		name string
		s    CacheStatus
		want string
	}{
		{name: "zero", s: CacheStatus{}, want: "steadfast"},
		{name: "hit", s: CacheStatus{Hit: true, TTL: 42 * time.Second}, want: "steadfast; hit; ttl=42"},
		{name: "hit ttl rounds down", s: CacheStatus{Hit: true, TTL: 42900 * time.Millisecond}, want: "steadfast; hit; ttl=42"},
		{name: "hit under a second", s: CacheStatus{Hit: true, TTL: 300 * time.Millisecond}, want: "steadfast; hit; ttl=0"},
		{name: "stale hit", s: CacheStatus{Hit: true, TTL: -10 * time.Second}, want: "steadfast; hit; ttl=-10"},
		{name: "stale ttl rounds down", s: CacheStatus{Hit: true, TTL: -500 * time.Millisecond}, want: "steadfast; hit; ttl=-1"},
		{name: "stored miss", s: CacheStatus{Fwd: FwdURIMiss, Stored: true}, want: "steadfast; fwd=uri-miss; stored"},
		{name: "bypass", s: CacheStatus{Fwd: FwdBypass, Detail: "redis-unavailable"}, want: "steadfast; fwd=bypass; detail=redis-unavailable"},
		{
			name: "all parameters",
			s:    CacheStatus{Hit: true, Fwd: FwdStale, FwdStatus: 503, TTL: time.Second, Stored: true, Collapsed: true, Detail: "x"},
			want: "steadfast; hit; fwd=stale; fwd-status=503; ttl=1; stored; collapsed; detail=x",
		},
		{name: "fwd-status", s: CacheStatus{Fwd: FwdMiss, FwdStatus: 200}, want: "steadfast; fwd=miss; fwd-status=200"},
		{name: "collapsed", s: CacheStatus{Fwd: FwdURIMiss, Collapsed: true}, want: "steadfast; fwd=uri-miss; collapsed"},
		{name: "detail token with slash and colon", s: CacheStatus{Detail: "a/b:c"}, want: "steadfast; detail=a/b:c"},
		{name: "detail starting with digit is a string", s: CacheStatus{Detail: "5xx"}, want: `steadfast; detail="5xx"`},
		{name: "detail with space is a string", s: CacheStatus{Detail: "redis down"}, want: `steadfast; detail="redis down"`},
		{name: "detail escapes", s: CacheStatus{Detail: `say "hi" \o/`}, want: `steadfast; detail="say \"hi\" \\o/"`},
		{name: "detail non-printable replaced", s: CacheStatus{Detail: "a\nb\x00é"}, want: `steadfast; detail="a?b???"`},
		{name: "fwd not a token is left out", s: CacheStatus{Fwd: "uri miss", Stored: true}, want: "steadfast; stored"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.s.String(), "%+v.String()", tc.s)
		})
	}
}

func TestStoreReasonsAreTokens(t *testing.T) {
	reasons := []string{
		"method", "request-no-store", "authorization", "cookie", "status", "no-store", "private",
		"no-cache", "set-cookie", "vary-star", "must-understand", "no-freshness", "too-large",
	}
	for _, r := range reasons {
		assert.True(t, isSFToken(r), "reason %q must be usable as a Cache-Status detail token", r)
	}
}

func BenchmarkCacheStatusString(b *testing.B) {
	s := CacheStatus{Hit: true, TTL: 42 * time.Second}
	b.ReportAllocs()
	for b.Loop() {
		_ = s.String()
	}
}
