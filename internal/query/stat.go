package query

import (
	"sort"
	"strings"
	"time"
)

// StatisticsQuery is a parsed SpaceONE StatisticsQuery (the "query"
// parameter of stat APIs).
//
// JSON shape:
//
//	{"filter": [...], "filter_or": [...],
//	 "distinct": "key",                 // or
//	 "aggregate": [                     // a pipeline of stages, applied in order
//	   {"unwind": {"path": "tags"}},
//	   {"match": {"filter": [...], "filter_or": [...]}},
//	   {"group": {"keys":   [{"key": "created_at", "name": "month", "date_format": "%Y-%m"}],
//	              "fields": [{"key": "cost", "name": "total", "operator": "sum"}]}},
//	   {"project": {"fields": [{"key": "total", "name": "cost"}], "exclude_keys": false}},
//	   {"sort": {"key": "total", "desc": true}},   // or [{"key", "desc"}] or {"keys": [...]}
//	   {"skip": 10}, {"limit": 5},
//	   {"count": {"name": "total"}}],
//	 "page": {"start": 1, "limit": 10}}
//
// Group field operators: count, sum, average, max, min, first, last, push,
// add_to_set, merge_objects. count, sum and average accept SpaceONE's
// "conditions" ([{key, value, operator}] with eq, not, gt, gte, lt, lte).
// Unknown top-level fields are ignored; when both aggregate and distinct are
// given, aggregate wins (as in SpaceONE).
type StatisticsQuery struct {
	filter   filter
	distinct *path
	stages   []stage
	hasPage  bool
	start    int
	limit    int
}

type stage interface {
	apply(docs []map[string]any, now time.Time) []map[string]any
}

// ParseStatisticsQuery parses a JSON-encoded StatisticsQuery.
func ParseStatisticsQuery(raw []byte) (*StatisticsQuery, error) {
	m, err := parseJSONObject(raw)
	if err != nil {
		return nil, err
	}
	q, qerr := newStatisticsQuery(m)
	if qerr != nil {
		return nil, qerr
	}
	return q, nil
}

// NewStatisticsQuery builds a StatisticsQuery from its decoded JSON form.
func NewStatisticsQuery(m map[string]any) (*StatisticsQuery, error) {
	q, err := newStatisticsQuery(m)
	if err != nil {
		return nil, err
	}
	return q, nil
}

func newStatisticsQuery(m map[string]any) (*StatisticsQuery, *Error) {
	q := &StatisticsQuery{start: 1}
	var err *Error
	if q.filter, err = compileFilter(m, "query"); err != nil {
		return nil, err
	}
	if pv, ok := m["page"]; ok && pv != nil {
		q.hasPage = true
		if q.start, q.limit, err = parsePage(pv, "query.page"); err != nil {
			return nil, err
		}
	}
	agg, err := asList(m["aggregate"], "query.aggregate")
	if err != nil {
		return nil, err
	}
	if len(agg) > 0 {
		if q.stages, err = parseStages(agg, "query.aggregate"); err != nil {
			return nil, err
		}
		return q, nil
	}
	switch d := m["distinct"].(type) {
	case nil:
		return nil, errorf("query.aggregate", "aggregate or distinct is required")
	case string:
		if q.distinct, err = parsePath(d, "query.distinct"); err != nil {
			return nil, err
		}
	default:
		return nil, errorf("query.distinct", "must be a string")
	}
	return q, nil
}

var stageNames = "unwind, match, group, project, sort, skip, limit, count"

