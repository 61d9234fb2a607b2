package query

import (
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The values of records: their numbers, their order, their equality and a
// canonical encoding of equal values.

// toFloat returns the numeric value of v, if v is a number.
func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case float32:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint64:
		return float64(n), true
	case uint32:
		return float64(n), true
	case int16:
		return float64(n), true
	case int8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint8:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// Type ranks, in MongoDB's BSON comparison order.
const (
	rankNull = iota
	rankNumber
	rankString
	rankObject
	rankArray
	rankBool
	rankDate
	rankOther
)

func rankOf(v any) int {
	switch v.(type) {
	case nil:
		return rankNull
	case string:
		return rankString
	case map[string]any:
		return rankObject
	case []any:
		return rankArray
	case bool:
		return rankBool
	case time.Time:
		return rankDate
	}
	if _, ok := toFloat(v); ok {
		return rankNumber
	}
	return rankOther
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	case a == b:
		return 0
	}
	// NaNs (never produced by encoding/json) sort first.
	an, bn := math.IsNaN(a), math.IsNaN(b)
	switch {
	case an && bn:
		return 0
	case an:
		return -1
	default:
		return 1
	}
}

// compareValues is a total order over JSON-like values: values of different
// types are ordered by type (null < numbers < strings < objects < arrays <
// booleans), numbers numerically, strings lexically (bytewise), objects by
// their sorted keys then values, arrays element by element.
func compareValues(a, b any) int {
	ra, rb := rankOf(a), rankOf(b)
	if ra != rb {
		if ra < rb {
			return -1
		}
		return 1
	}
	switch ra {
	case rankNumber:
		fa, _ := toFloat(a)
		fb, _ := toFloat(b)
		return cmpFloat(fa, fb)
	case rankString:
		return strings.Compare(a.(string), b.(string))
	case rankBool:
		ba, bb := a.(bool), b.(bool)
		switch {
		case ba == bb:
			return 0
		case !ba:
			return -1
		default:
			return 1
		}
	case rankDate:
		return a.(time.Time).Compare(b.(time.Time))
	case rankArray:
		xa, xb := a.([]any), b.([]any)
		for i := 0; i < len(xa) && i < len(xb); i++ {
			if c := compareValues(xa[i], xb[i]); c != 0 {
				return c
			}
		}
		return cmpInt(len(xa), len(xb))
	case rankObject:
		ma, mb := a.(map[string]any), b.(map[string]any)
		ka, kb := sortedKeys(ma), sortedKeys(mb)
		for i := 0; i < len(ka) && i < len(kb); i++ {
			if c := strings.Compare(ka[i], kb[i]); c != 0 {
				return c
			}
			if c := compareValues(ma[ka[i]], mb[kb[i]]); c != 0 {
				return c
			}
		}
		return cmpInt(len(ka), len(kb))
	}
	return 0
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// equalValues reports deep equality; numbers compare numerically whatever
// their Go type.
func equalValues(a, b any) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case float64:
		y, ok := toFloat(b)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equalValues(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalValues(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return compareValues(a, b) == 0 && rankOf(a) != rankOther
}

// appendCanon appends an unambiguous encoding of v such that two values
// have the same encoding exactly when equalValues holds.
func appendCanon(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, 'z')
	case string:
		return appendCanonString(b, x)
	case bool:
		if x {
			return append(b, 't')
		}
		return append(b, 'f')
	case map[string]any:
		b = append(b, 'm')
		b = strconv.AppendInt(b, int64(len(x)), 10)
		b = append(b, ':')
		for _, k := range sortedKeys(x) {
			b = appendCanon(b, k)
			b = appendCanon(b, x[k])
		}
		return b
	case []any:
		b = append(b, 'a')
		b = strconv.AppendInt(b, int64(len(x)), 10)
		b = append(b, ':')
		for _, el := range x {
			b = appendCanon(b, el)
		}
		return b
	case time.Time:
		b = append(b, 'd')
		return strconv.AppendInt(b, x.UnixNano(), 10)
	}
	if f, ok := toFloat(v); ok {
		return appendCanonFloat(b, f)
	}
	return append(b, '?')
}

// appendCanonString is appendCanon of a string.
func appendCanonString(b []byte, s string) []byte {
	b = append(b, 's')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

// appendCanonBytes is appendCanon of the string s holds.
func appendCanonBytes(b []byte, s []byte) []byte {
	b = append(b, 's')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

// appendCanonFloat is appendCanon of a number.
func appendCanonFloat(b []byte, f float64) []byte {
	if f == 0 {
		f = 0 // fold -0 into 0
	}
	b = append(b, 'n')
	b = strconv.AppendFloat(b, f, 'g', -1, 64)
	return append(b, ';')
}
