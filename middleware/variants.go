package middleware

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io/fs"
	"net/http"
	"slices"
	"time"

	"github.com/steadfast-go/steadfast/cachepolicy"
)

// Variants: a response whose Vary names request fields outside the
// policy's key headers is stored under a variant key
// (cachepolicy.AppendVariantKey: the URL's key, "~" and a hash of the
// request's normalised values of those fields), and the URL's own key
// holds a variant index instead of an entry: the field names and the
// variants stored, oldest first. A lookup that finds an index makes one
// more round trip, for the variant; URLs without variants cost none.
//
// Layout of an index, version 1, integers big-endian:
//
//	magic    3 bytes  "sfv"
//	version  1 byte   1
//	crc      4 bytes  CRC-32C (Castagnoli) of everything after it
//	names    uvarint count, then per name: uvarint length, name
//	variants uvarint count, then per variant: uvarint length, key suffix
//	         ("~" and 32 hex digits), 8 bytes expiry (unix nanoseconds)
//
// The index is rewritten by the background writer each time a variant is
// stored (read, add, drop the oldest past the policy's cap, write).
// Writers on several processes may race; the loser's variant then falls
// out of the index and is found no more, which costs a miss, never a
// wrong answer: a variant key is reached only through the hash of the
// request's own values.
const (
	indexMagic   = "sfv"
	indexVersion = 1
)

var errIndexCorrupt = errors.New("cache variant index: malformed")

// variantIndex is a decoded index.
type variantIndex struct {
	names    []string // canonical, sorted
	variants []variantRef
}

// variantRef is one stored variant.
type variantRef struct {
	suffix  string // "~" and 32 hex digits
	expires time.Time
}

// isIndex reports whether a stored value is a variant index rather than
// an entry.
func isIndex(b []byte) bool {
	return len(b) >= len(indexMagic) && string(b[:len(indexMagic)]) == indexMagic
}

// appendIndex appends the encoding of ix to dst.
func appendIndex(dst []byte, ix *variantIndex) []byte {
	start := len(dst)
	dst = append(dst, indexMagic...)
	dst = append(dst, indexVersion, 0, 0, 0, 0)
	dst = binary.AppendUvarint(dst, uint64(len(ix.names)))
	for _, n := range ix.names {
		dst = appendLenString(dst, n)
	}
	dst = binary.AppendUvarint(dst, uint64(len(ix.variants)))
	for _, v := range ix.variants {
		dst = appendLenString(dst, v.suffix)
		dst = binary.BigEndian.AppendUint64(dst, uint64(v.expires.UnixNano()))
	}
	crcAt := start + len(indexMagic) + 1
	binary.BigEndian.PutUint32(dst[crcAt:], crc32.Checksum(dst[crcAt+4:], castagnoli))
	return dst
}

// decodeIndex decodes a variant index; anything but a whole, intact
// version 1 index with valid names and suffixes is errIndexCorrupt.
func decodeIndex(b []byte) (variantIndex, error) {
	const head = len(indexMagic) + 1 + 4
	if !isIndex(b) || len(b) < head || b[len(indexMagic)] != indexVersion {
		return variantIndex{}, errIndexCorrupt
	}
	crcAt := len(indexMagic) + 1
	if crc32.Checksum(b[crcAt+4:], castagnoli) != binary.BigEndian.Uint32(b[crcAt:]) {
		return variantIndex{}, errIndexCorrupt
	}
	p := b[head:]
	var ix variantIndex
	readStr := func() (string, bool) {
		l, n := binary.Uvarint(p)
		if n <= 0 || l > uint64(len(p)-n) {
			return "", false
		}
		s := string(p[n : n+int(l)])
		p = p[n+int(l):]
		return s, true
	}
	count, n := binary.Uvarint(p)
	if n <= 0 || count == 0 || count > uint64(len(p)) {
		return variantIndex{}, errIndexCorrupt
	}
	p = p[n:]
	for range count {
		name, ok := readStr()
		if !ok || name == "" || (len(ix.names) > 0 && name <= ix.names[len(ix.names)-1]) {
			return variantIndex{}, errIndexCorrupt
		}
		ix.names = append(ix.names, name)
	}
	count, n = binary.Uvarint(p)
	if n <= 0 || count > uint64(len(p)) {
		return variantIndex{}, errIndexCorrupt
	}
	p = p[n:]
	for range count {
		suffix, ok := readStr()
		if !ok || len(suffix) != cachepolicy.VariantHashLen || suffix[0] != '~' || len(p) < 8 {
			return variantIndex{}, errIndexCorrupt
		}
		exp := time.Unix(0, int64(binary.BigEndian.Uint64(p)))
		p = p[8:]
		ix.variants = append(ix.variants, variantRef{suffix: suffix, expires: exp})
	}
	if len(p) != 0 {
		return variantIndex{}, errIndexCorrupt
	}
	return ix, nil
}

