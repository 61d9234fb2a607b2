package query

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A reference implementation of the engine, written the plain way and
// independently of the executor: it reads a query from its JSON form (not
// from the compiled Query), filters records one by one over a list of path
// candidates, sorts with a stable sort, pages by slicing, projects field by
// field, and groups documents by scanning the groups found so far, computing
// each accumulator from the group's documents once they are all known.
//
// It trusts only the standard library and parseDateTime (which ISO 8601 forms
// are datetimes, what instant they stand for). It assumes the query parsed:
// it does not validate. When a query uses something it does not cover it
// says so (ok false) rather than guess.

// refCand is a candidate value of a path in a record (see refWalk).
type refCand struct {
	v       any
	present bool
}

// refLookup looks the first segment (or a literal dotted key made of the
// first 2..8 segments) up in m; it returns the value, the key used and the
// segments left.
func refLookup(m map[string]any, segs []string) (any, string, []string, bool) {
	if v, ok := m[segs[0]]; ok {
		return v, segs[0], segs[1:], true
	}
	for j := 2; j <= len(segs) && j <= 8; j++ {
		k := strings.Join(segs[:j], ".")
		if v, ok := m[k]; ok {
			return v, k, segs[j:], true
		}
	}
	return nil, "", nil, false
}

// refIndex is the list index a segment denotes, or -1.
func refIndex(seg string) int {
	n, err := strconv.Atoi(seg)
	if err != nil || n < 0 || seg[0] == '+' {
		return -1
	}
	return n
}

// refWalk lists the candidates of a path in v, as a MongoDB query sees them:
// lists met on the way are searched element by element (or indexed), a list
// at the end is a candidate and so is each of its elements, and a path that
// leads nowhere gives one missing candidate.
func refWalk(v any, segs []string) []refCand {
	if len(segs) == 0 {
		out := []refCand{{v, true}}
		if arr, ok := v.([]any); ok {
			for _, el := range arr {
				out = append(out, refCand{el, true})
			}
		}
		return out
	}
	switch t := v.(type) {
	case map[string]any:
		child, _, rest, ok := refLookup(t, segs)
		if !ok {
			return []refCand{{nil, false}}
		}
		return refWalk(child, rest)
	case []any:
		var out []refCand
		found := false
		if n := refIndex(segs[0]); n >= 0 && n < len(t) {
			found = true
			out = append(out, refWalk(t[n], segs[1:])...)
		}
		for _, el := range t {
			if m, ok := el.(map[string]any); ok {
				found = true
				out = append(out, refWalk(m, segs)...)
			}
		}
		if !found {
			return []refCand{{nil, false}}
		}
		return out
	}
	return []refCand{{nil, false}}
}

// refGet resolves a path as an aggregation expression does: a list met on
// the way gives the list of what its elements (objects and lists) hold.
func refGet(v any, segs []string) (any, bool) {
	if len(segs) == 0 {
		return v, true
	}
	switch t := v.(type) {
	case map[string]any:
		child, _, rest, ok := refLookup(t, segs)
		if !ok {
			return nil, false
		}
		return refGet(child, rest)
	case []any:
		out := []any{}
		for _, el := range t {
			switch el.(type) {
			case map[string]any, []any:
				if r, ok := refGet(el, segs); ok {
					out = append(out, r)
				}
			}
		}
		return out, true
	}
	return nil, false
}

func refSegs(key string) []string { return strings.Split(key, ".") }

// refClass is the type order of values: null, numbers, strings, objects,
// lists, booleans.
func refClass(v any) int {
	switch v.(type) {
	case nil:
		return 0
	case float64, int:
		return 1
	case string:
		return 2
	case map[string]any:
		return 3
	case []any:
		return 4
	case bool:
		return 5
	}
	panic(fmt.Sprintf("reference: unexpected value %T", v))
}

func refNum(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int:
		return float64(n)
	}
	panic("not a number")
}

func sign3(less, greater bool) int {
	switch {
	case less:
		return -1
	case greater:
		return 1
	}
	return 0
}

