package middleware

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"hash/crc32"
	"strconv"
	"strings"
	"time"

	"github.com/steadfast-go/steadfast/cachepolicy"
)

// A cache entry is one Redis value holding a whole response: status,
// header, body, when it was stored and how long it stays fresh and usable
// stale. Layout, version 2, integers big-endian:
//
//	magic    3 bytes  "sfc"
//	version  1 byte   2
//	crc      4 bytes  CRC-32C (Castagnoli) of everything after it
//	storedAt 8 bytes  unix nanoseconds
//	fresh    8 bytes  freshness lifetime, nanoseconds
//	swr      8 bytes  stale-while-revalidate window, nanoseconds
//	sie      8 bytes  stale-if-error window, nanoseconds
//	age      8 bytes  the age the response had when stored, nanoseconds
//	flags    1 byte   bit 0: must-revalidate; bit 1: signed; bit 2: no-cache;
//	                  other bits zero
//	status   2 bytes
//	header   uvarint count, then per field: uvarint name length, name,
//	         uvarint value count, per value: uvarint length, value
//	body     uvarint length, body
//	mac      32 bytes, only when signed: HMAC-SHA256 under
//	         [CacheOptions.SigningKey] of the uvarint length of the Redis
//	         key, the key, and everything from storedAt to the body's end;
//	         nothing may follow
//
// Every uvarint is in its shortest form, so that an entry has one
// encoding. A new layout gets a new version byte; a value with another
// magic, version or checksum, one cut short or followed by extra bytes, or
// one whose content the cache would never have stored, is not an entry
// (see [decodeEntry]).
const (
	entryMagic   = "sfc"
	entryVersion = 2
	// entryFixed is the size of everything before the header.
	entryFixed = len(entryMagic) + 1 + 4 + 5*8 + 1 + 2

	flagMustRevalidate = 1 << 0
	flagSigned         = 1 << 1
	flagNoCache        = 1 << 2

	// macSize is the length of an entry's signature.
	macSize = sha256.Size
	// maxEntrySkew is how far in the future an entry's storedAt may lie,
	// by this process's clock, for clocks of the hosts that share Redis
	// that disagree a little. Anything later is not an entry.
	maxEntrySkew = 5 * time.Minute
)

// Errors of decodeEntry. None leaves the package: a value that is not an
// entry is counted, deleted and treated as a miss.
var (
	errEntryForeign  = errors.New("cache entry: not a steadfast entry")
	errEntryVersion  = errors.New("cache entry: unknown version")
	errEntryChecksum = errors.New("cache entry: checksum mismatch")
	errEntryCorrupt  = errors.New("cache entry: malformed")
	// errEntryInvalid is a well-formed value that the cache would never
	// have stored: a status that is not a final, storable one, a
	// hop-by-hop or framing field, a Content-Length that is not the body's
	// length, a time out of range.
	errEntryInvalid = errors.New("cache entry: impossible content")
	// errEntrySignature is an unsigned or forged entry, for a cache that
	// signs its entries.
	errEntrySignature = errors.New("cache entry: bad signature")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendEntry appends the encoding of e, the entry at key, to dst. With a
// signKey, the entry is signed (see the layout above).
func appendEntry(dst []byte, e *entry, key string, signKey []byte) []byte {
	start := len(dst)
	dst = append(dst, entryMagic...)
	dst = append(dst, entryVersion, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.storedAt.UnixNano()))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.life.Fresh))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.life.StaleWhileRevalidate))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.life.StaleIfError))
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.life.Age))
	var flags byte
	if e.life.MustRevalidate {
		flags |= flagMustRevalidate
	}
	if e.life.NoCache {
		flags |= flagNoCache
	}
	if len(signKey) > 0 {
		flags |= flagSigned
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint16(dst, uint16(e.status))
	dst = binary.AppendUvarint(dst, uint64(len(e.fields)))
	for _, f := range e.fields {
		dst = appendLenString(dst, f.name)
		dst = binary.AppendUvarint(dst, uint64(len(f.values)))
		for _, v := range f.values {
			dst = appendLenString(dst, v)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.body)))
	dst = append(dst, e.body...)
	crcAt := start + len(entryMagic) + 1
	if len(signKey) > 0 {
		dst = entryMAC(signKey, key, dst[crcAt+4:]).Sum(dst)
	}
	binary.BigEndian.PutUint32(dst[crcAt:], crc32.Checksum(dst[crcAt+4:], castagnoli))
	return dst
}

