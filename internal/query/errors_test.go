package query

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// queryErrorCases are invalid Query documents and the key of their *Error.
var queryErrorCases = []struct {
	query string
	key   string
}{
	{`[1]`, "query"},
	{`{"filter":`, "query"},
	{`"text"`, "query"},
	{`{"filter":{}}`, "query.filter"},
	{`{"filter":[1]}`, "query.filter[0]"},
	{`{"filter":[{"k":"a","v":1}]}`, "query.filter[0].o"},
	{`{"filter":[{"k":"a","v":1,"o":null}]}`, "query.filter[0].o"},
	{`{"filter":[{"k":"a","v":1,"o":"bogus"}]}`, "query.filter[0].o"},
	{`{"filter":[{"key":"a","value":1,"operator":"bogus"}]}`, "query.filter[0].operator"},
	{`{"filter":[{"k":"a","v":1,"o":5}]}`, "query.filter[0].o"},
	{`{"filter":[{"k":"a","v":1,"o":"EQ"}]}`, "query.filter[0].o"},
	{`{"filter":[{"v":1,"o":"eq"}]}`, "query.filter[0].k"},
	{`{"filter":[{"k":"","v":1,"o":"eq"}]}`, "query.filter[0].k"},
	{`{"filter":[{"k":"a..b","v":1,"o":"eq"}]}`, "query.filter[0].k"},
	{`{"filter":[{"k":3,"v":1,"o":"eq"}]}`, "query.filter[0].k"},
	{`{"filter":[{"key":3,"v":1,"o":"eq"}]}`, "query.filter[0].key"},
	{`{"filter":[{"k":"a","v":[1],"o":"eq"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":[1],"o":"not"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":null,"o":"lt"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":{},"o":"gte"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":[1],"o":"gt"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","o":"lte"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"ok","v":1,"o":"eq"}],"filter_or":[{"k":"a","v":"x","o":"in"}]}`, "query.filter_or[0].v"},
	{`{"filter":[{"k":"a","o":"in"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","value":"x","o":"not_in"}]}`, "query.filter[0].value"},
	{`{"filter":[{"k":"a","v":5,"o":"contain"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":["x"],"o":"not_contain"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":"x","o":"contain_in"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":["x",2],"o":"not_contain_in"}]}`, "query.filter[0].v[1]"},
	{`{"filter":[{"k":"a","v":"true","o":"exists"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","o":"exists"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":"(","o":"regex"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":"(?=x)","o":"regex"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":1,"o":"regex"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":"x","o":"regex_in"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":["ok","["],"o":"regex_in"}]}`, "query.filter[0].v[1]"},
	{`{"filter":[{"k":"a","v":[1],"o":"regex_in"}]}`, "query.filter[0].v[0]"},
	{`{"filter":[{"k":"a","v":"yesterday","o":"datetime_gt"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":"2024-13-01","o":"datetime_gt"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":20240101,"o":"datetime_lt"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":"now-7y","o":"datetime_gte"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":"now/x","o":"datetime_lte"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":"now-d","o":"datetime_lte"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":"now*7d","o":"datetime_lte"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":"now-99999999999999999999d","o":"datetime_lte"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":"now-9999999999w","o":"timediff_gt"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":"2024-01-01","o":"timediff_gt"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":[{"x":1}],"o":"match"}]}`, "query.filter[0].v"},
	{`{"filter":[{"k":"a","v":{"$gt":1},"o":"match"}]}`, "query.filter[0].v.$gt"},
	{`{"filter":[{"k":"a","v":{"x":{"$in":[1]}},"o":"match"}]}`, "query.filter[0].v.x.$in"},
	{`{"filter":[{"k":"a","v":{"x..y":1},"o":"match"}]}`, "query.filter[0].v.x..y"},
	{`{"filter_or":"x"}`, "query.filter_or"},
	{`{"sort":[{"desc":true}]}`, "query.sort[0].key"},
	{`{"sort":{"desc":true}}`, "query.sort.key"},
	{`{"sort":[{"key":""}]}`, "query.sort[0].key"},
	{`{"sort":[{"key":5}]}`, "query.sort[0].key"},
	{`{"sort":[{"k":5}]}`, "query.sort[0].k"},
	{`{"sort":"created_at"}`, "query.sort"},
	{`{"sort":[1]}`, "query.sort[0]"},
	{`{"sort":[{"key":"a","desc":"yes"}]}`, "query.sort[0].desc"},
	{`{"page":3}`, "query.page"},
	{`{"page":{"start":0}}`, "query.page.start"},
	{`{"page":{"start":-5,"limit":1}}`, "query.page.start"},
	{`{"page":{"start":1.5}}`, "query.page.start"},
	{`{"page":{"start":"1"}}`, "query.page.start"},
	{`{"page":{"limit":-1}}`, "query.page.limit"},
	{`{"page":{"limit":"10"}}`, "query.page.limit"},
	{`{"page":{"limit":1e999}}`, "query"},
	{`{"only":"id"}`, "query.only"},
	{`{"only":[1]}`, "query.only[0]"},
	{`{"only":["ok",""]}`, "query.only[1]"},
	{`{"only":["a."]}`, "query.only[0]"},
	{`{"count_only":"yes"}`, "query.count_only"},
	{`{"minimal":1}`, "query.minimal"},
	{`{"keyword":5}`, "query.keyword"},
}