// refCompare orders any two values: by type, then by value.
func refCompare(a, b any) int {
	ca, cb := refClass(a), refClass(b)
	if ca != cb {
		return sign3(ca < cb, ca > cb)
	}
	switch ca {
	case 1:
		x, y := refNum(a), refNum(b)
		return sign3(x < y, x > y)
	case 2:
		x, y := a.(string), b.(string)
		return sign3(x < y, x > y)
	case 5:
		x, y := a.(bool), b.(bool)
		return sign3(!x && y, x && !y)
	case 4:
		x, y := a.([]any), b.([]any)
		for i := 0; i < len(x) && i < len(y); i++ {
			if c := refCompare(x[i], y[i]); c != 0 {
				return c
			}
		}
		return sign3(len(x) < len(y), len(x) > len(y))
	case 3:
		x, y := a.(map[string]any), b.(map[string]any)
		kx, ky := refKeys(x), refKeys(y)
		for i := 0; i < len(kx) && i < len(ky); i++ {
			if kx[i] != ky[i] {
				return sign3(kx[i] < ky[i], kx[i] > ky[i])
			}
			if c := refCompare(x[kx[i]], y[ky[i]]); c != 0 {
				return c
			}
		}
		return sign3(len(kx) < len(ky), len(kx) > len(ky))
	}
	return 0
}

func refKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// refEqual is deep equality, numbers by value.
func refEqual(a, b any) bool {
	if refClass(a) != refClass(b) {
		return false
	}
	switch x := a.(type) {
	case map[string]any:
		y := b.(map[string]any)
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !refEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y := b.([]any)
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if !refEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return refCompare(a, b) == 0
}

// refField reads m[long], or m[short] when there is no m[long].
func refField(m map[string]any, long, short string) (any, bool) {
	if v, ok := m[long]; ok {
		return v, true
	}
	v, ok := m[short]
	return v, ok
}

func refList(v any) []any {
	l, _ := v.([]any)
	return l
}

func refBool(v any) bool {
	b, _ := v.(bool)
	return b
}

// refInt reads an integer parameter (capped at 2^53, as the engine caps it).
func refInt(v any, def int) int {
	f, ok := v.(float64)
	if !ok {
		if i, isInt := v.(int); isInt {
			return i
		}
		return def
	}
	return int(math.Min(f, 1<<53))
}

// refPage slices a 1-based page out of n results.
func refPage(n int, page any) (lo, hi int) {
	m, _ := page.(map[string]any)
	start, limit := refInt(m["start"], 1), refInt(m["limit"], 0)
	lo = min(max(start-1, 0), n)
	hi = n
	if limit > 0 && lo+limit < n {
		hi = lo + limit
	}
	return lo, hi
}

var refRegexps sync.Map

func refRegexp(s string) *regexp.Regexp {
	if re, ok := refRegexps.Load(s); ok {
		return re.(*regexp.Regexp)
	}
	re := regexp.MustCompile(s)
	refRegexps.Store(s, re)
	return re
}

var refRelTime = regexp.MustCompile(`^now(?:/([dwm]))?\s*(?:([+-])\s*([0-9]+)([smhdw]))?$`)

// refBound is the datetime a datetime condition compares with.
func refBound(s string, now time.Time) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "now") {
		return parseDateTime(s)
	}
	m := refRelTime.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false
	}
	t := now.UTC()
	midnight := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch m[1] {
	case "d":
		t = midnight
	case "w":
		for midnight.Weekday() != time.Monday {
			midnight = midnight.AddDate(0, 0, -1)
		}
		t = midnight
	case "m":
		t = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	if m[2] != "" {
		n, err := strconv.ParseInt(m[3], 10, 64)
		if err != nil || n > 1e6 {
			return time.Time{}, false
		}
		unit := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour,
			"d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[m[4]]
		d := time.Duration(n) * unit
		if m[2] == "-" {
			d = -d
		}
		t = t.Add(d)
	}
	return t, true
}

func refAny(cs []refCand, f func(v any, present bool) bool) bool {
	for _, c := range cs {
		if f(c.v, c.present) {
			return true
		}
	}
	return false
}

// refEq is the eq operator on one candidate.
func refEq(want any) func(any, bool) bool {
	return func(v any, present bool) bool {
		if want == nil {
			return !present || v == nil
		}
		return present && refEqual(v, want)
	}
}

func refStrings(v any) []string {
	if s, ok := v.(string); ok {
		return []string{s}
	}
	var out []string
	for _, el := range refList(v) {
		out = append(out, el.(string))
	}
	return out
}

