package query

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

const filterRecords = `[
 {"id":"a","status":"SUCCESS","count":10,"name":"Alpha Job","created_at":"2024-03-01T10:00:00Z",
  "tags":["x","y"],"options":{"account_id":"acc-1","region":"us"},
  "items":[{"k":"p","v":1},{"k":"q","v":2}],"flag":true},
 {"id":"b","status":"FAILURE","count":5,"name":"beta job","created_at":"2024-03-10T00:00:00Z",
  "tags":["y"],"options":{"account_id":"acc-2"},"items":[{"k":"p","v":3}],"flag":false,"note":null},
 {"id":"c","status":"SUCCESS","count":"7","name":"Gamma","created_at":"2024-03-15",
  "options":{"account_id":"acc-1","region":"eu"}},
 {"id":"d","status":"IN_PROGRESS","count":20,"created_at":"not-a-date","tags":[],
  "labels":{"app.kubernetes.io/name":"web"}}
]`

// operatorCases are single-condition filters and the ids they select.
var operatorCases = []struct {
	name string
	cond string
	want string
}{
	// eq
	{"eq string", `{"k":"status","v":"SUCCESS","o":"eq"}`, "a,c"},
	{"eq long form", `{"key":"status","value":"SUCCESS","operator":"eq"}`, "a,c"},
	{"eq is case sensitive", `{"k":"status","v":"success","o":"eq"}`, ""},
	{"eq missing key", `{"k":"missing","v":"x","o":"eq"}`, ""},
	{"eq null matches missing or null", `{"k":"note","v":null,"o":"eq"}`, "a,b,c,d"},
	{"eq null nested", `{"k":"options.region","v":null,"o":"eq"}`, "b,d"},
	{"eq number vs string record", `{"k":"count","v":7,"o":"eq"}`, ""},
	{"eq string vs number record", `{"k":"count","v":"10","o":"eq"}`, ""},
	{"eq number", `{"k":"count","v":10,"o":"eq"}`, "a"},
	{"eq list element", `{"k":"tags","v":"y","o":"eq"}`, "a,b"},
	{"eq through list of objects", `{"k":"items.k","v":"q","o":"eq"}`, "a"},
	{"eq list index", `{"k":"items.0.v","v":3,"o":"eq"}`, "b"},
	{"eq dotted", `{"k":"options.account_id","v":"acc-1","o":"eq"}`, "a,c"},
	{"eq literal dotted key", `{"k":"labels.app.kubernetes.io/name","v":"web","o":"eq"}`, "d"},
	{"eq bool", `{"k":"flag","v":true,"o":"eq"}`, "a"},
	{"eq object", `{"k":"items","v":{"k":"p","v":3},"o":"eq"}`, "b"},
	// not
	{"not", `{"k":"status","v":"SUCCESS","o":"not"}`, "b,d"},
	{"not matches missing", `{"k":"options.region","v":"us","o":"not"}`, "b,c,d"},
	{"not null", `{"k":"options.region","v":null,"o":"not"}`, "a,c"},
	{"not type mismatch", `{"k":"count","v":"10","o":"not"}`, "a,b,c,d"},
	{"not list element", `{"k":"tags","v":"y","o":"not"}`, "c,d"},
	// lt / lte / gt / gte
	{"gt number", `{"k":"count","v":5,"o":"gt"}`, "a,d"},
	{"gte number", `{"k":"count","v":5,"o":"gte"}`, "a,b,d"},
	{"lt number", `{"k":"count","v":10,"o":"lt"}`, "b"},
	{"lte number", `{"k":"count","v":10,"o":"lte"}`, "a,b"},
	{"lt string compares strings only", `{"k":"count","v":"9","o":"lt"}`, "c"},
	{"gt string lexical", `{"k":"name","v":"beta","o":"gt"}`, "b"},
	{"lte string lexical", `{"k":"name","v":"Gamma","o":"lte"}`, "a,c"},
	{"gt missing key", `{"k":"missing","v":0,"o":"gt"}`, ""},
	{"gte bool", `{"k":"flag","v":false,"o":"gte"}`, "a,b"},
	{"lt through list", `{"k":"items.v","v":2,"o":"lt"}`, "a"},
	// in / not_in
	{"in strings", `{"k":"status","v":["SUCCESS","FAILURE"],"o":"in"}`, "a,b,c"},
	{"in numbers", `{"k":"count","v":[5,20],"o":"in"}`, "b,d"},
	{"in with null", `{"k":"options.region","v":[null,"eu"],"o":"in"}`, "b,c,d"},
	{"in list field", `{"k":"tags","v":["x"],"o":"in"}`, "a"},
	{"in type mismatch", `{"k":"count","v":["10"],"o":"in"}`, ""},
	{"in empty list", `{"k":"status","v":[],"o":"in"}`, ""},
	{"in missing key", `{"k":"missing","v":["a"],"o":"in"}`, ""},
	{"not_in", `{"k":"status","v":["SUCCESS"],"o":"not_in"}`, "b,d"},
	{"not_in matches missing", `{"k":"options.region","v":["us"],"o":"not_in"}`, "b,c,d"},
	{"not_in list field", `{"k":"tags","v":["x"],"o":"not_in"}`, "b,c,d"},
	// contain family
	{"contain ignores case", `{"k":"name","v":"JOB","o":"contain"}`, "a,b"},
	{"contain list element", `{"k":"tags","v":"X","o":"contain"}`, "a"},
	{"contain number record", `{"k":"count","v":"1","o":"contain"}`, ""},
	{"contain missing key", `{"k":"missing","v":"","o":"contain"}`, ""},
	{"not_contain", `{"k":"name","v":"job","o":"not_contain"}`, "c,d"},
	{"contain_in", `{"k":"name","v":["alpha","GAM"],"o":"contain_in"}`, "a,c"},
	{"not_contain_in", `{"k":"name","v":["alpha","gam"],"o":"not_contain_in"}`, "b,d"},
	{"contain unicode", `{"k":"name","v":"ALPHA","o":"contain"}`, "a"},
	// exists
	{"exists true", `{"k":"options.region","v":true,"o":"exists"}`, "a,c"},
	{"exists false", `{"k":"options.region","v":false,"o":"exists"}`, "b,d"},
	{"exists null value", `{"k":"note","v":true,"o":"exists"}`, "b"},
	{"exists through list", `{"k":"items.v","v":true,"o":"exists"}`, "a,b"},
	// regex
	{"regex ignores case", `{"k":"name","v":"^a.*job$","o":"regex"}`, "a"},
	{"regex number record", `{"k":"count","v":"1","o":"regex"}`, ""},
	{"regex missing key", `{"k":"missing","v":".*","o":"regex"}`, ""},
	{"regex_in", `{"k":"name","v":["^beta","^gam"],"o":"regex_in"}`, "b,c"},
	{"regex list element", `{"k":"tags","v":"^x$","o":"regex"}`, "a"},
	// datetime
	{"datetime_gt date", `{"k":"created_at","v":"2024-03-05","o":"datetime_gt"}`, "b,c"},
	{"datetime_lt rfc3339", `{"k":"created_at","v":"2024-03-10T00:00:00Z","o":"datetime_lt"}`, "a"},
	{"datetime_lte rfc3339", `{"k":"created_at","v":"2024-03-10T00:00:00Z","o":"datetime_lte"}`, "a,b"},
	{"datetime_gte no zone", `{"k":"created_at","v":"2024-03-15T00:00:00","o":"datetime_gte"}`, "c"},
	{"datetime_gt offset", `{"k":"created_at","v":"2024-03-10T09:00:00+09:00","o":"datetime_gt"}`, "c"},
	{"datetime_gte offset", `{"k":"created_at","v":"2024-03-10T09:00:00+09:00","o":"datetime_gte"}`, "b,c"},
	{"datetime_gte fractional", `{"k":"created_at","v":"2024-03-01T09:59:59.5Z","o":"datetime_gte"}`, "a,b,c"},
	{"datetime missing key", `{"k":"missing","v":"2000-01-01","o":"datetime_gt"}`, ""},
	{"datetime type mismatch", `{"k":"count","v":"2000-01-01","o":"datetime_gt"}`, ""},
	{"datetime now/d", `{"k":"created_at","v":"now/d","o":"datetime_gte"}`, "c"},
	{"datetime now-7d", `{"k":"created_at","v":"now-7d","o":"datetime_gte"}`, "b,c"},
	{"datetime now/m", `{"k":"created_at","v":"now/m","o":"datetime_lt"}`, ""},
	{"datetime now/m gte", `{"k":"created_at","v":"now/m","o":"datetime_gte"}`, "a,b,c"},
	{"datetime now/w", `{"k":"created_at","v":"now/w","o":"datetime_gte"}`, "c"},
	{"datetime now+1d", `{"k":"created_at","v":"now+1d","o":"datetime_lt"}`, "a,b,c"},
	{"datetime now", `{"k":"created_at","v":"now","o":"datetime_lt"}`, "a,b,c"},
	{"datetime now - 5 d spaced", `{"k":"created_at","v":" now/d - 5d ","o":"datetime_lte"}`, "a,b"},
	{"timediff_gte", `{"k":"created_at","v":"now-7d","o":"timediff_gte"}`, "b,c"},
	{"timedelta_lt alias", `{"k":"created_at","v":"now-7d","o":"timedelta_lt"}`, "a"},
	{"timediff_gt hours", `{"k":"created_at","v":"now-13h","o":"timediff_gt"}`, "c"},
	{"timediff_lte minutes", `{"k":"created_at","v":"now-720m","o":"timediff_lte"}`, "a,b,c"},
	// match (elemMatch)
	{"match element", `{"k":"items","v":{"k":"p","v":3},"o":"match"}`, "b"},
	{"match partial element", `{"k":"items","v":{"k":"p"},"o":"match"}`, "a,b"},
	{"match no element", `{"k":"items","v":{"k":"q","v":3},"o":"match"}`, ""},
	{"match non-list", `{"k":"options","v":{"region":"us"},"o":"match"}`, ""},
}