func parseStages(list []any, key string) ([]stage, *Error) {
	stages := make([]stage, 0, len(list))
	var groupKeys []string // names of the current group keys (for project)
	for i, raw := range list {
		skey := indexKey(key, i)
		m, err := asObject(raw, skey)
		if err != nil {
			return nil, err
		}
		if len(m) != 1 {
			return nil, errorf(skey, "a stage must have exactly one of: %s", stageNames)
		}
		for name, body := range m {
			bkey := skey + "." + name
			var st stage
			switch name {
			case "unwind":
				st, err = parseUnwind(body, bkey)
			case "match":
				var bm map[string]any
				if bm, err = asObject(body, bkey); err == nil {
					var f filter
					if f, err = compileFilter(bm, bkey); err == nil {
						st = &matchStage{filter: f}
					}
				}
			case "group":
				var g *groupStage
				if g, err = parseGroup(body, bkey); err == nil {
					st = g
					groupKeys = groupKeys[:0:0]
					for _, k := range g.keys {
						groupKeys = append(groupKeys, k.name)
					}
				}
			case "project":
				var p *projectStage
				if p, err = parseProject(body, bkey, groupKeys); err == nil {
					st = p
					if p.excludeKeys {
						groupKeys = nil
					}
				}
			case "sort":
				st, err = parseSortStage(body, bkey)
			case "skip":
				var n int
				if n, err = asInt(body, bkey, 0); err == nil {
					st = skipStage(n)
				}
			case "limit":
				var n int
				if n, err = asInt(body, bkey, 1); err == nil {
					st = limitStage(n)
				}
			case "count":
				st, err = parseCount(body, bkey)
			default:
				return nil, errorf(bkey, "unknown stage %q (supported: %s)", name, stageNames)
			}
			if err != nil {
				return nil, err
			}
			stages = append(stages, st)
		}
	}
	return stages, nil
}

// checkName validates an output field name: non-empty, no dots, not
// starting with "$" (MongoDB's rules for $group / $count / $project names).
func checkName(v any, key string) (string, *Error) {
	if v == nil {
		return "", errorf(key, "name is required")
	}
	s, ok := v.(string)
	if !ok {
		return "", errorf(key, "must be a string")
	}
	if s == "" || strings.Contains(s, ".") || strings.HasPrefix(s, "$") {
		return "", errorf(key, "name %q must be non-empty, without dots and not start with $", s)
	}
	return s, nil
}

func requireKey(m map[string]any, key string) (*path, *Error) {
	kv, kname, ok := field(m, "key", "k")
	if !ok || kv == nil {
		return nil, errorf(key+".key", "key is required")
	}
	s, isStr := kv.(string)
	if !isStr {
		return nil, errorf(key+"."+kname, "must be a string")
	}
	return parsePath(s, key+"."+kname)
}

// ---- unwind

type unwindStage struct{ path *path }

func parseUnwind(v any, key string) (stage, *Error) {
	m, err := asObject(v, key)
	if err != nil {
		return nil, err
	}
	pv, ok := m["path"]
	if !ok || pv == nil {
		return nil, errorf(key+".path", "path is required")
	}
	s, isStr := pv.(string)
	if !isStr {
		return nil, errorf(key+".path", "must be a string")
	}
	s = strings.TrimPrefix(s, "$")
	p, err := parsePath(s, key+".path")
	if err != nil {
		return nil, err
	}
	return &unwindStage{path: p}, nil
}

// apply follows MongoDB's $unwind: one output document per list element;
// documents where the path is missing, null or an empty list are dropped; a
// non-list value passes through unchanged. The path must lead through
// objects.
func (s *unwindStage) apply(docs []map[string]any, _ time.Time) []map[string]any {
	out := make([]map[string]any, 0, len(docs))
	for _, d := range docs {
		v, ok := s.path.getMaps(d)
		if !ok || v == nil {
			continue
		}
		arr, isArr := v.([]any)
		if !isArr {
			out = append(out, d)
			continue
		}
		for _, el := range arr {
			out = append(out, s.path.setCopy(d, 0, el))
		}
	}
	return out
}

// ---- match

type matchStage struct{ filter filter }

func (s *matchStage) apply(docs []map[string]any, now time.Time) []map[string]any {
	m := s.filter.bind(now)
	if m == nil {
		return docs
	}
	out := make([]map[string]any, 0, len(docs))
	for _, d := range docs {
		if m(d) {
			out = append(out, d)
		}
	}
	return out
}

// ---- sort / skip / limit / count

type sortStage struct{ keys []sortKey }

func parseSortStage(v any, key string) (stage, *Error) {
	var keys []sortKey
	var err *Error
	if m, ok := v.(map[string]any); ok {
		if kl, has := m["keys"]; has {
			l, isList := kl.([]any)
			if !isList {
				return nil, errorf(key+".keys", "must be a list of {key, desc} objects")
			}
			keys, err = parseSort(l, key+".keys")
		} else {
			if _, hasKey := m["key"]; !hasKey {
				if _, hasK := m["k"]; !hasK {
					return nil, errorf(key+".key", "sort key is required")
				}
			}
			keys, err = parseSort(m, key)
		}
	} else {
		keys, err = parseSort(v, key)
	}
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errorf(key, "at least one sort key is required")
	}
	return &sortStage{keys: keys}, nil
}