// refCondition evaluates one filter condition on rec.
func refCondition(c map[string]any, rec map[string]any, now time.Time) (match, ok bool) {
	kv, _ := refField(c, "key", "k")
	want, _ := refField(c, "value", "v")
	ov, _ := refField(c, "operator", "o")
	op := ov.(string)
	cs := refWalk(rec, refSegs(kv.(string)))
	switch op {
	case "eq":
		return refAny(cs, refEq(want)), true
	case "not":
		return !refAny(cs, refEq(want)), true
	case "lt", "lte", "gt", "gte":
		return refAny(cs, func(v any, present bool) bool {
			// want is a number, a string or a boolean: only values of its type compare.
			if !present || refClass(v) != refClass(want) {
				return false
			}
			c := refCompare(v, want)
			return map[string]bool{"lt": c < 0, "lte": c <= 0, "gt": c > 0, "gte": c >= 0}[op]
		}), true
	case "in", "not_in":
		in := refAny(cs, func(v any, present bool) bool {
			for _, el := range refList(want) {
				if el == nil && (!present || v == nil) || el != nil && present && refEqual(v, el) {
					return true
				}
			}
			return false
		})
		return in != (op == "not_in"), true
	case "contain", "not_contain", "contain_in", "not_contain_in":
		has := refAny(cs, func(v any, _ bool) bool {
			s, isStr := v.(string)
			for _, n := range refStrings(want) {
				if isStr && strings.Contains(strings.ToLower(s), strings.ToLower(n)) {
					return true
				}
			}
			return false
		})
		return has != strings.HasPrefix(op, "not_"), true
	case "exists":
		return refAny(cs, func(_ any, present bool) bool { return present }) == want.(bool), true
	case "regex", "regex_in":
		return refAny(cs, func(v any, _ bool) bool {
			s, isStr := v.(string)
			for _, re := range refStrings(want) {
				if isStr && refRegexp("(?i)"+re).MatchString(s) {
					return true
				}
			}
			return false
		}), true
	case "match":
		sub := want.(map[string]any)
		return refAny(cs, func(v any, _ bool) bool {
			for _, el := range refList(v) {
				em, isMap := el.(map[string]any)
				if !isMap {
					continue
				}
				all := true
				for k, w := range sub {
					all = all && refAny(refWalk(em, refSegs(k)), refEq(w))
				}
				if all {
					return true
				}
			}
			return false
		}), true
	}
	var cmp string
	for _, prefix := range []string{"datetime_", "timediff_", "timedelta_"} {
		if s, found := strings.CutPrefix(op, prefix); found {
			cmp = s
		}
	}
	bound, bok := refBound(want.(string), now)
	if cmp == "" || !bok {
		return false, false
	}
	return refAny(cs, func(v any, _ bool) bool {
		s, isStr := v.(string)
		if !isStr {
			return false
		}
		t, isTime := parseDateTime(s)
		if !isTime {
			return false
		}
		c := t.Compare(bound)
		return map[string]bool{"lt": c < 0, "lte": c <= 0, "gt": c > 0, "gte": c >= 0}[cmp]
	}), true
}

// refFilter evaluates the filter and filter_or of m on rec.
func refFilter(m map[string]any, rec map[string]any, now time.Time) (match, ok bool) {
	for _, c := range refList(m["filter"]) {
		match, ok := refCondition(c.(map[string]any), rec, now)
		if !ok || !match {
			return false, ok
		}
	}
	or := refList(m["filter_or"])
	if len(or) == 0 {
		return true, true
	}
	some := false
	for _, c := range or {
		match, ok := refCondition(c.(map[string]any), rec, now)
		if !ok {
			return false, false
		}
		some = some || match
	}
	return some, true
}

// refSortKey is a record's value for one sort key.
type refSortKey struct {
	missing bool
	class   int // refClass, or 6 for a datetime string
	v       any
	t       time.Time
}

func refSortValue(rec map[string]any, key string, desc bool) refSortKey {
	var best any
	found := false
	for _, c := range refWalk(rec, refSegs(key)) {
		if !c.present || c.v == nil {
			continue
		}
		if _, isList := c.v.([]any); isList {
			continue
		}
		if !found || desc && refCompare(c.v, best) > 0 || !desc && refCompare(c.v, best) < 0 {
			best, found = c.v, true
		}
	}
	if !found {
		return refSortKey{missing: true}
	}
	k := refSortKey{class: refClass(best), v: best}
	if s, isStr := best.(string); isStr {
		if t, isTime := parseDateTime(s); isTime {
			k.class, k.t = 6, t
		}
	}
	return k
}