// entryMAC returns the HMAC of the entry at key whose signed part is
// payload.
func entryMAC(signKey []byte, key string, payload []byte) hash.Hash {
	m := hmac.New(sha256.New, signKey)
	var n [binary.MaxVarintLen64]byte
	m.Write(binary.AppendUvarint(n[:0], uint64(len(key))))
	m.Write([]byte(key))
	m.Write(payload)
	return m
}

// encodedSize returns an upper bound of the length of e's encoding.
func encodedSize(e *entry) int {
	n := entryFixed + 2*binary.MaxVarintLen64
	for _, f := range e.fields {
		n += 2*binary.MaxVarintLen64 + len(f.name)
		for _, v := range f.values {
			n += binary.MaxVarintLen64 + len(v)
		}
	}
	return n + len(e.body) + macSize
}

func appendLenString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeEntry decodes the entry at key from b, which it keeps: the
// entry's body is a slice of b. It returns errEntryForeign,
// errEntryVersion, errEntryChecksum or errEntryCorrupt for anything that
// is not a whole, intact version 1 entry in its one encoding;
// errEntryInvalid for an entry the cache would never have stored (see
// checkEntry), with now the time it is read at; and, with a signKey,
// errEntrySignature for an entry not signed under it for key. Without a
// signKey, a signature is not checked. It never panics.
//
// Allocation budget: three (one string for the whole header block, one
// slice for all values, one for the fields), whatever the number of
// fields, plus the HMAC's when signed.
func decodeEntry(b []byte, key string, signKey []byte, now time.Time) (entry, error) {
	if len(b) < len(entryMagic)+1 || string(b[:len(entryMagic)]) != entryMagic {
		return entry{}, errEntryForeign
	}
	if b[len(entryMagic)] != entryVersion {
		return entry{}, errEntryVersion
	}
	if len(b) < entryFixed {
		return entry{}, errEntryCorrupt
	}
	crcAt := len(entryMagic) + 1
	if crc32.Checksum(b[crcAt+4:], castagnoli) != binary.BigEndian.Uint32(b[crcAt:]) {
		return entry{}, errEntryChecksum
	}
	p := b[crcAt+4:]
	var e entry
	e.storedAt = time.Unix(0, int64(binary.BigEndian.Uint64(p)))
	e.life.Fresh = time.Duration(binary.BigEndian.Uint64(p[8:]))
	e.life.StaleWhileRevalidate = time.Duration(binary.BigEndian.Uint64(p[16:]))
	e.life.StaleIfError = time.Duration(binary.BigEndian.Uint64(p[24:]))
	e.life.Age = time.Duration(binary.BigEndian.Uint64(p[32:]))
	flags := p[40]
	e.life.MustRevalidate = flags&flagMustRevalidate != 0
	e.life.NoCache = flags&flagNoCache != 0
	e.status = int(binary.BigEndian.Uint16(p[41:]))
	if flags&^(flagMustRevalidate|flagSigned|flagNoCache) != 0 {
		return entry{}, errEntryCorrupt
	}
	signed := flags&flagSigned != 0
	if signed {
		if len(p) < 43+macSize {
			return entry{}, errEntryCorrupt
		}
		mac := p[len(p)-macSize:]
		p = p[:len(p)-macSize]
		if len(signKey) > 0 && !hmac.Equal(mac, entryMAC(signKey, key, p).Sum(nil)) {
			return entry{}, errEntrySignature
		}
	} else if len(signKey) > 0 {
		return entry{}, errEntrySignature
	}
	hdr := p[43:]

	// First pass: check the header block and count what it holds.
	nFields, nValues, hdrLen, ok := scanFields(hdr)
	if !ok {
		return entry{}, errEntryCorrupt
	}
	bodyLen, n := uvarint(hdr[hdrLen:])
	if n <= 0 || bodyLen != uint64(len(hdr)-hdrLen-n) {
		return entry{}, errEntryCorrupt
	}
	if bodyLen > 0 {
		e.body = hdr[hdrLen+n:]
	}

	// Second pass: slice names and values out of one string.
	if nFields > 0 {
		s := string(hdr[:hdrLen])
		e.fields = make([]field, nFields)
		values := make([]string, nValues)
		_, i := binary.Uvarint(hdr)
		for fi := range e.fields {
			var name string
			name, i = readLenString(s, i)
			count, m := binary.Uvarint(hdr[i:])
			i += m
			vs := values[:int(count):int(count)]
			values = values[int(count):]
			for vi := range vs {
				vs[vi], i = readLenString(s, i)
			}
			e.fields[fi] = field{name: name, values: vs}
		}
	}
	if !checkEntry(&e, now) {
		return entry{}, errEntryInvalid
	}
	return e, nil
}

