package query

import "strings"

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
