package query

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
)

// Table is a set of records that the engine reads through typed columns
// instead of maps, so that a query over many records builds no map per
// record: filters, keyword, sort keys and group keys on a column read it
// directly, and only the records whose other keys a query needs (nested
// paths under a non-Value column's siblings, keys that are not columns,
// trimmed results) are built, once per run, with Record.
//
// Query.RunTable and StatisticsQuery.RunTable over a Table give the answers
// Run gives over the records Record builds, taken in the order Compare
// defines.
type Table struct {
	// Len is the number of records, indexed from 0.
	Len int
	// Columns are top-level keys that every record has, with how to read
	// their values.
	Columns map[string]Column
	// Record returns record i as a map (see the package doc). It must hold
	// every column's value as the column reads it (a String column's
	// string, a Number column's float64, a Value column's value) and may
	// hold other keys. The engine never modifies it.
	Record func(i int) map[string]any
	// Compare is the records' order, a strict total order over 0..Len-1:
	// the order in which Run would be given the records (it breaks sort
	// ties, orders unsorted pages and groups). Nil means index order.
	Compare func(i, j int) int
}

// Column reads one key of every record. Exactly one of String, Number and
// Value is set.
type Column struct {
	// String reads a string.
	String func(i int) string
	// Time, with String and optional, is a shortcut for datetime strings:
	// when it reports ok, String(i) must be an ISO 8601 datetime that
	// stands for t. When it does not, the engine parses String(i).
	Time func(i int) (t time.Time, ok bool)
	// Number reads a number (a float64 in the record).
	Number func(i int) float64
	// Value reads any JSON-like value (strings, float64, bool, nil, []any,
	// map[string]any), e.g. a decoded object that nested paths go into.
	Value func(i int) any
}

func (c *Column) value(i int) any {
	switch {
	case c.String != nil:
		return c.String(i)
	case c.Number != nil:
		return c.Number(i)
	}
	return c.Value(i)
}

// time is toTime of a String column's value.
func (c *Column) time(i int) (time.Time, bool) {
	if c.Time != nil {
		if t, ok := c.Time(i); ok {
			return t.UTC(), true
		}
	}
	return parseDateTime(c.String(i))
}

// TableResult is the answer of Query.RunTable.
type TableResult struct {
	// Rows are the page's records, in order.
	Rows []int
	// Trimmed, when the query trims its results ("only", "minimal"), holds
	// the trimmed record of each row; nil otherwise.
	Trimmed []map[string]any
	// Total is the number of matching records before paging.
	Total int
}

// tableRun is one run over a Table: its columns and the records built so
// far. It is the package's one executor: Run over records and the stages of
// an aggregate pipeline run through it too, over a Table without columns
// whose records are given as maps (recordsRun, docsRun).
type tableRun struct {
	t    *Table
	cols map[string]*Column
	maps []map[string]any
	// given: maps are the records themselves, as the caller gave them (a nil
	// map stays nil), rather than the ones Record built so far.
	given bool
}

func newTableRun(t *Table) (*tableRun, error) {
	if t == nil || t.Record == nil {
		return nil, errors.New("query: a Table needs Record")
	}
	if t.Len < 0 || t.Len > math.MaxInt32 {
		return nil, fmt.Errorf("query: a Table of %d records", t.Len)
	}
	r := &tableRun{t: t, cols: make(map[string]*Column, len(t.Columns))}
	for name, c := range t.Columns {
		n := 0
		for _, set := range []bool{c.String != nil, c.Number != nil, c.Value != nil} {
			if set {
				n++
			}
		}
		if n != 1 || (c.Time != nil && c.String == nil) {
			return nil, fmt.Errorf("query: column %q must read exactly one of a string (with an optional time), a number or a value", name)
		}
		r.cols[name] = &c
	}
	return r, nil
}

