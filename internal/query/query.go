package query

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// RunOptions are the caller-side settings of a Run.
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

// Match reports whether the record satisfies the query's filter and
// filter_or (not its keyword), with relative times taken from time.Now.
func (q *Query) Match(record map[string]any) bool {
	m := q.filter.bind(time.Now().UTC())
	return m == nil || m(record)
}

// Matcher returns the predicate that Run applies to each record: filter,
// filter_or and keyword, with relative times resolved once against
// opts.Now. Use it to test many records.
func (q *Query) Matcher(opts RunOptions) (func(record map[string]any) bool, error) {
	m, err := q.matcher(opts)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return func(map[string]any) bool { return true }, nil
	}
	return m, nil
}

func (q *Query) matcher(opts RunOptions) (func(map[string]any) bool, error) {
	var extra []func(map[string]any) bool
	if q.keyword != "" {
		kw, err := keywordMatcher(q.keyword, opts.KeywordFields)
		if err != nil {
			return nil, err
		}
		extra = append(extra, kw)
	}
	return q.filter.bind(opts.now(), extra...), nil
}

func keywordMatcher(lowerKeyword string, fields []string) (func(map[string]any) bool, error) {
	paths := make([]*path, 0, len(fields))
	for _, f := range fields {
		p, err := parsePath(f, "keyword_fields")
		if err != nil {
			return nil, fmt.Errorf("query: invalid keyword field %q: %s", f, err.Message)
		}
		paths = append(paths, p)
	}
	t := containTest([]string{lowerKeyword})
	return func(rec map[string]any) bool {
		for _, p := range paths {
			if p.walk(rec, 0, t) {
				return true
			}
		}
		return false
	}, nil
}

