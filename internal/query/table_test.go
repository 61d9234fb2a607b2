package query

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Run (over records as maps) is checked against a plain reference implementation
// (reference_test.go), and tables against Run: over the same records, in the same
// order, RunTable must answer exactly as Run whatever the layout (typed columns,
// value columns, a stored order that Compare restores), each of which takes other
// paths through the executor than records without columns do.

// tableMode is how tableOf lays records out.
type tableMode struct {
	name string
	// typed: keys that every record holds as a string (or as a number) become
	// String (Number) columns; other keys every record holds become Value columns.
	typed bool
	// values: every key every record holds becomes a Value column.
	values bool
	// shuffled: the records are stored in a shuffled order and Compare restores
	// theirs.
	shuffled bool
}

var tableModes = []tableMode{
	{name: "no columns"},
	{name: "typed columns", typed: true},
	{name: "typed columns, shuffled", typed: true, shuffled: true},
	{name: "value columns, shuffled", values: true, shuffled: true},
}

// tableOf lays recs out as a Table in the given mode; rec maps a row back to its
// record's index in recs.
func tableOf(recs []map[string]any, mode tableMode, seed int64) (t *Table, rec func(row int) int) {
	perm := make([]int, len(recs))
	for i := range perm {
		perm[i] = i
	}
	if mode.shuffled {
		rand.New(rand.NewSource(seed)).Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	}
	at := func(row int) map[string]any { return recs[perm[row]] }
	t = &Table{Len: len(recs), Columns: map[string]Column{}, Record: func(row int) map[string]any { return at(row) }}
	if mode.shuffled {
		t.Compare = func(a, b int) int { return cmpInt(perm[a], perm[b]) }
	}
	if !mode.typed && !mode.values {
		return t, func(row int) int { return perm[row] }
	}
	common := map[string]bool{}
	if len(recs) > 0 {
		for k := range recs[0] {
			common[k] = true
		}
	}
	for _, r := range recs {
		for k := range common {
			if _, ok := r[k]; !ok {
				delete(common, k)
			}
		}
	}
	for k := range common {
		allStrings, allNumbers := true, true
		for _, r := range recs {
			_, isStr := r[k].(string)
			_, isNum := r[k].(float64)
			allStrings, allNumbers = allStrings && isStr, allNumbers && isNum
		}
		switch {
		case mode.typed && allStrings:
			t.Columns[k] = Column{
				String: func(row int) string { return at(row)[k].(string) },
				// A time shortcut for every other record: the others are parsed.
				Time: func(row int) (time.Time, bool) {
					if row%2 == 1 {
						return time.Time{}, false
					}
					tm, ok := parseDateTime(at(row)[k].(string))
					return tm.In(time.FixedZone("X", 3600)), ok
				},
			}
		case mode.typed && allNumbers:
			t.Columns[k] = Column{Number: func(row int) float64 { return at(row)[k].(float64) }}
		default:
			t.Columns[k] = Column{Value: func(row int) any { return at(row)[k] }}
		}
	}
	return t, func(row int) int { return perm[row] }
}

// canonJSON is v's JSON, or its %#v when it has none (NaN).
func canonJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}

