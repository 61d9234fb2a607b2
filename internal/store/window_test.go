package store

import (
	"errors"
	"reflect"
	"sort"
	"testing"
)

// windowFixture is the data the window tests replace: data source ds has an
// older committed run with one row per (month, variant); data source other has
// rows in the same months.
var windowMonths = []string{"2024-01", "2024-02", "2024-03", "2024-04"}

type variant struct {
	name string
	edit func(r *Record)
}

var variants = []variant{
	{"plain", func(r *Record) {}},
	{"gcp", func(r *Record) { r.Provider = "google_cloud"; r.RegionCode = "asia-northeast3" }},
	{"teamb", func(r *Record) { r.Tags = obj(map[string]any{"team": "b"}) }},
	{"acct", func(r *Record) { r.AdditionalInfo = obj(map[string]any{"Account Name": "prod"}); r.AccountID = "222" }},
	{"data7", func(r *Record) { r.Data = obj(map[string]any{"list_cost": 7.0, "billing_entity": "Marketplace"}) }},
	{"notags", func(r *Record) { r.Tags = nil }},
}

func oldRows(prefix string) []Record {
	var out []Record
	for _, m := range windowMonths {
		for _, v := range variants {
			r := rec(prefix+"-"+m+"-"+v.name, m+"-10", 1.25)
			v.edit(&r)
			out = append(out, r)
		}
	}
	return out
}

// names lists the resources "old-<month>-<variant>" for the months and variants.
func names(prefix string, months []string, vs ...string) []string {
	if len(vs) == 0 {
		for _, v := range variants {
			vs = append(vs, v.name)
		}
	}
	var out []string
	for _, m := range months {
		for _, v := range vs {
			out = append(out, prefix+"-"+m+"-"+v)
		}
	}
	sort.Strings(out)
	return out
}

func without(all []string, drop ...string) []string {
	d := map[string]bool{}
	for _, x := range drop {
		d[x] = true
	}
	var out []string
	for _, x := range all {
		if !d[x] {
			out = append(out, x)
		}
	}
	return out
}

