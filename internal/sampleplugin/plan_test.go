package sampleplugin

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/costops/cost-analysis-operator/internal/plugin/pluginpb"
)

var clock = time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)

// taskNames renders a plan's tasks as "account/month".
func taskNames(res *pluginpb.TasksInfo) []string {
	var out []string
	for _, t := range res.GetTasks() {
		o := t.GetTaskOptions().AsMap()
		out = append(out, fmt.Sprintf("%v/%v", o["account_id"], o["month"]))
	}
	return out
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPlanSplitsPerAccountAndMonth(t *testing.T) {
	cases := map[string]struct {
		options  map[string]any
		start    string
		lastSync string
		linked   []string
		want     []string
		changed  string
	}{
		"no start and no last sync: the current month only": {
			want: []string{"account-a/2024-03"}, changed: "2024-03"},
		"a start month runs up to now": {
			start: "2024-01", want: []string{"account-a/2024-01", "account-a/2024-02", "account-a/2024-03"}, changed: "2024-01"},
		"a start day counts as its month": {
			start: "2024-02-15", want: []string{"account-a/2024-02", "account-a/2024-03"}, changed: "2024-02"},
		"every account gets every month": {
			options: map[string]any{"accounts": []any{"a", "b"}}, start: "2024-02",
			want: []string{"a/2024-02", "a/2024-03", "b/2024-02", "b/2024-03"}, changed: "2024-02"},
		"the last sync re-syncs one month by default": {
			lastSync: "2024-03-05T10:00:00Z", want: []string{"account-a/2024-02", "account-a/2024-03"}, changed: "2024-02"},
		"resync_months widens the window": {
			options: map[string]any{"resync_months": 3}, lastSync: "2024-02-05T10:00:00Z",
			want: []string{"account-a/2023-11", "account-a/2023-12", "account-a/2024-01", "account-a/2024-02", "account-a/2024-03"}, changed: "2023-11"},
		"resync_months 0 starts at the last sync's month": {
			options: map[string]any{"resync_months": 0}, lastSync: "2024-03-01T00:00:00Z", want: []string{"account-a/2024-03"}, changed: "2024-03"},
		"start wins over the last sync": {
			start: "2024-03", lastSync: "2023-01-01T00:00:00Z", want: []string{"account-a/2024-03"}, changed: "2024-03"},
		"a last sync ahead of the clock gives the current month": {
			lastSync: "2024-09-01T00:00:00Z", want: []string{"account-a/2024-03"}, changed: "2024-03"},
		"now overrides the clock": {
			options: map[string]any{"now": "2024-05"}, start: "2024-04", want: []string{"account-a/2024-04", "account-a/2024-05"}, changed: "2024-04"},
		"linked accounts are used when no accounts are set": {
			linked: []string{"l1", "l2"}, want: []string{"l1/2024-03", "l2/2024-03"}, changed: "2024-03"},
		"an empty accounts list plans nothing": {
			options: map[string]any{"accounts": []any{}}, want: nil, changed: "2024-03"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			req := &pluginpb.GetTasksRequest{Start: tc.start, LastSynchronizedAt: tc.lastSync}
			for _, a := range tc.linked {
				req.LinkedAccounts = append(req.LinkedAccounts, mustStruct(t, map[string]any{"account_id": a}))
			}
			res, err := plan(knobs(tc.options), req, clock)
			if err != nil {
				t.Fatal(err)
			}
			if got := taskNames(res); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("tasks %v, want %v", got, tc.want)
			}
			if len(res.GetChanged()) != 1 || res.GetChanged()[0].GetStart() != tc.changed || res.GetChanged()[0].GetEnd() != "" {
				t.Errorf("changed %v, want [{start: %s}]", res.GetChanged(), tc.changed)
			}
			for _, task := range res.GetTasks() {
				o, c := task.GetTaskOptions().AsMap(), task.GetTaskChanged()
				if c.GetStart() != o["month"] || c.GetEnd() != o["month"] || c.GetFilter().AsMap()["account_id"] != o["account_id"] {
					t.Errorf("task %v has task_changed %v", o, c)
				}
			}
		})
	}
}