// record is record i as a map, built once per run.
func (r *tableRun) record(i int32) map[string]any {
	if r.given {
		return r.maps[i]
	}
	if r.maps == nil {
		r.maps = make([]map[string]any, r.t.Len)
	}
	m := r.maps[i]
	if m == nil {
		if m = r.t.Record(int(i)); m == nil {
			m = map[string]any{}
		}
		r.maps[i] = m
	}
	return m
}

func (r *tableRun) records(rows []int32) []map[string]any {
	out := make([]map[string]any, len(rows))
	for k, i := range rows {
		out[k] = r.record(i)
	}
	return out
}

// column is the column a path starts with, or nil. A column is a key of
// every record, so that resolving the path from the record's top and from
// the column's value (at segment 1) are the same.
func (r *tableRun) column(p *path) *Column {
	return r.cols[p.segs[0]]
}

// walk is p.walk over record i.
func (r *tableRun) walk(p *path, i int32, fn test) bool {
	if c := r.column(p); c != nil {
		return p.walk(c.value(int(i)), 1, fn)
	}
	return p.walk(r.record(i), 0, fn)
}

// get is p.get over record i.
func (r *tableRun) get(p *path, i int32) (any, bool) {
	if c := r.column(p); c != nil {
		return p.get(c.value(int(i)), 1)
	}
	return p.get(r.record(i), 0)
}

// pred is the record predicate "p.walk(record, 0, t)": str and num (or dt
// for datetime tests) are t for a present string and number, used when p is
// a String or Number column.
func (r *tableRun) pred(p *path, t test, str func(string) bool, num func(float64) bool, dt func(time.Time) bool) func(int32) bool {
	col := r.column(p)
	switch {
	case col == nil || col.Value != nil:
		return func(i int32) bool { return r.walk(p, i, t) }
	case len(p.segs) > 1:
		// A path below a string or a number resolves to nothing.
		res := t(nil, false)
		return func(int32) bool { return res }
	case col.String != nil && dt != nil:
		return func(i int32) bool {
			rt, ok := col.time(int(i))
			return ok && dt(rt)
		}
	case col.String != nil && str != nil:
		get := col.String
		return func(i int32) bool { return str(get(int(i))) }
	case col.Number != nil && dt != nil:
		return func(int32) bool { return false }
	case col.Number != nil && num != nil:
		get := col.Number
		return func(i int32) bool { return num(get(int(i))) }
	}
	return func(i int32) bool { return r.walk(p, i, t) }
}

func (r *tableRun) condition(c *condition, now time.Time) func(int32) bool {
	var dt func(time.Time) bool
	if c.isDT {
		dt = c.dtTest(now)
	}
	m := r.pred(c.path, c.boundTest(now), c.str, c.num, dt)
	if c.negate {
		return func(i int32) bool { return !m(i) }
	}
	return m
}

// filter is the predicate of f (and of the extra predicates, e.g. the
// keyword search, which are ANDed) over the table's records, with relative
// times resolved against now: nil when everything matches.
func (r *tableRun) filter(f *filter, now time.Time, extra ...func(int32) bool) func(int32) bool {
	if f.empty() && len(extra) == 0 {
		return nil
	}
	and := make([]func(int32) bool, 0, len(f.and)+len(extra))
	for _, c := range f.and {
		and = append(and, r.condition(c, now))
	}
	and = append(and, extra...)
	or := make([]func(int32) bool, 0, len(f.or))
	for _, c := range f.or {
		or = append(or, r.condition(c, now))
	}
	return func(i int32) bool {
		for _, m := range and {
			if !m(i) {
				return false
			}
		}
		if len(or) == 0 {
			return true
		}
		for _, m := range or {
			if m(i) {
				return true
			}
		}
		return false
	}
}

