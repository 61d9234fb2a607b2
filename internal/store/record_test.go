package store

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestRecordValidate(t *testing.T) {
	ok := func() Record { return rec("r", "2024-02-29", 1.5) }
	tests := []struct {
		name      string
		edit      func(r *Record)
		wantField string // "" when valid
	}{
		{"a complete record is valid", func(r *Record) {}, ""},
		{"a record with only a cost and a billed date is valid", func(r *Record) { *r = Record{Cost: 0, BilledDate: "2024-01-01"} }, ""},
		{"a negative cost (a credit) is valid", func(r *Record) { r.Cost = -3 }, ""},
		{"a missing billed_date is refused", func(r *Record) { r.BilledDate = "" }, "billed_date"},
		{"a billed_date that is a month is refused", func(r *Record) { r.BilledDate = "2024-02" }, "billed_date"},
		{"a billed_date that does not exist is refused", func(r *Record) { r.BilledDate = "2023-02-29" }, "billed_date"},
		{"a billed_date with a time is refused", func(r *Record) { r.BilledDate = "2024-02-01T00:00:00Z" }, "billed_date"},
		{"a billed_date without zero padding is refused", func(r *Record) { r.BilledDate = "2024-2-1" }, "billed_date"},
		{"a NaN cost is refused", func(r *Record) { r.Cost = math.NaN() }, "cost"},
		{"an infinite cost is refused", func(r *Record) { r.Cost = math.Inf(1) }, "cost"},
		{"a NaN usage_quantity is refused", func(r *Record) { r.UsageQuantity = math.NaN() }, "usage_quantity"},
		{"a NaN inside data is refused", func(r *Record) { r.Data = json.RawMessage(`{"x": NaN}`) }, "data"},
		{"tags that are not JSON are refused", func(r *Record) { r.Tags = json.RawMessage(`{"f": }`) }, "tags"},
		{"tags that are a JSON array are refused", func(r *Record) { r.Tags = json.RawMessage(` ["a"]`) }, "tags"},
		{"additional_info that is JSON null is refused (nil is NULL)", func(r *Record) { r.AdditionalInfo = json.RawMessage(`null`) }, "additional_info"},
		{"an empty object is valid", func(r *Record) { r.Tags = json.RawMessage(` {} `) }, ""},
		{"a \\u0000 in data is refused: jsonb cannot hold it", func(r *Record) { r.Data = json.RawMessage(`{"k": "a\u0000b"}`) }, "data"},
		{"an escaped backslash before u0000 is text, and valid", func(r *Record) { r.Data = json.RawMessage(`{"k": "a\\u0000b"}`) }, ""},
		{"a NUL in a text field is refused: PostgreSQL text cannot hold it", func(r *Record) { r.Product = "EC2\x00" }, "product"},
		{"a text field that is not UTF-8 is refused", func(r *Record) { r.Resource = "\xff" }, "resource"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok()
			tt.edit(&r)
			err := r.Validate()
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var ie *InvalidRecordError
			if !errors.As(err, &ie) || !errors.Is(err, ErrInvalidRecord) || ie.Field != tt.wantField {
				t.Fatalf("Validate: %v, want an InvalidRecordError on %s", err, tt.wantField)
			}
			if !strings.Contains(err.Error(), tt.wantField) {
				t.Fatalf("the error %q does not name the field", err)
			}
		})
	}
}

func TestObjectNumbers(t *testing.T) {
	cases := map[string]struct {
		raw  string
		want map[string]float64
	}{
		"numbers, not the other values":         {`{"a": 1.5, "s": "2", "b": -3e2, "n": null, "t": true, "o": {"x": 1}, "l": [1, 2]}`, map[string]float64{"a": 1.5, "b": -300}},
		"strings with braces and escapes skip":  {`{"s": "}{\\\"", "c": 4}`, map[string]float64{"c": 4}},
		"an escaped key is decoded":             {`{"k\u00e9": 2}`, map[string]float64{"ké": 2}},
		"the last value of a key sent twice":    {`{"a": 1, "a": 2}`, map[string]float64{"a": 2}},
		"a number replaced by a string is gone": {`{"a": 1, "a": "x"}`, map[string]float64{}},
		"nil holds none":                        {``, map[string]float64{}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := map[string]float64{}
			objectNumbers(json.RawMessage(tc.raw), map[string]float64{}, func(k string, v float64) { got[k] = v })
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}