func (s *sortStage) apply(docs []map[string]any, _ time.Time) []map[string]any {
	return sortRecords(docs, s.keys, len(docs))
}

type skipStage int

func (s skipStage) apply(docs []map[string]any, _ time.Time) []map[string]any {
	if int(s) >= len(docs) {
		return docs[:0]
	}
	return docs[s:]
}

type limitStage int

func (s limitStage) apply(docs []map[string]any, _ time.Time) []map[string]any {
	if int(s) < len(docs) {
		return docs[:s]
	}
	return docs
}

type countStage struct{ name string }

func parseCount(v any, key string) (stage, *Error) {
	m, err := asObject(v, key)
	if err != nil {
		return nil, err
	}
	name, err := checkName(m["name"], key+".name")
	if err != nil {
		return nil, err
	}
	return &countStage{name: name}, nil
}

// apply follows MongoDB's $count: no document at all for empty input.
func (s *countStage) apply(docs []map[string]any, _ time.Time) []map[string]any {
	if len(docs) == 0 {
		return []map[string]any{}
	}
	return []map[string]any{{s.name: float64(len(docs))}}
}

// ---- project

type projectStage struct {
	fields      []projectField
	excludeKeys bool
	onlyKeys    bool
	groupKeys   []string
}

type projectField struct {
	name string
	path *path
	op   string // "", "size" or "sum"
}

func parseProject(v any, key string, groupKeys []string) (*projectStage, *Error) {
	m, err := asObject(v, key)
	if err != nil {
		return nil, err
	}
	s := &projectStage{groupKeys: append([]string(nil), groupKeys...)}
	if s.excludeKeys, err = asBool(m["exclude_keys"], key+".exclude_keys"); err != nil {
		return nil, err
	}
	if s.onlyKeys, err = asBool(m["only_keys"], key+".only_keys"); err != nil {
		return nil, err
	}
	fl, err := asList(m["fields"], key+".fields")
	if err != nil {
		return nil, err
	}
	if len(fl) == 0 {
		return nil, errorf(key+".fields", "fields are required")
	}
	seen := map[string]bool{}
	for i, raw := range fl {
		fkey := indexKey(key+".fields", i)
		fm, err := asObject(raw, fkey)
		if err != nil {
			return nil, err
		}
		nv, nname, _ := field(fm, "name", "n")
		f := projectField{}
		if f.name, err = checkName(nv, fkey+"."+nname); err != nil {
			return nil, err
		}
		if seen[f.name] {
			return nil, errorf(fkey+"."+nname, "duplicate name %q", f.name)
		}
		seen[f.name] = true
		if ov, oname, ok := field(fm, "operator", "o"); ok && ov != nil {
			op, isStr := ov.(string)
			if !isStr || (op != "size" && op != "sum") {
				return nil, errorf(fkey+"."+oname, "unsupported project operator %v (supported: size, sum)", ov)
			}
			f.op = op
		}
		if s.onlyKeys && f.op == "" {
			if f.path, err = parsePath(f.name, fkey+"."+nname); err != nil {
				return nil, err
			}
		} else if f.path, err = requireKey(fm, fkey); err != nil {
			return nil, err
		}
		s.fields = append(s.fields, f)
	}
	return s, nil
}

// apply follows MongoDB's $project as SpaceONE builds it: each field takes
// the value of its key (only_keys: keeps the field of that name); the
// current group keys are kept unless exclude_keys. Missing values are
// omitted. "size" gives a list's length, "sum" the sum of a list's numbers.
func (s *projectStage) apply(docs []map[string]any, _ time.Time) []map[string]any {
	out := make([]map[string]any, len(docs))
	for i, d := range docs {
		o := make(map[string]any, len(s.fields)+len(s.groupKeys))
		if !s.excludeKeys {
			for _, k := range s.groupKeys {
				if v, ok := d[k]; ok {
					o[k] = v
				}
			}
		}
		for _, f := range s.fields {
			v, ok := f.path.get(d, 0)
			if !ok {
				continue
			}
			switch f.op {
			case "size":
				arr, isArr := v.([]any)
				if !isArr {
					continue
				}
				v = float64(len(arr))
			case "sum":
				v = sumNumbers(v)
			}
			o[f.name] = v
		}
		out[i] = o
	}
	return out
}