// diffQuery runs q, parsed from raw, over recs: with Run, which must answer as the
// reference implementation does (when it covers the query), and over each table
// layout of the records, which must answer as Run does. It reports whether the
// reference covered the query.
func diffQuery(t testing.TB, recs []map[string]any, raw string, q *Query, opts RunOptions) bool {
	t.Helper()
	want, wantTotal, wantErr := q.Run(recs, opts)
	ref := refQuery(raw, recs, opts)
	if ref.ok {
		if (wantErr != nil) != ref.err {
			t.Fatalf("%s: Run error %v, the reference expects an error: %v", raw, wantErr, ref.err)
		}
		if wantErr == nil && (wantTotal != ref.total || len(want) != len(ref.page)) {
			t.Fatalf("%s: Run gave %d results of %d, the reference %d of %d", raw, len(want), wantTotal, len(ref.page), ref.total)
		}
		for k := range ref.page {
			if !ref.trimmed && reflect.ValueOf(want[k]).UnsafePointer() != reflect.ValueOf(ref.page[k]).UnsafePointer() {
				t.Fatalf("%s: result %d is %s, the reference gives the record %s", raw, k, canonJSON(want[k]), canonJSON(ref.page[k]))
			}
			if canonJSON(want[k]) != canonJSON(ref.page[k]) {
				t.Fatalf("%s: result %d is %s, the reference gives %s", raw, k, canonJSON(want[k]), canonJSON(ref.page[k]))
			}
		}
	}
	for _, mode := range tableModes {
		tbl, rec := tableOf(recs, mode, int64(len(raw)))
		got, err := q.RunTable(tbl, opts)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%s (%s): RunTable error %v, Run error %v", raw, mode.name, err, wantErr)
		}
		if err != nil {
			continue
		}
		if got.Total != wantTotal || len(got.Rows) != len(want) {
			t.Fatalf("%s (%s): %d rows of %d, Run gave %d of %d", raw, mode.name, len(got.Rows), got.Total, len(want), wantTotal)
		}
		for k, row := range got.Rows {
			var g map[string]any
			if got.Trimmed != nil {
				g = got.Trimmed[k]
			} else {
				g = recs[rec(row)]
				// Untrimmed results are the caller's records themselves.
				if reflect.ValueOf(g).UnsafePointer() != reflect.ValueOf(want[k]).UnsafePointer() {
					t.Fatalf("%s (%s): result %d is record %d, Run gave %s", raw, mode.name, k, rec(row), canonJSON(want[k]))
				}
			}
			if canonJSON(g) != canonJSON(want[k]) {
				t.Fatalf("%s (%s): result %d is %s, Run gave %s", raw, mode.name, k, canonJSON(g), canonJSON(want[k]))
			}
		}
	}
	return ref.ok
}

// diffStat is diffQuery for a StatisticsQuery.
func diffStat(t testing.TB, recs []map[string]any, raw string, q *StatisticsQuery, opts RunOptions) bool {
	t.Helper()
	want, wantErr := q.Run(recs, opts)
	if wantErr != nil {
		t.Fatalf("%s: Run: %v", raw, wantErr)
	}
	ref := refStat(raw, recs, opts)
	if ref.ok {
		if g, w := canonJSON(want), canonJSON(ref.stat); g != w {
			t.Fatalf("%s:\nRun       %s\nreference %s", raw, g, w)
		}
	}
	for _, mode := range tableModes {
		tbl, _ := tableOf(recs, mode, int64(len(raw)))
		got, err := q.RunTable(tbl, opts)
		if err != nil {
			t.Fatalf("%s (%s): RunTable: %v", raw, mode.name, err)
		}
		if g, w := canonJSON(got), canonJSON(want); g != w {
			t.Fatalf("%s (%s):\nRunTable %s\nRun      %s", raw, mode.name, g, w)
		}
	}
	return ref.ok
}

// taskRecords are n records shaped like the API's JobTask records, with the cases a
// typed column must get right: ties, -0 beside 0, times of every precision, strings
// that are not times, empty times.
func taskRecords(n int, seed int64) []map[string]any {
	rng := rand.New(rand.NewSource(seed))
	states := []string{"PENDING", "IN_PROGRESS", "SUCCESS", "FAILURE", "CANCELED", "TIMEOUT"}
	times := []string{"2024-03-01T10:00:00Z", "2024-03-01T10:00:00Z", "2024-03-01T10:00:01Z", "2024-03-10T00:00:00.5Z",
		"2024-03-15", "2024-02-28T23:59:59+09:00", "", "not-a-date", "2024-03-14T12:00:00Z"}
	counts := []float64{0, math.Copysign(0, -1), 1, 2, 7, 1e15, -3}
	recs := make([]map[string]any, n)
	for i := range recs {
		r := map[string]any{
			"job_task_id":    fmt.Sprintf("job-%d-%d", i%7, i),
			"job_id":         fmt.Sprintf("job-%d", i%7),
			"status":         states[rng.Intn(len(states))],
			"data_source_id": fmt.Sprintf("ds-%d", rng.Intn(4)),
			"created_at":     times[rng.Intn(len(times))],
			"finished_at":    times[rng.Intn(len(times))],
			"created_count":  counts[rng.Intn(len(counts))],
			"error_code":     []string{"", "", "ERROR_PLUGIN", "Error_Mixed"}[rng.Intn(4)],
			"domain_id":      "d",
		}
		switch rng.Intn(4) {
		case 0:
			r["options"] = map[string]any{}
		case 1:
			r["options"] = map[string]any{"account_id": fmt.Sprintf("acc-%d", rng.Intn(3)), "region": "us",
				"list": []any{1.0, "x", map[string]any{"a": float64(rng.Intn(2))}}}
		default:
			r["options"] = map[string]any{"account_id": fmt.Sprintf("acc-%d", rng.Intn(3)), "n": counts[rng.Intn(len(counts))]}
		}
		if rng.Intn(3) == 0 {
			r["extra"] = []any{"e", float64(rng.Intn(3))}
		}
		recs[i] = r
	}
	return recs
}

