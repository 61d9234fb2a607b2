package query

import (
	"sort"
	"strings"
	"time"
)

// Query is a parsed SpaceONE Query (the "query" parameter of list APIs).
//
// JSON shape:
//
//	{"filter": [{"k": "status", "v": "SUCCESS", "o": "eq"}, ...],
//	 "filter_or": [...],
//	 "sort": [{"key": "created_at", "desc": true}],  // or one {"key", "desc"} object
//	 "page": {"start": 1, "limit": 10},
//	 "only": ["job_id", "status"],
//	 "minimal": false, "count_only": false, "keyword": "abc"}
//
// Unknown top-level fields are ignored.
type Query struct {
	filter    filter
	sort      []sortKey
	start     int // 1-based
	limit     int // 0: no limit
	only      []*path
	countOnly bool
	minimal   bool
	keyword   string // lower-cased
}

type sortKey struct {
	path *path
	desc bool
}

// RunOptions are the caller-side settings of a run (Run, RunTable, Matcher).
type RunOptions struct {
	// KeywordFields are the (dotted) keys searched by the query's
	// "keyword": a record matches when one of them holds a string that
	// contains the keyword, ignoring case. With no keyword fields a
	// non-empty keyword matches nothing.
	KeywordFields []string
	// MinimalFields are the keys returned when the query sets "minimal".
	// When empty, "minimal" has no effect.
	MinimalFields []string
	// Now is the clock for relative times ("now/d", "now-7d"). Defaults to
	// time.Now.
	Now func() time.Time
}

func (o RunOptions) now() time.Time {
	if o.Now != nil {
		return o.Now().UTC()
	}
	return time.Now().UTC()
}

// ParseQuery parses a JSON-encoded Query. Empty input and "null" are the
// empty query (everything, in input order).
func ParseQuery(raw []byte) (*Query, error) {
	m, err := parseJSONObject(raw)
	if err != nil {
		return nil, err
	}
	q, qerr := newQuery(m)
	if qerr != nil {
		return nil, qerr
	}
	return q, nil
}

// NewQuery builds a Query from its decoded JSON form. A nil map is the
// empty query.
func NewQuery(m map[string]any) (*Query, error) {
	q, err := newQuery(m)
	if err != nil {
		return nil, err
	}
	return q, nil
}

func newQuery(m map[string]any) (*Query, *Error) {
	q := &Query{start: 1}
	var err *Error
	if q.filter, err = compileFilter(m, "query"); err != nil {
		return nil, err
	}
	if q.sort, err = parseSort(m["sort"], "query.sort"); err != nil {
		return nil, err
	}
	if _, ok := m["page"]; ok {
		if q.start, q.limit, err = parsePage(m["page"], "query.page"); err != nil {
			return nil, err
		}
	}
	if q.only, err = parseOnly(m["only"], "query.only"); err != nil {
		return nil, err
	}
	if q.countOnly, err = asBool(m["count_only"], "query.count_only"); err != nil {
		return nil, err
	}
	if q.minimal, err = asBool(m["minimal"], "query.minimal"); err != nil {
		return nil, err
	}
	switch kw := m["keyword"].(type) {
	case nil:
	case string:
		q.keyword = strings.ToLower(strings.TrimSpace(kw))
	default:
		return nil, errorf("query.keyword", "must be a string")
	}
	return q, nil
}

// parseSort accepts a list of {"key", "desc"} objects or a single one
// (the older SpaceONE form).
func parseSort(v any, key string) ([]sortKey, *Error) {
	var items []any
	var keys []string
	switch s := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		if len(s) == 0 {
			return nil, nil
		}
		items, keys = []any{s}, []string{key}
	case []any:
		items = s
		for i := range s {
			keys = append(keys, indexKey(key, i))
		}
	default:
		return nil, errorf(key, "must be a list of {key, desc} objects")
	}
	out := make([]sortKey, 0, len(items))
	for i, it := range items {
		sk, err := parseSortItem(it, keys[i])
		if err != nil {
			return nil, err
		}
		out = append(out, sk)
	}
	return out, nil
}