// writeVariant stores the entry of job j, a variant, and records it in
// the index at j.key: the entry first, so that an index never names a
// variant that was not written. Variants past the cap, oldest first, and
// those expired are dropped from the index and deleted.
func (w *writer) writeVariant(j writeJob, buf []byte) ([]byte, error) {
	buf = appendEntry(buf[:0], j.e, j.e.variant.key, w.signKey)
	if err := w.store.Set(w.ctx, j.e.variant.key, buf, j.ttl); err != nil {
		return buf, err
	}
	now := time.Now()
	suffix := j.e.variant.key[len(j.key):]
	var ix variantIndex
	if val, err := w.store.Get(w.ctx, j.key); err == nil && isIndex(val) {
		if old, err := decodeIndex(val); err == nil && slices.Equal(old.names, j.e.variant.names) {
			ix = old
		}
	}
	ix.names = j.e.variant.names
	ix.variants = slices.DeleteFunc(ix.variants, func(v variantRef) bool {
		return v.suffix == suffix || !v.expires.After(now)
	})
	ix.variants = append(ix.variants, variantRef{suffix: suffix, expires: now.Add(j.ttl)})
	var drop []string
	if over := len(ix.variants) - j.maxVariants; j.maxVariants > 0 && over > 0 {
		for _, v := range ix.variants[:over] {
			drop = append(drop, j.key+v.suffix)
		}
		ix.variants = ix.variants[over:]
	}
	ttl := time.Millisecond
	for _, v := range ix.variants {
		ttl = max(ttl, v.expires.Sub(now))
	}
	buf = appendIndex(buf[:0], &ix)
	if err := w.store.Set(w.ctx, j.key, buf, ttl); err != nil {
		return buf, err
	}
	if len(drop) > 0 {
		if err := w.store.Del(w.ctx, drop...); err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// lookupVariant reads the variant of the index val at key that request
// header h selects. It returns the variant key and the store's answer for
// it (an fs.ErrNotExist error for a variant not stored: a vary-miss). A
// corrupt index is deleted, counted and taken as a miss of the URL: vkey
// is then empty and err fs.ErrNotExist.
func (c *Cache) lookupVariant(ctx context.Context, key string, val []byte, h http.Header) (vkey string, got []byte, err error) {
	ix, derr := decodeIndex(val)
	if derr != nil {
		c.stats.decodeErrors.Add(1)
		if c.store.Del(ctx, key) != nil {
			c.stats.storeErrors.Add(1)
		}
		return "", nil, fs.ErrNotExist
	}
	var kb [192]byte
	vkey = string(cachepolicy.AppendVariantKey(kb[:0], key, h, ix.names))
	got, err = c.store.Get(ctx, vkey)
	return vkey, got, err
}

// variantKey returns the key of the variant that request header h
// selects among the responses for base that vary on names.
func variantKey(base string, h http.Header, names []string) string {
	var kb [192]byte
	return string(cachepolicy.AppendVariantKey(kb[:0], base, h, names))
}

// sameVariant reports whether a request with header h may be answered
// with e, made for another request with the same base key: e varies on
// nothing beyond the key, or h selects e's variant.
func sameVariant(e *entry, base string, h http.Header) bool {
	return e.variant == nil || variantKey(base, h, e.variant.names) == e.variant.key
}