type refSortSpec struct {
	key  string
	desc bool
}

// refSortSpecs reads a sort: a list of {key, desc} or one of them.
func refSortSpecs(v any) []refSortSpec {
	items := refList(v)
	if m, ok := v.(map[string]any); ok && len(m) > 0 {
		items = []any{m}
	}
	var out []refSortSpec
	for _, it := range items {
		m := it.(map[string]any)
		k, _ := refField(m, "key", "k")
		out = append(out, refSortSpec{key: k.(string), desc: refBool(m["desc"])})
	}
	return out
}

// refSort sorts docs by specs, stably.
func refSort(docs []map[string]any, specs []refSortSpec) []map[string]any {
	type item struct {
		doc  map[string]any
		keys []refSortKey
	}
	items := make([]item, len(docs))
	for i, d := range docs {
		items[i].doc = d
		for _, s := range specs {
			items[i].keys = append(items[i].keys, refSortValue(d, s.key, s.desc))
		}
	}
	slices.SortStableFunc(items, func(a, b item) int {
		for j, s := range specs {
			x, y := a.keys[j], b.keys[j]
			switch {
			case x.missing && y.missing:
				continue
			case x.missing:
				return 1
			case y.missing:
				return -1
			}
			c := sign3(x.class < y.class, x.class > y.class)
			if c == 0 && x.class == 6 {
				c = x.t.Compare(y.t)
			} else if c == 0 {
				c = refCompare(x.v, y.v)
			}
			if s.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	})
	out := make([]map[string]any, len(items))
	for i, it := range items {
		out[i] = it.doc
	}
	return out
}

// refProjectInto copies the path segs of src into dst.
func refProjectInto(dst, src map[string]any, segs []string) {
	v, key, rest, ok := refLookup(src, segs)
	if !ok {
		return
	}
	if len(rest) == 0 {
		dst[key] = v
		return
	}
	switch t := v.(type) {
	case map[string]any:
		sub, isMap := dst[key].(map[string]any)
		if !isMap {
			sub = map[string]any{}
			dst[key] = sub
		}
		refProjectInto(sub, t, rest)
	case []any:
		var elems []map[string]any
		for _, el := range t {
			if m, isMap := el.(map[string]any); isMap {
				elems = append(elems, m)
			}
		}
		list, _ := dst[key].([]any)
		if len(list) != len(elems) {
			list = make([]any, len(elems))
			for j := range list {
				list[j] = map[string]any{}
			}
			dst[key] = list
		}
		for j, m := range elems {
			refProjectInto(list[j].(map[string]any), m, rest)
		}
	}
}

// refOnly drops the keys that extend another key, and repeats.
func refOnly(keys []string) []string {
	var out []string
	for _, k := range keys {
		keep := !slices.Contains(out, k)
		for _, other := range keys {
			if strings.HasPrefix(k, other+".") {
				keep = false
			}
		}
		if keep {
			out = append(out, k)
		}
	}
	return out
}

func refValidKey(k string) bool {
	return k != "" && !slices.Contains(refSegs(k), "")
}

// refResult is what the reference expects of a run.
type refResult struct {
	ok  bool // the reference covers the query
	err bool // the run fails (a bad RunOptions)
	// A list query's page and total; untrimmed results are records of the
	// input.
	page    []map[string]any
	trimmed bool
	total   int
	// A statistics query's answer.
	stat map[string]any
}

func refDecode(raw string) (map[string]any, bool) {
	if strings.TrimSpace(raw) == "" {
		return map[string]any{}, true
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, false
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, true
}

// refQuery runs the list query raw over recs.
func refQuery(raw string, recs []map[string]any, opts RunOptions) refResult {
	q, ok := refDecode(raw)
	if !ok {
		return refResult{}
	}
	now := opts.Now().UTC()
	keyword, _ := q["keyword"].(string)
	keyword = strings.ToLower(strings.TrimSpace(keyword))
	if keyword != "" && slices.ContainsFunc(opts.KeywordFields, func(k string) bool { return !refValidKey(k) }) {
		return refResult{ok: true, err: true}
	}
	var matched []map[string]any
	for _, rec := range recs {
		match, ok := refFilter(q, rec, now)
		if !ok {
			return refResult{}
		}
		if match && keyword != "" {
			found := false
			for _, f := range opts.KeywordFields {
				found = found || refAny(refWalk(rec, refSegs(f)), func(v any, _ bool) bool {
					s, isStr := v.(string)
					return isStr && strings.Contains(strings.ToLower(s), keyword)
				})
			}
			match = found
		}
		if match {
			matched = append(matched, rec)
		}
	}
	res := refResult{ok: true, total: len(matched), page: []map[string]any{}}
	if refBool(q["count_only"]) {
		return res
	}
	if specs := refSortSpecs(q["sort"]); len(specs) > 0 {
		matched = refSort(matched, specs)
	}
	lo, hi := refPage(len(matched), q["page"])
	page := matched[lo:hi]
	var only []string
	for _, k := range refList(q["only"]) {
		only = append(only, k.(string))
	}
	only = refOnly(only)
	if refBool(q["minimal"]) && len(opts.MinimalFields) > 0 {
		only = refOnly(opts.MinimalFields)
		if slices.ContainsFunc(only, func(k string) bool { return !refValidKey(k) }) {
			return refResult{ok: true, err: true}
		}
	}
	for _, rec := range page {
		if len(only) == 0 {
			res.page = append(res.page, rec)
			continue
		}
		res.trimmed = true
		out := map[string]any{}
		for _, k := range only {
			refProjectInto(out, rec, refSegs(k))
		}
		res.page = append(res.page, out)
	}
	return res
}

// refFormatDate formats t by a group key's date_format.
func refFormatDate(t time.Time, format string) any {
	switch format {
	case "year":
		return float64(t.Year())
	case "month":
		return float64(t.Month())
	case "day":
		return float64(t.Day())
	}
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			b.WriteByte(format[i])
			continue
		}
		i++
		switch format[i] {
		case 'Y':
			fmt.Fprintf(&b, "%04d", t.Year())
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'L':
			fmt.Fprintf(&b, "%03d", t.Nanosecond()/1e6)
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case '%':
			b.WriteByte('%')
		}
	}
	return b.String()
}