func (r *tableRun) keyword(lowerKeyword string, fields []string) (func(int32) bool, error) {
	t := containTest([]string{lowerKeyword})
	str := containString([]string{lowerKeyword})
	preds := make([]func(int32) bool, 0, len(fields))
	for _, f := range fields {
		p, err := parsePath(f, "keyword_fields")
		if err != nil {
			return nil, fmt.Errorf("query: invalid keyword field %q: %s", f, err.Message)
		}
		preds = append(preds, r.pred(p, t, str, never, nil))
	}
	return func(i int32) bool {
		for _, m := range preds {
			if m(i) {
				return true
			}
		}
		return false
	}, nil
}

// allRows lists the records m keeps (all when m is nil), in index order.
func (r *tableRun) allRows(m func(int32) bool) []int32 {
	if m == nil {
		rows := make([]int32, r.t.Len)
		for i := range rows {
			rows[i] = int32(i)
		}
		return rows
	}
	rows := make([]int32, 0, 64)
	for i := 0; i < r.t.Len; i++ {
		if m(int32(i)) {
			rows = append(rows, int32(i))
		}
	}
	return rows
}

// keep keeps the rows m keeps.
func keep(rows []int32, m func(int32) bool) []int32 {
	if m == nil {
		return rows
	}
	out := make([]int32, 0, len(rows))
	for _, i := range rows {
		if m(i) {
			out = append(out, i)
		}
	}
	return out
}

// inOrder returns rows in the table's order, at least the first need of
// them.
func (r *tableRun) inOrder(rows []int32, need int) []int32 {
	if r.t.Compare == nil {
		return rows
	}
	idx := sortedIndexes(len(rows), need, func(a, b int32) int {
		return r.t.Compare(int(rows[a]), int(rows[b]))
	})
	out := make([]int32, len(idx))
	for k, ix := range idx {
		out[k] = rows[ix]
	}
	return out
}

// sortRows orders rows by keys (a stable sort: records that compare equal
// keep the table's order), and returns at least the first need of them.
func (r *tableRun) sortRows(rows []int32, keys []sortKey, need int) []int32 {
	n, nk := len(rows), len(keys)
	vals := make([]sortVal, n*nk)
	for j, k := range keys {
		ex := r.sortExtractor(k)
		for x, i := range rows {
			vals[x*nk+j] = ex(i)
		}
	}
	cmp := sortValsCmp(vals, keys)
	if order := r.t.Compare; order != nil {
		byKeys := cmp
		cmp = func(a, b int32) int {
			if c := byKeys(a, b); c != 0 {
				return c
			}
			return order(int(rows[a]), int(rows[b]))
		}
	}
	idx := sortedIndexes(n, need, cmp)
	out := make([]int32, len(idx))
	for k, ix := range idx {
		out[k] = rows[ix]
	}
	return out
}

// sortExtractor reads the sort key k of the table's records.
func (r *tableRun) sortExtractor(k sortKey) func(int32) sortVal {
	p := k.path
	col := r.column(p)
	if col != nil && len(p.segs) == 1 {
		switch {
		case col.String != nil:
			return func(i int32) sortVal {
				if col.Time != nil {
					if t, ok := col.Time(int(i)); ok {
						return sortVal{rank: rankDate, t: t}
					}
				}
				return stringSortVal(col.String(int(i)))
			}
		case col.Number != nil:
			return func(i int32) sortVal { return sortVal{rank: rankNumber, f: col.Number(int(i))} }
		}
	}
	ex := newSortKeyExtractor(k)
	if col != nil {
		return func(i int32) sortVal { return ex.extractFrom(col.value(int(i)), 1) }
	}
	return func(i int32) sortVal { return ex.extract(r.record(i)) }
}

// RunTable is Run over a Table's records.
func (q *Query) RunTable(t *Table, opts RunOptions) (TableResult, error) {
	r, err := newTableRun(t)
	if err != nil {
		return TableResult{}, err
	}
	return q.run(r, opts)
}

