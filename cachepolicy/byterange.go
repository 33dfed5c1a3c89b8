package cachepolicy

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RangeResult says how a Range request is answered from a stored
// complete response, as [SelectRange] decides. The zero value is
// [RangeIgnored].
type RangeResult int

const (
	// RangeIgnored means the whole response is sent, with its own status:
	// no Range, a Range this cache does not serve (several ranges, another
	// unit, bad syntax) or an If-Range that does not match.
	RangeIgnored RangeResult = iota
	// RangePartial means a 206 with the selected bytes and Content-Range.
	RangePartial
	// RangeUnsatisfiable means a 416 with "Content-Range: bytes */size".
	RangeUnsatisfiable
)

// ByteRange is a part of a representation: Length bytes from Start.
type ByteRange struct {
	Start, Length int64
}

// ContentRange returns the Content-Range value of r in a representation
// of size bytes: "bytes first-last/size".
func (r ByteRange) ContentRange(size int64) string {
	b := make([]byte, 0, 48)
	b = append(b, "bytes "...)
	b = strconv.AppendInt(b, r.Start, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, r.Start+r.Length-1, 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, size, 10)
	return string(b)
}

// SelectRange decides how a GET request is answered from a stored 200
// of size bytes with the given ETag, Last-Modified and Date values (any
// may be empty) (RFC 9110 section 14). It serves one byte range: "a-b",
// "a-" (to the end) or "-n" (the last n bytes), in the bytes unit; a last
// position past the end is cut to the end. Several ranges, another unit
// or bad syntax are ignored (the whole response is sent, which RFC 9110
// allows), as is a Range in a request that is not a GET. A first
// position at or past the end, or a suffix of zero, is unsatisfiable.
//
// If-Range, when present, lets the range through only when it matches:
// an entity-tag equal by strong comparison to a strong etag, or an
// HTTP-date equal to a Last-Modified that is itself strong (at least one
// second before Date). Otherwise the whole response is sent.
func SelectRange(req *http.Request, size int64, etag, lastModified, date string, now time.Time) (ByteRange, RangeResult) {
	if req == nil || (req.Method != "" && req.Method != http.MethodGet) {
		return ByteRange{}, RangeIgnored
	}
	lines := req.Header["Range"]
	if len(lines) != 1 {
		return ByteRange{}, RangeIgnored
	}
	if ir, ok := req.Header["If-Range"]; ok && !ifRangeMatches(ir, etag, lastModified, date, now) {
		return ByteRange{}, RangeIgnored
	}
	return ParseRange(lines[0], size)
}

// ParseRange reads a Range field value for a representation of size
// bytes; see [SelectRange] for what it accepts. It never panics.
func ParseRange(v string, size int64) (ByteRange, RangeResult) {
	v = trimOWS(v)
	unit, spec, ok := strings.Cut(v, "=")
	if !ok || !strings.EqualFold(unit, "bytes") || strings.IndexByte(spec, ',') >= 0 || size < 0 {
		return ByteRange{}, RangeIgnored
	}
	spec = trimOWS(spec)
	first, last, ok := strings.Cut(spec, "-")
	if !ok {
		return ByteRange{}, RangeIgnored
	}
	if first == "" { // suffix: the last n bytes
		n, ok := rangeInt(last)
		if !ok {
			return ByteRange{}, RangeIgnored
		}
		if n == 0 || size == 0 {
			return ByteRange{}, RangeUnsatisfiable
		}
		n = min(n, size)
		return ByteRange{Start: size - n, Length: n}, RangePartial
	}
	start, ok := rangeInt(first)
	if !ok {
		return ByteRange{}, RangeIgnored
	}
	end := size - 1
	if last != "" {
		e, ok := rangeInt(last)
		if !ok || e < start {
			return ByteRange{}, RangeIgnored
		}
		end = min(e, size-1)
	}
	if start >= size {
		return ByteRange{}, RangeUnsatisfiable
	}
	return ByteRange{Start: start, Length: end - start + 1}, RangePartial
}

// rangeInt parses a non-empty run of digits that fits an int64.
func rangeInt(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// ifRangeMatches reports whether the If-Range lines select the stored
// representation (RFC 9110 section 13.1.5).
func ifRangeMatches(lines []string, etag, lastModified, date string, now time.Time) bool {
	if len(lines) != 1 {
		return false
	}
	v := trimOWS(lines[0])
	if strings.HasPrefix(v, `"`) || strings.HasPrefix(v, "W/") {
		// Strong comparison: neither may be weak.
		got, ok1 := opaqueTag(v)
		want, ok2 := opaqueTag(trimOWS(etag))
		return ok1 && ok2 && !strings.HasPrefix(v, "W/") && !strings.HasPrefix(trimOWS(etag), "W/") && got == want
	}
	since, ok := ParseHTTPDate(v, now)
	if !ok || lastModified == "" || date == "" {
		return false
	}
	modified, ok1 := ParseHTTPDate(lastModified, now)
	d, ok2 := ParseHTTPDate(date, now)
	return ok1 && ok2 && modified.Equal(since) && d.Sub(modified) >= time.Second
}
