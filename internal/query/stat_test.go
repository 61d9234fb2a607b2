package query

import (
	"testing"
)

const statRecords = `[
 {"job_id":"j1","status":"SUCCESS","cost":10,"created_at":"2024-01-05T10:00:00Z","tags":["a","b"],"project":"p1",
  "meta":{"x":1},"usage":[{"k":"cpu","v":1},{"k":"mem","v":2}]},
 {"job_id":"j2","status":"SUCCESS","cost":20,"created_at":"2024-01-20T10:30:15.250Z","tags":["a"],"project":"p2",
  "meta":{"y":2},"usage":[{"k":"cpu","v":4}]},
 {"job_id":"j3","status":"FAILURE","cost":5,"created_at":"2024-02-01T00:00:00Z","tags":[],"project":"p1","meta":{"x":3}},
 {"job_id":"j4","status":"FAILURE","cost":"x","created_at":"2024-02-11","project":"p1"},
 {"job_id":"j5","status":"CANCELED","cost":1,"created_at":"bad","tags":"solo"}
]`

// statCases are statistics queries and their expected output.
var statCases = []struct {
	name  string
	query string
	want  string
}{
	{"group count", `{"aggregate":[{"group":{"keys":[{"key":"status","name":"status"}],
		"fields":[{"name":"n","operator":"count"}]}}]}`,
		`{"results":[{"status":"SUCCESS","n":2},{"status":"FAILURE","n":2},{"status":"CANCELED","n":1}]}`},
	{"group sum ignores non-numbers", `{"aggregate":[{"group":{"keys":[{"key":"status","name":"s"}],
		"fields":[{"key":"cost","name":"total","operator":"sum"}]}}]}`,
		`{"results":[{"s":"SUCCESS","total":30},{"s":"FAILURE","total":5},{"s":"CANCELED","total":1}]}`},
	{"group average", `{"aggregate":[{"group":{"keys":[{"key":"status","name":"s"}],
		"fields":[{"key":"cost","name":"avg","operator":"average"},{"key":"missing","name":"none","operator":"average"}]}}]}`,
		`{"results":[{"s":"SUCCESS","avg":15,"none":null},{"s":"FAILURE","avg":5,"none":null},{"s":"CANCELED","avg":1,"none":null}]}`},
	{"group max min", `{"aggregate":[{"group":{"keys":[{"key":"status","name":"s"}],
		"fields":[{"key":"cost","name":"max","operator":"max"},{"key":"cost","name":"min","operator":"min"},
		          {"key":"nothing","name":"nmax","operator":"max"}]}}]}`,
		`{"results":[{"s":"SUCCESS","max":20,"min":10,"nmax":null},{"s":"FAILURE","max":"x","min":5,"nmax":null},
		             {"s":"CANCELED","max":1,"min":1,"nmax":null}]}`},
	{"group first last", `{"aggregate":[{"group":{"keys":[{"key":"status","name":"s"}],
		"fields":[{"key":"job_id","name":"first","operator":"first"},{"key":"job_id","name":"last","operator":"last"},
		          {"key":"meta.x","name":"fx","operator":"first"}]}}]}`,
		`{"results":[{"s":"SUCCESS","first":"j1","last":"j2","fx":1},{"s":"FAILURE","first":"j3","last":"j4","fx":3},
		             {"s":"CANCELED","first":"j5","last":"j5","fx":null}]}`},
	{"group push key", `{"aggregate":[{"group":{"keys":[{"key":"project","name":"p"}],
		"fields":[{"key":"job_id","name":"jobs","operator":"push"},{"key":"meta.x","name":"xs","operator":"push"}]}}]}`,
		`{"results":[{"p":"p1","jobs":["j1","j3","j4"],"xs":[1,3]},{"p":"p2","jobs":["j2"],"xs":[]},
		             {"p":null,"jobs":["j5"],"xs":[]}]}`},
	{"group push fields", `{"aggregate":[{"group":{"keys":[{"key":"status","name":"s"}],
		"fields":[{"name":"jobs","operator":"push","fields":[{"key":"job_id","name":"id"},{"key":"cost","name":"c"}]}]}},
		{"limit":1}]}`,
		`{"results":[{"s":"SUCCESS","jobs":[{"id":"j1","c":10},{"id":"j2","c":20}]}]}`},
	{"group push fields as keys", `{"aggregate":[{"group":{"keys":[{"key":"status","name":"s"}],
		"fields":[{"name":"jobs","operator":"push","fields":["job_id","meta.x"]}]}},{"skip":2}]}`,
		`{"results":[{"s":"CANCELED","jobs":[{"job_id":"j5"}]}]}`},
	{"group add_to_set", `{"aggregate":[{"group":{"keys":[{"key":"status","name":"s"}],
		"fields":[{"key":"project","name":"projects","operator":"add_to_set"}]}}]}`,
		`{"results":[{"s":"SUCCESS","projects":["p1","p2"]},{"s":"FAILURE","projects":["p1"]},{"s":"CANCELED","projects":[]}]}`},
	{"group merge_objects", `{"aggregate":[{"group":{"keys":[{"key":"project","name":"p"}],
		"fields":[{"key":"meta","name":"m","operator":"merge_objects"}]}},{"limit":2}]}`,
		`{"results":[{"p":"p1","m":{"x":3}},{"p":"p2","m":{"y":2}}]}`},
	{"group without keys", `{"aggregate":[{"group":{"fields":[{"name":"n","operator":"count"},
		{"key":"cost","name":"total","operator":"sum"}]}}]}`,
		`{"results":[{"n":5,"total":36}]}`},
	{"group without keys on no records", `{"filter":[{"k":"status","v":"NONE","o":"eq"}],
		"aggregate":[{"group":{"fields":[{"name":"n","operator":"count"}]}}]}`,
		`{"results":[]}`},
	{"group without fields", `{"aggregate":[{"group":{"keys":[{"key":"project","name":"p"}]}}]}`,
		`{"results":[{"p":"p1"},{"p":"p2"},{"p":null}]}`},
	{"group multiple keys", `{"aggregate":[{"group":{"keys":[{"key":"project","name":"p"},{"key":"status","name":"s"}],
		"fields":[{"name":"n","operator":"count"}]}}]}`,
		`{"results":[{"p":"p1","s":"SUCCESS","n":1},{"p":"p2","s":"SUCCESS","n":1},{"p":"p1","s":"FAILURE","n":2},
		             {"p":null,"s":"CANCELED","n":1}]}`},
	{"group conditions", `{"aggregate":[{"group":{"keys":[{"key":"project","name":"p"}],
		"fields":[{"name":"ok","operator":"count","conditions":[{"key":"status","value":"SUCCESS","operator":"eq"}]},
		          {"key":"cost","name":"big","operator":"sum","conditions":[{"key":"cost","value":6,"operator":"gte"}]},
		          {"key":"cost","name":"avg","operator":"average","conditions":[{"key":"status","value":"FAILURE","operator":"not"}]}]}}]}`,
		`{"results":[{"p":"p1","ok":1,"big":10,"avg":3.3333333333333335},{"p":"p2","ok":1,"big":20,"avg":20},
		             {"p":null,"ok":0,"big":0,"avg":1}]}`},
	{"group short names", `{"aggregate":[{"group":{"keys":[{"k":"status","n":"s"}],
		"fields":[{"k":"cost","n":"t","o":"sum"}]}},{"limit":1}]}`,
		`{"results":[{"s":"SUCCESS","t":30}]}`},
	{"group by list value", `{"aggregate":[{"group":{"keys":[{"key":"tags","name":"t"}],
		"fields":[{"name":"n","operator":"count"}]}}]}`,
		`{"results":[{"t":["a","b"],"n":1},{"t":["a"],"n":1},{"t":[],"n":1},{"t":null,"n":1},{"t":"solo","n":1}]}`},
	{"group through list", `{"aggregate":[{"group":{"keys":[{"key":"job_id","name":"j"}],
		"fields":[{"key":"usage.v","name":"vs","operator":"first"}]}},{"limit":2}]}`,
		`{"results":[{"j":"j1","vs":[1,2]},{"j":"j2","vs":[4]}]}`},
	// date_format
	{"date_format month", `{"aggregate":[{"group":{"keys":[{"key":"created_at","name":"month","date_format":"%Y-%m"}],
		"fields":[{"name":"n","operator":"count"}]}}]}`,
		`{"results":[{"month":"2024-01","n":2},{"month":"2024-02","n":2},{"month":null,"n":1}]}`},
	{"date_format full", `{"aggregate":[{"group":{"keys":[{"key":"created_at","name":"t","date_format":"%Y/%m/%d %H:%M:%S.%L day %j %%"}]}},
		{"limit":2}]}`,
		`{"results":[{"t":"2024/01/05 10:00:00.000 day 005 %"},{"t":"2024/01/20 10:30:15.250 day 020 %"}]}`},
	{"date_format year month day", `{"aggregate":[{"group":{"keys":[{"key":"created_at","name":"y","date_format":"year"},
		{"key":"created_at","name":"m","date_format":"month"},{"key":"created_at","name":"d","date_format":"day"}]}},{"limit":1}]}`,
		`{"results":[{"y":2024,"m":1,"d":5}]}`},
	// stages
	{"count stage", `{"aggregate":[{"count":{"name":"total"}}]}`, `{"results":[{"total":5}]}`},
	{"count stage on nothing", `{"filter":[{"k":"status","v":"NONE","o":"eq"}],"aggregate":[{"count":{"name":"total"}}]}`,
		`{"results":[]}`},
	{"count after group", `{"aggregate":[{"group":{"keys":[{"key":"project","name":"p"}]}},{"count":{"name":"projects"}}]}`,
		`{"results":[{"projects":3}]}`},
	{"sort stage object", `{"aggregate":[{"group":{"keys":[{"key":"status","name":"s"}],"fields":[{"key":"cost","name":"t","operator":"sum"}]}},
		{"sort":{"key":"t","desc":true}}]}`,
		`{"results":[{"s":"SUCCESS","t":30},{"s":"FAILURE","t":5},{"s":"CANCELED","t":1}]}`},
	{"sort stage keys form", `{"aggregate":[{"group":{"keys":[{"key":"status","name":"s"}],"fields":[{"name":"n","operator":"count"}]}},
		{"sort":{"keys":[{"key":"n","desc":true},{"key":"s"}]}}]}`,
		`{"results":[{"s":"FAILURE","n":2},{"s":"SUCCESS","n":2},{"s":"CANCELED","n":1}]}`},
	{"sort stage list form", `{"aggregate":[{"group":{"keys":[{"key":"status","name":"s"}]}},{"sort":[{"key":"s"}]}]}`,
		`{"results":[{"s":"CANCELED"},{"s":"FAILURE"},{"s":"SUCCESS"}]}`},
	{"sort before group orders first/last", `{"aggregate":[{"sort":[{"key":"job_id","desc":true}]},
		{"group":{"keys":[{"key":"status","name":"s"}],"fields":[{"key":"job_id","name":"f","operator":"first"}]}}]}`,
		`{"results":[{"s":"CANCELED","f":"j5"},{"s":"FAILURE","f":"j4"},{"s":"SUCCESS","f":"j2"}]}`},
	{"limit stage", `{"aggregate":[{"sort":{"key":"job_id"}},{"limit":2},{"project":{"fields":[{"key":"job_id","name":"id"}]}}]}`,
		`{"results":[{"id":"j1"},{"id":"j2"}]}`},
	{"skip stage", `{"aggregate":[{"skip":3},{"project":{"fields":[{"key":"job_id","name":"id"}]}}]}`,
		`{"results":[{"id":"j4"},{"id":"j5"}]}`},
	{"skip past end", `{"aggregate":[{"skip":30}]}`, `{"results":[]}`},
	{"unwind", `{"aggregate":[{"unwind":{"path":"tags"}},{"group":{"keys":[{"key":"tags","name":"tag"}],
		"fields":[{"name":"n","operator":"count"},{"key":"job_id","name":"jobs","operator":"push"}]}}]}`,
		`{"results":[{"tag":"a","n":2,"jobs":["j1","j2"]},{"tag":"b","n":1,"jobs":["j1"]},{"tag":"solo","n":1,"jobs":["j5"]}]}`},
	{"unwind objects", `{"aggregate":[{"unwind":{"path":"usage"}},{"group":{"keys":[{"key":"usage.k","name":"k"}],
		"fields":[{"key":"usage.v","name":"v","operator":"sum"}]}}]}`,
		`{"results":[{"k":"cpu","v":5},{"k":"mem","v":2}]}`},
	{"match stage", `{"aggregate":[{"unwind":{"path":"usage"}},{"match":{"filter":[{"k":"usage.k","v":"cpu","o":"eq"}]}},
		{"project":{"fields":[{"key":"job_id","name":"j"},{"key":"usage.v","name":"v"}]}}]}`,
		`{"results":[{"j":"j1","v":1},{"j":"j2","v":4}]}`},
	{"project keeps group keys", `{"aggregate":[{"group":{"keys":[{"key":"status","name":"s"}],
		"fields":[{"key":"tags","name":"tags","operator":"push"}]}},
		{"project":{"fields":[{"key":"tags","name":"lists","operator":"size"},{"key":"tags","name":"same"}]}},{"limit":1}]}`,
		`{"results":[{"s":"SUCCESS","lists":2,"same":[["a","b"],["a"]]}]}`},
	{"project exclude_keys", `{"aggregate":[{"group":{"keys":[{"key":"status","name":"s"}],
		"fields":[{"key":"cost","name":"costs","operator":"push"}]}},
		{"project":{"fields":[{"key":"costs","name":"sum","operator":"sum"}],"exclude_keys":true}}]}`,
		`{"results":[{"sum":30},{"sum":5},{"sum":1}]}`},
	{"project only_keys", `{"aggregate":[{"group":{"keys":[{"key":"status","name":"s"}],"fields":[{"name":"n","operator":"count"}]}},
		{"project":{"fields":[{"name":"n"}],"only_keys":true,"exclude_keys":true}},{"limit":1}]}`,
		`{"results":[{"n":2}]}`},
	// distinct
	{"distinct", `{"distinct":"project"}`, `{"results":["p1","p2"]}`},
	{"distinct flattens lists", `{"distinct":"tags"}`, `{"results":["a","b","solo"]}`},
	{"distinct mixed types sorted", `{"distinct":"cost"}`, `{"results":[1,5,10,20,"x"]}`},
	{"distinct with filter", `{"distinct":"project","filter":[{"k":"status","v":"SUCCESS","o":"eq"}]}`, `{"results":["p1","p2"]}`},
	{"distinct through list", `{"distinct":"usage.k"}`, `{"results":["cpu","mem"]}`},
	{"distinct page", `{"distinct":"job_id","page":{"start":2,"limit":2}}`, `{"results":["j2","j3"],"total_count":5}`},
	{"distinct missing key", `{"distinct":"nothing"}`, `{"results":[]}`},
	// page
	{"aggregate page", `{"aggregate":[{"group":{"keys":[{"key":"status","name":"s"}]}},{"sort":{"key":"s"}}],
		"page":{"start":2,"limit":1}}`,
		`{"results":[{"s":"FAILURE"}],"total_count":3}`},
	{"aggregate page without limit", `{"aggregate":[{"group":{"keys":[{"key":"status","name":"s"}]}}],"page":{}}`,
		`{"results":[{"s":"SUCCESS"},{"s":"FAILURE"},{"s":"CANCELED"}],"total_count":3}`},
	{"aggregate and distinct: aggregate wins", `{"distinct":"project","aggregate":[{"count":{"name":"n"}}]}`,
		`{"results":[{"n":5}]}`},
	{"filter_or", `{"filter_or":[{"k":"cost","v":10,"o":"gt"},{"k":"status","v":"CANCELED","o":"eq"}],
		"aggregate":[{"group":{"fields":[{"key":"job_id","name":"j","operator":"push"}]}}]}`,
		`{"results":[{"j":["j2","j5"]}]}`},
	{"relative datetime", `{"filter":[{"k":"created_at","v":"now/m-35d","o":"datetime_gte"}],"distinct":"job_id"}`,
		`{"results":["j3","j4"]}`},
}

