package cachepolicy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidSFDictionary(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{in: "max-age=60", want: true},
		{in: "no-store", want: true},
		{in: "max-age=60, stale-if-error=300", want: true},
		{in: `private="set-cookie"`, want: true},
		{in: "a=?1, b=?0, c=1.5, d=:YWJj:, e=tok/en", want: true},
		{in: "a;p=1, b=2;q", want: true},
		{in: "  max-age=60  ", want: true},
		{in: "Max-Age=60", want: false},
		{in: "max-age=", want: false},
		{in: "max-age=60,", want: false},
		{in: "max-age=60 s-maxage=5", want: false},
		{in: `private="unterminated`, want: false},
		{in: "a=1234567890123456", want: false},
		{in: "a=(1 2)", want: false},
		{in: "", want: false},
		{in: "a=?2", want: false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			assert.Equal(t, tc.want, validSFDictionary([]string{tc.in}), "validSFDictionary(%q)", tc.in)
		})
	}
	assert.True(t, validSFDictionary([]string{"max-age=60", "no-transform"}), "lines joined")
	assert.True(t, validSFDictionary([]string{"max-age=60", ""}), "an empty line adds nothing")
	assert.False(t, validSFDictionary([]string{"", " "}), "no member at all")
}

func TestParseTargeted(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name string
		h    []string
		own  string
		want ResponseDirectives
	}{
		{name: "cache-control only", h: []string{"Cache-Control", "max-age=5"}, want: ResponseDirectives{MaxAge: 5 * s, HasMaxAge: true}},
		{name: "cdn wins", h: []string{"Cache-Control", "max-age=5", "Cdn-Cache-Control", "max-age=50"}, want: ResponseDirectives{MaxAge: 50 * s, HasMaxAge: true}},
		{name: "cdn replaces all", h: []string{"Cache-Control", "no-store", "Cdn-Cache-Control", "max-age=50"}, want: ResponseDirectives{MaxAge: 50 * s, HasMaxAge: true}},
		{name: "invalid cdn ignored", h: []string{"Cache-Control", "max-age=5", "Cdn-Cache-Control", "max-age=50,"}, want: ResponseDirectives{MaxAge: 5 * s, HasMaxAge: true}},
		{name: "own wins", own: "Steadfast-Cache-Control", h: []string{"Cdn-Cache-Control", "max-age=50", "Steadfast-Cache-Control", "no-store"}, want: ResponseDirectives{NoStore: true}},
		{name: "own invalid falls back to cdn", own: "Steadfast-Cache-Control", h: []string{"Cdn-Cache-Control", "max-age=50", "Steadfast-Cache-Control", "NO"}, want: ResponseDirectives{MaxAge: 50 * s, HasMaxAge: true}},
		{name: "boolean false is absent", h: []string{"Cdn-Cache-Control", "no-store=?0, max-age=9"}, want: ResponseDirectives{MaxAge: 9 * s, HasMaxAge: true}},
		{name: "boolean true is present", h: []string{"Cdn-Cache-Control", "no-store=?1"}, want: ResponseDirectives{NoStore: true}},
		{name: "parameters dropped", h: []string{"Cdn-Cache-Control", "max-age=9;x=1"}, want: ResponseDirectives{MaxAge: 9 * s, HasMaxAge: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, ParseTargeted(header(tc.h...), tc.own), "ParseTargeted(%q, %q)", tc.h, tc.own)
		})
	}
}

func FuzzTargeted(f *testing.F) {
	for _, seed := range []string{"max-age=60", `private="a"`, "a=?1;b, c=:x:", "a=(1)", "\xff"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d := ParseTargeted(header("Cdn-Cache-Control", v, "Cache-Control", "max-age=1"), "")
		if !validSFDictionary([]string{v}) {
			require.Equal(t, time.Second, d.MaxAge, "invalid %q was obeyed: %+v", v, d)
			require.True(t, d.HasMaxAge, "invalid %q was obeyed: %+v", v, d)
		}
	})
}