func sumNumbers(v any) float64 {
	if f, ok := toFloat(v); ok {
		return f
	}
	total := 0.0
	if arr, ok := v.([]any); ok {
		for _, el := range arr {
			if f, ok := toFloat(el); ok {
				total += f
			}
		}
	}
	return total
}

// ---- group

type groupStage struct {
	keys   []groupKey
	fields []groupField
}

type groupKey struct {
	name string
	path *path
	df   *dateFormat
}

type groupField struct {
	name      string
	op        string
	path      *path // nil for count and push-with-fields
	pushKeys  []pushField
	condition []subCondition
}

type pushField struct {
	name string
	path *path
}

type subCondition struct {
	path *path
	op   string
	v    any
}

var groupOperators = "count, sum, average, max, min, first, last, push, add_to_set, merge_objects"

func parseGroup(v any, key string) (*groupStage, *Error) {
	m, err := asObject(v, key)
	if err != nil {
		return nil, err
	}
	kl, err := asList(m["keys"], key+".keys")
	if err != nil {
		return nil, err
	}
	fl, err := asList(m["fields"], key+".fields")
	if err != nil {
		return nil, err
	}
	if len(kl) == 0 && len(fl) == 0 {
		return nil, errorf(key, "group requires keys or fields")
	}
	g := &groupStage{}
	names := map[string]bool{}
	for i, raw := range kl {
		ikey := indexKey(key+".keys", i)
		km, err := asObject(raw, ikey)
		if err != nil {
			return nil, err
		}
		gk := groupKey{}
		if gk.path, err = requireKey(km, ikey); err != nil {
			return nil, err
		}
		nv, nname, _ := field(km, "name", "n")
		if gk.name, err = checkName(nv, ikey+"."+nname); err != nil {
			return nil, err
		}
		if names[gk.name] {
			return nil, errorf(ikey+"."+nname, "duplicate name %q", gk.name)
		}
		names[gk.name] = true
		if dv, ok := km["date_format"]; ok && dv != nil {
			if gk.df, err = parseDateFormat(dv, ikey+".date_format"); err != nil {
				return nil, err
			}
		}
		g.keys = append(g.keys, gk)
	}
	for i, raw := range fl {
		ikey := indexKey(key+".fields", i)
		f, err := parseGroupField(raw, ikey)
		if err != nil {
			return nil, err
		}
		if names[f.name] {
			return nil, errorf(ikey+".name", "duplicate name %q", f.name)
		}
		names[f.name] = true
		g.fields = append(g.fields, f)
	}
	return g, nil
}

func parseGroupField(raw any, key string) (groupField, *Error) {
	f := groupField{}
	fm, err := asObject(raw, key)
	if err != nil {
		return f, err
	}
	ov, oname, ok := field(fm, "operator", "o")
	if !ok || ov == nil {
		return f, errorf(key+".operator", "operator is required")
	}
	op, isStr := ov.(string)
	if !isStr {
		return f, errorf(key+"."+oname, "operator must be a string")
	}
	switch op {
	case "count", "sum", "average", "max", "min", "first", "last", "push", "add_to_set", "merge_objects":
	default:
		return f, errorf(key+"."+oname, "operator %q is not supported (supported: %s)", op, groupOperators)
	}
	f.op = op
	nv, nname, _ := field(fm, "name", "n")
	if f.name, err = checkName(nv, key+"."+nname); err != nil {
		return f, err
	}
	kv, _, hasKey := field(fm, "key", "k")
	hasKeyVal := hasKey && kv != nil
	switch op {
	case "count":
		if hasKeyVal {
			// The key of a count is ignored, but it must still be valid.
			if _, err := requireKey(fm, key); err != nil {
				return f, err
			}
		}
	case "push":
		if fv, ok := fm["fields"]; ok && fv != nil {
			if f.pushKeys, err = parsePushFields(fv, key+".fields"); err != nil {
				return f, err
			}
		}
		if len(f.pushKeys) == 0 {
			if f.path, err = requireKey(fm, key); err != nil {
				return f, err
			}
		}
	default:
		if f.path, err = requireKey(fm, key); err != nil {
			return f, err
		}
	}
	if cv, ok := fm["conditions"]; ok && cv != nil {
		if op != "count" && op != "sum" && op != "average" {
			return f, errorf(key+".conditions", "conditions are only supported by count, sum and average")
		}
		if f.condition, err = parseSubConditions(cv, key+".conditions"); err != nil {
			return f, err
		}
	}
	return f, nil
}

