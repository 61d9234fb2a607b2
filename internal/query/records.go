package query

import "time"

// Queries over records given as maps. These are adapters: the records are
// laid out as a Table without columns, in index order, and run by the table
// executor (tableRun), as the documents between aggregate stages are.

// recordsRun is a run over recs as given: a Table without columns whose
// records are recs themselves, in index order.
func recordsRun(recs []map[string]any) (*tableRun, error) {
	r, err := newTableRun(&Table{Len: len(recs), Record: func(i int) map[string]any { return recs[i] }})
	if err != nil {
		return nil, err
	}
	r.maps, r.given = recs, true
	return r, nil
}

// docsRun is recordsRun over the documents of an aggregate stage, which are
// far fewer than a Table's int32 row indexes can count.
func docsRun(docs []map[string]any) *tableRun {
	return &tableRun{t: &Table{Len: len(docs)}, maps: docs, given: true}
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
	r, err := recordsRun(records)
	if err != nil {
		return nil, 0, err
	}
	res, err := q.run(r, opts)
	if err != nil {
		return nil, 0, err
	}
	if res.Trimmed != nil {
		return res.Trimmed, res.Total, nil
	}
	out := make([]map[string]any, len(res.Rows))
	for k, i := range res.Rows {
		out[k] = records[i]
	}
	return out, res.Total, nil
}

// Match reports whether the record satisfies the query's filter and
// filter_or (not its keyword), with relative times taken from time.Now.
func (q *Query) Match(record map[string]any) bool {
	return matchRecord(&q.filter, record, time.Now().UTC())
}

// Matcher returns the predicate that Run applies to each record: filter,
// filter_or and keyword, with relative times resolved once against
// opts.Now. Use it to test many records.
func (q *Query) Matcher(opts RunOptions) (func(record map[string]any) bool, error) {
	// Check the keyword fields once, on no record.
	if _, err := q.matcher(docsRun(nil), opts); err != nil {
		return nil, err
	}
	now := opts.now()
	opts.Now = func() time.Time { return now }
	return func(record map[string]any) bool {
		m, _ := q.matcher(docsRun([]map[string]any{record}), opts)
		return m == nil || m(0)
	}, nil
}

// Run applies the statistics query to records and returns
// {"results": [...]} plus "total_count" (the number of results before
// paging) when the query has a page. Aggregation results are
// []map[string]any; distinct results are []any. All numbers produced by the
// engine (counts, sums...) are float64, like encoding/json's.
func (q *StatisticsQuery) Run(records []map[string]any, opts RunOptions) (map[string]any, error) {
	r, err := recordsRun(records)
	if err != nil {
		return nil, err
	}
	return q.run(r, opts), nil
}

// Match reports whether the record satisfies the query's filter and
// filter_or, with relative times taken from time.Now.
func (q *StatisticsQuery) Match(record map[string]any) bool {
	return matchRecord(&q.filter, record, time.Now().UTC())
}

func matchRecord(f *filter, record map[string]any, now time.Time) bool {
	m := docsRun([]map[string]any{record}).filter(f, now)
	return m == nil || m(0)
}
