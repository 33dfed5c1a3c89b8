package cachepolicy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSelectRange(t *testing.T) {
	const size = 100
	etag, lm, date := `"v1"`, httpDate(t0.Add(-10*time.Second)), httpDate(t0)
	tests := []struct {
		name   string
		method string
		header []string
		etag   string
		want   ByteRange
		result RangeResult
	}{
		{name: "no range", header: nil, result: RangeIgnored},
		{name: "first bytes", header: []string{"Range", "bytes=0-9"}, want: ByteRange{0, 10}, result: RangePartial},
		{name: "middle", header: []string{"Range", "bytes=10-19"}, want: ByteRange{10, 10}, result: RangePartial},
		{name: "open-ended", header: []string{"Range", "bytes=90-"}, want: ByteRange{90, 10}, result: RangePartial},
		{name: "suffix", header: []string{"Range", "bytes=-5"}, want: ByteRange{95, 5}, result: RangePartial},
		{name: "suffix longer than body", header: []string{"Range", "bytes=-500"}, want: ByteRange{0, 100}, result: RangePartial},
		{name: "last beyond end is cut", header: []string{"Range", "bytes=50-500"}, want: ByteRange{50, 50}, result: RangePartial},
		{name: "unit any case", header: []string{"Range", "Bytes=0-0"}, want: ByteRange{0, 1}, result: RangePartial},
		{name: "first at end", header: []string{"Range", "bytes=100-"}, result: RangeUnsatisfiable},
		{name: "suffix zero", header: []string{"Range", "bytes=-0"}, result: RangeUnsatisfiable},
		{name: "several ranges ignored", header: []string{"Range", "bytes=0-1,5-6"}, result: RangeIgnored},
		{name: "two fields ignored", header: []string{"Range", "bytes=0-1", "Range", "bytes=5-6"}, result: RangeIgnored},
		{name: "other unit", header: []string{"Range", "items=0-1"}, result: RangeIgnored},
		{name: "last before first", header: []string{"Range", "bytes=9-1"}, result: RangeIgnored},
		{name: "garbage", header: []string{"Range", "bytes=a-b"}, result: RangeIgnored},
		{name: "negative", header: []string{"Range", "bytes=--1"}, result: RangeIgnored},
		{name: "huge", header: []string{"Range", "bytes=0-99999999999999999999"}, result: RangeIgnored},
		{name: "HEAD ignores range", method: "HEAD", header: []string{"Range", "bytes=0-9"}, result: RangeIgnored},

		{name: "If-Range etag matches", header: []string{"Range", "bytes=0-9", "If-Range", `"v1"`}, want: ByteRange{0, 10}, result: RangePartial},
		{name: "If-Range etag differs", header: []string{"Range", "bytes=0-9", "If-Range", `"v2"`}, result: RangeIgnored},
		{name: "If-Range weak etag", header: []string{"Range", "bytes=0-9", "If-Range", `W/"v1"`}, result: RangeIgnored},
		{name: "If-Range against weak stored etag", header: []string{"Range", "bytes=0-9", "If-Range", `"v1"`}, etag: `W/"v1"`, result: RangeIgnored},
		{name: "If-Range date matches", header: []string{"Range", "bytes=0-9", "If-Range", lm}, want: ByteRange{0, 10}, result: RangePartial},
		{name: "If-Range date differs", header: []string{"Range", "bytes=0-9", "If-Range", date}, result: RangeIgnored},
		{name: "If-Range garbage", header: []string{"Range", "bytes=0-9", "If-Range", "x"}, result: RangeIgnored},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			e := tc.etag
			if e == "" {
				e = etag
			}
			req := newRequest(method, "/x", tc.header...)
			got, result := SelectRange(req, size, e, lm, date, t0)
			assert.Equal(t, tc.result, result, "SelectRange(%q) result", tc.header)
			assert.Equal(t, tc.want, got, "SelectRange(%q) range", tc.header)
		})
	}
}

func TestIfRangeWeakLastModified(t *testing.T) {
	// Last-Modified equal to Date is weak: If-Range with it never matches.
	req := newRequest("GET", "/x", "Range", "bytes=0-1", "If-Range", httpDate(t0))
	_, result := SelectRange(req, 10, "", httpDate(t0), httpDate(t0), t0)
	assert.Equal(t, RangeIgnored, result)
}

func TestContentRange(t *testing.T) {
	assert.Equal(t, "bytes 0-9/100", ByteRange{0, 10}.ContentRange(100))
	assert.Equal(t, "bytes 95-99/100", ByteRange{95, 5}.ContentRange(100))
}

func FuzzParseRange(f *testing.F) {
	for _, seed := range []string{"bytes=0-9", "bytes=-5", "bytes=5-", "bytes=0-1,2-3", "bytes=", "=", "bytes=9-1", "\xff"} {
		f.Add(seed, int64(100))
	}
	f.Fuzz(func(t *testing.T, v string, size int64) {
		r, result := ParseRange(v, size)
		switch result {
		case RangePartial:
			require.False(t, r.Start < 0 || r.Length <= 0 || r.Start+r.Length > size,
				"ParseRange(%q, %d) = %+v outside the representation", v, size, r)
		case RangeIgnored, RangeUnsatisfiable:
			require.Equal(t, ByteRange{}, r, "ParseRange(%q, %d) with result %v", v, size, result)
		default:
			require.Failf(t, "unknown result", "ParseRange(%q, %d) result %v", v, size, result)
		}
	})
}
