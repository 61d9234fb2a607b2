package query

import (
	"sort"
	"strings"
	"time"
)

// Sorting: the keys records and documents are ordered by, and the stable
// selection of the first ones.

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