// Run applies the query to records. It returns the page of matching
// records (sorted, paged, and trimmed to "only"/"minimal" keys) and the
// number of matching records before paging. With count_only the results
// are empty. Results not trimmed by "only" are the caller's record maps.
//
// Sorting is stable (records that compare equal keep their input order);
// missing and null values sort last whatever the direction; a list sorts
// by its smallest element ascending and its largest descending; values of
// different types are ordered numbers < strings < objects < lists <
// booleans < datetimes, where a datetime is an ISO 8601 string (compared
// chronologically, whatever its precision or zone).
func (q *Query) Run(records []map[string]any, opts RunOptions) ([]map[string]any, int, error) {
	m, err := q.matcher(opts)
	if err != nil {
		return nil, 0, err
	}
	matched := records
	if m != nil {
		matched = make([]map[string]any, 0, 64)
		for _, rec := range records {
			if m(rec) {
				matched = append(matched, rec)
			}
		}
	}
	total := len(matched)
	if q.countOnly {
		return []map[string]any{}, total, nil
	}
	lo, hi := pageBounds(total, q.start, q.limit)
	var page []map[string]any
	if len(q.sort) > 0 {
		page = sortRecords(matched, q.sort, hi)[lo:hi]
	} else {
		page = matched[lo:hi]
	}
	only := q.only
	if q.minimal && len(opts.MinimalFields) > 0 {
		var e *Error
		if only, e = compileOnly(opts.MinimalFields); e != nil {
			return nil, 0, fmt.Errorf("query: invalid minimal field: %s", e.Message)
		}
	}
	out := make([]map[string]any, len(page))
	if len(only) > 0 {
		for i, rec := range page {
			out[i] = project(rec, only)
		}
	} else {
		copy(out, page)
	}
	return out, total, nil
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

// sortVal is a precomputed sort key.
type sortVal struct {
	missing bool
	rank    int
	f       float64
	s       string
	t       time.Time
	v       any
}

func makeSortVal(v any, found bool) sortVal {
	if !found || v == nil {
		return sortVal{missing: true}
	}
	r := rankOf(v)
	sv := sortVal{rank: r, v: v}
	switch r {
	case rankNumber:
		sv.f, _ = toFloat(v)
	case rankString:
		sv.s = v.(string)
		if t, ok := parseDateTime(sv.s); ok { // as stringSortVal
			sv.rank, sv.t = rankDate, t
		}
	case rankDate:
		sv.t = v.(time.Time).UTC()
	}
	return sv
}

// stringSortVal is makeSortVal of a string. ISO 8601 strings sort
// chronologically, as MongoDB sorts the Date fields they stand for; like BSON
// dates they rank after the other types, which keeps the order total.
func stringSortVal(s string) sortVal {
	if t, ok := parseDateTime(s); ok {
		return sortVal{rank: rankDate, t: t}
	}
	return sortVal{rank: rankString, s: s}
}

func compareSortVals(a, b *sortVal) int {
	if a.rank != b.rank {
		return cmpInt(a.rank, b.rank)
	}
	switch a.rank {
	case rankNumber:
		return cmpFloat(a.f, b.f)
	case rankString:
		return strings.Compare(a.s, b.s)
	case rankDate:
		return a.t.Compare(b.t)
	}
	return compareValues(a.v, b.v)
}

// sortKeyExtractor picks, among the candidates of a path, the smallest
// (ascending) or largest (descending) non-null scalar-or-object value.
type sortKeyExtractor struct {
	key   sortKey
	best  any
	found bool
	fn    test
}

func newSortKeyExtractor(k sortKey) *sortKeyExtractor {
	e := &sortKeyExtractor{key: k}
	e.fn = func(v any, present bool) bool {
		if !present || v == nil {
			return false
		}
		if _, isArr := v.([]any); isArr {
			return false
		}
		if !e.found {
			e.best, e.found = v, true
			return false
		}
		c := compareValues(v, e.best)
		if (k.desc && c > 0) || (!k.desc && c < 0) {
			e.best = v
		}
		return false
	}
	return e
}

func (e *sortKeyExtractor) extract(rec map[string]any) sortVal {
	// Fast path: a top-level scalar.
	if len(e.key.path.segs) == 1 {
		if v, ok := rec[e.key.path.segs[0]]; ok {
			switch v.(type) {
			case []any, map[string]any:
			default:
				return makeSortVal(v, true)
			}
		}
	}
	return e.extractFrom(rec, 0)
}

// extractFrom is extract over v, the value met at segment i of the path.
func (e *sortKeyExtractor) extractFrom(v any, i int) sortVal {
	e.best, e.found = nil, false
	e.key.path.walk(v, i, e.fn)
	return makeSortVal(e.best, e.found)
}

// sortRecords returns recs ordered by keys (a stable sort). need is how
// many leading records the caller will use: when it is small compared with
// len(recs) only those are selected (with a bounded heap) and returned, in
// the same order a full stable sort would give. recs is not modified.
func sortRecords(recs []map[string]any, keys []sortKey, need int) []map[string]any {
	n := len(recs)
	nk := len(keys)
	vals := make([]sortVal, n*nk)
	for j, k := range keys {
		ex := newSortKeyExtractor(k)
		for i, rec := range recs {
			vals[i*nk+j] = ex.extract(rec)
		}
	}
	idx := sortedIndexes(n, need, sortValsCmp(vals, keys))
	out := make([]map[string]any, len(idx))
	for i, ix := range idx {
		out[i] = recs[ix]
	}
	return out
}

// sortValsCmp orders indexes by their precomputed sort keys (vals holds
// len(keys) values per index).
func sortValsCmp(vals []sortVal, keys []sortKey) func(a, b int32) int {
	nk := len(keys)
	return func(a, b int32) int {
		ra, rb := int(a)*nk, int(b)*nk
		for j := 0; j < nk; j++ {
			va, vb := &vals[ra+j], &vals[rb+j]
			if va.missing || vb.missing {
				if va.missing && vb.missing {
					continue
				}
				if va.missing { // missing last, whatever the direction
					return 1
				}
				return -1
			}
			c := compareSortVals(va, vb)
			if c == 0 {
				continue
			}
			if keys[j].desc {
				return -c
			}
			return c
		}
		return 0
	}
}

// sortedIndexes orders 0..n-1 by cmp, ties in index order (a stable sort),
// and returns at least the first need of them: when need is small compared
// with n only those are selected, with a bounded heap.
func sortedIndexes(n, need int, cmp func(a, b int32) int) []int32 {
	if need < n/8 {
		return topK(n, need, func(a, b int32) bool {
			if c := cmp(a, b); c != 0 {
				return c < 0
			}
			return a < b // input order breaks ties: same result as a stable sort
		})
	}
	idx := make([]int32, n)
	for i := range idx {
		idx[i] = int32(i)
	}
	sort.SliceStable(idx, func(a, b int) bool { return cmp(idx[a], idx[b]) < 0 })
	return idx
}

// topK returns the k smallest of 0..n-1 under the strict total order less,
// in order, using a bounded max-heap (O(n log k)).
func topK(n, k int, less func(a, b int32) bool) []int32 {
	if k <= 0 {
		return nil
	}
	h := make([]int32, 0, k)
	// siftDown restores the max-heap property from position i.
	siftDown := func(i int) {
		for {
			l := 2*i + 1
			if l >= len(h) {
				return
			}
			big := l
			if r := l + 1; r < len(h) && less(h[l], h[r]) {
				big = r
			}
			if !less(h[i], h[big]) {
				return
			}
			h[i], h[big] = h[big], h[i]
			i = big
		}
	}
	for i := 0; i < n; i++ {
		x := int32(i)
		if len(h) < k {
			h = append(h, x)
			for j := len(h) - 1; j > 0; {
				p := (j - 1) / 2
				if !less(h[p], h[j]) {
					break
				}
				h[p], h[j] = h[j], h[p]
				j = p
			}
			continue
		}
		if less(x, h[0]) {
			h[0] = x
			siftDown(0)
		}
	}
	sort.Slice(h, func(a, b int) bool { return less(h[a], h[b]) })
	return h
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
