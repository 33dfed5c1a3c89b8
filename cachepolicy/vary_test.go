package cachepolicy

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestVaryFields(t *testing.T) {
	tests := []struct {
		name     string
		vary     []string // Vary lines; nil: no Vary field
		want     []string
		wantStar bool
	}{
		{name: "no vary", vary: nil, want: nil},
		{name: "empty vary", vary: []string{""}, want: nil},
		{name: "only separators", vary: []string{" , ,\t"}, want: nil},
		{name: "one", vary: []string{"accept-encoding"}, want: []string{"Accept-Encoding"}},
		{name: "sorted and deduplicated", vary: []string{"X-Tenant, accept-encoding", "Accept-Encoding"}, want: []string{"Accept-Encoding", "X-Tenant"}},
		{name: "whitespace", vary: []string{"\tOrigin ,  x-tenant "}, want: []string{"Origin", "X-Tenant"}},
		{name: "star", vary: []string{"*"}, wantStar: true},
		{name: "star with spaces", vary: []string{" * "}, wantStar: true},
		{name: "star after names", vary: []string{"Origin", "Accept-Encoding, *"}, wantStar: true},
		{name: "name with inner space", vary: []string{"Accept Encoding"}, wantStar: true},
		{name: "quoted name", vary: []string{`"Accept-Encoding"`}, wantStar: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.vary != nil {
				h["Vary"] = tc.vary
			}
			got, star := VaryFields(h)
			assert.Equal(t, tc.want, got, "VaryFields(%q)", tc.vary)
			assert.Equal(t, tc.wantStar, star, "VaryFields(%q) star", tc.vary)
		})
	}
}

func TestUnkeyed(t *testing.T) {
	assert.Nil(t, unkeyed([]string{"Accept-Encoding"}, []string{"accept-encoding"}))
	assert.Equal(t, []string{"Origin"}, unkeyed([]string{"Accept-Encoding", "Origin"}, []string{"Accept-Encoding"}))
	assert.Equal(t, []string{"Accept"}, unkeyed([]string{"Accept"}, nil))
}

func TestNormalizeField(t *testing.T) {
	tests := []struct {
		name   string
		field  string
		values []string
		want   string
	}{
		{name: "other field trimmed", field: "X-Tenant", values: []string{"  a b  "}, want: "a b"},
		{name: "other field lines combined", field: "X-Tenant", values: []string{" a", "b "}, want: "a, b"},
		{name: "other field keeps case", field: "X-Tenant", values: []string{"Ab"}, want: "Ab"},
		{name: "encoding order", field: "Accept-Encoding", values: []string{"gzip, br"}, want: "br,gzip"},
		{name: "encoding case and spaces", field: "Accept-Encoding", values: []string{" GZIP ,BR "}, want: "br,gzip"},
		{name: "encoding q=1 dropped", field: "Accept-Encoding", values: []string{"gzip;q=1.000, br;q=1"}, want: "br,gzip"},
		{name: "encoding q shortest", field: "Accept-Encoding", values: []string{"gzip;Q=0.50"}, want: "gzip;q=0.5"},
		{name: "encoding q zero kept", field: "Accept-Encoding", values: []string{"identity;q=0, *"}, want: "*,identity;q=0"},
		{name: "encoding lines combined", field: "Accept-Encoding", values: []string{"br", "gzip"}, want: "br,gzip"},
		{name: "encoding bad q kept raw", field: "Accept-Encoding", values: []string{"gzip;q=2"}, want: "gzip;q=2"},
		{name: "encoding other param kept raw", field: "Accept-Encoding", values: []string{"gzip;level=9"}, want: "gzip;level=9"},
		{name: "language by quality", field: "Accept-Language", values: []string{"en;q=0.5, DE"}, want: "de,en;q=0.5"},
		{name: "language equal quality keeps order", field: "Accept-Language", values: []string{"fr, en"}, want: "fr,en"},
		{name: "language region case", field: "Accept-Language", values: []string{"en-GB"}, want: "en-gb"},
		{name: "empty", field: "Accept-Encoding", values: []string{""}, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := NormalizeField(tc.field, tc.values)
			assert.Equal(t, tc.want, got, "NormalizeField(%s, %q)", tc.field, tc.values)
		})
	}
}

func TestAppendVariantKey(t *testing.T) {
	names := []string{"Accept-Encoding", "X-Tenant"}
	key := func(kv ...string) string {
		return string(AppendVariantKey(nil, "base", header(kv...), names))
	}
	a := key("Accept-Encoding", "gzip, br", "X-Tenant", "a")
	assert.Len(t, a, len("base")+VariantHashLen)
	assert.Equal(t, "base~", a[:5])
	assert.Equal(t, a, key("Accept-Encoding", "br,GZIP", "X-Tenant", " a "), "same meaning, same variant")
	assert.NotEqual(t, a, key("Accept-Encoding", "gzip", "X-Tenant", "a"), "other encodings")
	assert.NotEqual(t, a, key("Accept-Encoding", "gzip, br", "X-Tenant", "b"), "other tenant")
	assert.NotEqual(t, key("Accept-Encoding", "gzip, br"), key("Accept-Encoding", "gzip, br", "X-Tenant", ""),
		"absent is not empty")
	assert.NotContains(t, string(AppendVariantKey(nil, "b", header("Authorization", "Bearer secret"), []string{"Authorization"})),
		"secret", "credentials are hashed")
}
