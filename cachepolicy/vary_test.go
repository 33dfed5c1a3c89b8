package cachepolicy

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestVaryReason(t *testing.T) {
	keys := []string{"Accept-Encoding", "X-Tenant"}
	tests := []struct {
		name string
		vary []string // Vary lines; nil: no Vary field
		want string
	}{
		{name: "no vary", vary: nil, want: ""},
		{name: "empty vary", vary: []string{""}, want: ""},
		{name: "only separators", vary: []string{" , ,\t"}, want: ""},
		{name: "keyed", vary: []string{"Accept-Encoding"}, want: ""},
		{name: "keyed any case", vary: []string{"accept-encoding, X-TENANT"}, want: ""},
		{name: "keyed with whitespace", vary: []string{"\tAccept-Encoding ,  x-tenant "}, want: ""},
		{name: "keyed over lines", vary: []string{"Accept-Encoding", "X-Tenant"}, want: ""},
		{name: "unkeyed", vary: []string{"Origin"}, want: "vary-unkeyed"},
		{name: "unkeyed in list", vary: []string{"Accept-Encoding, Origin"}, want: "vary-unkeyed"},
		{name: "unkeyed on second line", vary: []string{"Accept-Encoding", "Cookie"}, want: "vary-unkeyed"},
		{name: "star", vary: []string{"*"}, want: "vary-star"},
		{name: "star with spaces", vary: []string{" * "}, want: "vary-star"},
		{name: "star after unkeyed", vary: []string{"Origin", "Accept-Encoding, *"}, want: "vary-star"},
		{name: "name with inner space is unkeyed", vary: []string{"Accept Encoding"}, want: "vary-unkeyed"},
		{name: "quoted name is unkeyed", vary: []string{`"Accept-Encoding"`}, want: "vary-unkeyed"},
		{name: "prefix of a key is unkeyed", vary: []string{"Accept"}, want: "vary-unkeyed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.vary != nil {
				h["Vary"] = tc.vary
			}
			got := varyReason(h, keys)
			assert.Equal(t, tc.want, got, "varyReason(Vary %q, keys %q)", tc.vary, keys)
		})
	}
}

func TestVaryReasonWithoutKeys(t *testing.T) {
	assert.Equal(t, "vary-unkeyed", varyReason(header("Vary", "Accept"), nil))
	assert.Equal(t, "", varyReason(header("Vary", ","), nil))
}
