package query

// groupField is a compiled group field: an accumulator operator over a key
// (or push's fields), with SpaceONE's optional conditions.
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

// doc is what an accumulator reads a document through: a row of a Table
// (rowDoc).
type doc interface {
	// get resolves a path as path.get does from the document's top.
	get(p *path) (any, bool)
}

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