// statErrorCases are invalid StatisticsQuery documents and their key.
var statErrorCases = []struct {
	query string
	key   string
}{
	{`[]`, "query"},
	{`{`, "query"},
	{`{}`, "query.aggregate"},
	{`{"aggregate":[]}`, "query.aggregate"},
	{`{"aggregate":{}}`, "query.aggregate"},
	{`{"aggregate":{"group":{}}}`, "query.aggregate"},
	{`{"distinct":5}`, "query.distinct"},
	{`{"distinct":""}`, "query.distinct"},
	{`{"distinct":"a","filter":[{"k":"a","v":1,"o":"nope"}]}`, "query.filter[0].o"},
	{`{"aggregate":[5]}`, "query.aggregate[0]"},
	{`{"aggregate":[{}]}`, "query.aggregate[0]"},
	{`{"aggregate":[{"count":{"name":"n"}},{"bogus":{}}]}`, "query.aggregate[1].bogus"},
	{`{"aggregate":[{"group":{"fields":[{"name":"n","operator":"count"}]},"count":{"name":"n"}}]}`, "query.aggregate[0]"},
	{`{"aggregate":[{"group":{}}]}`, "query.aggregate[0].group"},
	{`{"aggregate":[{"group":[]}]}`, "query.aggregate[0].group"},
	{`{"aggregate":[{"group":{"keys":[],"fields":[]}}]}`, "query.aggregate[0].group"},
	{`{"aggregate":[{"group":{"keys":{}}}]}`, "query.aggregate[0].group.keys"},
	{`{"aggregate":[{"group":{"keys":[5]}}]}`, "query.aggregate[0].group.keys[0]"},
	{`{"aggregate":[{"group":{"keys":[{"name":"s"}]}}]}`, "query.aggregate[0].group.keys[0].key"},
	{`{"aggregate":[{"group":{"keys":[{"k":7,"name":"s"}]}}]}`, "query.aggregate[0].group.keys[0].k"},
	{`{"aggregate":[{"group":{"keys":[{"key":"s"}]}}]}`, "query.aggregate[0].group.keys[0].name"},
	{`{"aggregate":[{"group":{"keys":[{"key":"s","name":"a.b"}]}}]}`, "query.aggregate[0].group.keys[0].name"},
	{`{"aggregate":[{"group":{"keys":[{"key":"s","n":"$x"}]}}]}`, "query.aggregate[0].group.keys[0].n"},
	{`{"aggregate":[{"group":{"keys":[{"key":"s","name":""}]}}]}`, "query.aggregate[0].group.keys[0].name"},
	{`{"aggregate":[{"group":{"keys":[{"key":"s","name":"s"},{"key":"t","name":"s"}]}}]}`, "query.aggregate[0].group.keys[1].name"},
	{`{"aggregate":[{"group":{"keys":[{"key":"d","name":"d","date_format":5}]}}]}`, "query.aggregate[0].group.keys[0].date_format"},
	{`{"aggregate":[{"group":{"keys":[{"key":"d","name":"d","date_format":""}]}}]}`, "query.aggregate[0].group.keys[0].date_format"},
	{`{"aggregate":[{"group":{"keys":[{"key":"d","name":"d","date_format":"%Y-%Q"}]}}]}`, "query.aggregate[0].group.keys[0].date_format"},
	{`{"aggregate":[{"group":{"keys":[{"key":"d","name":"d","date_format":"%Y%"}]}}]}`, "query.aggregate[0].group.keys[0].date_format"},
	{`{"aggregate":[{"group":{"fields":{}}}]}`, "query.aggregate[0].group.fields"},
	{`{"aggregate":[{"group":{"fields":["x"]}}]}`, "query.aggregate[0].group.fields[0]"},
	{`{"aggregate":[{"group":{"fields":[{"key":"c","name":"t","operator":"median"}]}}]}`, "query.aggregate[0].group.fields[0].operator"},
	{`{"aggregate":[{"group":{"fields":[{"key":"c","name":"t","o":"median"}]}}]}`, "query.aggregate[0].group.fields[0].o"},
	{`{"aggregate":[{"group":{"fields":[{"key":"c","name":"t"}]}}]}`, "query.aggregate[0].group.fields[0].operator"},
	{`{"aggregate":[{"group":{"fields":[{"key":"c","name":"t","operator":1}]}}]}`, "query.aggregate[0].group.fields[0].operator"},
	{`{"aggregate":[{"group":{"fields":[{"key":"c","operator":"sum"}]}}]}`, "query.aggregate[0].group.fields[0].name"},
	{`{"aggregate":[{"group":{"fields":[{"name":"t","operator":"sum"}]}}]}`, "query.aggregate[0].group.fields[0].key"},
	{`{"aggregate":[{"group":{"fields":[{"name":"t","key":"","operator":"max"}]}}]}`, "query.aggregate[0].group.fields[0].key"},
	{`{"aggregate":[{"group":{"fields":[{"name":"t","key":5,"operator":"count"}]}}]}`, "query.aggregate[0].group.fields[0].key"},
	{`{"aggregate":[{"group":{"keys":[{"key":"s","name":"t"}],"fields":[{"name":"t","operator":"count"}]}}]}`, "query.aggregate[0].group.fields[0].name"},
	{`{"aggregate":[{"group":{"fields":[{"name":"t","operator":"push"}]}}]}`, "query.aggregate[0].group.fields[0].key"},
	{`{"aggregate":[{"group":{"fields":[{"name":"t","operator":"push","fields":"a"}]}}]}`, "query.aggregate[0].group.fields[0].fields"},
	{`{"aggregate":[{"group":{"fields":[{"name":"t","operator":"push","fields":[5]}]}}]}`, "query.aggregate[0].group.fields[0].fields[0]"},
	{`{"aggregate":[{"group":{"fields":[{"name":"t","operator":"push","fields":[{"name":"x"}]}]}}]}`, "query.aggregate[0].group.fields[0].fields[0].key"},
	{`{"aggregate":[{"group":{"fields":[{"name":"t","operator":"push","fields":[{"key":"a","name":"a.b"}]}]}}]}`, "query.aggregate[0].group.fields[0].fields[0].name"},
	{`{"aggregate":[{"group":{"fields":[{"name":"t","key":"c","operator":"max","conditions":[]}]}}]}`, "query.aggregate[0].group.fields[0].conditions"},
	{`{"aggregate":[{"group":{"fields":[{"name":"t","operator":"count","conditions":{}}]}}]}`, "query.aggregate[0].group.fields[0].conditions"},
	{`{"aggregate":[{"group":{"fields":[{"name":"t","operator":"count","conditions":[{"key":"a","value":1,"operator":"in"}]}]}}]}`, "query.aggregate[0].group.fields[0].conditions[0].operator"},
	{`{"aggregate":[{"group":{"fields":[{"name":"t","operator":"count","conditions":[{"key":"a","value":1}]}]}}]}`, "query.aggregate[0].group.fields[0].conditions[0].operator"},
	{`{"aggregate":[{"group":{"fields":[{"name":"t","operator":"sum","key":"a","conditions":[{"key":"a","operator":"eq"}]}]}}]}`, "query.aggregate[0].group.fields[0].conditions[0].value"},
	{`{"aggregate":[{"group":{"fields":[{"name":"t","operator":"sum","key":"a","conditions":[{"value":1,"operator":"eq"}]}]}}]}`, "query.aggregate[0].group.fields[0].conditions[0].key"},
	{`{"aggregate":[{"unwind":{}}]}`, "query.aggregate[0].unwind.path"},
	{`{"aggregate":[{"unwind":"tags"}]}`, "query.aggregate[0].unwind"},
	{`{"aggregate":[{"unwind":{"path":3}}]}`, "query.aggregate[0].unwind.path"},
	{`{"aggregate":[{"unwind":{"path":"a..b"}}]}`, "query.aggregate[0].unwind.path"},
	{`{"aggregate":[{"count":{}}]}`, "query.aggregate[0].count.name"},
	{`{"aggregate":[{"count":"n"}]}`, "query.aggregate[0].count"},
	{`{"aggregate":[{"count":{"name":"a.b"}}]}`, "query.aggregate[0].count.name"},
	{`{"aggregate":[{"sort":{}}]}`, "query.aggregate[0].sort.key"},
	{`{"aggregate":[{"sort":{"desc":true}}]}`, "query.aggregate[0].sort.key"},
	{`{"aggregate":[{"sort":[]}]}`, "query.aggregate[0].sort"},
	{`{"aggregate":[{"sort":"x"}]}`, "query.aggregate[0].sort"},
	{`{"aggregate":[{"sort":{"keys":5}}]}`, "query.aggregate[0].sort.keys"},
	{`{"aggregate":[{"sort":{"keys":[]}}]}`, "query.aggregate[0].sort"},
	{`{"aggregate":[{"sort":{"keys":[{"desc":true}]}}]}`, "query.aggregate[0].sort.keys[0].key"},
	{`{"aggregate":[{"sort":[{"key":"a","desc":1}]}]}`, "query.aggregate[0].sort[0].desc"},
	{`{"aggregate":[{"limit":0}]}`, "query.aggregate[0].limit"},
	{`{"aggregate":[{"limit":-1}]}`, "query.aggregate[0].limit"},
	{`{"aggregate":[{"limit":"5"}]}`, "query.aggregate[0].limit"},
	{`{"aggregate":[{"limit":2.5}]}`, "query.aggregate[0].limit"},
	{`{"aggregate":[{"skip":-1}]}`, "query.aggregate[0].skip"},
	{`{"aggregate":[{"skip":1.5}]}`, "query.aggregate[0].skip"},
	{`{"aggregate":[{"skip":null}]}`, "query.aggregate[0].skip"},
	{`{"aggregate":[{"match":[]}]}`, "query.aggregate[0].match"},
	{`{"aggregate":[{"match":{"filter":[{"k":"a","v":"x","o":"in"}]}}]}`, "query.aggregate[0].match.filter[0].v"},
	{`{"aggregate":[{"project":{}}]}`, "query.aggregate[0].project.fields"},
	{`{"aggregate":[{"project":{"fields":[{"key":"a"}]}}]}`, "query.aggregate[0].project.fields[0].name"},
	{`{"aggregate":[{"project":{"fields":[{"name":"a"}]}}]}`, "query.aggregate[0].project.fields[0].key"},
	{`{"aggregate":[{"project":{"fields":[{"key":"a","name":"a","operator":"concat"}]}}]}`, "query.aggregate[0].project.fields[0].operator"},
	{`{"aggregate":[{"project":{"fields":[{"key":"a","name":"a"},{"key":"b","name":"a"}]}}]}`, "query.aggregate[0].project.fields[1].name"},
	{`{"aggregate":[{"project":{"fields":[{"key":"a","name":"a"}],"exclude_keys":"x"}}]}`, "query.aggregate[0].project.exclude_keys"},
	{`{"aggregate":[{"project":{"fields":[{"key":"a","name":"a"}],"only_keys":1}}]}`, "query.aggregate[0].project.only_keys"},
	{`{"aggregate":[{"count":{"name":"n"}}],"page":{"start":0}}`, "query.page.start"},
	{`{"aggregate":[{"count":{"name":"n"}}],"page":{"limit":-2}}`, "query.page.limit"},
	{`{"aggregate":[{"count":{"name":"n"}}],"page":[]}`, "query.page"},
}

