package query

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

// fixedNow is the test clock: Friday 2024-03-15 12:00 UTC.
var fixedNow = time.Date(2024, 3, 15, 12, 0, 0, 0, time.UTC)

func testOpts() RunOptions {
	return RunOptions{Now: func() time.Time { return fixedNow }}
}

func decodeRecords(t testing.TB, s string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	if err := json.Unmarshal([]byte(s), &recs); err != nil {
		t.Fatalf("bad test records: %v", err)
	}
	return recs
}

func ids(recs []map[string]any, key string) []string {
	out := []string{}
	for _, r := range recs {
		s, _ := r[key].(string)
		out = append(out, s)
	}
	return out
}

// jsonEqual compares got with the JSON text want, after a JSON round trip
// of got (so numeric types and key order do not matter).
func jsonEqual(t *testing.T, got any, want string) {
	t.Helper()
	gb, err := json.Marshal(got)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var g, w any
	if err := json.Unmarshal(gb, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want JSON %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got  %s\nwant %s", gb, want)
	}
}

func asQueryError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *query.Error", err, err)
	}
	if !IsInvalid(err) {
		t.Fatalf("IsInvalid(%v) = false", err)
	}
	return e
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