// randomCondition is a random filter condition over taskRecords' keys.
func randomCondition(rng *rand.Rand) string {
	keys := []string{"status", "data_source_id", "created_at", "finished_at", "created_count", "error_code",
		"options", "options.account_id", "options.n", "options.list.a", "extra", "missing", "status.x", "created_count.x"}
	vals := []string{`"SUCCESS"`, `"ds-1"`, `"2024-03-01T10:00:00Z"`, `"2024-03-01"`, `0`, `1`, `7`, `null`, `true`, `"acc-1"`,
		`"e"`, `"err"`, `""`, `{"a":1}`}
	lists := []string{`["SUCCESS","FAILURE"]`, `[0,"ds-2",null]`, `[1,2,"acc-0"]`, `[]`, `["e",{"a":0}]`}
	k := keys[rng.Intn(len(keys))]
	switch rng.Intn(12) {
	case 0, 1:
		return fmt.Sprintf(`{"k":%q,"v":%s,"o":"eq"}`, k, vals[rng.Intn(len(vals))])
	case 2:
		return fmt.Sprintf(`{"k":%q,"v":%s,"o":"not"}`, k, vals[rng.Intn(len(vals))])
	case 3:
		return fmt.Sprintf(`{"k":%q,"v":%s,"o":"%s"}`, k, []string{`"ds-2"`, `3`, `"2024-03-05"`, `false`}[rng.Intn(4)],
			[]string{"lt", "lte", "gt", "gte"}[rng.Intn(4)])
	case 4, 5:
		return fmt.Sprintf(`{"k":%q,"v":%s,"o":"%s"}`, k, lists[rng.Intn(len(lists))], []string{"in", "not_in"}[rng.Intn(2)])
	case 6:
		return fmt.Sprintf(`{"k":%q,"v":%q,"o":"%s"}`, k, []string{"err", "S", "2024-03", "-1", ""}[rng.Intn(5)],
			[]string{"contain", "not_contain"}[rng.Intn(2)])
	case 7:
		return fmt.Sprintf(`{"k":%q,"v":["ERR","ds-3"],"o":"%s"}`, k, []string{"contain_in", "not_contain_in", "regex_in"}[rng.Intn(3)])
	case 8:
		return fmt.Sprintf(`{"k":%q,"v":%v,"o":"exists"}`, k, rng.Intn(2) == 0)
	case 9:
		return fmt.Sprintf(`{"k":%q,"v":"^(succ|ds-[12])","o":"regex"}`, k)
	case 10:
		return fmt.Sprintf(`{"k":%q,"v":{"a":1},"o":"match"}`, k)
	}
	return fmt.Sprintf(`{"k":%q,"v":%q,"o":"%s"}`, k, []string{"2024-03-01T10:00:00Z", "now-10d", "now/d", "2024-03-01"}[rng.Intn(4)],
		[]string{"datetime_gt", "datetime_lte", "datetime_gte", "datetime_lt"}[rng.Intn(4)])
}

func randomConditions(rng *rand.Rand, max int) string {
	n := rng.Intn(max + 1)
	conds := make([]string, n)
	for i := range conds {
		conds[i] = randomCondition(rng)
	}
	return "[" + strings.Join(conds, ",") + "]"
}