// refGetOrNil is refGet, with nil for a missing value.
func refGetOrNil(d map[string]any, key string) any {
	v, ok := refGet(d, refSegs(key))
	if !ok {
		return nil
	}
	return v
}

// refConditionsHold evaluates a group field's conditions on d.
func refConditionsHold(f map[string]any, d map[string]any) bool {
	for _, c := range refList(f["conditions"]) {
		cm := c.(map[string]any)
		k, _ := refField(cm, "key", "k")
		want, _ := refField(cm, "value", "v")
		op, _ := refField(cm, "operator", "o")
		v := refGetOrNil(d, k.(string))
		cmp := refCompare(v, want)
		holds := map[string]bool{"eq": refEqual(v, want), "not": !refEqual(v, want),
			"gt": cmp > 0, "gte": cmp >= 0, "lt": cmp < 0, "lte": cmp <= 0}[op.(string)]
		if !holds {
			return false
		}
	}
	return true
}

// refAccumulate computes a group field over the group's documents.
func refAccumulate(f map[string]any, docs []map[string]any) any {
	opv, _ := refField(f, "operator", "o")
	op := opv.(string)
	kv, _ := refField(f, "key", "k")
	key, _ := kv.(string)
	value := func(d map[string]any) (any, bool) { return refGet(d, refSegs(key)) }
	switch op {
	case "count":
		n := 0.0
		for _, d := range docs {
			if refConditionsHold(f, d) {
				n++
			}
		}
		return n
	case "sum", "average":
		total, n := 0.0, 0
		for _, d := range docs {
			if !refConditionsHold(f, d) {
				n++ // counts as 0 in an average, adds nothing to a sum
				continue
			}
			if v, ok := value(d); ok && refClass(v) == 1 {
				total += refNum(v)
				n++
			}
		}
		if op == "sum" {
			return total
		}
		if n == 0 {
			return nil
		}
		return total / float64(n)
	case "max", "min":
		var best any
		for _, d := range docs {
			v, ok := value(d)
			if !ok || v == nil {
				continue
			}
			if best == nil || op == "max" && refCompare(v, best) > 0 || op == "min" && refCompare(v, best) < 0 {
				best = v
			}
		}
		return best
	case "first":
		return refGetOrNil(docs[0], key)
	case "last":
		return refGetOrNil(docs[len(docs)-1], key)
	case "push":
		out := []any{}
		fields := refList(f["fields"])
		for _, d := range docs {
			if len(fields) == 0 {
				if v, ok := value(d); ok {
					out = append(out, v)
				}
				continue
			}
			o := map[string]any{}
			for _, pf := range fields {
				k, name := "", ""
				if s, isStr := pf.(string); isStr {
					k, name = s, s
				} else {
					pm := pf.(map[string]any)
					kv, _ := refField(pm, "key", "k")
					k = kv.(string)
					name = k
					if nv, _ := refField(pm, "name", "n"); nv != nil {
						name = nv.(string)
					}
				}
				if v, ok := refGet(d, refSegs(k)); ok {
					o[name] = v
				}
			}
			out = append(out, o)
		}
		return out
	case "add_to_set":
		out := []any{}
		for _, d := range docs {
			v, ok := value(d)
			if ok && !slices.ContainsFunc(out, func(x any) bool { return refEqual(x, v) }) {
				out = append(out, v)
			}
		}
		return out
	}
	out := map[string]any{} // merge_objects
	for _, d := range docs {
		if m, isMap := refGetOrNil(d, key).(map[string]any); isMap {
			for k, x := range m {
				out[k] = x
			}
		}
	}
	return out
}