func runIDs(t *testing.T, recs []map[string]any, q string, opts RunOptions) ([]string, int) {
	t.Helper()
	qq, err := ParseQuery([]byte(q))
	if err != nil {
		t.Fatalf("ParseQuery(%s): %v", q, err)
	}
	res, total, err := qq.Run(recs, opts)
	if err != nil {
		t.Fatalf("Run(%s): %v", q, err)
	}
	return ids(res, "id"), total
}

func splitIDs(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

func TestOperators(t *testing.T) {
	recs := decodeRecords(t, filterRecords)
	for _, tc := range operatorCases {
		t.Run(tc.name, func(t *testing.T) {
			got, total := runIDs(t, recs, `{"filter":[`+tc.cond+`]}`, testOpts())
			want := splitIDs(tc.want)
			if !reflect.DeepEqual(got, want) || total != len(want) {
				t.Errorf("%s: got %v (total %d), want %v", tc.cond, got, total, want)
			}
			// Match agrees with Run for absolute conditions.
			if !strings.Contains(tc.cond, "now") {
				q, _ := ParseQuery([]byte(`{"filter":[` + tc.cond + `]}`))
				var m []string
				for _, r := range recs {
					if q.Match(r) {
						m = append(m, r["id"].(string))
					}
				}
				if strings.Join(m, ",") != tc.want {
					t.Errorf("Match: got %v, want %v", m, want)
				}
			}
		})
	}
}

func TestFilterAndFilterOr(t *testing.T) {
	recs := decodeRecords(t, filterRecords)
	cases := []struct {
		q    string
		want string
	}{
		{`{}`, "a,b,c,d"},
		{`{"filter":[{"k":"status","v":"SUCCESS","o":"eq"},{"k":"count","v":10,"o":"eq"}]}`, "a"},
		{`{"filter_or":[{"k":"status","v":"FAILURE","o":"eq"},{"k":"count","v":20,"o":"eq"}]}`, "b,d"},
		{`{"filter":[{"k":"status","v":"SUCCESS","o":"eq"}],
		   "filter_or":[{"k":"options.region","v":"eu","o":"eq"},{"k":"count","v":100,"o":"gt"}]}`, "c"},
		{`{"filter":[{"k":"status","v":"SUCCESS","o":"eq"}],
		   "filter_or":[{"k":"count","v":100,"o":"gt"}]}`, ""},
		{`{"filter":null,"filter_or":null}`, "a,b,c,d"},
	}
	for _, tc := range cases {
		got, _ := runIDs(t, recs, tc.q, testOpts())
		if strings.Join(got, ",") != tc.want {
			t.Errorf("%s: got %v, want %s", tc.q, got, tc.want)
		}
	}
}

func TestSort(t *testing.T) {
	recs := decodeRecords(t, filterRecords)
	cases := []struct {
		name, sort, want string
	}{
		{"asc", `[{"key":"id","desc":true}]`, "d,c,b,a"},
		{"single object form", `{"key":"id","desc":true}`, "d,c,b,a"},
		{"multi key", `[{"key":"status"},{"key":"id","desc":true}]`, "b,d,c,a"},
		{"missing last asc", `[{"key":"options.region"}]`, "c,a,b,d"},
		{"missing last desc", `[{"key":"options.region","desc":true}]`, "a,c,b,d"},
		{"mixed types numbers before strings", `[{"key":"count"}]`, "b,a,d,c"},
		{"mixed types desc", `[{"key":"count","desc":true}]`, "c,d,a,b"},
		{"list min asc", `[{"key":"tags"}]`, "a,b,c,d"},
		{"list max desc", `[{"key":"tags","desc":true}]`, "a,b,c,d"},
		{"through list", `[{"key":"items.v","desc":true}]`, "b,a,c,d"},
		{"bool", `[{"key":"flag"}]`, "b,a,c,d"},
		{"k alias", `[{"k":"id","desc":true}]`, "d,c,b,a"},
		{"datetimes chronologically, after other strings", `[{"key":"created_at"}]`, "d,a,b,c"},
		{"datetimes desc", `[{"key":"created_at","desc":true}]`, "c,b,a,d"},
		{"empty list", `[]`, "a,b,c,d"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := runIDs(t, recs, `{"sort":`+tc.sort+`}`, testOpts())
			if strings.Join(got, ",") != tc.want {
				t.Errorf("got %v, want %s", got, tc.want)
			}
		})
	}
}

