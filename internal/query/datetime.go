package query

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// dateLayouts are the accepted ISO 8601 / RFC 3339 forms. Values without a
// zone are taken as UTC (SpaceONE stores naive UTC datetimes).
var dateLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02",
}

// parseDateTime parses an ISO 8601 datetime or date.
func parseDateTime(s string) (time.Time, bool) {
	// Cheap shape check so that ordinary strings fail fast.
	if len(s) < 10 || s[4] != '-' || s[7] != '-' || s[0] < '0' || s[0] > '9' {
		return time.Time{}, false
	}
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// toTime converts a record value to a time: an ISO 8601 string or a
// time.Time.
func toTime(v any) (time.Time, bool) {
	switch t := v.(type) {
	case string:
		return parseDateTime(t)
	case time.Time:
		return t.UTC(), true
	}
	return time.Time{}, false
}

// relTime is a SpaceONE relative time ("timediff") expression:
// now, now/d, now/w, now/m, optionally followed by +N or -N with a unit
// s (seconds), m (minutes), h (hours), d (days) or w (weeks).
type relTime struct {
	base  string // "", "d", "w" or "m": truncation of now
	delta time.Duration
}

func parseRelTime(s string) (*relTime, bool, string) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "now") {
		return nil, false, ""
	}
	r := &relTime{}
	rest := s[3:]
	if len(rest) >= 2 && rest[0] == '/' {
		switch rest[1] {
		case 'd', 'w', 'm':
			r.base = rest[1:2]
			rest = rest[2:]
		default:
			return nil, true, "unknown rounding unit (use now/d, now/w or now/m)"
		}
	}
	rest = strings.TrimSpace(rest)
	if rest == "" {
		return r, true, ""
	}
	sign := time.Duration(1)
	switch rest[0] {
	case '+':
	case '-':
		sign = -1
	default:
		return nil, true, "expected + or - after the base time"
	}
	rest = strings.TrimSpace(rest[1:])
	if len(rest) < 2 {
		return nil, true, "expected a number and a unit (s, m, h, d or w)"
	}
	var unit time.Duration
	switch rest[len(rest)-1] {
	case 's':
		unit = time.Second
	case 'm':
		unit = time.Minute
	case 'h':
		unit = time.Hour
	case 'd':
		unit = 24 * time.Hour
	case 'w':
		unit = 7 * 24 * time.Hour
	default:
		return nil, true, "unknown unit (use s, m, h, d or w)"
	}
	digits := rest[:len(rest)-1]
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return nil, true, "the amount must be a non-negative integer"
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > int64(math.MaxInt64/unit) {
		return nil, true, "the amount is out of range"
	}
	r.delta = sign * time.Duration(n) * unit
	return r, true, ""
}

func (r *relTime) resolve(now time.Time) time.Time {
	now = now.UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	t := now
	switch r.base {
	case "d":
		t = day
	case "w":
		// Monday of the current week, as Python's date.weekday().
		wd := (int(now.Weekday()) + 6) % 7
		t = day.AddDate(0, 0, -wd)
	case "m":
		t = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return t.Add(r.delta)
}

// dateFormat is a compiled group-key date_format: a strftime-like format
// (%Y %m %d %H %M %S, plus %L milliseconds, %j day of year and %%), or one of
// SpaceONE's special names "year", "month" and "day" that yield numbers.
type dateFormat struct {
	special string
	parts   []fmtPart
}

type fmtPart struct {
	verb byte // 0 for a literal
	lit  string
}

func parseDateFormat(v any, key string) (*dateFormat, *Error) {
	s, ok := v.(string)
	if !ok {
		return nil, errorf(key, "must be a string")
	}
	switch s {
	case "":
		return nil, errorf(key, "must not be empty")
	case "year", "month", "day":
		return &dateFormat{special: s}, nil
	}
	df := &dateFormat{}
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			lit.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return nil, errorf(key, "format %q ends with a lone %%", s)
		}
		i++
		switch s[i] {
		case '%':
			lit.WriteByte('%')
		case 'Y', 'm', 'd', 'H', 'M', 'S', 'L', 'j':
			if lit.Len() > 0 {
				df.parts = append(df.parts, fmtPart{lit: lit.String()})
				lit.Reset()
			}
			df.parts = append(df.parts, fmtPart{verb: s[i]})
		default:
			return nil, errorf(key, "unsupported format specifier %%%c (supported: %%Y %%m %%d %%H %%M %%S %%L %%j %%%%)", s[i])
		}
	}
	if lit.Len() > 0 {
		df.parts = append(df.parts, fmtPart{lit: lit.String()})
	}
	return df, nil
}

// apply formats a datetime value; values that are not datetimes give nil.
func (df *dateFormat) apply(v any) any {
	t, ok := toTime(v)
	if !ok {
		return nil
	}
	return df.format(t)
}

// format formats a datetime (in UTC): a float64 for the special formats, a
// string otherwise.
func (df *dateFormat) format(t time.Time) any {
	if df.special != "" {
		return df.number(t)
	}
	return string(df.appendFormat(make([]byte, 0, 24), t))
}

// number is the value of a special format ("year", "month", "day").
func (df *dateFormat) number(t time.Time) float64 {
	switch df.special {
	case "year":
		return float64(t.Year())
	case "month":
		return float64(t.Month())
	}
	return float64(t.Day())
}

// appendFormat appends t formatted by a strftime-like format.
func (df *dateFormat) appendFormat(b []byte, t time.Time) []byte {
	for _, p := range df.parts {
		switch p.verb {
		case 0:
			b = append(b, p.lit...)
		case 'Y':
			b = appendPadded(b, t.Year(), 4)
		case 'm':
			b = appendPadded(b, int(t.Month()), 2)
		case 'd':
			b = appendPadded(b, t.Day(), 2)
		case 'H':
			b = appendPadded(b, t.Hour(), 2)
		case 'M':
			b = appendPadded(b, t.Minute(), 2)
		case 'S':
			b = appendPadded(b, t.Second(), 2)
		case 'L':
			b = appendPadded(b, t.Nanosecond()/int(time.Millisecond), 3)
		case 'j':
			b = appendPadded(b, t.YearDay(), 3)
		}
	}
	return b
}

func appendPadded(b []byte, n, width int) []byte {
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	s := strconv.Itoa(n)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}