func TestQueryErrors(t *testing.T) {
	for _, tc := range queryErrorCases {
		t.Run(tc.query, func(t *testing.T) {
			q, err := ParseQuery([]byte(tc.query))
			if err == nil {
				t.Fatalf("ParseQuery(%s) = %v, want an error", tc.query, q)
			}
			if e := asQueryError(t, err); e.Key != tc.key {
				t.Errorf("key = %q, want %q (%v)", e.Key, tc.key, err)
			}
		})
	}
}

func TestStatisticsQueryErrors(t *testing.T) {
	for _, tc := range statErrorCases {
		t.Run(tc.query, func(t *testing.T) {
			q, err := ParseStatisticsQuery([]byte(tc.query))
			if err == nil {
				t.Fatalf("ParseStatisticsQuery(%s) = %v, want an error", tc.query, q)
			}
			if e := asQueryError(t, err); e.Key != tc.key {
				t.Errorf("key = %q, want %q (%v)", e.Key, tc.key, err)
			}
		})
	}
}

func TestErrorHelpers(t *testing.T) {
	_, err := ParseQuery([]byte(`{"filter":[{"k":"a","v":1,"o":"bogus"}]}`))
	if msg := err.Error(); !strings.Contains(msg, "query.filter[0].o") || !strings.Contains(msg, "bogus") {
		t.Errorf("Error() = %q", msg)
	}
	if !IsInvalid(fmt.Errorf("wrapped: %w", err)) {
		t.Error("IsInvalid does not see wrapped errors")
	}
	if IsInvalid(errors.New("other")) || IsInvalid(nil) {
		t.Error("IsInvalid accepts unrelated errors")
	}
	if (&Error{Message: "m"}).Error() != "invalid parameter: m" {
		t.Error("Error() without key")
	}
	// NewQuery / NewStatisticsQuery return *Error too (and never a typed nil).
	if _, err := NewQuery(map[string]any{"page": map[string]any{"start": 0}}); !IsInvalid(err) {
		t.Errorf("NewQuery: %v", err)
	}
	if q, err := NewQuery(map[string]any{}); err != nil || q == nil {
		t.Errorf("NewQuery({}) = %v, %v", q, err)
	}
	if _, err := NewStatisticsQuery(map[string]any{}); !IsInvalid(err) {
		t.Errorf("NewStatisticsQuery: %v", err)
	}
}