// TestSortTopKMatchesStableSort checks that the bounded-heap selection used
// for small pages gives exactly the page a full stable sort gives.
func TestSortTopKMatchesStableSort(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	recs := make([]map[string]any, 2000)
	for i := range recs {
		r := map[string]any{"id": fmt.Sprintf("r%04d", i), "g": float64(rng.Intn(7))}
		switch rng.Intn(5) {
		case 0: // missing
		case 1:
			r["v"] = nil
		case 2:
			r["v"] = fmt.Sprintf("s%d", rng.Intn(20))
		default:
			r["v"] = float64(rng.Intn(50))
		}
		recs[i] = r
	}
	for _, sortJSON := range []string{
		`[{"key":"v"}]`, `[{"key":"v","desc":true}]`, `[{"key":"g"},{"key":"v","desc":true}]`,
	} {
		full, _ := runIDs(t, recs, `{"sort":`+sortJSON+`}`, testOpts())
		for _, page := range [][2]int{{1, 10}, {5, 37}, {100, 3}, {1990, 50}, {1, 200}} {
			got, total := runIDs(t, recs, fmt.Sprintf(`{"sort":%s,"page":{"start":%d,"limit":%d}}`, sortJSON, page[0], page[1]), testOpts())
			lo, hi := pageBounds(len(full), page[0], page[1])
			if total != len(recs) || !reflect.DeepEqual(got, full[lo:hi]) {
				t.Fatalf("sort %s page %v: got %v, want %v", sortJSON, page, got, full[lo:hi])
			}
		}
	}
}

