package query

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
)

// Helpers to read the parameters of a query: parsed JSON objects.

// field returns m[long] or, when absent, m[short], with the name used (the
// long name when neither is present).
func field(m map[string]any, long, short string) (any, string, bool) {
	if v, ok := m[long]; ok {
		return v, long, true
	}
	if short != "" {
		if v, ok := m[short]; ok {
			return v, short, true
		}
	}
	return nil, long, false
}

func asObject(v any, key string) (map[string]any, *Error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errorf(key, "must be an object")
	}
	return m, nil
}

// asList accepts a list; a missing or null value is an empty list.
func asList(v any, key string) ([]any, *Error) {
	switch l := v.(type) {
	case nil:
		return nil, nil
	case []any:
		return l, nil
	}
	return nil, errorf(key, "must be a list")
}

func asBool(v any, key string) (bool, *Error) {
	switch b := v.(type) {
	case nil:
		return false, nil
	case bool:
		return b, nil
	}
	return false, errorf(key, "must be a boolean")
}

// maxIntParam caps integer parameters (page sizes, limits) well within int.
const maxIntParam = 1 << 53

// asInt reads a non-negative-or-greater-than-min integer.
func asInt(v any, key string, minimum int) (int, *Error) {
	f, ok := toFloat(v)
	if !ok {
		return 0, errorf(key, "must be an integer")
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) {
		return 0, errorf(key, "must be an integer")
	}
	if f < float64(minimum) {
		return 0, errorf(key, "must be >= %d", minimum)
	}
	if f > maxIntParam {
		f = maxIntParam
	}
	return int(f), nil
}

func indexKey(key string, i int) string {
	return key + "[" + strconv.Itoa(i) + "]"
}

// parseJSONObject decodes raw into a JSON object; empty input and "null"
// are an empty object.
func parseJSONObject(raw []byte) (map[string]any, *Error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return map[string]any{}, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, errorf("query", "malformed JSON: %v", err)
	}
	if v == nil {
		return map[string]any{}, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errorf("query", "must be a JSON object")
	}
	return m, nil
}
