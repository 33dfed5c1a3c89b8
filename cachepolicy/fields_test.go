package cachepolicy

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFieldFilter(t *testing.T) {
	h := header(
		"Connection", "X-Hop, close", "Cache-Control", `private="X-User", no-cache="X-Token", max-age=60`,
	)
	f := NewFieldFilter(h, ParseResponse(h))
	for _, name := range []string{
		"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Transfer-Encoding", "Upgrade",
		"Proxy-Authenticate", "Proxy-Authentication-Info", "Proxy-Authorization", "Trailer",
		"Age", "Cache-Status", "X-Hop", "X-User", "X-Token", http2Trailer,
	} {
		assert.False(t, f.Stored(name), "%s must not be stored", name)
	}
	for _, name := range []string{"Content-Type", "Etag", "Cache-Control", "Vary", "X-Other", "Set-Cookie"} {
		assert.True(t, f.Stored(name), "%s must be stored", name)
	}
	var zero FieldFilter
	assert.False(t, zero.Stored("Proxy-Authentication-Info"))
	assert.True(t, zero.Stored("X-Hop"))
}

// http2Trailer is a trailer announced by the TrailerPrefix convention.
const http2Trailer = "Trailer:X-Checksum"

func TestValidators(t *testing.T) {
	v := Validators{ETag: `"a"`, LastModified: httpDate(t0)}
	h := header("If-None-Match", `"client"`, "If-Modified-Since", "x", "Range", "bytes=0-1", "If-Match", "*", "Accept", "a/b")
	v.SetConditional(h)
	assert.Equal(t, header("If-None-Match", `"a"`, "Accept", "a/b"), h)

	h = header()
	Validators{LastModified: httpDate(t0)}.SetConditional(h)
	assert.Equal(t, header("If-Modified-Since", httpDate(t0)), h)
	assert.False(t, Validators{}.Any())
	assert.True(t, v.Any())

	assert.True(t, v.Selects(header("Etag", `W/"a"`)), "weak match selects")
	assert.False(t, v.Selects(header("Etag", `"b"`)), "other etag")
	assert.True(t, v.Selects(header()), "no validator in the 304")
	assert.True(t, Validators{LastModified: "x"}.Selects(header("Last-Modified", "x")))
	assert.False(t, Validators{LastModified: "x"}.Selects(header("Last-Modified", "y")))
}

func TestUpdateHeader(t *testing.T) {
	stored := header("Content-Type", "text/plain", "Content-Length", "4", "Etag", `"a"`, "Cache-Control", "max-age=1", "X-Old", "1")
	got := UpdateHeader(stored, header(
		"Cache-Control", "max-age=60", "Content-Length", "0", "Etag", `"b"`, "X-New", "2",
		"Connection", "close", "Proxy-Authentication-Info", "x", "Age", "3", "Content-Encoding", "gzip",
	))
	assert.Equal(t, header(
		"Content-Type", "text/plain", "Content-Length", "4", "Etag", `"a"`, "Cache-Control", "max-age=60",
		"X-Old", "1", "X-New", "2", "Age", "3",
	), got)
	assert.Equal(t, "max-age=1", stored.Get("Cache-Control"), "the stored header is not changed")
}
