package query

import (
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Filter operators. The table follows spaceone.core.model.mongo_model's
// FILTER_OPERATORS; "multiple" operators take a list value.
type opKind int

const (
	opEq opKind = iota
	opNot
	opLt
	opLte
	opGt
	opGte
	opIn
	opNotIn
	opContain
	opNotContain
	opContainIn
	opNotContainIn
	opExists
	opRegex
	opRegexIn
	opMatch
	opDatetimeGt
	opDatetimeLt
	opDatetimeGte
	opDatetimeLte
	opTimediffGt
	opTimediffLt
	opTimediffGte
	opTimediffLte
)

var filterOperators = map[string]opKind{
	"eq":             opEq,
	"not":            opNot,
	"lt":             opLt,
	"lte":            opLte,
	"gt":             opGt,
	"gte":            opGte,
	"in":             opIn,
	"not_in":         opNotIn,
	"contain":        opContain,
	"not_contain":    opNotContain,
	"contain_in":     opContainIn,
	"not_contain_in": opNotContainIn,
	"exists":         opExists,
	"regex":          opRegex,
	"regex_in":       opRegexIn,
	"match":          opMatch,
	"datetime_gt":    opDatetimeGt,
	"datetime_lt":    opDatetimeLt,
	"datetime_gte":   opDatetimeGte,
	"datetime_lte":   opDatetimeLte,
	"timediff_gt":    opTimediffGt,
	"timediff_lt":    opTimediffLt,
	"timediff_gte":   opTimediffGte,
	"timediff_lte":   opTimediffLte,
	// Older python-core releases spell the timediff operators timedelta_*.
	"timedelta_gt":  opTimediffGt,
	"timedelta_lt":  opTimediffLt,
	"timedelta_gte": opTimediffGte,
	"timedelta_lte": opTimediffLte,
}

func supportedOperators() string {
	names := make([]string, 0, len(filterOperators))
	for k := range filterOperators {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// test is the per-candidate predicate of a condition (see path.walk).
type test func(v any, present bool) bool

// condition is one compiled filter condition.
type condition struct {
	path   *path
	negate bool
	test   test
	// str and num are test specialised to a present string and a present number
	// (the typed columns of a Table); both are set for every operator but the
	// datetime ones.
	str func(s string) bool
	num func(f float64) bool
	// Datetime conditions are completed at run time, when "now" is known.
	dtCmp int // -2 lt, -1 lte, 1 gte, 2 gt
	dtAbs time.Time
	dtRel *relTime
	isDT  bool
}

// compileCondition compiles {"k"|"key", "v"|"value", "o"|"operator"}.
func compileCondition(raw any, key string) (*condition, *Error) {
	m, err := asObject(raw, key)
	if err != nil {
		return nil, err
	}
	kv, kname, kok := field(m, "key", "k")
	vv, vname, _ := field(m, "value", "v")
	ov, oname, ook := field(m, "operator", "o")
	// Filter conditions are usually written {k, v, o}: name missing parts so.
	if !kok {
		kname = "k"
	}
	if _, _, vok := field(m, "value", "v"); !vok {
		vname = "v"
	}
	if !ook {
		oname = "o"
	}
	okey, kkey, vkey := key+"."+oname, key+"."+kname, key+"."+vname

	if !ook || ov == nil {
		return nil, errorf(okey, "operator is required")
	}
	opName, isStr := ov.(string)
	if !isStr {
		return nil, errorf(okey, "operator must be a string")
	}
	op, known := filterOperators[opName]
	if !known {
		return nil, errorf(okey, "operator %q is not supported (supported: %s)", opName, supportedOperators())
	}
	if !kok || kv == nil {
		return nil, errorf(kkey, "key is required")
	}
	ks, isStr := kv.(string)
	if !isStr {
		return nil, errorf(kkey, "key must be a string")
	}
	p, err := parsePath(ks, kkey)
	if err != nil {
		return nil, err
	}
	c := &condition{path: p}

	switch op {
	case opEq, opNot:
		switch vv.(type) {
		case []any:
			return nil, errorf(vkey, "operator %q does not take a list value", opName)
		}
		c.test = eqTest(vv)
		c.str, c.num = eqTyped(vv)
		c.negate = op == opNot
	case opLt, opLte, opGt, opGte:
		t, e := compareTest(op, vv, vkey, opName)
		if e != nil {
			return nil, e
		}
		c.test = t
		c.str, c.num = compareTyped(op, vv)
	case opIn, opNotIn:
		l, isList := vv.([]any)
		if !isList {
			return nil, errorf(vkey, "operator %q requires a list value", opName)
		}
		set := newInSet(l)
		c.test, c.str, c.num = set.test, set.hasString, set.hasNumber
		c.negate = op == opNotIn
	case opContain, opNotContain:
		s, isStr := vv.(string)
		if !isStr {
			return nil, errorf(vkey, "operator %q requires a string value", opName)
		}
		c.test = containTest([]string{strings.ToLower(s)})
		c.str, c.num = containString([]string{strings.ToLower(s)}), never
		c.negate = op == opNotContain
	case opContainIn, opNotContainIn:
		l, isList := vv.([]any)
		if !isList {
			return nil, errorf(vkey, "operator %q requires a list value", opName)
		}
		needles := make([]string, len(l))
		for i, el := range l {
			s, isStr := el.(string)
			if !isStr {
				return nil, errorf(indexKey(vkey, i), "operator %q requires a list of strings", opName)
			}
			needles[i] = strings.ToLower(s)
		}
		c.test = containTest(needles)
		c.str, c.num = containString(needles), never
		c.negate = op == opNotContainIn
	case opExists:
		b, isBool := vv.(bool)
		if !isBool {
			return nil, errorf(vkey, "operator %q requires a boolean value", opName)
		}
		c.test = func(_ any, present bool) bool { return present }
		c.str, c.num = func(string) bool { return true }, func(float64) bool { return true }
		c.negate = !b
	case opRegex:
		s, isStr := vv.(string)
		if !isStr {
			return nil, errorf(vkey, "operator %q requires a string value", opName)
		}
		re, e := compileRegex(s, vkey)
		if e != nil {
			return nil, e
		}
		c.test = regexTest([]*regexp.Regexp{re})
		c.str, c.num = regexString([]*regexp.Regexp{re}), never
	case opRegexIn:
		l, isList := vv.([]any)
		if !isList {
			return nil, errorf(vkey, "operator %q requires a list value", opName)
		}
		res := make([]*regexp.Regexp, len(l))
		for i, el := range l {
			s, isStr := el.(string)
			if !isStr {
				return nil, errorf(indexKey(vkey, i), "operator %q requires a list of strings", opName)
			}
			re, e := compileRegex(s, indexKey(vkey, i))
			if e != nil {
				return nil, e
			}
			res[i] = re
		}
		c.test = regexTest(res)
		c.str, c.num = regexString(res), never
	case opMatch:
		t, e := matchTest(vv, vkey, opName)
		if e != nil {
			return nil, e
		}
		c.test = t
		// match wants a list: no string or number passes.
		c.str, c.num = func(string) bool { return false }, never
	case opDatetimeGt, opDatetimeLt, opDatetimeGte, opDatetimeLte,
		opTimediffGt, opTimediffLt, opTimediffGte, opTimediffLte:
		s, isStr := vv.(string)
		if !isStr {
			return nil, errorf(vkey, "operator %q requires a string value", opName)
		}
		c.isDT = true
		switch op {
		case opDatetimeGt, opTimediffGt:
			c.dtCmp = 2
		case opDatetimeGte, opTimediffGte:
			c.dtCmp = 1
		case opDatetimeLt, opTimediffLt:
			c.dtCmp = -2
		default:
			c.dtCmp = -1
		}
		rel, isRel, msg := parseRelTime(s)
		switch {
		case isRel && msg != "":
			return nil, errorf(vkey, "invalid relative time %q: %s", s, msg)
		case isRel:
			c.dtRel = rel
		case op >= opTimediffGt:
			return nil, errorf(vkey, "operator %q requires a relative time such as now/d or now-7d", opName)
		default:
			t, ok := parseDateTime(strings.TrimSpace(s))
			if !ok {
				return nil, errorf(vkey, "operator %q requires an ISO 8601 datetime (or now, now/d, now-7d...), got %q", opName, s)
			}
			c.dtAbs = t
		}
	}
	return c, nil
}

func compileRegex(s, key string) (*regexp.Regexp, *Error) {
	// SpaceONE passes $options: 'i' to MongoDB: regexes are case-insensitive.
	re, err := regexp.Compile("(?i)" + s)
	if err != nil {
		return nil, errorf(key, "invalid regular expression: %v", err)
	}
	return re, nil
}

func eqTest(want any) test {
	switch w := want.(type) {
	case nil:
		return func(v any, present bool) bool { return !present || v == nil }
	case string:
		return func(v any, present bool) bool {
			s, ok := v.(string)
			return ok && s == w
		}
	case float64:
		return func(v any, present bool) bool {
			f, ok := toFloat(v)
			return ok && f == w
		}
	}
	return func(v any, present bool) bool { return present && equalValues(v, want) }
}

func compareTest(op opKind, want any, vkey, opName string) (test, *Error) {
	ok := func(c int) bool {
		switch op {
		case opLt:
			return c < 0
		case opLte:
			return c <= 0
		case opGt:
			return c > 0
		}
		return c >= 0
	}
	if w, isNum := toFloat(want); isNum {
		return func(v any, present bool) bool {
			f, isNum := toFloat(v)
			return isNum && ok(cmpFloat(f, w))
		}, nil
	}
	switch w := want.(type) {
	case string:
		return func(v any, present bool) bool {
			s, isStr := v.(string)
			return isStr && ok(strings.Compare(s, w))
		}, nil
	case bool:
		return func(v any, present bool) bool {
			_, isBool := v.(bool)
			return isBool && ok(compareValues(v, w))
		}, nil
	}
	return nil, errorf(vkey, "operator %q requires a number, string or boolean value", opName)
}

func never(float64) bool { return false }

// eqTyped is eqTest for a present string and a present number.
func eqTyped(want any) (func(string) bool, func(float64) bool) {
	ws, isStr := want.(string)
	wf, isNum := toFloat(want)
	return func(s string) bool { return isStr && s == ws },
		func(f float64) bool { return isNum && f == wf }
}

// compareTyped is compareTest for a present string and a present number.
func compareTyped(op opKind, want any) (func(string) bool, func(float64) bool) {
	ok := func(c int) bool {
		switch op {
		case opLt:
			return c < 0
		case opLte:
			return c <= 0
		case opGt:
			return c > 0
		}
		return c >= 0
	}
	if w, isNum := toFloat(want); isNum {
		return func(string) bool { return false }, func(f float64) bool { return ok(cmpFloat(f, w)) }
	}
	if w, isStr := want.(string); isStr {
		return func(s string) bool { return ok(strings.Compare(s, w)) }, never
	}
	return func(string) bool { return false }, never
}

// inSet is the value list of "in" and "not_in".
type inSet struct {
	strs   map[string]struct{}
	nums   map[float64]struct{}
	others []any
	hasNil bool
}

func newInSet(list []any) *inSet {
	s := &inSet{strs: map[string]struct{}{}, nums: map[float64]struct{}{}}
	for _, el := range list {
		switch x := el.(type) {
		case nil:
			s.hasNil = true
		case string:
			s.strs[x] = struct{}{}
		default:
			if f, ok := toFloat(x); ok {
				if f == 0 {
					f = 0
				}
				s.nums[f] = struct{}{}
			} else {
				s.others = append(s.others, x)
			}
		}
	}
	return s
}

func (s *inSet) hasString(x string) bool {
	_, ok := s.strs[x]
	return ok
}

func (s *inSet) hasNumber(f float64) bool {
	if f == 0 {
		f = 0
	}
	_, ok := s.nums[f]
	return ok
}

func (s *inSet) test(v any, present bool) bool {
	if !present || v == nil {
		return s.hasNil
	}
	switch x := v.(type) {
	case string:
		return s.hasString(x)
	case map[string]any, []any, bool:
		for _, o := range s.others {
			if equalValues(x, o) {
				return true
			}
		}
		return false
	}
	if f, ok := toFloat(v); ok {
		return s.hasNumber(f)
	}
	return false
}

func containTest(lowerNeedles []string) test {
	str := containString(lowerNeedles)
	return func(v any, present bool) bool {
		s, ok := v.(string)
		return ok && str(s)
	}
}

func containString(lowerNeedles []string) func(string) bool {
	return func(s string) bool {
		for _, n := range lowerNeedles {
			if containsFold(s, n) {
				return true
			}
		}
		return false
	}
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

func regexTest(res []*regexp.Regexp) test {
	str := regexString(res)
	return func(v any, present bool) bool {
		s, ok := v.(string)
		return ok && str(s)
	}
}

func regexString(res []*regexp.Regexp) func(string) bool {
	return func(s string) bool {
		for _, re := range res {
			if re.MatchString(s) {
				return true
			}
		}
		return false
	}
}

// matchTest implements SpaceONE's "match" operator (MongoDB $elemMatch) for
// the equality form: the value is an object of dotted key -> value, and a
// record matches when the key holds a list with an element (an object) in
// which every given key equals its value. Query-operator documents ("$gt"
// and the like) are not supported.
func matchTest(want any, vkey, opName string) (test, *Error) {
	m, ok := want.(map[string]any)
	if !ok {
		return nil, errorf(vkey, "operator %q requires an object value", opName)
	}
	type sub struct {
		p *path
		t test
	}
	keys := sortedKeys(m)
	subs := make([]sub, 0, len(keys))
	for _, k := range keys {
		if strings.HasPrefix(k, "$") {
			return nil, errorf(vkey+"."+k, "query operators are not supported in %q", opName)
		}
		p, err := parsePath(k, vkey+"."+k)
		if err != nil {
			return nil, err
		}
		if vm, isMap := m[k].(map[string]any); isMap {
			for vk := range vm {
				if strings.HasPrefix(vk, "$") {
					return nil, errorf(vkey+"."+k+"."+vk, "query operators are not supported in %q", opName)
				}
			}
		}
		subs = append(subs, sub{p: p, t: eqTest(m[k])})
	}
	return func(v any, present bool) bool {
		arr, ok := v.([]any)
		if !ok {
			return false
		}
	elements:
		for _, el := range arr {
			em, ok := el.(map[string]any)
			if !ok {
				continue
			}
			for _, s := range subs {
				if !s.p.walk(em, 0, s.t) {
					continue elements
				}
			}
			return true
		}
		return false
	}, nil
}

// dtTest is the comparison of a datetime condition, with relative times
// resolved against now.
func (c *condition) dtTest(now time.Time) func(time.Time) bool {
	bound := c.dtAbs
	if c.dtRel != nil {
		bound = c.dtRel.resolve(now)
	}
	cmp := c.dtCmp
	return func(rt time.Time) bool {
		r := rt.Compare(bound)
		switch cmp {
		case 2:
			return r > 0
		case 1:
			return r >= 0
		case -1:
			return r <= 0
		}
		return r < 0
	}
}

// boundTest is the condition's test (before negation), with relative times
// resolved against now.
func (c *condition) boundTest(now time.Time) test {
	if !c.isDT {
		return c.test
	}
	dt := c.dtTest(now)
	return func(v any, present bool) bool {
		rt, ok := toTime(v)
		return ok && dt(rt)
	}
}

// filter is the compiled filter / filter_or pair: all of and, and at least
// one of or (when or is not empty).
type filter struct {
	and []*condition
	or  []*condition
}

func compileFilter(m map[string]any, prefix string) (filter, *Error) {
	var f filter
	for _, name := range []string{"filter", "filter_or"} {
		key := prefix + "." + name
		l, err := asList(m[name], key)
		if err != nil {
			return f, err
		}
		for i, raw := range l {
			c, err := compileCondition(raw, indexKey(key, i))
			if err != nil {
				return f, err
			}
			if name == "filter" {
				f.and = append(f.and, c)
			} else {
				f.or = append(f.or, c)
			}
		}
	}
	return f, nil
}

func (f *filter) empty() bool { return len(f.and) == 0 && len(f.or) == 0 }