func TestPage(t *testing.T) {
	recs := decodeRecords(t, filterRecords)
	cases := []struct {
		page  string
		want  string
		total int
	}{
		{`{"start":2,"limit":2}`, "b,c", 4},
		{`{"start":1,"limit":1}`, "a", 4},
		{`{"limit":3}`, "a,b,c", 4},
		{`{"start":3}`, "c,d", 4},
		{`{"start":3,"limit":0}`, "c,d", 4},
		{`{"start":4,"limit":10}`, "d", 4},
		{`{"start":5,"limit":10}`, "", 4},
		{`{"start":1e300,"limit":1e300}`, "", 4},
		{`{}`, "a,b,c,d", 4},
		{`null`, "a,b,c,d", 4},
	}
	for _, tc := range cases {
		got, total := runIDs(t, recs, `{"page":`+tc.page+`}`, testOpts())
		if strings.Join(got, ",") != tc.want || total != tc.total {
			t.Errorf("page %s: got %v (total %d), want %s (total %d)", tc.page, got, total, tc.want, tc.total)
		}
	}
	// total_count is counted after filtering and before paging.
	got, total := runIDs(t, recs, `{"filter":[{"k":"status","v":"SUCCESS","o":"eq"}],"page":{"start":2,"limit":1}}`, testOpts())
	if strings.Join(got, ",") != "c" || total != 2 {
		t.Errorf("filtered page: got %v (total %d)", got, total)
	}
}

