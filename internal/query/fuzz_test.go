package query

import (
	"errors"
	"strings"
	"testing"
)

const fuzzRecords = `[
 {"id":"f1","status":"SUCCESS","n":1,"s":"Abc","t":"2024-03-01T00:00:00Z","l":[1,"x",{"a":1},[2]],"m":{"a":{"b":[{"c":1}]}},"b":true,"z":null},
 {"id":"f2","status":"FAILURE","n":-0.5,"s":"","t":"2024-03-15","l":[],"m":{"a":null},"b":false},
 {"id":"f3","n":1e300,"s":"ÄÖÜ ß","t":"x","l":"scalar","m":[{"a":{"b":2}},{"a":[{"b":3}]}],"labels":{"a.b":"c"}},
 {}
]`

func fuzzSeeds() []string {
	var seeds []string
	for _, c := range operatorCases {
		seeds = append(seeds, `{"filter":[`+c.cond+`]}`, `{"filter_or":[`+c.cond+`],"sort":[{"key":"n"}]}`)
	}
	for _, c := range queryErrorCases {
		seeds = append(seeds, c.query)
	}
	seeds = append(seeds,
		`{}`, `null`, ``,
		`{"sort":[{"key":"l","desc":true},{"key":"m.a.b"}],"page":{"start":2,"limit":1},"only":["m.a.b","id","l.a"]}`,
		`{"keyword":"ab","count_only":true}`,
		`{"minimal":true,"sort":{"key":"t","desc":true}}`,
		`{"filter":[{"k":"status","v":["SUCCESS","FAILURE"],"o":"in"},{"k":"created_at","v":"2024-03-01","o":"datetime_gte"}],
		  "sort":[{"key":"created_at","desc":true},{"key":"created_count"}],"page":{"start":2,"limit":5},"keyword":"err"}`,
		`{"filter_or":[{"k":"options.n","v":0,"o":"lte"},{"k":"created_count","v":[0,7],"o":"not_in"}],"page":{"limit":3}}`,
	)
	return seeds
}

func statFuzzSeeds() []string {
	var seeds []string
	for _, c := range statCases {
		seeds = append(seeds, c.query)
	}
	for _, c := range statErrorCases {
		seeds = append(seeds, c.query)
	}
	seeds = append(seeds,
		`{"aggregate":[{"unwind":{"path":"l"}},{"group":{"keys":[{"key":"l","name":"v"}],"fields":[{"name":"n","operator":"count"}]}}]}`,
		`{"aggregate":[{"unwind":{"path":"m.a.b"}},{"sort":{"key":"m.a.b"}}],"page":{"limit":1}}`,
		`{"distinct":"m.a.b","page":{"start":1}}`,
		`{"aggregate":[{"group":{"keys":[{"key":"status","name":"s"},{"key":"created_count","name":"n"},
		  {"key":"created_at","name":"d","date_format":"%Y-%m-%d"}],"fields":[{"name":"c","operator":"count"}]}}]}`,
		`{"filter":[{"k":"data_source_id","v":"ds-1","o":"not"}],"aggregate":[{"match":{"filter":[{"k":"created_count","v":0,"o":"gt"}]}},
		  {"group":{"keys":[{"key":"options.account_id","name":"a"}],"fields":[{"key":"created_count","name":"s","operator":"sum"},
		  {"key":"job_task_id","name":"f","operator":"first"}]}}],"page":{"limit":2}}`,
		`{"distinct":"created_count"}`,
	)
	return seeds
}

func checkFuzzError(t *testing.T, err error) {
	if err == nil {
		return
	}
	if !IsInvalid(err) {
		t.Fatalf("error is not a *query.Error: %v (%T)", err, err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Key == "" || !strings.HasPrefix(e.Key, "query") {
		t.Fatalf("error %v does not name the query in its key", err)
	}
}

func FuzzQuery(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	recs := decodeRecords(f, fuzzRecords)
	tasks := taskRecords(40, 2)
	opts := testOpts()
	opts.KeywordFields = []string{"s", "status", "m.a.b", "l", "error_code", "options.account_id"}
	opts.MinimalFields = []string{"id", "m.a", "job_task_id", "created_at"}
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := ParseQuery(data)
		checkFuzzError(t, err)
		if err != nil {
			return
		}
		res, total, err := q.Run(recs, opts)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if total < 0 || total > len(recs) || len(res) > total {
			t.Fatalf("Run: %d results, total %d", len(res), total)
		}
		m, err := q.Matcher(opts)
		if err != nil {
			t.Fatalf("Matcher: %v", err)
		}
		n := 0
		for _, r := range recs {
			if m(r) {
				n++
			}
			q.Match(r)
		}
		if n != total {
			t.Fatalf("Matcher selects %d records, Run counted %d", n, total)
		}
		// Run answers as the reference does, and tables as Run.
		diffQuery(t, recs, string(data), q, opts)
		diffQuery(t, tasks, string(data), q, opts)
	})
}

func FuzzStatisticsQuery(f *testing.F) {
	for _, s := range statFuzzSeeds() {
		f.Add([]byte(s))
	}
	recs := decodeRecords(f, fuzzRecords+"")
	recs = append(recs, decodeRecords(f, statRecords)...)
	tasks := taskRecords(40, 2)
	opts := testOpts()
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := ParseStatisticsQuery(data)
		checkFuzzError(t, err)
		if err != nil {
			return
		}
		res, err := q.Run(recs, opts)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if _, ok := res["results"]; !ok {
			t.Fatalf("no results in %v", res)
		}
		if _, err := jsonMarshal(res); err != nil {
			t.Fatalf("results do not marshal: %v", err)
		}
		// Run answers as the reference does, and tables as Run.
		diffStat(t, recs, string(data), q, opts)
		diffStat(t, tasks, string(data), q, opts)
	})
}