// randomQuery is a random list query over taskRecords' keys.
func randomQuery(rng *rand.Rand) string {
	parts := []string{`"filter":` + randomConditions(rng, 3)}
	if rng.Intn(3) == 0 {
		parts = append(parts, `"filter_or":`+randomConditions(rng, 2))
	}
	sortKeys := []string{"created_at", "finished_at", "created_count", "status", "options.n", "options", "extra", "missing", "options.list.a"}
	if rng.Intn(4) != 0 {
		var ks []string
		for range 1 + rng.Intn(2) {
			ks = append(ks, fmt.Sprintf(`{"key":%q,"desc":%v}`, sortKeys[rng.Intn(len(sortKeys))], rng.Intn(2) == 0))
		}
		parts = append(parts, `"sort":[`+strings.Join(ks, ",")+`]`)
	}
	if rng.Intn(4) != 0 {
		parts = append(parts, fmt.Sprintf(`"page":{"start":%d,"limit":%d}`, 1+rng.Intn(20), rng.Intn(30)))
	}
	switch rng.Intn(8) {
	case 0:
		parts = append(parts, `"only":["job_task_id","options.account_id","extra"]`)
	case 1:
		parts = append(parts, `"minimal":true`)
	case 2:
		parts = append(parts, `"count_only":true`)
	case 3:
		parts = append(parts, fmt.Sprintf(`"keyword":%q`, []string{"err", "JOB-3", "ds", "x", "mixed"}[rng.Intn(5)]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// randomStatQuery is a random statistics query over taskRecords' keys.
func randomStatQuery(rng *rand.Rand) string {
	parts := []string{`"filter":` + randomConditions(rng, 2)}
	if rng.Intn(6) == 0 {
		parts = append(parts, fmt.Sprintf(`"distinct":%q`, []string{"status", "created_count", "options.account_id", "extra", "options", "created_at"}[rng.Intn(6)]))
	} else {
		var stages []string
		if rng.Intn(3) == 0 {
			stages = append(stages, `{"match":{"filter":`+randomConditions(rng, 2)+`}}`)
		}
		if rng.Intn(6) == 0 {
			stages = append(stages, `{"unwind":{"path":"extra"}}`)
		}
		keyKeys := []string{"status", "data_source_id", "created_count", "options.account_id", "extra", "missing", "created_at", "options"}
		var keys []string
		for j := range rng.Intn(3) {
			k := keyKeys[rng.Intn(len(keyKeys))]
			df := ""
			if rng.Intn(3) == 0 {
				df = fmt.Sprintf(`,"date_format":%q`, []string{"%Y-%m-%d", "month", "%H:%M:%S.%L", "year"}[rng.Intn(4)])
			}
			keys = append(keys, fmt.Sprintf(`{"key":%q,"name":"k%d"%s}`, k, j, df))
		}
		ops := []string{"count", "count", "sum", "average", "max", "min", "first", "last", "push", "add_to_set", "merge_objects"}
		fieldKeys := []string{"created_count", "options.n", "status", "options", "created_at", "missing"}
		var fields []string
		for j := range 1 + rng.Intn(3) {
			op := ops[rng.Intn(len(ops))]
			f := fmt.Sprintf(`{"name":"f%d","operator":%q,"key":%q`, j, op, fieldKeys[rng.Intn(len(fieldKeys))])
			if (op == "count" || op == "sum" || op == "average") && rng.Intn(3) == 0 {
				f += `,"conditions":[{"key":"status","value":"SUCCESS","operator":"eq"},{"key":"created_count","value":0,"operator":"gte"}]`
			}
			fields = append(fields, f+"}")
		}
		stages = append(stages, `{"group":{"keys":[`+strings.Join(keys, ",")+`],"fields":[`+strings.Join(fields, ",")+`]}}`)
		switch rng.Intn(4) {
		case 0:
			stages = append(stages, `{"sort":{"key":"f0","desc":true}}`, `{"limit":5}`)
		case 1:
			stages = append(stages, `{"count":{"name":"groups"}}`)
		}
		parts = append(parts, `"aggregate":[`+strings.Join(stages, ",")+`]`)
	}
	if rng.Intn(3) == 0 {
		parts = append(parts, fmt.Sprintf(`"page":{"start":%d,"limit":%d}`, 1+rng.Intn(4), rng.Intn(5)))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// listCorpus is every list query of the other tests.
func listCorpus() []string {
	seeds := fuzzSeeds()
	for _, c := range operatorCases {
		seeds = append(seeds, `{"filter":[`+c.cond+`],"sort":[{"key":"created_at","desc":true}],"page":{"limit":2}}`,
			`{"filter_or":[`+c.cond+`,{"k":"status","v":"FAILURE","o":"eq"}],"keyword":"a"}`)
	}
	return append(seeds,
		`{"filter":[{"k":"status","v":["SUCCESS","FAILURE","IN_PROGRESS"],"o":"in"},{"k":"data_source_id","v":"ds-1","o":"eq"}],
		  "sort":[{"key":"created_at","desc":true}],"page":{"start":1,"limit":10}}`,
		`{"sort":[{"key":"created_count"},{"key":"finished_at","desc":true}],"page":{"start":3,"limit":7}}`,
		`{"page":{"start":5,"limit":3}}`, `{"page":{"start":500}}`, `{"keyword":"ERROR"}`,
		// null values, present or missing
		`{"filter":[{"k":"note","v":[null],"o":"in"}]}`, `{"filter":[{"k":"z","v":[null,1],"o":"not_in"}]}`,
		`{"filter":[{"k":"z","v":null,"o":"eq"}],"sort":[{"key":"z"},{"key":"note","desc":true}]}`)
}

// statCorpus is every statistics query of the other tests.
func statCorpus() []string {
	seeds := statFuzzSeeds()
	return append(seeds,
		`{"aggregate":[{"group":{"keys":[{"key":"status","name":"status"},{"key":"data_source_id","name":"data_source_id"}],
		  "fields":[{"name":"count","operator":"count"}]}}]}`,
		`{"aggregate":[{"group":{"keys":[{"key":"created_count","name":"n"}],"fields":[{"name":"count","operator":"count"}]}}]}`,
		`{"aggregate":[{"group":{"keys":[{"key":"created_at","name":"day","date_format":"%Y-%m-%d"}],
		  "fields":[{"name":"count","operator":"count"},{"key":"created_count","name":"created","operator":"sum"}]}},
		  {"sort":{"key":"day"}}],"page":{"limit":3}}`,
		`{"distinct":"status"}`, `{"distinct":"created_count"}`, `{"distinct":"options.account_id","page":{"start":2}}`,
		// null values, present or missing
		`{"aggregate":[{"unwind":{"path":"z"}}]}`, `{"aggregate":[{"unwind":{"path":"$extra"}},{"skip":1}]}`, `{"aggregate":[{"unwind":{"path":"note"}},{"count":{"name":"n"}}]}`,
		`{"aggregate":[{"group":{"keys":[{"key":"z","name":"z"}],"fields":[{"key":"note","name":"p","operator":"push"},
		  {"key":"z","name":"s","operator":"add_to_set"}]}}]}`, `{"distinct":"z"}`)
}

func recordSets(t testing.TB) map[string][]map[string]any {
	return map[string][]map[string]any{
		"filter records": decodeRecords(t, filterRecords),
		"stat records":   decodeRecords(t, statRecords),
		"fuzz records":   decodeRecords(t, fuzzRecords),
		"task records":   taskRecords(300, 1),
	}
}

func TestTableRunsAsRecords(t *testing.T) {
	opts := testOpts()
	opts.KeywordFields = []string{"job_task_id", "status", "error_code", "options.account_id", "name", "s", "l"}
	opts.MinimalFields = []string{"job_task_id", "status", "created_at", "id"}
	rng := rand.New(rand.NewSource(7))
	lists, stats := listCorpus(), statCorpus()
	for range 400 {
		lists = append(lists, randomQuery(rng))
		stats = append(stats, randomStatQuery(rng))
	}
	for name, recs := range recordSets(t) {
		t.Run(name, func(t *testing.T) {
			var runs, covered int
			for _, s := range lists {
				if q, err := ParseQuery([]byte(s)); err == nil {
					runs++
					if diffQuery(t, recs, s, q, opts) {
						covered++
					}
				}
			}
			for _, s := range stats {
				if q, err := ParseStatisticsQuery([]byte(s)); err == nil {
					runs++
					if diffStat(t, recs, s, q, opts) {
						covered++
					}
				}
			}
			// The reference must check (nearly) every query, or this test checks little.
			if covered < runs*99/100 {
				t.Errorf("the reference covers %d queries of %d", covered, runs)
			}
			t.Logf("the reference covers %d queries of %d", covered, runs)
		})
	}
}

func TestTableCompareOrdersPagesAndGroups(t *testing.T) {
	// Records stored newest last, served newest first through Compare.
	var recs []map[string]any
	for i := range 50 {
		recs = append(recs, map[string]any{"id": fmt.Sprintf("r%02d", i), "g": []string{"a", "b", "c"}[i%3], "n": float64(i % 4)})
	}
	tbl := &Table{Len: len(recs), Record: func(i int) map[string]any { return recs[i] },
		Columns: map[string]Column{
			"id": {String: func(i int) string { return recs[i]["id"].(string) }},
			"g":  {String: func(i int) string { return recs[i]["g"].(string) }},
			"n":  {Number: func(i int) float64 { return recs[i]["n"].(float64) }},
		},
		Compare: func(a, b int) int { return cmpInt(b, a) }}
	q, _ := ParseQuery([]byte(`{"page":{"start":2,"limit":3}}`))
	res, err := q.RunTable(tbl, testOpts())
	if err != nil || !reflect.DeepEqual(res.Rows, []int{48, 47, 46}) || res.Total != 50 {
		t.Errorf("unsorted page: %v, %v", res, err)
	}
	q, _ = ParseQuery([]byte(`{"sort":[{"key":"n","desc":true}],"page":{"limit":3}}`))
	res, _ = q.RunTable(tbl, testOpts())
	if !reflect.DeepEqual(res.Rows, []int{47, 43, 39}) {
		t.Errorf("sorted page: ties must come in the table's order, got %v", res.Rows)
	}
	sq, _ := ParseStatisticsQuery([]byte(`{"aggregate":[{"group":{"keys":[{"key":"g","name":"g"}],
		"fields":[{"name":"count","operator":"count"}]}}]}`))
	out, _ := sq.RunTable(tbl, testOpts())
	jsonEqual(t, out, `{"results":[{"g":"b","count":17},{"g":"a","count":17},{"g":"c","count":16}]}`)
	sq, _ = ParseStatisticsQuery([]byte(`{"aggregate":[{"group":{"keys":[{"key":"g","name":"g"}],
		"fields":[{"key":"id","name":"first","operator":"first"}]}}]}`))
	out, _ = sq.RunTable(tbl, testOpts())
	jsonEqual(t, out, `{"results":[{"g":"b","first":"r49"},{"g":"a","first":"r48"},{"g":"c","first":"r47"}]}`)
}

func TestTableRefusesBadTables(t *testing.T) {
	q, _ := ParseQuery([]byte(`{}`))
	sq, _ := ParseStatisticsQuery([]byte(`{"distinct":"a"}`))
	rec := func(int) map[string]any { return map[string]any{} }
	str := func(int) string { return "" }
	tests := map[string]*Table{
		"nil":                   nil,
		"no Record":             {Len: 1},
		"a negative length":     {Len: -1, Record: rec},
		"a column of nothing":   {Len: 1, Record: rec, Columns: map[string]Column{"a": {}}},
		"a column of two kinds": {Len: 1, Record: rec, Columns: map[string]Column{"a": {String: str, Number: func(int) float64 { return 0 }}}},
		"a time without string": {Len: 1, Record: rec, Columns: map[string]Column{"a": {Value: func(int) any { return nil }, Time: func(int) (time.Time, bool) { return time.Time{}, false }}}},
	}
	for name, tbl := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := q.RunTable(tbl, testOpts()); err == nil {
				t.Error("Query.RunTable: no error")
			}
			if _, err := sq.RunTable(tbl, testOpts()); err == nil {
				t.Error("StatisticsQuery.RunTable: no error")
			}
		})
	}
	// A Record that returns nil is an empty record.
	tbl := &Table{Len: 2, Record: func(int) map[string]any { return nil }}
	q, _ = ParseQuery([]byte(`{"filter":[{"k":"a","v":null,"o":"eq"}],"only":["a"]}`))
	if res, err := q.RunTable(tbl, testOpts()); err != nil || res.Total != 2 || len(res.Trimmed) != 2 {
		t.Errorf("got %v, %v", res, err)
	}
}

// TestTableReadsOnlyWhatItNeeds checks that a query on columns builds no record.
func TestTableReadsOnlyWhatItNeeds(t *testing.T) {
	recs := taskRecords(1000, 3)
	tbl, _ := tableOf(recs, tableMode{typed: true, shuffled: true}, 1)
	built := 0
	record := tbl.Record
	tbl.Record = func(i int) map[string]any { built++; return record(i) }
	q, _ := ParseQuery([]byte(`{"filter":[{"k":"status","v":["SUCCESS","FAILURE"],"o":"in"},{"k":"created_at","v":"2024-03-01","o":"datetime_gte"}],
		"sort":[{"key":"created_at","desc":true}],"page":{"limit":10},"keyword":"ds"}`))
	opts := testOpts()
	opts.KeywordFields = []string{"data_source_id"}
	if _, err := q.RunTable(tbl, opts); err != nil || built != 0 {
		t.Errorf("list built %d records (%v)", built, err)
	}
	sq, _ := ParseStatisticsQuery([]byte(`{"aggregate":[{"match":{"filter":[{"k":"created_count","v":0,"o":"gt"}]}},
		{"group":{"keys":[{"key":"status","name":"s"},{"key":"created_at","name":"d","date_format":"%Y-%m"}],
		"fields":[{"name":"n","operator":"count"}]}}]}`))
	if _, err := sq.RunTable(tbl, opts); err != nil || built != 0 {
		t.Errorf("stat built %d records (%v)", built, err)
	}
	// A nested key builds each record once.
	q, _ = ParseQuery([]byte(`{"filter":[{"k":"extra","v":"e","o":"eq"},{"k":"extra","v":1,"o":"not"}],"sort":[{"key":"extra"}]}`))
	if _, err := q.RunTable(tbl, opts); err != nil || built != len(recs) {
		t.Errorf("built %d records for %d (%v)", built, len(recs), err)
	}
}

func TestContainsFoldMatchesToLower(t *testing.T) {
	hay := []string{"", "a", "ABC", "Hello World", "SUCCESS", "ÄÖÜ ß", "İstanbul", "K", "\u212a", "abc\xff", "aBc-1_X"}
	needles := []string{"", "a", "abc", "world", "succ", "äö", "i̇", "k", "ß", "\xff", "c-1_x", "zz"}
	rng := rand.New(rand.NewSource(3))
	random := func(alphabet string, n int) string {
		b := make([]byte, rng.Intn(n+1))
		for i := range b {
			b[i] = alphabet[rng.Intn(len(alphabet))]
		}
		return string(b)
	}
	for range 5000 {
		hay = append(hay, random("aAbBzZ@[`{-\x7f", 12))
		needles = append(needles, strings.ToLower(random("aAbBzZ@[`{-", 3)))
	}
	hay = append(hay, strings.Repeat("Ab", 200)+"X", strings.Repeat("a", 256)+"B")
	needles = append(needles, "abx", "ab", "ab"+"b")
	for _, h := range hay[:300] {
		for _, n := range needles {
			if got, want := containsFold(h, n), strings.Contains(strings.ToLower(h), n); got != want {
				t.Fatalf("containsFold(%q, %q) = %v, want %v", h, n, got, want)
			}
		}
	}
	for i, h := range hay {
		n := needles[i%len(needles)]
		if got, want := containsFold(h, n), strings.Contains(strings.ToLower(h), n); got != want {
			t.Fatalf("containsFold(%q, %q) = %v, want %v", h, n, got, want)
		}
	}
}