// matcher is the predicate of the query's filter, filter_or and keyword over
// r's records, nil when everything matches.
func (q *Query) matcher(r *tableRun, opts RunOptions) (func(int32) bool, error) {
	var extra []func(int32) bool
	if q.keyword != "" {
		kw, err := r.keyword(q.keyword, opts.KeywordFields)
		if err != nil {
			return nil, err
		}
		extra = append(extra, kw)
	}
	return r.filter(&q.filter, opts.now(), extra...), nil
}

// run is RunTable over r.
func (q *Query) run(r *tableRun, opts RunOptions) (TableResult, error) {
	m, err := q.matcher(r, opts)
	if err != nil {
		return TableResult{}, err
	}
	rows := r.allRows(m)
	total := len(rows)
	if q.countOnly {
		return TableResult{Rows: []int{}, Total: total}, nil
	}
	lo, hi := pageBounds(total, q.start, q.limit)
	var page []int32
	switch {
	case lo == hi: // an empty page: nothing to order
	case len(q.sort) > 0:
		page = r.sortRows(rows, q.sort, hi)[lo:hi]
	default:
		page = r.inOrder(rows, hi)[lo:hi]
	}
	only := q.only
	if q.minimal && len(opts.MinimalFields) > 0 {
		var e *Error
		if only, e = compileOnly(opts.MinimalFields); e != nil {
			return TableResult{}, fmt.Errorf("query: invalid minimal field: %s", e.Message)
		}
	}
	res := TableResult{Rows: make([]int, len(page)), Total: total}
	for k, i := range page {
		res.Rows[k] = int(i)
	}
	if len(only) > 0 {
		res.Trimmed = make([]map[string]any, len(page))
		for k, i := range page {
			res.Trimmed[k] = project(r.record(i), only)
		}
	}
	return res, nil
}

// RunTable is Run over a Table's records. The filter, leading match stages
// and a group stage after them read the table; the stages after the group
// (or, without a group there, from the first other stage on) run over the
// documents the previous stage gave, as maps.
func (q *StatisticsQuery) RunTable(t *Table, opts RunOptions) (map[string]any, error) {
	r, err := newTableRun(t)
	if err != nil {
		return nil, err
	}
	return q.run(r, opts), nil
}

// run is RunTable over r.
func (q *StatisticsQuery) run(r *tableRun, opts RunOptions) map[string]any {
	now := opts.now()
	rows := r.allRows(r.filter(&q.filter, now))
	if q.stages == nil {
		if q.distinct == nil { // zero StatisticsQuery
			return map[string]any{"results": []any{}}
		}
		return q.distinctAnswer(r.distinct(rows, q.distinct))
	}
	stages := q.stages
	for len(stages) > 0 {
		m, ok := stages[0].(*matchStage)
		if !ok {
			break
		}
		rows = keep(rows, r.filter(&m.filter, now))
		stages = stages[1:]
	}
	var docs []map[string]any
	if g, ok := firstStage(stages).(*groupStage); ok {
		docs = r.group(g, rows)
		stages = stages[1:]
	} else {
		docs = r.records(r.inOrder(rows, len(rows)))
	}
	for _, st := range stages {
		docs = st.apply(docs, now)
	}
	return q.answer(docs)
}

func firstStage(stages []stage) stage {
	if len(stages) == 0 {
		return nil
	}
	return stages[0]
}

// distinct is the answer of a distinct query over rows: the values the
// path designates (see distinctSet), sorted.
func (r *tableRun) distinct(rows []int32, p *path) []any {
	if col := r.column(p); col != nil && col.String != nil && len(p.segs) == 1 {
		// Strings: the same values whatever the order they come in.
		seen := map[string]struct{}{}
		var strs []string
		for _, i := range rows {
			s := col.String(int(i))
			if _, dup := seen[s]; !dup {
				seen[s] = struct{}{}
				strs = append(strs, s)
			}
		}
		sort.Strings(strs)
		out := make([]any, len(strs))
		for k, s := range strs {
			out[k] = s
		}
		return out
	}
	d := newDistinctSet()
	for _, i := range r.inOrder(rows, len(rows)) {
		r.walk(p, i, d.fn)
	}
	return d.sorted()
}

