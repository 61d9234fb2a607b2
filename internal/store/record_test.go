package store

import (
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
		{"a NaN inside data is refused", func(r *Record) { r.Data = map[string]any{"x": math.NaN()} }, "data"},
		{"a value that is not JSON in tags is refused", func(r *Record) { r.Tags = map[string]any{"f": func() {}} }, "tags"},
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
