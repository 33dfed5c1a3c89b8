package middleware

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleIndex() *variantIndex {
	return &variantIndex{
		names: []string{"Accept-Encoding", "Accept-Language"},
		variants: []variantRef{
			{suffix: "~" + string(bytes.Repeat([]byte("a"), 32)), expires: time.Unix(1700000000, 5)},
			{suffix: "~" + string(bytes.Repeat([]byte("b"), 32)), expires: time.Unix(1700000060, 0)},
		},
	}
}

func TestVariantIndexRoundTrip(t *testing.T) {
	want := sampleIndex()
	b := appendIndex(nil, want)
	require.True(t, isIndex(b))
	got, err := decodeIndex(b)
	require.NoError(t, err)
	assert.Equal(t, want.names, got.names)
	require.Len(t, got.variants, 2)
	for i := range want.variants {
		assert.Equal(t, want.variants[i].suffix, got.variants[i].suffix)
		assert.True(t, want.variants[i].expires.Equal(got.variants[i].expires))
	}
	_, err = decodeEntry(b, "k", nil, time.Now())
	assert.ErrorIs(t, err, errEntryForeign, "an index is never taken for an entry")
}

func TestVariantIndexDecodeErrors(t *testing.T) {
	good := appendIndex(nil, sampleIndex())
	reseal := func(b []byte) []byte { // a valid checksum over a bad payload
		if len(b) >= 8 {
			binary.BigEndian.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
		}
		return b
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{name: "empty", b: nil},
		{name: "entry", b: appendEntry(nil, testEntry(), "k", nil)},
		{name: "magic only", b: []byte("sfv")},
		{name: "other version", b: reseal(append([]byte("sfv\x02"), good[4:]...))},
		{name: "flipped bit", b: func() []byte { b := bytes.Clone(good); b[len(b)-1] ^= 1; return b }()},
		{name: "truncated", b: reseal(bytes.Clone(good[:len(good)-1]))},
		{name: "extra byte", b: reseal(append(bytes.Clone(good), 0))},
		{name: "no names", b: reseal(append(bytes.Clone(good[:8]), 0, 0))},
		{name: "unsorted names", b: reseal(appendIndex(nil, &variantIndex{names: []string{"B", "A"}}))},
		{name: "bad suffix", b: reseal(appendIndex(nil, &variantIndex{names: []string{"A"}, variants: []variantRef{{suffix: "~x"}}}))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeIndex(tc.b)
			assert.ErrorIs(t, err, errIndexCorrupt, "decode of % x", tc.b)
		})
	}
}

func FuzzDecodeIndex(f *testing.F) {
	f.Add(appendIndex(nil, sampleIndex()))
	f.Add([]byte("sfv\x01\x00\x00\x00\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ix, err := decodeIndex(b)
		if err != nil {
			return
		}
		again, err := decodeIndex(appendIndex(nil, &ix))
		require.NoError(t, err, "decoded index %+v does not round-trip", ix)
		require.Len(t, again.names, len(ix.names), "decoded index %+v does not round-trip: %+v", ix, again)
		require.Len(t, again.variants, len(ix.variants), "decoded index %+v does not round-trip: %+v", ix, again)
	})
}