// parsePushFields reads push's fields: [{"key", "name"}] objects, or plain
// keys (the object then uses the key as name).
func parsePushFields(v any, key string) ([]pushField, *Error) {
	l, err := asList(v, key)
	if err != nil {
		return nil, err
	}
	var out []pushField
	for i, raw := range l {
		ikey := indexKey(key, i)
		switch x := raw.(type) {
		case string:
			p, err := parsePath(x, ikey)
			if err != nil {
				return nil, err
			}
			out = append(out, pushField{name: x, path: p})
		case map[string]any:
			p, err := requireKey(x, ikey)
			if err != nil {
				return nil, err
			}
			nv, nname, _ := field(x, "name", "n")
			name := p.raw
			if nv != nil {
				if name, err = checkName(nv, ikey+"."+nname); err != nil {
					return nil, err
				}
			}
			out = append(out, pushField{name: name, path: p})
		default:
			return nil, errorf(ikey, "must be a key or a {key, name} object")
		}
	}
	return out, nil
}

func parseSubConditions(v any, key string) ([]subCondition, *Error) {
	l, err := asList(v, key)
	if err != nil {
		return nil, err
	}
	out := make([]subCondition, 0, len(l))
	for i, raw := range l {
		ikey := indexKey(key, i)
		m, err := asObject(raw, ikey)
		if err != nil {
			return nil, err
		}
		p, err := requireKey(m, ikey)
		if err != nil {
			return nil, err
		}
		vv, vname, ok := field(m, "value", "v")
		if !ok {
			vname = "value"
		}
		if vv == nil {
			return nil, errorf(ikey+"."+vname, "value is required")
		}
		ov, oname, ok := field(m, "operator", "o")
		if !ok {
			oname = "operator"
		}
		op, _ := ov.(string)
		switch op {
		case "eq", "not", "gt", "gte", "lt", "lte":
		default:
			return nil, errorf(ikey+"."+oname, "operator %v is not supported in conditions (supported: eq, not, gt, gte, lt, lte)", ov)
		}
		out = append(out, subCondition{path: p, op: op, v: vv})
	}
	return out, nil
}

// holds evaluates aggregation-expression comparisons ($eq, $ne, $gt...),
// which order values of different types by type.
func (c *subCondition) holds(d doc) bool {
	v, ok := d.get(c.path)
	if !ok {
		v = nil
	}
	switch c.op {
	case "eq":
		return equalValues(v, c.v)
	case "not":
		return !equalValues(v, c.v)
	}
	r := compareValues(v, c.v)
	switch c.op {
	case "gt":
		return r > 0
	case "gte":
		return r >= 0
	case "lt":
		return r < 0
	}
	return r <= 0
}

func (f *groupField) conditionsHold(d doc) bool {
	for i := range f.condition {
		if !f.condition[i].holds(d) {
			return false
		}
	}
	return true
}

// doc is what an accumulator reads a document through: a record map
// (mapDoc) or a row of a Table.
type doc interface {
	// get resolves a path as path.get does from the document's top.
	get(p *path) (any, bool)
}

type mapDoc map[string]any

func (d mapDoc) get(p *path) (any, bool) { return p.get(map[string]any(d), 0) }

type accumulator interface {
	add(d doc)
	result() any
}

func (f *groupField) newAccumulator() accumulator {
	switch f.op {
	case "count":
		return &countAcc{f: f}
	case "sum":
		return &sumAcc{f: f}
	case "average":
		return &avgAcc{f: f}
	case "max":
		return &extremeAcc{f: f, sign: 1}
	case "min":
		return &extremeAcc{f: f, sign: -1}
	case "first":
		return &firstAcc{f: f}
	case "last":
		return &lastAcc{f: f}
	case "push":
		return &pushAcc{f: f, out: []any{}}
	case "add_to_set":
		return &setAcc{f: f, seen: map[string]struct{}{}, out: []any{}}
	}
	return &mergeAcc{f: f, out: map[string]any{}}
}

func (f *groupField) value(d doc) (any, bool) {
	return d.get(f.path)
}

type countAcc struct {
	f *groupField
	n float64
}

func (a *countAcc) add(d doc) {
	if len(a.f.condition) == 0 || a.f.conditionsHold(d) {
		a.n++
	}
}
func (a *countAcc) result() any { return a.n }

