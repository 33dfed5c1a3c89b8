package cachepolicy

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
)

// KeyHashLen is the length of the hash that [Key] appends to the prefix:
// 32 hexadecimal digits, the first 16 bytes of a SHA-256.
const KeyHashLen = 32

// keyVersion is the first byte of every key pre-image; change it whenever
// the pre-image layout changes, so old and new keys cannot meet.
const keyVersion = 2

// Key returns the cache key of req under the policy: prefix, kept verbatim,
// followed by [KeyHashLen] hexadecimal digits of a SHA-256 over
//
//   - the method class: GET and HEAD share one, every other method is its own;
//   - the scheme: https when req.TLS is set, else http (never a header);
//   - the host: req.Host (or req.URL.Host when empty), lower-cased, with a
//     default port (:80 for http, :443 for https) or an empty port removed;
//   - the escaped path (an empty path is "/") and any opaque URL part;
//   - the query as sent: its parameters (the pieces between "&", empty
//     ones included) byte for byte, never decoded, sorted by name, so
//     "b=2&a=1" and "a=1&b=2" share a key but "a=1" and "a=%31", or
//     "q=a+b" and "q=a%20b", do not: two requests share an entry only if
//     the handler sees the same parameters, raw or decoded. The sort is
//     stable and by the decoded name (a name with a bad escape sorts after
//     the others, by its bytes), so the values of one name keep their
//     order, however each was written: handlers see that order
//     (?sort=price&sort=name is not ?sort=name&sort=price to
//     r.URL.Query().Get, nor is ?a=1&%61=2 to ?%61=2&a=1);
//   - for each header of [Policy.KeyHeaders] (canonical names, sorted): its
//     values in order, with an absent header distinct from an empty one.
//
// Every field is length-prefixed, so two requests that differ in any of
// these get different pre-images. Nothing else of the request counts: not
// X-Forwarded-Host, X-Forwarded-Proto, Forwarded, X-Original-URL or any
// other header the policy does not list (see the package documentation on
// cache poisoning). A nil req is keyed as an empty request.
func Key(prefix string, req *http.Request, p Policy) string {
	var buf [64]byte
	return string(AppendKey(buf[:0], prefix, req, p))
}

// AppendKey appends the key [Key] returns to dst and returns the extended
// slice.
//
// Allocation budget: none when dst has room and the request is ordinary
// (pre-image within 1 KiB, at most 16 query parameters, at most 16 key
// headers in the form [Policy.Normalize] gives and [Rules.For] returns);
// beyond that it allocates for the extra room only. BenchmarkAppendKey
// checks it; [Key] adds the one allocation of its string.
func AppendKey(dst []byte, prefix string, req *http.Request, p Policy) []byte {
	var scratch [1024]byte
	pre := appendPreimage(scratch[:0], req, p.KeyHeaders)
	sum := sha256.Sum256(pre)
	dst = append(dst, prefix...)
	return hex.AppendEncode(dst, sum[:KeyHashLen/2])
}

// appendPreimage appends the unambiguous encoding of everything [Key]
// hashes.
func appendPreimage(b []byte, req *http.Request, keyHeaders []string) []byte {
	b = append(b, keyVersion)
	if req == nil {
		return b
	}

	method := req.Method
	if method == "" || method == http.MethodHead {
		method = http.MethodGet
	}
	b = appendString(b, method)

	https := req.TLS != nil
	if https {
		b = appendString(b, "https")
	} else {
		b = appendString(b, "http")
	}

	host := req.Host
	if host == "" && req.URL != nil {
		host = req.URL.Host
	}
	host = stripDefaultPort(host, https)
	b = binary.AppendUvarint(b, uint64(len(host)))
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}

	path, opaque, query := "/", "", ""
	if u := req.URL; u != nil {
		if ep := u.EscapedPath(); ep != "" {
			path = ep
		}
		opaque, query = u.Opaque, u.RawQuery
	}
	b = appendString(b, path)
	b = appendString(b, opaque)
	b = appendQuery(b, query)
	return appendHeaders(b, req.Header, keyHeaders)
}

