package middleware

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/steadfast-go/steadfast/cachepolicy"
)

// Times and keys of the entry tests.
var (
	entryNow  = time.Unix(1700000100, 0)
	entryKey  = "steadfast:0123456789abcdef0123456789abcdef"
	signKey   = []byte("0123456789abcdef0123456789abcdef")
	otherSign = []byte("fedcba9876543210fedcba9876543210")
)

// encode and decode are appendEntry and decodeEntry at entryKey and
// entryNow.
func encode(e *entry, signKey []byte) []byte { return appendEntry(nil, e, entryKey, signKey) }

func decode(b, signKey []byte) (entry, error) { return decodeEntry(b, entryKey, signKey, entryNow) }

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
		name    string
		e       *entry
		signKey []byte
	}{
		{name: "full", e: testEntry()},
		{name: "signed", e: testEntry(), signKey: signKey},
		{name: "no fields no body", e: &entry{storedAt: time.Unix(1, 0), status: http.StatusNoContent}},
		{name: "large body", e: &entry{storedAt: time.Unix(1, 0), status: 404, body: bytes.Repeat([]byte("x"), 1<<17)}},
		{name: "content length", e: &entry{storedAt: time.Unix(1, 0), status: 200,
			fields: []field{{name: "Content-Length", values: []string{"3"}}}, body: []byte("abc")}},
		{name: "a little in the future", e: &entry{storedAt: entryNow.Add(maxEntrySkew), status: 200}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := encode(tc.e, tc.signKey)
			assert.LessOrEqual(t, len(b), encodedSize(tc.e), "encodedSize is not an upper bound")
			got, err := decode(b, tc.signKey)
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
	b := encode(testEntry(), nil)
	e, err := decode(b, nil)
	require.NoError(t, err)
	require.NotEmpty(t, e.body)
	assert.Same(t, &b[len(b)-len(e.body)], &e.body[0], "body was copied")
}

func TestEntryUnstoredFields(t *testing.T) {
	h := http.Header{
		"Age": {"3"}, "Cache-Status": {"steadfast; fwd=uri-miss"}, "Connection": {"close, X-Hop"},
		"Transfer-Encoding": {"chunked"}, "Trailer:X-Sum": {"1"}, "X-Kept": {"yes"}, "X-None": {},
		"X-Hop": {"named by Connection"}, "keep-alive": {"timeout=5"}, "Proxy-Authenticate": {"Basic"},
		"Proxy-Anything": {"x"}, "Te": {"trailers"}, "Trailer": {"X-Sum"}, "Upgrade": {"h2c"},
		"X Bad": {"not a token"}, "X-Bad\r\nSet-Cookie": {"x"},
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
	good := encode(testEntry(), nil)
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
		{name: "resealed negative age", b: mutate(func(b []byte) []byte { b[40] |= 0x80; return reseal(b) }), want: errEntryInvalid},
		{name: "resealed age beyond MaxDelta", b: mutate(func(b []byte) []byte { b[40] = 0x7f; return reseal(b) }), want: errEntryInvalid},
		{name: "resealed signed flag, too short for a mac", b: reseal(encode(&entry{storedAt: time.Unix(1, 0), status: 200}, nil)[:52]), want: errEntryCorrupt},
		{name: "resealed huge field count", b: mutate(func(b []byte) []byte { b[51] = 0x7f; return reseal(b) }), want: errEntryCorrupt},
		{name: "resealed long varint", b: reseal(append(encode(&entry{storedAt: time.Unix(1, 0), status: 200}, nil)[:51], 0x80, 0x00, 0x00)), want: errEntryCorrupt},
		{name: "resealed bad status", b: mutate(func(b []byte) []byte { b[49], b[50] = 0, 0; return reseal(b) }), want: errEntryInvalid},
		{name: "resealed negative fresh", b: mutate(func(b []byte) []byte { b[16] |= 0x80; return reseal(b) }), want: errEntryInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(tc.b, nil)
			assert.ErrorIs(t, err, tc.want, "decode of % x", tc.b)
		})
	}
}

// reseal gives b a valid checksum over whatever it holds.
func reseal(b []byte) []byte {
	binary.BigEndian.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
	return b
}