// rowDoc is a record of a Table as an accumulator reads it.
type rowDoc struct {
	r *tableRun
	i int32
}

func (d *rowDoc) get(p *path) (any, bool) { return d.r.get(p, d.i) }

// tableGroup is a group and its first record in the table's order.
type tableGroup struct {
	groupState
	first int32
}

// group is the group stage g over rows. When every field is a count (whose
// result does not depend on the order of the records) the rows are taken in
// index order and each group remembers its first record in the table's
// order; otherwise they are taken in the table's order.
func (r *tableRun) group(g *groupStage, rows []int32) []map[string]any {
	orderFree := true
	for i := range g.fields {
		orderFree = orderFree && g.fields[i].op == "count"
	}
	order := r.t.Compare
	if !orderFree {
		rows = r.inOrder(rows, len(rows))
		order = nil
	}
	enc := make([]func([]byte, int32) []byte, len(g.keys))
	val := make([]func(int32) any, len(g.keys))
	for j, k := range g.keys {
		enc[j], val[j] = r.groupKey(k)
	}
	groups := map[string]*tableGroup{}
	var states []*tableGroup
	var buf []byte
	d := &rowDoc{r: r}
	for _, i := range rows {
		buf = buf[:0]
		for _, e := range enc {
			buf = e(buf, i)
		}
		st := groups[string(buf)]
		if st == nil {
			st = &tableGroup{first: i, groupState: groupState{keys: make([]any, len(g.keys)), accs: make([]accumulator, len(g.fields))}}
			for j := range g.fields {
				st.accs[j] = g.fields[j].newAccumulator()
			}
			groups[string(buf)] = st
			states = append(states, st)
		} else if order != nil && order(int(i), int(st.first)) < 0 {
			st.first = i
		}
		d.i = i
		for _, a := range st.accs {
			a.add(d)
		}
	}
	if order != nil {
		sort.Slice(states, func(a, b int) bool { return order(int(states[a].first), int(states[b].first)) < 0 })
	}
	out := make([]*groupState, len(states))
	for k, st := range states {
		// A group's keys are its first record's values.
		for j := range g.keys {
			st.keys[j] = val[j](st.first)
		}
		out[k] = &st.groupState
	}
	return g.output(out)
}

// groupKey returns how a group key reads a record: its canonical encoding
// (appendCanon of its value) and its value.
func (r *tableRun) groupKey(k groupKey) (func([]byte, int32) []byte, func(int32) any) {
	p, df := k.path, k.df
	col := r.column(p)
	if col != nil && len(p.segs) == 1 {
		switch {
		case col.String != nil && df == nil:
			return func(b []byte, i int32) []byte { return appendCanonString(b, col.String(int(i))) },
				func(i int32) any { return col.String(int(i)) }
		case col.Number != nil && df == nil:
			return func(b []byte, i int32) []byte { return appendCanonFloat(b, col.Number(int(i))) },
				func(i int32) any { return col.Number(int(i)) }
		case col.String != nil:
			var scratch []byte
			return func(b []byte, i int32) []byte {
					t, ok := col.time(int(i))
					if !ok {
						return append(b, 'z')
					}
					if df.special != "" {
						return appendCanonFloat(b, df.number(t))
					}
					scratch = df.appendFormat(scratch[:0], t)
					return appendCanonBytes(b, scratch)
				}, func(i int32) any {
					t, ok := col.time(int(i))
					if !ok {
						return nil
					}
					return df.format(t)
				}
		}
	}
	value := func(i int32) any {
		v, ok := r.get(p, i)
		if !ok {
			v = nil
		}
		if df != nil {
			v = df.apply(v)
		}
		return v
	}
	return func(b []byte, i int32) []byte { return appendCanon(b, value(i)) }, value
}