func TestStatisticsQuery(t *testing.T) {
	recs := decodeRecords(t, statRecords)
	for _, tc := range statCases {
		t.Run(tc.name, func(t *testing.T) {
			q, err := ParseStatisticsQuery([]byte(tc.query))
			if err != nil {
				t.Fatalf("ParseStatisticsQuery: %v", err)
			}
			res, err := q.Run(recs, testOpts())
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			jsonEqual(t, res, tc.want)
		})
	}
}

func TestStatisticsQueryDoesNotModifyInput(t *testing.T) {
	recs := decodeRecords(t, statRecords)
	before := decodeRecords(t, statRecords)
	q, err := ParseStatisticsQuery([]byte(`{"aggregate":[{"unwind":{"path":"usage"}},{"sort":{"key":"job_id","desc":true}},
		{"project":{"fields":[{"key":"usage","name":"u"}]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Run(recs, testOpts()); err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, recs, mustJSON(t, before))
}

func TestStatisticsQueryNewAndMatch(t *testing.T) {
	q, err := NewStatisticsQuery(map[string]any{
		"filter":   []any{map[string]any{"k": "status", "v": "SUCCESS", "o": "eq"}},
		"distinct": "job_id",
	})
	if err != nil {
		t.Fatal(err)
	}
	recs := decodeRecords(t, statRecords)
	if !q.Match(recs[0]) || q.Match(recs[2]) {
		t.Error("Match disagrees with the filter")
	}
	res, _ := q.Run(recs, RunOptions{})
	jsonEqual(t, res, `{"results":["j1","j2"]}`)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := jsonMarshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