// sumAcc follows $sum: non-numeric values (lists included) are ignored;
// with conditions, a document that fails them adds 0.
type sumAcc struct {
	f     *groupField
	total float64
}

func (a *sumAcc) add(d doc) {
	if len(a.f.condition) > 0 && !a.f.conditionsHold(d) {
		return
	}
	if v, ok := a.f.value(d); ok {
		if n, isNum := toFloat(v); isNum {
			a.total += n
		}
	}
}
func (a *sumAcc) result() any { return a.total }

// avgAcc follows $avg: the mean of the numeric values, null when there is
// none; with conditions, a document that fails them counts as 0 (SpaceONE
// averages {$cond: [conditions, $key, 0]}).
type avgAcc struct {
	f     *groupField
	total float64
	n     int
}

func (a *avgAcc) add(d doc) {
	if len(a.f.condition) > 0 && !a.f.conditionsHold(d) {
		a.n++
		return
	}
	if v, ok := a.f.value(d); ok {
		if n, isNum := toFloat(v); isNum {
			a.total += n
			a.n++
		}
	}
}
func (a *avgAcc) result() any {
	if a.n == 0 {
		return nil
	}
	return a.total / float64(a.n)
}

// extremeAcc follows $max / $min: null and missing values are ignored;
// values of different types compare by type.
type extremeAcc struct {
	f     *groupField
	sign  int
	best  any
	found bool
}

func (a *extremeAcc) add(d doc) {
	v, ok := a.f.value(d)
	if !ok || v == nil {
		return
	}
	if !a.found || compareValues(v, a.best)*a.sign > 0 {
		a.best, a.found = v, true
	}
}
func (a *extremeAcc) result() any { return a.best }

type firstAcc struct {
	f    *groupField
	v    any
	seen bool
}

func (a *firstAcc) add(d doc) {
	if !a.seen {
		a.seen = true
		a.v, _ = a.f.value(d)
	}
}
func (a *firstAcc) result() any { return a.v }

type lastAcc struct {
	f *groupField
	v any
}

func (a *lastAcc) add(d doc)   { a.v, _ = a.f.value(d) }
func (a *lastAcc) result() any { return a.v }

// pushAcc follows $push: with a key, the values (missing ones skipped);
// with fields, one object per document (missing fields omitted).
type pushAcc struct {
	f   *groupField
	out []any
}

func (a *pushAcc) add(d doc) {
	if len(a.f.pushKeys) == 0 {
		if v, ok := a.f.value(d); ok {
			a.out = append(a.out, v)
		}
		return
	}
	o := make(map[string]any, len(a.f.pushKeys))
	for _, pk := range a.f.pushKeys {
		if v, ok := d.get(pk.path); ok {
			o[pk.name] = v
		}
	}
	a.out = append(a.out, o)
}
func (a *pushAcc) result() any { return a.out }

// setAcc follows $addToSet (missing values skipped); the values keep the
// order in which they were first seen.
type setAcc struct {
	f    *groupField
	seen map[string]struct{}
	out  []any
	buf  []byte
}

func (a *setAcc) add(d doc) {
	v, ok := a.f.value(d)
	if !ok {
		return
	}
	a.buf = appendCanon(a.buf[:0], v)
	if _, dup := a.seen[string(a.buf)]; dup {
		return
	}
	a.seen[string(a.buf)] = struct{}{}
	a.out = append(a.out, v)
}
func (a *setAcc) result() any { return a.out }

// mergeAcc follows $mergeObjects: later objects' fields win; non-objects
// are ignored.
type mergeAcc struct {
	f   *groupField
	out map[string]any
}

func (a *mergeAcc) add(d doc) {
	v, _ := a.f.value(d)
	if m, ok := v.(map[string]any); ok {
		for k, x := range m {
			a.out[k] = x
		}
	}
}
func (a *mergeAcc) result() any { return a.out }

type groupState struct {
	keys []any
	accs []accumulator
}

