package cachepolicy

import "time"

// ParseHTTPDate parses an HTTP-date (RFC 9110 section 5.6.7) strictly: it
// accepts exactly the preferred IMF-fixdate ("Sun, 06 Nov 1994 08:49:37
// GMT") and the two obsolete forms, rfc850-date ("Sunday, 06-Nov-94
// 08:49:37 GMT") and asctime-date ("Sun Nov  6 08:49:37 1994"), with the
// spacing, digit counts, names and ranges the grammar gives; whitespace
// around the value is ignored. Unlike [net/http.ParseTime], which Go's
// time layouts make lenient, it refuses a double space, a one-digit hour
// or day, a wrong zone, or a day that does not exist ("31 Feb").
//
// A two-digit rfc850 year is put in the century that makes the date at
// most 50 years after now, as RFC 9110 requires. ok is false for anything
// else; ParseHTTPDate never panics.
func ParseHTTPDate(s string, now time.Time) (t time.Time, ok bool) {
	s = trimOWS(s)
	switch {
	case len(s) == len("Sun, 06 Nov 1994 08:49:37 GMT") && s[3] == ',':
		return parseIMFFixdate(s)
	case len(s) == len("Sun Nov  6 08:49:37 1994") && s[3] == ' ':
		return parseAsctime(s)
	default:
		return parseRFC850(s, now)
	}
}

var (
	shortDays = [...]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	longDays  = [...]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	months    = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
)

// parseIMFFixdate parses "Sun, 06 Nov 1994 08:49:37 GMT".
func parseIMFFixdate(s string) (time.Time, bool) {
	if !oneOf(s[:3], shortDays[:]) || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
		s[16] != ' ' || s[25:] != " GMT" {
		return time.Time{}, false
	}
	day, month, year, ok := dayMonthYear(s[5:7], s[8:11], s[12:16])
	if !ok {
		return time.Time{}, false
	}
	return build(year, month, day, s[17:25])
}

// parseAsctime parses "Sun Nov  6 08:49:37 1994": the day is two digits
// or a space and one digit.
func parseAsctime(s string) (time.Time, bool) {
	if !oneOf(s[:3], shortDays[:]) || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' {
		return time.Time{}, false
	}
	dd := s[8:10]
	if dd[0] == ' ' {
		dd = dd[1:]
	}
	day, month, year, ok := dayMonthYear(dd, s[4:7], s[20:24])
	if !ok {
		return time.Time{}, false
	}
	return build(year, month, day, s[11:19])
}

// parseRFC850 parses "Sunday, 06-Nov-94 08:49:37 GMT".
func parseRFC850(s string, now time.Time) (time.Time, bool) {
	comma := -1
	for i := 0; i < len(s) && i < len("Wednesday,"); i++ {
		if s[i] == ',' {
			comma = i
			break
		}
	}
	if comma < 0 || !oneOf(s[:comma], longDays[:]) {
		return time.Time{}, false
	}
	s = s[comma:]
	if len(s) != len(", 06-Nov-94 08:49:37 GMT") || s[1] != ' ' || s[4] != '-' ||
		s[8] != '-' || s[11] != ' ' || s[20:] != " GMT" {
		return time.Time{}, false
	}
	day, month, yy, ok := dayMonthYear(s[2:4], s[5:8], s[9:11])
	if !ok {
		return time.Time{}, false
	}
	// The century that puts the date no more than 50 years after now.
	year := now.UTC().Year()/100*100 + yy
	if year > now.UTC().Year()+50 {
		year -= 100
	}
	return build(year, month, day, s[12:20])
}

// dayMonthYear reads a date's day and year digits and its month name.
func dayMonthYear(dd, mon, yy string) (day int, month time.Month, year int, ok bool) {
	day, ok1 := digits(dd)
	month, ok2 := monthOf(mon)
	year, ok3 := digits(yy)
	return day, month, year, ok1 && ok2 && ok3
}

// build checks "hh:mm:ss" and the ranges and returns the UTC time.
func build(year int, month time.Month, day int, hms string) (time.Time, bool) {
	if hms[2] != ':' || hms[5] != ':' {
		return time.Time{}, false
	}
	hour, ok1 := digits(hms[0:2])
	minute, ok2 := digits(hms[3:5])
	sec, ok3 := digits(hms[6:8])
	if !ok1 || !ok2 || !ok3 || hour > 23 || minute > 59 || sec > 60 || day < 1 {
		return time.Time{}, false
	}
	leap := sec == 60 // RFC 9110 allows a leap second; time.Time has none
	if leap {
		sec = 59
	}
	t := time.Date(year, month, day, hour, minute, sec, 0, time.UTC)
	if t.Day() != day { // 31 Feb rolled over into March
		return time.Time{}, false
	}
	if leap {
		t = t.Add(time.Second)
	}
	return t, true
}

// digits returns the decimal value of s, which must be all digits.
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, s != ""
}

// monthOf returns the month of a three-letter name (case-sensitive, as
// the grammar spells it).
func monthOf(s string) (time.Month, bool) {
	for i, m := range months {
		if s == m {
			return time.Month(i + 1), true
		}
	}
	return 0, false
}

// oneOf reports whether s is one of names.
func oneOf(s string, names []string) bool {
	for _, n := range names {
		if s == n {
			return true
		}
	}
	return false
}