// impossibleEntries are well-formed entries, with a valid checksum, that
// the cache would never have stored: what a writer that shares Redis could
// forge.
func impossibleEntries() []struct {
	name string
	e    *entry
} {
	at := time.Unix(1700000000, 0)
	withStatus := func(status int) *entry { return &entry{storedAt: at, status: status, body: []byte("x")} }
	withField := func(name string, values ...string) *entry {
		return &entry{storedAt: at, status: 200, fields: []field{{name: name, values: values}}, body: []byte("hello")}
	}
	return []struct {
		name string
		e    *entry
	}{
		{name: "status 100", e: withStatus(100)},
		{name: "status 101", e: withStatus(101)},
		{name: "status 199", e: withStatus(199)},
		{name: "status 206", e: withStatus(206)},
		{name: "status 304", e: withStatus(304)},
		{name: "status 600", e: withStatus(600)},
		{name: "status 999", e: withStatus(999)},
		{name: "Transfer-Encoding", e: withField("Transfer-Encoding", "chunked")},
		{name: "Connection", e: withField("Connection", "close")},
		{name: "Keep-Alive", e: withField("Keep-Alive", "timeout=1")},
		{name: "TE", e: withField("Te", "trailers")},
		{name: "Upgrade", e: withField("Upgrade", "websocket")},
		{name: "Proxy-Authenticate", e: withField("Proxy-Authenticate", "Basic")},
		{name: "Proxy-Connection", e: withField("Proxy-Connection", "keep-alive")},
		{name: "any Proxy- field", e: withField("Proxy-Whatever", "x")},
		{name: "Trailer", e: withField("Trailer", "X-Sum")},
		{name: "trailer prefix", e: withField("Trailer:X-Sum", "1")},
		{name: "lower-case transfer-encoding", e: withField("transfer-encoding", "chunked")},
		{name: "Age", e: withField("Age", "1")},
		{name: "Cache-Status", e: withField("Cache-Status", "x")},
		{name: "field name not a token", e: withField("X Bad", "x")},
		{name: "field name with CRLF", e: withField("X\r\nSet-Cookie", "a=b")},
		{name: "two Content-Length values", e: withField("Content-Length", "5", "6")},
		{name: "two equal Content-Length values", e: withField("Content-Length", "5", "5")},
		{name: "Content-Length too short", e: withField("Content-Length", "4")},
		{name: "Content-Length too long", e: withField("Content-Length", "6")},
		{name: "Content-Length with a sign", e: withField("Content-Length", "+5")},
		{name: "Content-Length with a zero", e: withField("Content-Length", "05")},
		{name: "Content-Length with space", e: withField("Content-Length", " 5")},
		{name: "two Content-Length fields", e: &entry{storedAt: at, status: 200, body: []byte("hello"), fields: []field{
			{name: "Content-Length", values: []string{"5"}}, {name: "content-length", values: []string{"5"}},
		}}},
		{name: "lower-case content-length wrong", e: withField("content-length", "9")},
		{name: "stored before 1970", e: &entry{storedAt: time.Unix(-1, 0), status: 200}},
		{name: "stored at 0", e: &entry{storedAt: time.Unix(0, 0), status: 200}},
		{name: "stored in the future", e: &entry{storedAt: entryNow.Add(maxEntrySkew + time.Second), status: 200}},
		{name: "negative stale-if-error", e: &entry{storedAt: at, status: 200, life: cachepolicy.Lifetime{StaleIfError: -1}}},
	}
}

func TestEntryDecodeImpossible(t *testing.T) {
	for _, tc := range impossibleEntries() {
		t.Run(tc.name, func(t *testing.T) {
			b := encode(tc.e, nil)
			_, err := decode(b, nil)
			assert.ErrorIs(t, err, errEntryInvalid, "decode of %+v", tc.e)
			// A valid signature does not make it possible.
			_, err = decode(encode(tc.e, signKey), signKey)
			assert.ErrorIs(t, err, errEntryInvalid, "decode of signed %+v", tc.e)
		})
	}
}

