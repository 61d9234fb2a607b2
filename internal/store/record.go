package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// Record is one cost record: the fields of SpaceONE's CostInfo. Empty strings
// are stored as NULL; nil maps as NULL, empty maps as {}.
type Record struct {
	Cost           float64        `json:"cost"`
	UsageQuantity  float64        `json:"usage_quantity"`
	UsageUnit      string         `json:"usage_unit,omitempty"`
	Provider       string         `json:"provider,omitempty"`
	RegionCode     string         `json:"region_code,omitempty"`
	Product        string         `json:"product,omitempty"`
	UsageType      string         `json:"usage_type,omitempty"`
	Resource       string         `json:"resource,omitempty"`
	AccountID      string         `json:"account_id,omitempty"`
	Tags           map[string]any `json:"tags,omitempty"`
	AdditionalInfo map[string]any `json:"additional_info,omitempty"`
	Data           map[string]any `json:"data,omitempty"`
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
// for: a missing or invalid billed_date, a non-finite cost or usage_quantity
// (a NaN would poison every sum of its month), and tags, additional_info or
// data that are not JSON (a NaN inside, say).
func (r *Record) Validate() error {
	_, err := r.billedDate()
	if err != nil {
		return err
	}
	if err := r.checkNumbers(); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		m    map[string]any
	}{{"tags", r.Tags}, {"additional_info", r.AdditionalInfo}, {"data", r.Data}} {
		if _, err := encodeJSON(f.name, f.m); err != nil {
			return err
		}
	}
	return nil
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

func encodeJSON(field string, m map[string]any) ([]byte, error) {
	if m == nil {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, &InvalidRecordError{Index: -1, Field: field, Reason: "not JSON: " + err.Error()}
	}
	return b, nil
}

// numeric returns v as a float64 when it is a JSON number.
func numeric(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