// TestHugeAndDeepInputs checks that oversized or deeply nested input gives
// errors or results, never a panic.
func TestHugeAndDeepInputs(t *testing.T) {
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	for _, q := range []string{
		`{"filter":[{"k":"a","o":"eq","v":` + deep + `}]}`,
		`{"filter":` + deep + `}`,
	} {
		if _, err := ParseQuery([]byte(q)); !IsInvalid(err) {
			t.Errorf("deep query: %v", err)
		}
		if _, err := ParseStatisticsQuery([]byte(q)); !IsInvalid(err) {
			t.Errorf("deep stat query: %v", err)
		}
	}
	// Deep but accepted values: nested objects in eq/in/match and records.
	nested := strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat(`}`, 5000)
	q, err := ParseQuery([]byte(`{"filter_or":[{"k":"x","o":"eq","v":` + nested + `},{"k":"x","o":"in","v":[` + nested + `]}],"sort":[{"key":"x"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	recs := decodeRecords(t, `[{"x":`+nested+`},{"x":`+nested+`},{"x":[`+nested+`]}]`)
	if res, total, err := q.Run(recs, testOpts()); err != nil || total != 3 || len(res) != 3 {
		t.Errorf("deep records: %d %v", total, err)
	}
	sq, err := ParseStatisticsQuery([]byte(`{"aggregate":[{"group":{"keys":[{"key":"x","name":"x"}],
		"fields":[{"key":"x","name":"s","operator":"add_to_set"},{"key":"x","name":"m","operator":"max"}]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sq.Run(recs, testOpts()); err != nil {
		t.Error(err)
	}
	// A long key path and a large in-list.
	longKey := strings.Repeat("a.", 20000) + "b"
	list := "[" + strings.Repeat(`"v",1,`, 50000) + `null]`
	q, err = ParseQuery([]byte(`{"filter":[{"k":"` + longKey + `","o":"in","v":` + list + `}],"only":["` + longKey + `"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, total, _ := q.Run(recs, testOpts()); total != 3 {
		t.Errorf("in [null] over missing key: total %d", total)
	}
	// A regex that Go refuses for its size.
	if _, err := ParseQuery([]byte(`{"filter":[{"k":"a","o":"regex","v":"(a{1000}){1000}"}]}`)); !IsInvalid(err) {
		t.Errorf("huge regex: %v", err)
	}
}