// apply groups documents by the values of the keys (a missing key groups
// with null; date_format keys by the formatted date, null when the value is
// not a datetime). Groups come out in the order of their first document.
// Empty input gives no group, as in MongoDB.
func (g *groupStage) apply(docs []map[string]any, _ time.Time) []map[string]any {
	groups := map[string]*groupState{}
	var order []*groupState
	var buf []byte
	keyVals := make([]any, len(g.keys))
	for _, d := range docs {
		buf = buf[:0]
		for i, k := range g.keys {
			v, ok := k.path.get(d, 0)
			if !ok {
				v = nil
			}
			if k.df != nil {
				v = k.df.apply(v)
			}
			keyVals[i] = v
			buf = appendCanon(buf, v)
		}
		st := groups[string(buf)]
		if st == nil {
			st = &groupState{keys: append([]any(nil), keyVals...), accs: make([]accumulator, len(g.fields))}
			for i := range g.fields {
				st.accs[i] = g.fields[i].newAccumulator()
			}
			groups[string(buf)] = st
			order = append(order, st)
		}
		for _, a := range st.accs {
			a.add(mapDoc(d))
		}
	}
	return g.output(order)
}

// output is the groups' documents: their keys and their fields' results.
func (g *groupStage) output(order []*groupState) []map[string]any {
	out := make([]map[string]any, len(order))
	for i, st := range order {
		o := make(map[string]any, len(g.keys)+len(g.fields))
		for j, k := range g.keys {
			o[k.name] = st.keys[j]
		}
		for j, f := range g.fields {
			o[f.name] = st.accs[j].result()
		}
		out[i] = o
	}
	return out
}

// ---- run

// Run applies the statistics query to records and returns
// {"results": [...]} plus "total_count" (the number of results before
// paging) when the query has a page. Aggregation results are
// []map[string]any; distinct results are []any. All numbers produced by the
// engine (counts, sums...) are float64, like encoding/json's.
func (q *StatisticsQuery) Run(records []map[string]any, opts RunOptions) (map[string]any, error) {
	now := opts.now()
	docs := records
	if m := q.filter.bind(now); m != nil {
		docs = make([]map[string]any, 0, 64)
		for _, r := range records {
			if m(r) {
				docs = append(docs, r)
			}
		}
	}
	if q.stages == nil {
		if q.distinct == nil { // zero StatisticsQuery
			return map[string]any{"results": []any{}}, nil
		}
		return q.distinctAnswer(distinctValues(docs, q.distinct)), nil
	}
	for _, st := range q.stages {
		docs = st.apply(docs, now)
	}
	return q.answer(docs), nil
}

// distinctAnswer is the answer of a distinct query: the page of its values.
func (q *StatisticsQuery) distinctAnswer(vals []any) map[string]any {
	res := map[string]any{}
	if q.hasPage {
		res["total_count"] = len(vals)
	}
	lo, hi := pageBounds(len(vals), q.start, q.limit)
	res["results"] = vals[lo:hi]
	return res
}

// answer is the answer of an aggregation: the page of the last stage's
// documents.
func (q *StatisticsQuery) answer(docs []map[string]any) map[string]any {
	res := map[string]any{}
	if q.hasPage {
		res["total_count"] = len(docs)
	}
	lo, hi := pageBounds(len(docs), q.start, q.limit)
	out := make([]map[string]any, hi-lo)
	copy(out, docs[lo:hi])
	res["results"] = out
	return res
}

// Match reports whether the record satisfies the query's filter and
// filter_or, with relative times taken from time.Now.
func (q *StatisticsQuery) Match(record map[string]any) bool {
	m := q.filter.bind(time.Now().UTC())
	return m == nil || m(record)
}

// distinctValues follows MongoDB's distinct: the elements of list values
// count individually; null and missing values are left out. The values are
// sorted (numbers < strings < objects < booleans).
func distinctValues(docs []map[string]any, p *path) []any {
	d := newDistinctSet()
	for _, doc := range docs {
		p.walk(doc, 0, d.fn)
	}
	return d.sorted()
}

// distinctSet collects the values a path walk offers (fn), as distinct
// does.
type distinctSet struct {
	seen map[string]struct{}
	out  []any
	buf  []byte
	fn   test
}

func newDistinctSet() *distinctSet {
	d := &distinctSet{seen: map[string]struct{}{}, out: []any{}}
	d.fn = func(v any, present bool) bool {
		if !present || v == nil {
			return false
		}
		if _, isArr := v.([]any); isArr {
			return false
		}
		d.buf = appendCanon(d.buf[:0], v)
		if _, dup := d.seen[string(d.buf)]; !dup {
			d.seen[string(d.buf)] = struct{}{}
			d.out = append(d.out, v)
		}
		return false
	}
	return d
}

func (d *distinctSet) sorted() []any {
	sort.SliceStable(d.out, func(i, j int) bool { return compareValues(d.out[i], d.out[j]) < 0 })
	return d.out
}