func TestPlanSyncedAccounts(t *testing.T) {
	res, err := plan(knobs{"accounts": []any{"a", "b"}}, &pluginpb.GetTasksRequest{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range res.GetSyncedAccounts() {
		got = append(got, a.GetAccountId()+"="+a.GetName())
	}
	if want := []string{"a=Sample a", "b=Sample b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("synced accounts %v, want %v", got, want)
	}
}

func TestPlanTasksOverride(t *testing.T) {
	start := time.Now()
	res, err := plan(knobs{"tasks": float64(5000), "accounts": []any{"a", "b"}}, &pluginpb.GetTasksRequest{Start: "2024-02"}, clock)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("planning 5,000 tasks took %s", d)
	}
	if n := len(res.GetTasks()); n != 5000 {
		t.Fatalf("%d tasks, want 5000", n)
	}
	for i, task := range res.GetTasks()[:4] {
		o := task.GetTaskOptions().AsMap()
		want := map[string]any{"index": float64(i), "account_id": []string{"a", "b"}[i%2], "month": []string{"2024-02", "2024-03"}[i/2%2]}
		if !reflect.DeepEqual(o, want) || task.GetTaskChanged() != nil {
			t.Errorf("task %d: %v (changed %v), want %v", i, o, task.GetTaskChanged(), want)
		}
	}
	res, err = plan(knobs{"tasks": float64(0)}, &pluginpb.GetTasksRequest{}, clock)
	if err != nil || len(res.GetTasks()) != 0 {
		t.Errorf("tasks 0: %d tasks, err %v", len(res.GetTasks()), err)
	}
}

func TestPlanRejectsBadInput(t *testing.T) {
	cases := map[string]struct {
		options map[string]any
		start   string
		sync    string
	}{
		"a start that is no month":          {start: "March"},
		"a start after now":                 {start: "2024-04"},
		"a last sync that is no time":       {sync: "yesterday"},
		"a negative task count":             {options: map[string]any{"tasks": float64(-1)}},
		"a fractional task count":           {options: map[string]any{"tasks": 1.5}},
		"a task count that is a string":     {options: map[string]any{"tasks": "10"}},
		"accounts that are not strings":     {options: map[string]any{"accounts": []any{1.0}}},
		"accounts that are not a list":      {options: map[string]any{"accounts": "a"}},
		"a now that is no month":            {options: map[string]any{"now": "soon"}},
		"a negative resync window":          {options: map[string]any{"resync_months": -1.0}, sync: "2024-01-01T00:00:00Z"},
		"a malformed_tasks that is no bool": {options: map[string]any{"malformed_tasks": "yes"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := plan(knobs(tc.options), &pluginpb.GetTasksRequest{Start: tc.start, LastSynchronizedAt: tc.sync}, clock)
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("err %v, want InvalidArgument", err)
			}
		})
	}
}

func TestPlanMalformedKnobs(t *testing.T) {
	res, err := plan(knobs{"tasks": float64(2), "malformed_tasks": true}, &pluginpb.GetTasksRequest{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.GetTasks()); n != 3 || res.GetTasks()[2].GetTaskOptions() != nil {
		t.Errorf("malformed_tasks: %d tasks, last %v", n, res.GetTasks()[n-1])
	}
	res, err = plan(knobs{"malformed_changed": true}, &pluginpb.GetTasksRequest{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.GetChanged()[0].GetStart(); got != "not-a-date" {
		t.Errorf("malformed_changed: start %q", got)
	}
}

func TestCodeByName(t *testing.T) {
	cases := map[string]codes.Code{
		"UNAVAILABLE":       codes.Unavailable,
		"INVALID_ARGUMENT":  codes.InvalidArgument,
		"Unauthenticated":   codes.Unauthenticated,
		"deadline_exceeded": codes.DeadlineExceeded,
		"CANCELLED":         codes.Canceled,
	}
	for name, want := range cases {
		if got, ok := codeByName(name); !ok || got != want {
			t.Errorf("codeByName(%q) = %v, %v; want %v", name, got, ok, want)
		}
	}
	if _, ok := codeByName("NOPE"); ok {
		t.Errorf("NOPE is a code")
	}
}