// refGroup is the group stage g over docs.
func refGroup(g map[string]any, docs []map[string]any) []map[string]any {
	type group struct {
		keys []any
		docs []map[string]any
	}
	keys := refList(g["keys"])
	var groups []*group
	for _, d := range docs {
		vals := make([]any, len(keys))
		for j, k := range keys {
			km := k.(map[string]any)
			kv, _ := refField(km, "key", "k")
			v := refGetOrNil(d, kv.(string))
			if df, ok := km["date_format"].(string); ok {
				s, isStr := v.(string)
				t, isTime := parseDateTime(s)
				v = nil
				if isStr && isTime {
					v = refFormatDate(t, df)
				}
			}
			vals[j] = v
		}
		var gr *group
		for _, other := range groups {
			if slices.EqualFunc(other.keys, vals, refEqual) {
				gr = other
				break
			}
		}
		if gr == nil {
			gr = &group{keys: vals}
			groups = append(groups, gr)
		}
		gr.docs = append(gr.docs, d)
	}
	out := []map[string]any{}
	for _, gr := range groups {
		o := map[string]any{}
		for j, k := range keys {
			nv, _ := refField(k.(map[string]any), "name", "n")
			o[nv.(string)] = gr.keys[j]
		}
		for _, f := range refList(g["fields"]) {
			fm := f.(map[string]any)
			nv, _ := refField(fm, "name", "n")
			o[nv.(string)] = refAccumulate(fm, gr.docs)
		}
		out = append(out, o)
	}
	return out
}

// refUnwindCopy copies d with the path (through objects) set to v.
func refUnwindCopy(d map[string]any, segs []string, v any) map[string]any {
	out := map[string]any{}
	for k, x := range d {
		out[k] = x
	}
	_, key, rest, ok := refLookup(d, segs)
	switch {
	case !ok:
	case len(rest) == 0:
		out[key] = v
	default:
		if child, isMap := d[key].(map[string]any); isMap {
			out[key] = refUnwindCopy(child, rest, v)
		}
	}
	return out
}