func TestEntrySignature(t *testing.T) {
	e := testEntry()
	tests := []struct {
		name    string
		b       []byte
		key     string
		signKey []byte
		want    error
	}{
		{name: "signed, read with the key", b: encode(e, signKey), key: entryKey, signKey: signKey},
		{name: "signed, read without a key", b: encode(e, signKey), key: entryKey},
		{name: "unsigned, read with a key", b: encode(e, nil), key: entryKey, signKey: signKey, want: errEntrySignature},
		{name: "signed with another key", b: encode(e, otherSign), key: entryKey, signKey: signKey, want: errEntrySignature},
		{name: "moved to another Redis key", b: encode(e, signKey), key: entryKey + "0", signKey: signKey, want: errEntrySignature},
		{
			name: "body changed, resealed", key: entryKey, signKey: signKey, want: errEntrySignature,
			b: func() []byte {
				b := encode(e, signKey)
				b[len(b)-macSize-1] ^= 1
				return reseal(b)
			}(),
		},
		{
			name: "mac cut off, flag cleared, resealed", key: entryKey, signKey: signKey, want: errEntrySignature,
			b: func() []byte {
				b := bytes.Clone(encode(e, signKey)[:len(encode(e, signKey))-macSize])
				b[48] &^= flagSigned
				return reseal(b)
			}(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeEntry(tc.b, tc.key, tc.signKey, entryNow)
			if tc.want != nil {
				assert.ErrorIs(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, e.body, got.body)
		})
	}
}

func TestEntryDecodeAllocs(t *testing.T) {
	e := testEntry()
	e.body = bytes.Repeat([]byte("x"), 12345)
	e.fields = append(e.fields, field{name: "Content-Length", values: []string{"12345"}})
	slices.SortFunc(e.fields, func(a, b field) int { return strings.Compare(a.name, b.name) })
	b := encode(e, nil)
	allocs := testing.AllocsPerRun(100, func() {
		_, err := decode(b, nil)
		require.NoError(t, err)
	})
	assert.LessOrEqual(t, allocs, 3.0, "decodeEntry allocations")
}

// FuzzDecodeEntry feeds the decoder arbitrary bytes, and arbitrary
// payloads under a valid checksum, signed or not: it must never panic, and
// whatever it accepts must be an entry the cache could have stored
// (checkEntry's rules, checked here on their own) and encode again to the
// very same bytes.
func FuzzDecodeEntry(f *testing.F) {
	good := encode(testEntry(), nil)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(encode(&entry{storedAt: time.Unix(1, 0), status: 200}, nil))
	f.Add(encode(testEntry(), signKey))
	for _, tc := range impossibleEntries() {
		f.Add(encode(tc.e, nil))
	}
	f.Add([]byte("sfc\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(b, signKey []byte) {
			e, err := decode(b, signKey)
			if err != nil {
				return
			}
			require.True(t, cachepolicy.StorableStatus(e.status), "accepted status %d", e.status)
			require.False(t, e.storedAt.UnixNano() <= 0 || e.storedAt.After(entryNow.Add(maxEntrySkew)),
				"accepted storedAt %v", e.storedAt)
			lengths := 0
			for _, f := range e.fields {
				name := http.CanonicalHeaderKey(f.name)
				switch {
				case name == "Connection", name == "Transfer-Encoding", name == "Keep-Alive", name == "Te",
					name == "Upgrade", name == "Trailer", strings.HasPrefix(name, "Proxy-"),
					strings.ContainsAny(f.name, " \t\r\n:\x00"):
					require.Failf(t, "accepted a field that is never stored", "accepted field %q", f.name)
				case name == "Content-Length":
					lengths++
					require.False(t, lengths > 1 || len(f.values) != 1 || f.values[0] != strconv.Itoa(len(e.body)),
						"accepted Content-Length %q for a body of %d bytes", f.values, len(e.body))
				}
			}
			// A signed entry read without a key keeps its signature
			// unchecked: encoded again unsigned, it is the same entry.
			signed := b[48]&flagSigned != 0
			if signed && signKey == nil {
				again, err := decode(encode(&e, nil), nil)
				require.NoError(t, err, "re-encoded entry differs")
				require.Equal(t, e.fields, again.fields, "re-encoded entry differs")
				require.Equal(t, e.body, again.body, "re-encoded entry differs")
				return
			}
			require.Equal(t, b, encode(&e, signKey), "encode of the decoded entry differs")
		}
		check(b, nil)
		check(b, signKey)
		// The same bytes as a payload behind a valid prefix and checksum,
		// so that the fuzzer reaches past the checksum, and signed
		// properly, so that it reaches past the signature.
		sealed := reseal(append([]byte("sfc\x01\x00\x00\x00\x00"), b...))
		check(sealed, nil)
		if len(b) > 32 {
			signed := append([]byte("sfc\x01\x00\x00\x00\x00"), b...)
			signed[40] |= flagSigned
			signed = entryMAC(signKey, entryKey, signed[8:]).Sum(signed)
			check(reseal(signed), signKey)
		}
	})
}
