package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Record is one cost record: the fields of SpaceONE's CostInfo. Empty strings
// are stored as NULL. Tags, AdditionalInfo and Data are JSON objects, stored as
// jsonb: nil is NULL, {} is kept.
type Record struct {
	Cost           float64         `json:"cost"`
	UsageQuantity  float64         `json:"usage_quantity"`
	UsageUnit      string          `json:"usage_unit,omitempty"`
	Provider       string          `json:"provider,omitempty"`
	RegionCode     string          `json:"region_code,omitempty"`
	Product        string          `json:"product,omitempty"`
	UsageType      string          `json:"usage_type,omitempty"`
	Resource       string          `json:"resource,omitempty"`
	AccountID      string          `json:"account_id,omitempty"`
	Tags           json.RawMessage `json:"tags,omitempty"`
	AdditionalInfo json.RawMessage `json:"additional_info,omitempty"`
	Data           json.RawMessage `json:"data,omitempty"`
	// BilledDate is the day billed, YYYY-MM-DD.
	BilledDate string `json:"billed_date"`
}

// ErrInvalidRecord is matched (errors.Is) by every error about a record that
// cannot be stored: the collector's ERROR_INVALID_PLUGIN_DATA.
var ErrInvalidRecord = errors.New("invalid cost record")

// InvalidRecordError names the record and the field that cannot be stored.
type InvalidRecordError struct {
	// Index is the record's position in the task's stream, from 0; -1 when the
	// error comes from Record.Validate alone.
	Index  int64
	Field  string
	Reason string
}

func (e *InvalidRecordError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("invalid cost record: %s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("invalid cost record #%d: %s: %s", e.Index, e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidRecord) true.
func (e *InvalidRecordError) Is(target error) bool { return target == ErrInvalidRecord }

// Validate refuses a record that the store would have to make up something
// for, or that PostgreSQL cannot hold: a missing or invalid billed_date, a
// non-finite cost or usage_quantity (a NaN would poison every sum of its month),
// a string that is not UTF-8 or holds a NUL, and tags, additional_info or data
// that are not JSON objects or hold a \u0000 (which jsonb refuses).
func (r *Record) Validate() error {
	_, err := r.billedDate()
	if err != nil {
		return err
	}
	if err := r.checkNumbers(); err != nil {
		return err
	}
	if err := r.checkText(); err != nil {
		return err
	}
	return r.checkObjects()
}

func (r *Record) checkText() error {
	for _, f := range [...]struct{ name, s string }{
		{"usage_unit", r.UsageUnit}, {"provider", r.Provider}, {"region_code", r.RegionCode}, {"product", r.Product},
		{"usage_type", r.UsageType}, {"resource", r.Resource}, {"account_id", r.AccountID},
	} {
		switch {
		case strings.IndexByte(f.s, 0) >= 0:
			return &InvalidRecordError{Index: -1, Field: f.name, Reason: "holds a NUL character, which PostgreSQL text cannot"}
		case !utf8.ValidString(f.s):
			return &InvalidRecordError{Index: -1, Field: f.name, Reason: "is not UTF-8"}
		}
	}
	return nil
}

func (r *Record) checkObjects() error {
	for _, f := range [...]struct {
		name string
		raw  json.RawMessage
	}{{"tags", r.Tags}, {"additional_info", r.AdditionalInfo}, {"data", r.Data}} {
		if err := checkObject(f.name, f.raw); err != nil {
			return err
		}
	}
	return nil
}

// checkObject refuses raw unless it is nil or a JSON object that jsonb takes.
func checkObject(field string, raw json.RawMessage) error {
	if raw == nil {
		return nil
	}
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if !json.Valid(raw) {
		return &InvalidRecordError{Index: -1, Field: field, Reason: "is not JSON"}
	}
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return &InvalidRecordError{Index: -1, Field: field, Reason: "is not a JSON object"}
	}
	if hasNULEscape(raw) {
		return &InvalidRecordError{Index: -1, Field: field, Reason: `holds a \u0000, which PostgreSQL's jsonb cannot`}
	}
	return nil
}

// hasNULEscape reports whether the JSON text b escapes a NUL character: a
// \u0000 whose backslash is not itself escaped.
func hasNULEscape(b []byte) bool {
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte(`\u0000`))
		if j < 0 {
			return false
		}
		j += i
		n := 0 // backslashes ending at j
		for k := j; k >= 0 && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 1 {
			return true
		}
		i = j + 1
	}
}

func (r *Record) checkNumbers() error {
	if math.IsNaN(r.Cost) || math.IsInf(r.Cost, 0) {
		return &InvalidRecordError{Index: -1, Field: "cost", Reason: fmt.Sprintf("must be a finite number, got %v", r.Cost)}
	}
	if math.IsNaN(r.UsageQuantity) || math.IsInf(r.UsageQuantity, 0) {
		return &InvalidRecordError{Index: -1, Field: "usage_quantity", Reason: fmt.Sprintf("must be a finite number, got %v", r.UsageQuantity)}
	}
	return nil
}

func (r *Record) billedDate() (time.Time, error) {
	if r.BilledDate == "" {
		return time.Time{}, &InvalidRecordError{Index: -1, Field: "billed_date", Reason: "missing"}
	}
	d, err := time.Parse(time.DateOnly, r.BilledDate)
	if err != nil || len(r.BilledDate) != len(time.DateOnly) {
		return time.Time{}, &InvalidRecordError{Index: -1, Field: "billed_date", Reason: fmt.Sprintf("%q is not a date YYYY-MM-DD", r.BilledDate)}
	}
	if d.Year() < 1 || d.Year() > 9999 {
		return time.Time{}, &InvalidRecordError{Index: -1, Field: "billed_date", Reason: fmt.Sprintf("%q is out of range", r.BilledDate)}
	}
	return d, nil
}

// objectNumbers calls fn for each member of the JSON object raw whose value is a
// number, once per key (the last value of a key sent twice, as jsonb keeps it).
// raw has passed checkObject.
func objectNumbers(raw json.RawMessage, seen map[string]float64, fn func(key string, v float64)) {
	if len(raw) == 0 {
		return
	}
	clear(seen)
	b := skipSpace(raw)
	if len(b) == 0 || b[0] != '{' {
		return
	}
	b = b[1:]
	for {
		b = skipSpace(b)
		if len(b) == 0 || b[0] == '}' {
			break
		}
		if b[0] == ',' {
			b = skipSpace(b[1:])
		}
		end := stringEnd(b)
		key := string(b[1 : end-1])
		if bytes.IndexByte(b[:end], '\\') >= 0 {
			_ = json.Unmarshal(b[:end], &key)
		}
		b = skipSpace(b[end:])[1:] // the colon
		b = skipSpace(b)
		n := valueEnd(b)
		if c := b[0]; c == '-' || c >= '0' && c <= '9' {
			if f, err := strconv.ParseFloat(string(b[:n]), 64); err == nil {
				seen[key] = f
			}
		} else {
			delete(seen, key) // a later non-number replaces an earlier number
		}
		b = b[n:]
	}
	for k, v := range seen {
		fn(k, v)
	}
}

func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}

// stringEnd is the length of the JSON string at the start of b.
func stringEnd(b []byte) int {
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd is the length of the JSON value at the start of b.
func valueEnd(b []byte) int {
	switch b[0] {
	case '"':
		return stringEnd(b)
	case '{', '[':
		depth := 0
		for i := 0; i < len(b); i++ {
			switch b[i] {
			case '"':
				i += stringEnd(b[i:]) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	default: // a number, true, false or null
		i := 0
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			i++
		}
		return i
	}
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
