package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Window is a range of months whose data a run replaces at its commit: a
// plugin's ChangedInfo (a job-level `changed` window or a task's `task_changed`).
type Window struct {
	// Start is the first month, YYYY-MM.
	Start string `json:"start"`
	// End is the last month, YYYY-MM, inclusive; empty: no end.
	End string `json:"end,omitempty"`
	// Filter narrows the window to the records whose fields equal these values
	// (all of them). Keys: a record column (account_id, provider, region_code,
	// region_key, product, usage_type, usage_unit, resource; a string or null
	// value), or tags.<key>, additional_info.<key>, data.<key> (any JSON value,
	// compared as JSON; <key> is one key, dots and all, not a path). A null value
	// matches a missing field.
	Filter map[string]any `json:"filter,omitempty"`
}

// ErrInvalidWindow is matched (errors.Is) by every error about a window.
var ErrInvalidWindow = errors.New("invalid window")

// filterColumns are the record columns a window filter may name.
var filterColumns = map[string]bool{
	"account_id": true, "provider": true, "region_code": true, "region_key": true,
	"product": true, "usage_type": true, "usage_unit": true, "resource": true,
}

// jsonColumns are the jsonb columns whose keys a filter may name as <col>.<key>.
var jsonColumns = []string{"tags", "additional_info", "data"}

type windowPred struct {
	column  string // a text column, or a jsonb column when jsonKey is set
	jsonKey string
	isJSON  bool
	value   any // string or nil for a text column; the JSON text for a jsonb key
}

type parsedWindow struct {
	start      time.Time // first day of the first month
	end        time.Time // first day after the last month; zero: open-ended
	startMonth string
	endMonth   string // "" when open-ended
	preds      []windowPred
}

func windowError(i int, format string, args ...any) error {
	return fmt.Errorf("%w %d: %s", ErrInvalidWindow, i, fmt.Sprintf(format, args...))
}

func parseMonth(s string) (time.Time, bool) {
	if len(s) != 7 {
		return time.Time{}, false
	}
	t, err := time.Parse("2006-01", s)
	return t, err == nil && t.Year() >= 1
}

func parseWindows(ws []Window) ([]parsedWindow, error) {
	out := make([]parsedWindow, 0, len(ws))
	for i, w := range ws {
		var p parsedWindow
		var ok bool
		if p.start, ok = parseMonth(w.Start); !ok {
			return nil, windowError(i, "start %q is not a month YYYY-MM", w.Start)
		}
		p.startMonth = w.Start
		if w.End != "" {
			end, ok := parseMonth(w.End)
			if !ok {
				return nil, windowError(i, "end %q is not a month YYYY-MM", w.End)
			}
			if end.Before(p.start) {
				return nil, windowError(i, "end %s is before start %s", w.End, w.Start)
			}
			p.end = end.AddDate(0, 1, 0)
			p.endMonth = w.End
		}
		keys := make([]string, 0, len(w.Filter))
		for k := range w.Filter {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			pred, err := parsePred(k, w.Filter[k])
			if err != nil {
				return nil, windowError(i, "filter %q: %v", k, err)
			}
			p.preds = append(p.preds, pred)
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePred(key string, v any) (windowPred, error) {
	if filterColumns[key] {
		switch s := v.(type) {
		case nil:
			return windowPred{column: key}, nil
		case string:
			if s == "" {
				return windowPred{column: key}, nil
			}
			return windowPred{column: key, value: s}, nil
		default:
			return windowPred{}, fmt.Errorf("the value of a record field must be a string or null, got %T", v)
		}
	}
	for _, col := range jsonColumns {
		if sub, ok := strings.CutPrefix(key, col+"."); ok {
			if sub == "" {
				return windowPred{}, errors.New("names no key")
			}
			if v == nil {
				return windowPred{column: col, jsonKey: sub, isJSON: true}, nil
			}
			b, err := json.Marshal(v)
			if err != nil {
				return windowPred{}, fmt.Errorf("value is not JSON: %w", err)
			}
			return windowPred{column: col, jsonKey: sub, isJSON: true, value: string(b)}, nil
		}
	}
	return windowPred{}, errors.New("unknown key: a filter names a record field (account_id, provider, region_code, region_key, product, usage_type, usage_unit, resource) or tags.<k>, additional_info.<k>, data.<k>")
}

// sqlArgs collects positional arguments.
type sqlArgs []any

func (a *sqlArgs) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// recordPredicate is the SQL condition, on cost_record aliased c, of the rows
// inside the window.
func (p parsedWindow) recordPredicate(args *sqlArgs) string {
	conds := []string{"c.billed_date >= " + args.add(p.start) + "::date"}
	if !p.end.IsZero() {
		conds = append(conds, "c.billed_date < "+args.add(p.end)+"::date")
	}
	for _, f := range p.preds {
		switch {
		case f.isJSON && f.value == nil:
			conds = append(conds, fmt.Sprintf("coalesce(c.%s -> %s, 'null'::jsonb) = 'null'::jsonb", f.column, args.add(f.jsonKey)))
		case f.isJSON:
			conds = append(conds, fmt.Sprintf("c.%s -> %s = %s::jsonb", f.column, args.add(f.jsonKey), args.add(f.value)))
		case f.value == nil:
			conds = append(conds, fmt.Sprintf("c.%s IS NULL", f.column))
		default:
			conds = append(conds, fmt.Sprintf("c.%s = %s", f.column, args.add(f.value)))
		}
	}
	return "(" + strings.Join(conds, " AND ") + ")"
}

// monthPredicate is the SQL condition, on a table aliased t with a billed_month
// column, of the months of the window.
func (p parsedWindow) monthPredicate(args *sqlArgs) string {
	s := "(t.billed_month >= " + args.add(p.startMonth)
	if p.endMonth != "" {
		s += " AND t.billed_month <= " + args.add(p.endMonth)
	}
	return s + ")"
}