func TestOnly(t *testing.T) {
	recs := decodeRecords(t, filterRecords)
	q, err := ParseQuery([]byte(`{"only":["id","options.account_id","items.k","labels.app.kubernetes.io/name","missing.x"],
		"filter":[{"k":"id","v":["a","d"],"o":"in"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	res, total, err := q.Run(recs, testOpts())
	if err != nil || total != 2 {
		t.Fatalf("Run: %v, total %d", err, total)
	}
	jsonEqual(t, res, `[
		{"id":"a","options":{"account_id":"acc-1"},"items":[{"k":"p"},{"k":"q"}]},
		{"id":"d","labels":{"app.kubernetes.io/name":"web"}}]`)
	// The source records are untouched.
	if _, ok := recs[0]["options"].(map[string]any)["region"]; !ok {
		t.Error("only modified the source record")
	}

	// A key that extends another one is dropped; several keys through the
	// same list merge element by element.
	q, _ = ParseQuery([]byte(`{"only":["options.region","options","items.k","items.v","id"],"filter":[{"k":"id","v":"a","o":"eq"}]}`))
	res, _, _ = q.Run(recs, testOpts())
	jsonEqual(t, res, `[{"id":"a","options":{"account_id":"acc-1","region":"us"},"items":[{"k":"p","v":1},{"k":"q","v":2}]}]`)
}

func TestCountOnly(t *testing.T) {
	recs := decodeRecords(t, filterRecords)
	q, _ := ParseQuery([]byte(`{"count_only":true,"filter":[{"k":"status","v":"SUCCESS","o":"eq"}],"page":{"limit":1}}`))
	res, total, err := q.Run(recs, testOpts())
	if err != nil || total != 2 || res == nil || len(res) != 0 {
		t.Errorf("count_only: res %v total %d err %v", res, total, err)
	}
}

func TestKeyword(t *testing.T) {
	recs := decodeRecords(t, filterRecords)
	opts := testOpts()
	opts.KeywordFields = []string{"name", "options.account_id", "tags"}
	cases := []struct{ q, want string }{
		{`{"keyword":"ALPHA"}`, "a"},
		{`{"keyword":"acc-2"}`, "b"},
		{`{"keyword":"acc-"}`, "a,b,c"},
		{`{"keyword":"x"}`, "a"},
		{`{"keyword":"  job "}`, "a,b"},
		{`{"keyword":""}`, "a,b,c,d"},
		{`{"keyword":"job","filter":[{"k":"status","v":"FAILURE","o":"eq"}]}`, "b"},
		{`{"keyword":"nothing"}`, ""},
	}
	for _, tc := range cases {
		got, _ := runIDs(t, recs, tc.q, opts)
		if strings.Join(got, ",") != tc.want {
			t.Errorf("%s: got %v, want %s", tc.q, got, tc.want)
		}
	}
	// Without keyword fields a keyword matches nothing.
	got, _ := runIDs(t, recs, `{"keyword":"alpha"}`, testOpts())
	if len(got) != 0 {
		t.Errorf("keyword without fields: got %v", got)
	}
	// Invalid keyword field configuration is a caller error, not an *Error.
	q, _ := ParseQuery([]byte(`{"keyword":"a"}`))
	if _, _, err := q.Run(recs, RunOptions{KeywordFields: []string{""}}); err == nil || IsInvalid(err) {
		t.Errorf("bad keyword field: err %v", err)
	}
}

func TestMinimal(t *testing.T) {
	recs := decodeRecords(t, filterRecords)
	opts := testOpts()
	opts.MinimalFields = []string{"id", "status"}
	q, _ := ParseQuery([]byte(`{"minimal":true,"page":{"limit":1}}`))
	res, _, _ := q.Run(recs, opts)
	jsonEqual(t, res, `[{"id":"a","status":"SUCCESS"}]`)
	// Without minimal fields, minimal changes nothing.
	res, _, _ = q.Run(recs, testOpts())
	if len(res[0]) != len(recs[0]) {
		t.Errorf("minimal without fields trimmed the record: %v", res[0])
	}
}

func TestNewQueryAndMatcher(t *testing.T) {
	q, err := NewQuery(map[string]any{
		"filter": []any{map[string]any{"k": "count", "v": 10, "o": "gte"}},
		"page":   map[string]any{"start": 1, "limit": int64(2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	recs := decodeRecords(t, filterRecords)
	res, total, _ := q.Run(recs, RunOptions{})
	if strings.Join(ids(res, "id"), ",") != "a,d" || total != 2 {
		t.Errorf("got %v %d", ids(res, "id"), total)
	}
	if _, err := NewQuery(nil); err != nil {
		t.Errorf("NewQuery(nil): %v", err)
	}
	q, _ = ParseQuery([]byte(`{"filter":[{"k":"created_at","v":"now/d","o":"datetime_gte"}]}`))
	m, err := q.Matcher(testOpts())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		if m(r) {
			got = append(got, r["id"].(string))
		}
	}
	if strings.Join(got, ",") != "c" {
		t.Errorf("Matcher: got %v", got)
	}
	// Records with Go-typed values (ints, nil maps) work too.
	q, _ = ParseQuery([]byte(`{"filter":[{"k":"n","v":[3],"o":"in"},{"k":"m.x","v":null,"o":"eq"}]}`))
	if !q.Match(map[string]any{"n": 3, "m": map[string]any(nil)}) {
		t.Error("Go-typed record did not match")
	}
	if q.Match(nil) {
		t.Error("nil record matched")
	}
}

func TestSortDatetimePrecision(t *testing.T) {
	recs := decodeRecords(t, `[{"id":"a","t":"2024-01-20T10:30:15Z"},{"id":"b","t":"2024-01-20T10:30:15.250Z"},
		{"id":"c","t":"2024-01-20T19:30:14+09:00"},{"id":"d","t":"2024-01-20"}]`)
	got, _ := runIDs(t, recs, `{"sort":[{"key":"t"}]}`, testOpts())
	if strings.Join(got, ",") != "d,c,a,b" {
		t.Errorf("got %v, want d,c,a,b", got)
	}
}

func TestZeroValues(t *testing.T) {
	recs := decodeRecords(t, filterRecords)
	var q Query
	if res, total, err := q.Run(recs, RunOptions{}); err != nil || total != 4 || len(res) != 4 {
		t.Errorf("zero Query: %d %d %v", len(res), total, err)
	}
	var sq StatisticsQuery
	if res, err := sq.Run(recs, RunOptions{}); err != nil || res["results"] == nil {
		t.Errorf("zero StatisticsQuery: %v %v", res, err)
	}
}

func TestRunDoesNotModifyInput(t *testing.T) {
	recs := decodeRecords(t, filterRecords)
	before, _ := json.Marshal(recs)
	order := ids(recs, "id")
	q, _ := ParseQuery([]byte(`{"sort":[{"key":"id","desc":true}],"only":["id"]}`))
	if _, _, err := q.Run(recs, testOpts()); err != nil {
		t.Fatal(err)
	}
	after, _ := json.Marshal(recs)
	if string(before) != string(after) || !reflect.DeepEqual(order, ids(recs, "id")) {
		t.Error("Run modified its input")
	}
}