// checkEntry reports whether the cache could have stored e, read at now:
// a storable status ([cachepolicy.StorableStatus]); only fields an entry
// keeps (storedField: no hop-by-hop, framing or Proxy- field); at most
// one Content-Length, with one value, the
// body's length in decimal; storedAt after 1970 and at most maxEntrySkew
// after now; lifetimes not negative, an age of at most
// [cachepolicy.MaxDelta].
func checkEntry(e *entry, now time.Time) bool {
	if !storableStatus(e.status) || e.storedAt.UnixNano() <= 0 || e.storedAt.After(now.Add(maxEntrySkew)) ||
		e.life.Fresh < 0 || e.life.StaleWhileRevalidate < 0 || e.life.StaleIfError < 0 ||
		e.life.Age < 0 || e.life.Age > cachepolicy.MaxDelta {
		return false
	}
	lengths := 0
	for i := range e.fields {
		f := &e.fields[i]
		if !storedField(f.name) {
			return false
		}
		if strings.EqualFold(f.name, "Content-Length") {
			lengths++
			var buf [20]byte // no allocation: compared, never kept
			if lengths > 1 || len(f.values) != 1 || f.values[0] != string(strconv.AppendInt(buf[:0], int64(len(e.body)), 10)) {
				return false
			}
		}
	}
	return true
}

// uvarint is binary.Uvarint that refuses any but the shortest encoding
// (n <= 0).
func uvarint(b []byte) (uint64, int) {
	v, n := binary.Uvarint(b)
	if n > 1 && b[n-1] == 0 {
		return 0, -1
	}
	return v, n
}

// scanFields checks the header block at the start of b and returns the
// number of fields and values and the block's length.
func scanFields(b []byte) (nFields, nValues, length int, ok bool) {
	count, n := uvarint(b)
	// Each field takes at least three bytes, so a count beyond that is a
	// lie that must not size an allocation.
	if n <= 0 || count > uint64(len(b)-n)/3 {
		return 0, 0, 0, false
	}
	i := n
	var prev []byte
	for range count {
		l, m := uvarint(b[i:])
		if m <= 0 || l == 0 || l > uint64(len(b)-i-m) {
			return 0, 0, 0, false
		}
		i += m
		name := b[i : i+int(l)]
		if nFields > 0 && bytes.Compare(name, prev) <= 0 { // sorted, no duplicates
			return 0, 0, 0, false
		}
		prev = name
		i += int(l)
		vc, m := uvarint(b[i:])
		// At least one value, and each takes a byte at least.
		if m <= 0 || vc == 0 || vc > uint64(len(b)-i-m) {
			return 0, 0, 0, false
		}
		i += m
		for range vc {
			l, m := uvarint(b[i:])
			if m <= 0 || l > uint64(len(b)-i-m) {
				return 0, 0, 0, false
			}
			i += m + int(l)
		}
		nFields++
		nValues += int(vc)
	}
	return nFields, nValues, i, true
}

// readLenString reads a length-prefixed string of s at i, already checked
// by scanFields, and returns it with the index after it.
func readLenString(s string, i int) (string, int) {
	var l uint64
	var shift uint
	for {
		c := s[i]
		i++
		l |= uint64(c&0x7f) << shift
		if c < 0x80 {
			break
		}
		shift += 7
	}
	return s[i : i+int(l)], i + int(l)
}
