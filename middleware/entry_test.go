package middleware

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/cachepolicy"
)

func testEntry() *entry {
	h := http.Header{
		"Content-Type":  {"text/plain; charset=utf-8"},
		"Etag":          {`"v1"`},
		"Last-Modified": {"Mon, 02 Jan 2006 15:04:05 GMT"},
		"Vary":          {"Accept-Language", "X-Tenant"},
		"X-Empty":       {""},
	}
	return &entry{
		storedAt: time.Unix(1700000000, 123456789),
		life: cachepolicy.Lifetime{
			Fresh: time.Minute, StaleWhileRevalidate: 30 * time.Second,
			StaleIfError: 10 * time.Minute, MustRevalidate: true, NoCache: true, Age: 42 * time.Second,
		},
		status: http.StatusOK,
		fields: fieldsOf(h, nil, cachepolicy.FieldFilter{}),
		body:   []byte("hello, world\n"),
	}
}

func TestEntryRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		e    *entry
	}{
		{name: "full", e: testEntry()},
		{name: "no fields no body", e: &entry{storedAt: time.Unix(0, 0), status: http.StatusNoContent}},
		{name: "large body", e: &entry{storedAt: time.Unix(1, 0), status: 404, body: bytes.Repeat([]byte("x"), 1<<17)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := appendEntry(nil, tc.e)
			assert.LessOrEqual(t, len(b), encodedSize(tc.e), "encodedSize is not an upper bound")
			got, err := decodeEntry(b)
			require.NoError(t, err)
			assert.True(t, tc.e.storedAt.Equal(got.storedAt), "storedAt %v, want %v", got.storedAt, tc.e.storedAt)
			assert.Equal(t, tc.e.life, got.life)
			assert.Equal(t, tc.e.status, got.status)
			assert.Equal(t, tc.e.fields, got.fields)
			assert.Equal(t, tc.e.body, got.body)
		})
	}
}

func TestEntryDecodeKeepsBodyInPlace(t *testing.T) {
	b := appendEntry(nil, testEntry())
	e, err := decodeEntry(b)
	require.NoError(t, err)
	require.NotEmpty(t, e.body)
	assert.Same(t, &b[len(b)-len(e.body)], &e.body[0], "body was copied")
}

func TestEntryUnstoredFields(t *testing.T) {
	h := http.Header{
		"Age": {"3"}, "Cache-Status": {"steadfast; fwd=uri-miss"}, "Connection": {"close"},
		"Transfer-Encoding": {"chunked"}, "Trailer:X-Sum": {"1"}, "X-Kept": {"yes"}, "X-None": {},
	}
	before := http.Header{"X-Request-Id": {"1"}, "X-Changed": {"old"}}
	h["X-Request-Id"] = []string{"1"}
	h["X-Changed"] = []string{"new"}
	fs := fieldsOf(h, before, cachepolicy.FieldFilter{})
	require.Len(t, fs, 2, "fields %v", fs)
	assert.Equal(t, "X-Changed", fs[0].name)
	assert.Equal(t, "X-Kept", fs[1].name)
}

func TestEntryDecodeErrors(t *testing.T) {
	good := appendEntry(nil, testEntry())
	reseal := func(b []byte) []byte { // a valid checksum over a bad payload
		binary.BigEndian.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
		return b
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{name: "empty", b: nil, want: errEntryForeign},
		{name: "foreign text", b: []byte(`{"json":true}`), want: errEntryForeign},
		{name: "magic only", b: []byte("sfc"), want: errEntryForeign},
		{name: "other version", b: mutate(func(b []byte) []byte { b[3] = 3; return b }), want: errEntryVersion},
		{name: "version 1 entry", b: mutate(func(b []byte) []byte { b[3] = 1; return b }), want: errEntryVersion},
		{name: "header cut", b: good[:10], want: errEntryCorrupt},
		{name: "truncated", b: good[:len(good)-1], want: errEntryChecksum},
		{name: "extra byte", b: append(bytes.Clone(good), 0), want: errEntryChecksum},
		{name: "flipped body bit", b: mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), want: errEntryChecksum},
		{name: "flipped checksum bit", b: mutate(func(b []byte) []byte { b[5] ^= 1; return b }), want: errEntryChecksum},
		{name: "resealed truncation", b: reseal(bytes.Clone(good[:len(good)-1])), want: errEntryCorrupt},
		{name: "resealed extra byte", b: reseal(append(bytes.Clone(good), 0)), want: errEntryCorrupt},
		{name: "resealed unknown flag", b: mutate(func(b []byte) []byte { b[48] |= 0x80; return reseal(b) }), want: errEntryCorrupt},
		{name: "resealed negative age", b: mutate(func(b []byte) []byte { b[40] |= 0x80; return reseal(b) }), want: errEntryCorrupt},
		{name: "resealed age beyond MaxDelta", b: mutate(func(b []byte) []byte { b[40] = 0x7f; return reseal(b) }), want: errEntryCorrupt},
		{name: "resealed bad status", b: mutate(func(b []byte) []byte { b[49], b[50] = 0, 0; return reseal(b) }), want: errEntryCorrupt},
		{name: "resealed negative fresh", b: mutate(func(b []byte) []byte { b[16] |= 0x80; return reseal(b) }), want: errEntryCorrupt},
		{name: "resealed huge field count", b: mutate(func(b []byte) []byte { b[51] = 0x7f; return reseal(b) }), want: errEntryCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeEntry(tc.b)
			assert.ErrorIs(t, err, tc.want, "decode of % x", tc.b)
		})
	}
}

func TestEntryDecodeAllocs(t *testing.T) {
	b := appendEntry(nil, testEntry())
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := decodeEntry(b); err != nil {
			t.Fatal(err)
		}
	})
	assert.LessOrEqual(t, allocs, 3.0, "decodeEntry allocations")
}

// FuzzDecodeEntry feeds the decoder arbitrary bytes, and arbitrary
// payloads under a valid checksum: it must never panic, and whatever it
// accepts must survive encoding and decoding again unchanged.
func FuzzDecodeEntry(f *testing.F) {
	good := appendEntry(nil, testEntry())
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(appendEntry(nil, &entry{storedAt: time.Unix(0, 0), status: 200}))
	f.Add([]byte("sfc\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(b []byte) {
			e, err := decodeEntry(b)
			if err != nil {
				return
			}
			again, err := decodeEntry(appendEntry(nil, &e))
			if err != nil {
				t.Fatalf("re-encoded entry does not decode: %v", err)
			}
			if !again.storedAt.Equal(e.storedAt) || again.life != e.life || again.status != e.status ||
				!reflect.DeepEqual(again.fields, e.fields) || !bytes.Equal(again.body, e.body) {
				t.Fatalf("encode-decode changed the entry:\n got %+v\nwant %+v", again, e)
			}
		}
		check(b)
		// The same bytes as a payload behind a valid prefix and checksum,
		// so that the fuzzer reaches past the checksum.
		sealed := append([]byte("sfc\x01\x00\x00\x00\x00"), b...)
		binary.BigEndian.PutUint32(sealed[4:], crc32.Checksum(sealed[8:], castagnoli))
		check(sealed)
	})
}