// refStages runs an aggregate pipeline over docs.
func refStages(stages []any, docs []map[string]any, now time.Time) ([]map[string]any, bool) {
	var groupKeys []string
	for _, st := range stages {
		for name, body := range st.(map[string]any) {
			switch name {
			case "match":
				var out []map[string]any
				for _, d := range docs {
					match, ok := refFilter(body.(map[string]any), d, now)
					if !ok {
						return nil, false
					}
					if match {
						out = append(out, d)
					}
				}
				docs = out
			case "unwind":
				p, _ := body.(map[string]any)["path"].(string)
				segs := refSegs(strings.TrimPrefix(p, "$"))
				var out []map[string]any
				for _, d := range docs {
					var v any = d
					found := true
					for rest := segs; len(rest) > 0 && found; {
						m, isMap := v.(map[string]any)
						if !isMap {
							found = false
							break
						}
						v, _, rest, found = refLookup(m, rest)
					}
					switch list, isList := v.([]any); {
					case !found || v == nil:
					case !isList:
						out = append(out, d)
					default:
						for _, el := range list {
							out = append(out, refUnwindCopy(d, segs, el))
						}
					}
				}
				docs = out
			case "group":
				g := body.(map[string]any)
				docs = refGroup(g, docs)
				groupKeys = nil
				for _, k := range refList(g["keys"]) {
					nv, _ := refField(k.(map[string]any), "name", "n")
					groupKeys = append(groupKeys, nv.(string))
				}
			case "sort":
				var specs []refSortSpec
				if m, isMap := body.(map[string]any); isMap && m["keys"] != nil {
					specs = refSortSpecs(m["keys"])
				} else {
					specs = refSortSpecs(body)
				}
				docs = refSort(docs, specs)
			case "skip":
				docs = docs[min(refInt(body, 0), len(docs)):]
			case "limit":
				docs = docs[:min(refInt(body, 0), len(docs))]
			case "count":
				nv := body.(map[string]any)["name"]
				if len(docs) == 0 {
					docs = nil
				} else {
					docs = []map[string]any{{nv.(string): float64(len(docs))}}
				}
			case "project":
				p := body.(map[string]any)
				exclude, onlyKeys := refBool(p["exclude_keys"]), refBool(p["only_keys"])
				var out []map[string]any
				for _, d := range docs {
					o := map[string]any{}
					if !exclude {
						for _, k := range groupKeys {
							if v, ok := d[k]; ok {
								o[k] = v
							}
						}
					}
					for _, f := range refList(p["fields"]) {
						fm := f.(map[string]any)
						nv, _ := refField(fm, "name", "n")
						name := nv.(string)
						opv, _ := refField(fm, "operator", "o")
						op, _ := opv.(string)
						key := name
						if !onlyKeys || op != "" {
							kv, _ := refField(fm, "key", "k")
							key = kv.(string)
						}
						v, ok := refGet(d, refSegs(key))
						if !ok {
							continue
						}
						switch op {
						case "size":
							list, isList := v.([]any)
							if !isList {
								continue
							}
							v = float64(len(list))
						case "sum":
							total := 0.0
							if refClass(v) == 1 {
								total = refNum(v)
							}
							for _, el := range refList(v) {
								if refClass(el) == 1 {
									total += refNum(el)
								}
							}
							v = total
						}
						o[name] = v
					}
					out = append(out, o)
				}
				docs = out
				if exclude {
					groupKeys = nil
				}
			default:
				return nil, false
			}
		}
	}
	return docs, true
}

// refStat runs the statistics query raw over recs.
func refStat(raw string, recs []map[string]any, opts RunOptions) refResult {
	q, ok := refDecode(raw)
	if !ok {
		return refResult{}
	}
	now := opts.Now().UTC()
	var docs []map[string]any
	for _, rec := range recs {
		match, ok := refFilter(q, rec, now)
		if !ok {
			return refResult{}
		}
		if match {
			docs = append(docs, rec)
		}
	}
	answer := map[string]any{}
	page := q["page"]
	if page != nil {
		answer["total_count"] = 0
	}
	if stages := refList(q["aggregate"]); len(stages) > 0 {
		out, ok := refStages(stages, docs, now)
		if !ok {
			return refResult{}
		}
		lo, hi := refPage(len(out), page)
		answer["results"] = append([]map[string]any{}, out[lo:hi]...)
		if page != nil {
			answer["total_count"] = len(out)
		}
		return refResult{ok: true, stat: answer}
	}
	vals := []any{}
	for _, d := range docs {
		for _, c := range refWalk(d, refSegs(q["distinct"].(string))) {
			if _, isList := c.v.([]any); !c.present || c.v == nil || isList {
				continue
			}
			if !slices.ContainsFunc(vals, func(x any) bool { return refEqual(x, c.v) }) {
				vals = append(vals, c.v)
			}
		}
	}
	slices.SortStableFunc(vals, refCompare)
	lo, hi := refPage(len(vals), page)
	answer["results"] = vals[lo:hi]
	if page != nil {
		answer["total_count"] = len(vals)
	}
	return refResult{ok: true, stat: answer}
}
