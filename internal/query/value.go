package query

import (
	"bytes"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxLiteralSpan bounds how many dotted segments are joined back together
// when looking for a literal key that itself contains dots (Kubernetes
// labels such as "app.kubernetes.io/name" stored under a "tags" map).
const maxLiteralSpan = 8

// path is a compiled dotted key.
type path struct {
	raw  string
	segs []string
	// idx[i] is the list index segs[i] denotes, or -1.
	idx []int
	// alts[i] lists literal keys made of segs[i:j] (j >= i+2) to try when
	// segs[i] alone is not a key of the map at that level.
	alts [][]altKey
}

type altKey struct {
	key  string
	next int
}

func parsePath(raw string, errKey string) (*path, *Error) {
	if raw == "" {
		return nil, errorf(errKey, "key must not be empty")
	}
	segs := strings.Split(raw, ".")
	p := &path{raw: raw, segs: segs, idx: make([]int, len(segs)), alts: make([][]altKey, len(segs))}
	for i, s := range segs {
		if s == "" {
			return nil, errorf(errKey, "key %q has an empty path segment", raw)
		}
		p.idx[i] = -1
		if n, err := strconv.Atoi(s); err == nil && n >= 0 && s[0] != '+' {
			p.idx[i] = n
		}
	}
	if len(segs) > 1 {
		for i := range segs {
			end := min(len(segs), i+maxLiteralSpan)
			for j := i + 2; j <= end; j++ {
				p.alts[i] = append(p.alts[i], altKey{key: strings.Join(segs[i:j], "."), next: j})
			}
		}
	}
	return p, nil
}

// step looks segs[i] (or a literal dotted key starting there) up in m.
func (p *path) step(m map[string]any, i int) (v any, key string, next int, ok bool) {
	if v, ok := m[p.segs[i]]; ok {
		return v, p.segs[i], i + 1, true
	}
	for _, a := range p.alts[i] {
		if v, ok := m[a.key]; ok {
			return v, a.key, a.next, true
		}
	}
	return nil, "", 0, false
}

// walk calls fn with every candidate value the path designates in v, with
// MongoDB query semantics: a list met on the way is traversed element by
// element, and a list at the end of the path is offered both as a whole and
// element by element. A path that does not resolve is offered as
// fn(nil, false). walk stops and returns true as soon as fn returns true.
func (p *path) walk(v any, i int, fn func(v any, present bool) bool) bool {
	if i == len(p.segs) {
		if arr, ok := v.([]any); ok {
			if fn(arr, true) {
				return true
			}
			for _, el := range arr {
				if fn(el, true) {
					return true
				}
			}
			return false
		}
		return fn(v, true)
	}
	switch t := v.(type) {
	case map[string]any:
		child, _, next, ok := p.step(t, i)
		if !ok {
			return fn(nil, false)
		}
		return p.walk(child, next, fn)
	case []any:
		yielded := false
		if n := p.idx[i]; n >= 0 && n < len(t) {
			yielded = true
			if p.walk(t[n], i+1, fn) {
				return true
			}
		}
		for _, el := range t {
			if m, ok := el.(map[string]any); ok {
				yielded = true
				if p.walk(m, i, fn) {
					return true
				}
			}
		}
		if !yielded {
			return fn(nil, false)
		}
		return false
	default:
		return fn(nil, false)
	}
}

// get resolves the path with MongoDB aggregation-expression semantics
// ("$a.b"): a list met on the way yields the list of the values found in
// its elements.
func (p *path) get(v any, i int) (any, bool) {
	if i == len(p.segs) {
		return v, true
	}
	switch t := v.(type) {
	case map[string]any:
		child, _, next, ok := p.step(t, i)
		if !ok {
			return nil, false
		}
		return p.get(child, next)
	case []any:
		out := make([]any, 0, len(t))
		for _, el := range t {
			if _, isMap := el.(map[string]any); !isMap {
				if _, isArr := el.([]any); !isArr {
					continue
				}
			}
			if r, ok := p.get(el, i); ok {
				out = append(out, r)
			}
		}
		return out, true
	default:
		return nil, false
	}
}

// getMaps resolves the path through maps only.
func (p *path) getMaps(v any) (any, bool) {
	for i := 0; i < len(p.segs); {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		child, _, next, ok := p.step(m, i)
		if !ok {
			return nil, false
		}
		v, i = child, next
	}
	return v, true
}

// setCopy returns a copy of rec (copying only the maps along the path) in
// which the path (which must resolve through maps) holds val.
func (p *path) setCopy(rec map[string]any, i int, val any) map[string]any {
	out := make(map[string]any, len(rec))
	for k, v := range rec {
		out[k] = v
	}
	_, key, next, ok := p.step(rec, i)
	if !ok {
		return out
	}
	if next == len(p.segs) {
		out[key] = val
		return out
	}
	if child, ok := rec[key].(map[string]any); ok {
		out[key] = p.setCopy(child, next, val)
	}
	return out
}

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

// containsFold reports whether s contains lowerNeedle, ignoring case.
// lowerNeedle must already be lower-cased with strings.ToLower.
func containsFold(s, lowerNeedle string) bool {
	if len(lowerNeedle) == 0 {
		return true
	}
	switch asciiCase(s) {
	case asciiLower:
		return strings.Contains(s, lowerNeedle)
	case asciiUpper:
		if len(s) > 256 {
			break
		}
		// strings.ToLower only maps A-Z in an ASCII string: compare bytewise
		// rather than allocate a lower-cased copy.
		n := len(lowerNeedle)
		for i := 0; i+n <= len(s); i++ {
			j := 0
			for ; j < n; j++ {
				c := s[i+j]
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				if c != lowerNeedle[j] {
					break
				}
			}
			if j == n {
				return true
			}
		}
		return false
	}
	return strings.Contains(strings.ToLower(s), lowerNeedle)
}

const (
	asciiLower = iota // ASCII without upper-case letters
	asciiUpper        // ASCII with upper-case letters
	notASCII
)

func asciiCase(s string) int {
	c := asciiLower
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b >= utf8.RuneSelf:
			return notASCII
		case 'A' <= b && b <= 'Z':
			c = asciiUpper
		}
	}
	return c
}

// Helpers to read parsed JSON objects.

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