// appendString appends s with its length in front.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// stripDefaultPort removes ":80" (http), ":443" (https) or an empty port
// from host. A host that is not of the form name:port, such as a bare IPv6
// address, is returned unchanged.
func stripDefaultPort(host string, https bool) string {
	i := strings.LastIndexByte(host, ':')
	if i < 0 {
		return host
	}
	name, port := host[:i], host[i+1:]
	if strings.IndexByte(name, ':') >= 0 && (name[0] != '[' || name[len(name)-1] != ']') {
		return host
	}
	if port == "" || (https && port == "443") || (!https && port == "80") {
		return name
	}
	return host
}

// queryParam is one query parameter as sent, with the sort key of its
// name in a scratch buffer.
type queryParam struct {
	seg        string // the parameter as sent
	start, end int    // its decoded name is buf[start:end]
	bad        bool   // its name holds a bad escape: the sort key is the raw name
}

// appendQuery appends the count and the parameters of the raw query, each
// as sent, sorted stably by decoded name.
func appendQuery(b []byte, rawQuery string) []byte {
	var paramArr [16]queryParam
	var bufArr [512]byte
	params, buf := paramArr[:0], bufArr[:0]
	for rest, more := rawQuery, rawQuery != ""; more; {
		var seg string
		seg, rest, more = strings.Cut(rest, "&")
		name, _, _ := strings.Cut(seg, "=")
		q := queryParam{seg: seg, start: len(buf)}
		var ok bool
		if buf, ok = appendUnescaped(buf, name); !ok {
			buf = append(buf[:q.start], name...)
			q.bad = true
		}
		q.end = len(buf)
		params = append(params, q)
	}
	// Stably: the values of a repeated name keep their order.
	slices.SortStableFunc(params, func(x, y queryParam) int {
		if x.bad != y.bad {
			if x.bad {
				return 1
			}
			return -1
		}
		return bytes.Compare(buf[x.start:x.end], buf[y.start:y.end])
	})
	b = binary.AppendUvarint(b, uint64(len(params)))
	for _, q := range params {
		b = appendString(b, q.seg)
	}
	return b
}

// appendUnescaped appends s decoded as a query component ("+" is a space,
// %XX a byte). ok is false, with b in an unspecified state past its old
// length, when s holds a malformed escape.
func appendUnescaped(b []byte, s string) (_ []byte, ok bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			b = append(b, ' ')
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return b, false
			}
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return b, true
}

// isHex reports whether c is a hexadecimal digit.
func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// unhex returns the value of the hexadecimal digit c.
func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// appendHeaders appends the count, names and values of the key headers.
func appendHeaders(b []byte, h http.Header, names []string) []byte {
	if !canonicalSorted(names) {
		var arr [16]string
		names = canonicalize(arr[:0], names)
	}
	return appendFields(b, h, names, false)
}

// appendFields appends the count of names (canonical) and, for each, the
// name and a 0 when h lacks the field, or a 1 and its values: as sent
// (their count, then each), or, when normalize is set, as one
// [NormalizeField] value.
func appendFields(b []byte, h http.Header, names []string, normalize bool) []byte {
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, name := range names {
		b = appendString(b, name)
		values, ok := h[name]
		if !ok {
			b = append(b, 0)
			continue
		}
		b = append(b, 1)
		if normalize {
			b = appendString(b, NormalizeField(name, values))
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(values)))
		for _, v := range values {
			b = appendString(b, v)
		}
	}
	return b
}

// canonicalSorted reports whether names are canonical header names in
// strictly increasing order. It does not allocate.
func canonicalSorted(names []string) bool {
	for i, name := range names {
		if textproto.CanonicalMIMEHeaderKey(name) != name || (i > 0 && names[i-1] >= name) {
			return false
		}
	}
	return true
}

// canonicalize appends the canonical forms of names to dst, sorted and
// without duplicates.
func canonicalize(dst, names []string) []string {
	for _, name := range names {
		dst = append(dst, textproto.CanonicalMIMEHeaderKey(name))
	}
	slices.Sort(dst)
	return slices.Compact(dst)
}
