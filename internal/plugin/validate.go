package plugin

import (
	"fmt"
	"time"
)

// windowLayouts are the forms a changed window's dates may take.
var windowLayouts = []string{"2006-01", "2006-01-02", time.RFC3339}

// ParseWindowTime reads a changed window's date: "YYYY-MM" (the first of the month),
// "YYYY-MM-DD" (midnight UTC) or an RFC 3339 time.
func ParseWindowTime(s string) (time.Time, error) {
	t, _, err := parseWindowTime(s)
	return t, err
}

// parseWindowTime also returns the (exclusive) end of the period the date names: the
// month of "YYYY-MM", the day of "YYYY-MM-DD", the instant of an RFC 3339 time.
func parseWindowTime(s string) (start, end time.Time, err error) {
	for i, l := range windowLayouts {
		t, err := time.Parse(l, s)
		if err != nil {
			continue
		}
		switch i {
		case 0:
			return t, t.AddDate(0, 1, 0), nil
		case 1:
			return t, t.AddDate(0, 0, 1), nil
		default:
			return t, t.Add(time.Nanosecond), nil
		}
	}
	return time.Time{}, time.Time{}, fmt.Errorf("%q is not YYYY-MM, YYYY-MM-DD or an RFC 3339 time", s)
}

// ValidateWindow checks a changed window: start is required, end is optional, both
// must parse with ParseWindowTime, and the period end names may not end before start
// ("2024-05-15" to "2024-05" is fine: the month of May includes the 15th).
func ValidateWindow(start, end string) error {
	if start == "" {
		return fmt.Errorf("start is empty")
	}
	s, err := ParseWindowTime(start)
	if err != nil {
		return fmt.Errorf("start %w", err)
	}
	if end == "" {
		return nil
	}
	_, e, err := parseWindowTime(end)
	if err != nil {
		return fmt.Errorf("end %w", err)
	}
	if !e.After(s) {
		return fmt.Errorf("end %q is before start %q", end, start)
	}
	return nil
}
