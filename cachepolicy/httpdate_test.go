package cachepolicy

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseHTTPDate(t *testing.T) {
	want := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want time.Time // zero: invalid
	}{
		{name: "IMF-fixdate", in: "Sun, 06 Nov 1994 08:49:37 GMT", want: want},
		{name: "rfc850", in: "Sunday, 06-Nov-94 08:49:37 GMT", want: want},
		{name: "asctime", in: "Sun Nov  6 08:49:37 1994", want: want},
		{name: "asctime two-digit day", in: "Sun Nov 16 08:49:37 1994", want: want.AddDate(0, 0, 10)},
		{name: "surrounding whitespace", in: " Sun, 06 Nov 1994 08:49:37 GMT\t", want: want},
		{name: "leap second", in: "Sat, 31 Dec 2016 23:59:60 GMT", want: time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC)},
		{name: "rfc850 year in the past century", in: "Sunday, 06-Nov-94 08:49:37 GMT", want: want},
		{name: "rfc850 year near now", in: "Thursday, 01-Jan-70 00:00:00 GMT", want: time.Date(2070, 1, 1, 0, 0, 0, 0, time.UTC)},
		{name: "rfc850 year 51 years ahead", in: "Friday, 01-Jan-76 00:00:00 GMT", want: time.Date(1976, 1, 1, 0, 0, 0, 0, time.UTC)},

		{name: "double spaces", in: "Thu, 18  Aug  2050 02:01:18 GMT"},
		{name: "one-digit hour", in: "Thu, 18 Aug 2050 2:01:18 GMT"},
		{name: "one-digit day", in: "Thu, 8 Aug 2050 02:01:18 GMT"},
		{name: "other zone", in: "Sun, 06 Nov 1994 08:49:37 UTC"},
		{name: "numeric zone", in: "Sun, 06 Nov 1994 08:49:37 +0000"},
		{name: "lower-case month", in: "Sun, 06 nov 1994 08:49:37 GMT"},
		{name: "lower-case day name", in: "sun, 06 Nov 1994 08:49:37 GMT"},
		{name: "unknown day name", in: "Sux, 06 Nov 1994 08:49:37 GMT"},
		{name: "hour 24", in: "Sun, 06 Nov 1994 24:00:00 GMT"},
		{name: "minute 60", in: "Sun, 06 Nov 1994 08:60:00 GMT"},
		{name: "31 Feb", in: "Sun, 31 Feb 1994 08:49:37 GMT"},
		{name: "day 00", in: "Sun, 00 Nov 1994 08:49:37 GMT"},
		{name: "asctime zero-padded day", in: "Sun Nov 06 08:49:37 1994", want: want},
		{name: "asctime bad day", in: "Sun Nov x6 08:49:37 1994"},
		{name: "rfc850 short day name", in: "Sun, 06-Nov-94 08:49:37 GMT"},
		{name: "rfc850 four-digit year", in: "Sunday, 06-Nov-1994 08:49:37 GMT"},
		{name: "zero", in: "0"},
		{name: "empty", in: ""},
		{name: "signs in numbers", in: "Sun, +6 Nov 1994 08:49:37 GMT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseHTTPDate(tc.in, now)
			if tc.want.IsZero() {
				assert.False(t, ok, "ParseHTTPDate(%q) = %v, want invalid", tc.in, got)
				return
			}
			assert.True(t, ok, "ParseHTTPDate(%q) invalid", tc.in)
			assert.True(t, tc.want.Equal(got), "ParseHTTPDate(%q) = %v, want %v", tc.in, got, tc.want)
		})
	}
}

func FuzzParseHTTPDate(f *testing.F) {
	for _, seed := range []string{
		"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
		"Thu, 18  Aug  2050 02:01:18 GMT", "Wednesday, 31-Dec-99 23:59:60 GMT", "", "\xff",
	} {
		f.Add(seed)
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := ParseHTTPDate(s, now)
		if !ok {
			return
		}
		// Whatever is accepted formats back to an IMF-fixdate that
		// parses to itself, in UTC.
		require.Same(t, time.UTC, got.Location(), "ParseHTTPDate(%q) = %v, not UTC", s, got)
		again, ok := ParseHTTPDate(got.Format(http.TimeFormat), now)
		require.True(t, ok && again.Equal(got), "ParseHTTPDate(%q) = %v does not round-trip: %v %v", s, got, again, ok)
	})
}
