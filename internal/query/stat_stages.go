package query

import (
	"sort"
	"time"
)

// stage is one stage of an aggregate pipeline: it maps the documents the
// previous stage gave (the matching records, for the first one) to its own.
// The stages that filter, sort or group documents run them through the
// table executor, as a Table without columns (docsRun).
type stage interface {
	apply(docs []map[string]any, now time.Time) []map[string]any
}

// ---- unwind

type unwindStage struct{ path *path }

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
	r := docsRun(docs)
	m := r.filter(&s.filter, now)
	if m == nil {
		return docs
	}
	return r.records(r.allRows(m))
}

// ---- sort / skip / limit / count

type sortStage struct{ keys []sortKey }

func (s *sortStage) apply(docs []map[string]any, _ time.Time) []map[string]any {
	r := docsRun(docs)
	return r.records(r.sortRows(r.allRows(nil), s.keys, len(docs)))
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

type groupState struct {
	keys []any
	accs []accumulator
}

// apply groups documents by the values of the keys (a missing key groups
// with null; date_format keys by the formatted date, null when the value is
// not a datetime). Groups come out in the order of their first document.
// Empty input gives no group, as in MongoDB.
func (g *groupStage) apply(docs []map[string]any, _ time.Time) []map[string]any {
	r := docsRun(docs)
	return r.group(g, r.allRows(nil))
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

// ---- the answer

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

// ---- distinct

// distinctSet collects the values a path walk offers (fn) as MongoDB's
// distinct does: the elements of list values count individually; null and
// missing values are left out. sorted orders them (numbers < strings <
// objects < booleans).
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