func parseSortItem(v any, key string) (sortKey, *Error) {
	m, err := asObject(v, key)
	if err != nil {
		return sortKey{}, err
	}
	kv, kname, ok := field(m, "key", "k")
	if !ok || kv == nil {
		return sortKey{}, errorf(key+".key", "sort key is required")
	}
	ks, isStr := kv.(string)
	if !isStr {
		return sortKey{}, errorf(key+"."+kname, "must be a string")
	}
	p, err := parsePath(ks, key+"."+kname)
	if err != nil {
		return sortKey{}, err
	}
	desc, err := asBool(m["desc"], key+".desc")
	if err != nil {
		return sortKey{}, err
	}
	return sortKey{path: p, desc: desc}, nil
}

// parsePage reads {"start": 1, "limit": 10}: start is 1-based (default 1),
// limit 0 (the default) means no limit.
func parsePage(v any, key string) (start, limit int, err *Error) {
	if v == nil {
		return 1, 0, nil
	}
	m, err := asObject(v, key)
	if err != nil {
		return 0, 0, err
	}
	start, limit = 1, 0
	if s, ok := m["start"]; ok && s != nil {
		if start, err = asInt(s, key+".start", 1); err != nil {
			return 0, 0, err
		}
	}
	if l, ok := m["limit"]; ok && l != nil {
		if limit, err = asInt(l, key+".limit", 0); err != nil {
			return 0, 0, err
		}
	}
	return start, limit, nil
}

// parseOnly reads a list of dotted keys; a key that extends another one
// ("a.b" with "a") is dropped, as SpaceONE does.
func parseOnly(v any, key string) ([]*path, *Error) {
	l, err := asList(v, key)
	if err != nil {
		return nil, err
	}
	raws := make([]string, 0, len(l))
	for i, el := range l {
		s, ok := el.(string)
		if !ok {
			return nil, errorf(indexKey(key, i), "must be a string")
		}
		if _, err := parsePath(s, indexKey(key, i)); err != nil {
			return nil, err
		}
		raws = append(raws, s)
	}
	return compileOnly(raws)
}

func compileOnly(raws []string) ([]*path, *Error) {
	if len(raws) == 0 {
		return nil, nil
	}
	sorted := append([]string(nil), raws...)
	sort.Strings(sorted)
	// After sorting, a key's extensions ("a.b" for "a") follow it, possibly
	// interleaved with siblings such as "a-b"; check against every kept
	// prefix that is still a prefix.
	keep := make([]string, 0, len(sorted))
	kept := map[string]bool{}
	for _, s := range sorted {
		if kept[s] {
			continue
		}
		dup := false
		for i := 0; i < len(s); i++ {
			if s[i] == '.' && kept[s[:i]] {
				dup = true
				break
			}
		}
		if !dup {
			kept[s] = true
			keep = append(keep, s)
		}
	}
	// Keep the caller's order for the output.
	out := make([]*path, 0, len(keep))
	seen := map[string]bool{}
	for _, s := range raws {
		if kept[s] && !seen[s] {
			seen[s] = true
			p, err := parsePath(s, "query.only")
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// pageBounds returns the [lo, hi) window of a 1-based page.
func pageBounds(n, start, limit int) (int, int) {
	lo := start - 1
	if lo < 0 {
		lo = 0
	}
	if lo > n {
		lo = n
	}
	hi := n
	if limit > 0 && limit < n-lo {
		hi = lo + limit
	}
	return lo, hi
}

// project returns a new record holding only the given paths (MongoDB
// projection semantics: lists are projected element by element).
func project(rec map[string]any, paths []*path) map[string]any {
	out := make(map[string]any, len(paths))
	for _, p := range paths {
		projectInto(out, rec, p, 0)
	}
	return out
}

func projectInto(dst, src map[string]any, p *path, i int) {
	v, key, next, ok := p.step(src, i)
	if !ok {
		return
	}
	if next == len(p.segs) {
		dst[key] = v
		return
	}
	switch t := v.(type) {
	case map[string]any:
		sub, _ := dst[key].(map[string]any)
		if sub == nil {
			sub = map[string]any{}
			dst[key] = sub
		}
		projectInto(sub, t, p, next)
	case []any:
		var elems []map[string]any
		for _, el := range t {
			if m, ok := el.(map[string]any); ok {
				elems = append(elems, m)
			}
		}
		existing, _ := dst[key].([]any)
		if len(existing) != len(elems) {
			existing = make([]any, len(elems))
			for j := range existing {
				existing[j] = map[string]any{}
			}
			dst[key] = existing
		}
		for j, m := range elems {
			sub, _ := existing[j].(map[string]any)
			if sub == nil {
				sub = map[string]any{}
				existing[j] = sub
			}
			projectInto(sub, m, p, next)
		}
	}
}