func TestCommitReplacesTheWindowsOfOlderRuns(t *testing.T) {
	allOld := names("old", windowMonths)
	tests := []struct {
		name    string
		windows []Window
		// wantOld are the older run's rows that stay.
		wantOld []string
	}{
		{"no window keeps every older row", nil, allOld},
		{"a job-level window with an end replaces just its months",
			[]Window{{Start: "2024-02", End: "2024-03"}},
			names("old", []string{"2024-01", "2024-04"})},
		{"a window of one month replaces that month",
			[]Window{{Start: "2024-03", End: "2024-03"}},
			without(allOld, names("old", []string{"2024-03"})...)},
		{"a window without an end replaces every month from its start",
			[]Window{{Start: "2024-03"}},
			names("old", []string{"2024-01", "2024-02"})},
		{"a window filtered on a record column replaces the matching rows only",
			[]Window{{Start: "2024-01", End: "2024-04", Filter: map[string]any{"provider": "google_cloud"}}},
			without(allOld, names("old", windowMonths, "gcp")...)},
		{"a window filtered on two columns needs both to match",
			[]Window{{Start: "2024-01", Filter: map[string]any{"account_id": "222", "region_code": "us-east-1"}}},
			without(allOld, names("old", windowMonths, "acct")...)},
		{"a window filtered on tags.x replaces the rows with that tag value",
			[]Window{{Start: "2024-02", End: "2024-02", Filter: map[string]any{"tags.team": "b"}}},
			without(allOld, "old-2024-02-teamb")},
		{"a window filtered on a tag set to null replaces the rows without the tag",
			[]Window{{Start: "2024-01", Filter: map[string]any{"tags.team": nil}}},
			without(allOld, names("old", windowMonths, "notags")...)},
		{"a window filtered on additional_info.x replaces the rows with that value",
			[]Window{{Start: "2024-01", End: "2024-02", Filter: map[string]any{"additional_info.Account Name": "prod"}}},
			without(allOld, "old-2024-01-acct", "old-2024-02-acct")},
		{"a window filtered on data.x compares numbers as numbers",
			[]Window{{Start: "2024-04", Filter: map[string]any{"data.list_cost": 7}}},
			without(allOld, "old-2024-04-data7")},
		{"a filter that matches nothing replaces nothing",
			[]Window{{Start: "2024-01", Filter: map[string]any{"data.list_cost": "7"}}},
			allOld},
		{"job-level and per-task windows together replace the union",
			[]Window{
				{Start: "2024-04", End: "2024-04"},                                              // the job's changed window
				{Start: "2024-01", End: "2024-01", Filter: map[string]any{"tags.team": "b"}},    // task 1's task_changed
				{Start: "2024-02", End: "2024-02", Filter: map[string]any{"account_id": "222"}}, // task 2's task_changed
			},
			without(allOld, append(names("old", []string{"2024-04"}), "old-2024-01-teamb", "old-2024-02-acct")...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			old := runRef("ns", "ds", "old")
			write(t, s, taskRef(old, "t1"), oldRows("old"))
			commit(t, s, old, Window{Start: "2024-01"})
			other := runRef("ns", "other", "other")
			write(t, s, taskRef(other, "t1"), oldRows("other"))
			commit(t, s, other, Window{Start: "2024-01"})
			// The same resources in another namespace, same data source name.
			elsewhere := runRef("ns2", "ds", "elsewhere")
			write(t, s, taskRef(elsewhere, "t1"), oldRows("ns2"))
			commit(t, s, elsewhere, Window{Start: "2024-01"})

			run := runRef("ns", "ds", "new")
			write(t, s, taskRef(run, "t1"), []Record{rec("new-1", "2024-02-15", 10), rec("new-2", "2024-03-15", 20)})
			write(t, s, taskRef(run, "t2"), []Record{rec("new-3", "2024-05-01", 30)})
			before := visible(t, s, "ns", "ds")
			if !reflect.DeepEqual(before, allOld) {
				t.Fatalf("before the commit readers see %v, want only the older run's rows", before)
			}
			commit(t, s, run, tt.windows...)

			want := append(append([]string(nil), tt.wantOld...), "new-1", "new-2", "new-3")
			sort.Strings(want)
			if got := visible(t, s, "ns", "ds"); !reflect.DeepEqual(got, want) {
				t.Errorf("after the commit readers see\n %v\nwant\n %v", got, want)
			}
			if got := visible(t, s, "ns", "other"); !reflect.DeepEqual(got, names("other", windowMonths)) {
				t.Errorf("the other data source's rows changed: %v", got)
			}
			if got := visible(t, s, "ns2", "ds"); !reflect.DeepEqual(got, names("ns2", windowMonths)) {
				t.Errorf("the other namespace's rows changed: %v", got)
			}
			checkRollup(t, s)
		})
	}
}

func TestCommitRefusesBadWindowsBeforeDeletingAnything(t *testing.T) {
	tests := []struct {
		name   string
		window Window
	}{
		{"a start that is not a month", Window{Start: "2024-1"}},
		{"a start that is a date", Window{Start: "2024-01-01"}},
		{"no start", Window{End: "2024-02"}},
		{"an end that is not a month", Window{Start: "2024-01", End: "2024-13"}},
		{"an end before the start", Window{Start: "2024-03", End: "2024-02"}},
		{"an unknown filter key", Window{Start: "2024-01", Filter: map[string]any{"colour": "red"}}},
		{"a filter on tags. with no key", Window{Start: "2024-01", Filter: map[string]any{"tags.": "x"}}},
		{"a number for a text column", Window{Start: "2024-01", Filter: map[string]any{"account_id": 123.0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			old := runRef("ns", "ds", "old")
			write(t, s, taskRef(old, "t1"), oldRows("old"))
			commit(t, s, old)
			run := runRef("ns", "ds", "new")
			write(t, s, taskRef(run, "t1"), []Record{rec("new-1", "2024-02-15", 10)})
			// A good window first: nothing of it may be applied either.
			err := s.Commit(testCtx(t), run, []Window{{Start: "2024-01"}, tt.window})
			if !errors.Is(err, ErrInvalidWindow) {
				t.Fatalf("Commit: %v, want ErrInvalidWindow", err)
			}
			t.Log(err)
			if got := visible(t, s, "ns", "ds"); !reflect.DeepEqual(got, names("old", windowMonths)) {
				t.Errorf("after the refused commit readers see %v", got)
			}
			if st, _ := s.RunState(testCtx(t), run.JobUID); st != StateOpen {
				t.Errorf("the run is %q after the refused commit, want open", st)
			}
		})
	}
}
