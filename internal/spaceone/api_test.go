package spaceone_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/kubeauth"
	"github.com/costops/cost-analysis-operator/internal/metering"
	"github.com/costops/cost-analysis-operator/internal/spaceone"
)

// The seeds' field lists, as the documents spell them.
var (
	jobInfoFields = []string{"job_id", "status", "error_code", "error_message", "total_tasks", "remained_tasks",
		"data_source_id", "domain_id", "created_at", "updated_at", "finished_at", "last_changed_at"}
	jobTaskInfoFields = []string{"job_task_id", "status", "options", "created_count", "error_code", "error_message",
		"job_id", "data_source_id", "domain_id", "created_at", "started_at", "updated_at", "finished_at"}
	productInfoFields = []string{"id", "cloud_service_type", "resource_type", "resource_spec_code", "resource_size",
		"resource_size_measure_id", "usage_factor", "usage_value", "usage_measure_id"}
)

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestEveryRouteAnswersPermittedCallersAndRefusesOthers(t *testing.T) {
	createJobs(t, domainA, jobSetup{name: "routes-running", dataSource: "billing",
		status: costv1.JobStatus{Status: costv1.JobInProgress, TotalTasks: 1, RemainedTasks: 1,
			Metering: &costv1.MeteringSummary{ResourceSpecCode: "cpu-100m", TaskPodSeconds: 60}}})
	createJobTasks(t, domainA, taskSetup{job: "routes-running", dataSource: "billing", options: `{"month":"2026-09"}`})
	byDomain := map[string]any{"domain_id": domainA}
	getJob := map[string]any{"domain_id": domainA, "job_id": "routes-running"}
	getTask := map[string]any{"domain_id": domainA, "job_task_id": "routes-running-0"}
	stat := map[string]any{"domain_id": domainA, "query": map[string]any{"aggregate": []any{
		map[string]any{"group": map[string]any{"keys": []any{map[string]any{"key": "status", "name": "status"}},
			"fields": []any{map[string]any{"name": "count", "operator": "count"}}}}}}}

	tests := map[string]struct {
		method, path string
		body         any
		permitted    string // a caller allowed to make the call
		metering     bool   // the answer's errors are the metering seed's
	}{
		"POST job/get reads one Job":                 {"POST", "/cost-analysis/v1/job/get", getJob, readerToken, false},
		"POST job/list lists Jobs":                   {"POST", "/cost-analysis/v1/job/list", byDomain, readerToken, false},
		"POST job/stat counts Jobs":                  {"POST", "/cost-analysis/v1/job/stat", stat, readerToken, false},
		"POST job/cancel cancels a Job":              {"POST", "/cost-analysis/v1/job/cancel", getJob, cancellerToken, false},
		"GET job/{job_id} reads one Job":             {"GET", "/cost-analysis/v1/job/routes-running?domain_id=" + domainA, nil, readerToken, false},
		"POST job/{job_id}/cancel cancels a Job":     {"POST", "/cost-analysis/v1/job/routes-running/cancel", byDomain, cancellerToken, false},
		"GET jobs lists Jobs":                        {"GET", "/cost-analysis/v1/jobs?domain_id=" + domainA, nil, readerToken, false},
		"POST jobs/search lists Jobs":                {"POST", "/cost-analysis/v1/jobs/search", byDomain, readerToken, false},
		"POST jobs/stat counts Jobs":                 {"POST", "/cost-analysis/v1/jobs/stat", stat, readerToken, false},
		"POST job-task/get reads one JobTask":        {"POST", "/cost-analysis/v1/job-task/get", getTask, readerToken, false},
		"POST job-task/list lists JobTasks":          {"POST", "/cost-analysis/v1/job-task/list", byDomain, readerToken, false},
		"POST job-task/stat counts JobTasks":         {"POST", "/cost-analysis/v1/job-task/stat", stat, readerToken, false},
		"GET metering describes what a Job consumed": {"GET", "/v5/" + domainA + "/jobs/routes-running/metering", nil, readerToken, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if r := do(t, tc.method, tc.path, tc.permitted, tc.body); r.Status != http.StatusOK {
				t.Errorf("permitted caller: got %d %s, want 200", r.Status, r.Body)
			}
			forbidden := []string{strangerToken}
			if tc.permitted == cancellerToken {
				forbidden = append(forbidden, readerToken) // reading is not cancelling
			} else {
				forbidden = append(forbidden, cancellerToken)
			}
			for _, token := range forbidden {
				r := do(t, tc.method, tc.path, token, tc.body)
				wantCode := spaceone.CodePermissionDenied
				gotCode := r.code()
				if tc.metering {
					wantCode, gotCode = spaceone.MeteringCodeForbidden, r.JSON["error_code"].(string)
				}
				if r.Status != http.StatusForbidden || gotCode != wantCode {
					t.Errorf("forbidden caller: got %d %s, want 403 %s", r.Status, r.Body, wantCode)
				}
			}
			for token, what := range map[string]string{"": "no token", "not-a-token": "an invalid token"} {
				r := do(t, tc.method, tc.path, token, tc.body)
				wantCode := spaceone.CodeAuthenticateFailure
				gotCode := r.code()
				if tc.metering {
					wantCode = spaceone.MeteringCodeNoToken
					if token != "" {
						wantCode = spaceone.MeteringCodeInvalidToken
					}
					gotCode, _ = r.JSON["error_code"].(string)
				}
				if r.Status != http.StatusUnauthorized || gotCode != wantCode {
					t.Errorf("%s: got %d %s, want 401 %s", what, r.Status, r.Body, wantCode)
				}
			}
		})
	}
}

func TestCallersAreConfinedToTheirNamespaces(t *testing.T) {
	tests := map[string]struct {
		path string
		body map[string]any
	}{
		"reader may not list Jobs of another domain":     {"/cost-analysis/v1/job/list", map[string]any{"domain_id": domainB}},
		"reader may not list JobTasks of another domain": {"/cost-analysis/v1/job-task/list", map[string]any{"domain_id": domainB}},
		"reader may not read a Job of another domain":    {"/cost-analysis/v1/job/get", map[string]any{"domain_id": domainB, "job_id": "x"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := do(t, "POST", tc.path, readerToken, tc.body)
			if r.Status != http.StatusForbidden || r.code() != spaceone.CodePermissionDenied {
				t.Errorf("got %d %s, want 403 %s", r.Status, r.Body, spaceone.CodePermissionDenied)
			}
		})
	}
	t.Run("an Authorization bearer header works as X-Auth-Token does", func(t *testing.T) {
		r := do(t, "POST", "/cost-analysis/v1/job/list", "", map[string]any{"domain_id": domainA},
			"Authorization", "Bearer "+readerToken)
		if r.Status != http.StatusOK {
			t.Errorf("got %d %s, want 200", r.Status, r.Body)
		}
	})
}

func TestJobInfoHasEveryDocumentedField(t *testing.T) {
	ns := newDomain(t)
	jobs := createJobs(t, ns,
		jobSetup{name: "finished", dataSource: "aws", status: costv1.JobStatus{
			Status: costv1.JobFailure, ErrorCode: costv1.ErrorJobTask, ErrorMessage: "task 2 failed",
			TotalTasks: 4, RemainedTasks: 1, CreatedCount: 120,
			CreatedAt: ts("2026-09-01T10:00:00Z"), UpdatedAt: ts("2026-09-01T10:30:00Z"),
			FinishedAt: ts("2026-09-01T10:30:00Z"), LastChangedAt: ts("2026-08-01T00:00:00Z"),
		}},
		jobSetup{name: "waiting", dataSource: "gcp"},
	)
	created := jobs["waiting"].CreationTimestamp.UTC().Format("2006-01-02T15:04:05Z")
	tests := map[string]struct {
		job  string
		want map[string]any
	}{
		"a finished Job shows its status fields in the seed's names": {"finished", map[string]any{
			"job_id": "finished", "status": "FAILURE", "error_code": "ERROR_JOB_TASK", "error_message": "task 2 failed",
			"total_tasks": 4.0, "remained_tasks": 1.0, "data_source_id": "aws", "domain_id": ns,
			"created_at": "2026-09-01T10:00:00Z", "updated_at": "2026-09-01T10:30:00Z",
			"finished_at": "2026-09-01T10:30:00Z", "last_changed_at": "2026-08-01T00:00:00Z",
		}},
		"a Job not picked up yet is SCOPE_NONE, created when its object was": {"waiting", map[string]any{
			"job_id": "waiting", "status": "SCOPE_NONE", "error_code": "", "error_message": "",
			"total_tasks": 0.0, "remained_tasks": 0.0, "data_source_id": "gcp", "domain_id": ns,
			"created_at": created, "updated_at": "", "finished_at": "", "last_changed_at": "",
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			answers := map[string]map[string]any{}
			r := do(t, "POST", "/cost-analysis/v1/job/get", readerToken, map[string]any{"domain_id": ns, "job_id": tc.job})
			answers["get"] = r.JSON
			r = do(t, "GET", "/cost-analysis/v1/job/"+tc.job+"?domain_id="+ns, readerToken, nil)
			answers["get (GET)"] = r.JSON
			r = do(t, "POST", "/cost-analysis/v1/job/list", readerToken, map[string]any{"domain_id": ns, "job_id": tc.job})
			if res := r.results(); len(res) == 1 {
				answers["list"] = res[0]
			} else {
				t.Fatalf("list: got %s", r.Body)
			}
			for how, got := range answers {
				if !slices.Equal(keysOf(got), sorted(jobInfoFields)) {
					t.Errorf("%s: fields %v, want the seed's %v", how, keysOf(got), sorted(jobInfoFields))
				}
				for k, want := range tc.want {
					if got[k] != want {
						t.Errorf("%s: %s = %#v, want %#v", how, k, got[k], want)
					}
				}
			}
		})
	}
	t.Run("only trims a Job to the fields asked for", func(t *testing.T) {
		r := do(t, "POST", "/cost-analysis/v1/job/get", readerToken,
			map[string]any{"domain_id": ns, "job_id": "finished", "only": []string{"job_id", "status"}})
		if got := keysOf(r.JSON); !slices.Equal(got, []string{"job_id", "status"}) || r.JSON["status"] != "FAILURE" {
			t.Errorf("got %s", r.Body)
		}
	})
}

func TestJobTaskInfoHasEveryDocumentedField(t *testing.T) {
	ns := newDomain(t)
	tasks := createJobTasks(t, ns,
		taskSetup{job: "run", dataSource: "aws", index: 0, options: `{"account_id":"a-1","month":"2026-09"}`,
			status: costv1.JobTaskStatus{Status: costv1.TaskSuccess, CreatedCount: 42,
				StartedAt: ts("2026-09-01T10:01:00Z"), UpdatedAt: ts("2026-09-01T10:05:00Z"), FinishedAt: ts("2026-09-01T10:05:00Z"),
				Attempts: 1, BatchJobName: "run-0", CollectedBytes: 1000}},
		taskSetup{job: "run", dataSource: "aws", index: 1, options: `{"account_id":"a-2"}`},
	)
	created := tasks["run-1"].CreationTimestamp.UTC().Format("2006-01-02T15:04:05Z")
	tests := map[string]struct {
		task    string
		want    map[string]any
		options map[string]any
	}{
		"a finished JobTask shows its status fields and task options": {"run-0", map[string]any{
			"job_task_id": "run-0", "status": "SUCCESS", "created_count": 42.0, "error_code": "", "error_message": "",
			"job_id": "run", "data_source_id": "aws", "domain_id": ns, "started_at": "2026-09-01T10:01:00Z",
			"updated_at": "2026-09-01T10:05:00Z", "finished_at": "2026-09-01T10:05:00Z",
		}, map[string]any{"account_id": "a-1", "month": "2026-09"}},
		"a JobTask waiting for a slot is PENDING": {"run-1", map[string]any{
			"job_task_id": "run-1", "status": "PENDING", "created_count": 0.0, "created_at": created,
			"started_at": "", "updated_at": "", "finished_at": "",
		}, map[string]any{"account_id": "a-2"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			answers := map[string]map[string]any{}
			r := do(t, "POST", "/cost-analysis/v1/job-task/get", readerToken, map[string]any{"domain_id": ns, "job_task_id": tc.task})
			answers["get"] = r.JSON
			r = do(t, "POST", "/cost-analysis/v1/job-task/list", readerToken, map[string]any{"domain_id": ns, "job_task_id": tc.task})
			if res := r.results(); len(res) == 1 {
				answers["list"] = res[0]
			} else {
				t.Fatalf("list: got %s", r.Body)
			}
			for how, got := range answers {
				if !slices.Equal(keysOf(got), sorted(jobTaskInfoFields)) {
					t.Errorf("%s: fields %v, want the seed's %v", how, keysOf(got), sorted(jobTaskInfoFields))
				}
				for k, want := range tc.want {
					if got[k] != want {
						t.Errorf("%s: %s = %#v, want %#v", how, k, got[k], want)
					}
				}
				opts, _ := got["options"].(map[string]any)
				if len(opts) != len(tc.options) {
					t.Errorf("%s: options = %v, want %v", how, got["options"], tc.options)
				}
				for k, v := range tc.options {
					if opts[k] != v {
						t.Errorf("%s: options.%s = %v, want %v", how, k, opts[k], v)
					}
				}
			}
		})
	}
}

// listFixture creates a domain with five Jobs of three data sources and four JobTasks.
func listFixture(t *testing.T) string {
	t.Helper()
	ns := newDomain(t)
	createJobs(t, ns,
		jobSetup{name: "aws-1", dataSource: "aws", status: costv1.JobStatus{Status: costv1.JobSuccess, TotalTasks: 3}},
		jobSetup{name: "aws-2", dataSource: "aws", status: costv1.JobStatus{Status: costv1.JobFailure, TotalTasks: 5, ErrorCode: costv1.ErrorJobTask}},
		jobSetup{name: "gcp-1", dataSource: "gcp", status: costv1.JobStatus{Status: costv1.JobSuccess, TotalTasks: 1}},
		jobSetup{name: "gcp-2", dataSource: "gcp", status: costv1.JobStatus{Status: costv1.JobInProgress, TotalTasks: 8, RemainedTasks: 8}},
		jobSetup{name: "azure-1", dataSource: "azure"},
	)
	createJobTasks(t, ns,
		taskSetup{job: "aws-1", dataSource: "aws", index: 0, options: `{"account_id":"acc-1"}`,
			status: costv1.JobTaskStatus{Status: costv1.TaskSuccess, CreatedCount: 10}},
		taskSetup{job: "aws-1", dataSource: "aws", index: 1, options: `{"account_id":"acc-2"}`,
			status: costv1.JobTaskStatus{Status: costv1.TaskFailure, ErrorCode: costv1.ErrorTaskPod}},
		taskSetup{job: "aws-2", dataSource: "aws", index: 0, options: `{"account_id":"acc-2"}`,
			status: costv1.JobTaskStatus{Status: costv1.TaskSuccess, CreatedCount: 5}},
		taskSetup{job: "gcp-1", dataSource: "gcp", index: 0, options: `{"account_id":"acc-3"}`},
	)
	return ns
}

type listCase struct {
	method, path string
	body         map[string]any
	want         []string // ids; compared in order when ordered
	ordered      bool
	total        int
	fields       []string // when set, the exact fields of every record
}

func runListCases(t *testing.T, idKey string, tests map[string]listCase) {
	t.Helper()
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			method := cmpOr(tc.method, "POST")
			r := do(t, method, tc.path, readerToken, tc.body)
			if r.Status != http.StatusOK {
				t.Fatalf("got %d %s", r.Status, r.Body)
			}
			got := r.ids(idKey)
			want := tc.want
			if !tc.ordered {
				got, want = sorted(got), sorted(want)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s = %v, want %v", idKey, got, want)
			}
			if total, _ := r.JSON["total_count"].(float64); int(total) != tc.total {
				t.Errorf("total_count = %v, want %d", r.JSON["total_count"], tc.total)
			}
			if tc.fields != nil {
				for _, rec := range r.results() {
					if !slices.Equal(keysOf(rec), sorted(tc.fields)) {
						t.Errorf("fields %v, want %v", keysOf(rec), sorted(tc.fields))
					}
				}
			}
		})
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestJobListFiltersAndQuery(t *testing.T) {
	ns := listFixture(t)
	const list = "/cost-analysis/v1/job/list"
	q := func(query map[string]any, fields ...any) map[string]any {
		m := map[string]any{"domain_id": ns, "query": query}
		for i := 0; i+1 < len(fields); i += 2 {
			m[fields[i].(string)] = fields[i+1]
		}
		return m
	}
	all := []string{"aws-1", "aws-2", "gcp-1", "gcp-2", "azure-1"}
	runListCases(t, "job_id", map[string]listCase{
		"no filter lists every Job of the domain": {path: list, body: map[string]any{"domain_id": ns}, want: all, total: 5},
		"status keeps the Jobs in that state": {path: list,
			body: map[string]any{"domain_id": ns, "status": "SUCCESS"}, want: []string{"aws-1", "gcp-1"}, total: 2},
		"status SCOPE_NONE keeps the Jobs not picked up yet": {path: list,
			body: map[string]any{"domain_id": ns, "status": "SCOPE_NONE"}, want: []string{"azure-1"}, total: 1},
		"data_source_id keeps one source's Jobs": {path: list,
			body: map[string]any{"domain_id": ns, "data_source_id": "aws"}, want: []string{"aws-1", "aws-2"}, total: 2},
		"job_id keeps one Job": {path: list,
			body: map[string]any{"domain_id": ns, "job_id": "gcp-2"}, want: []string{"gcp-2"}, total: 1},
		"filter fields combine": {path: list,
			body: map[string]any{"domain_id": ns, "data_source_id": "gcp", "status": "SUCCESS"}, want: []string{"gcp-1"}, total: 1},
		"a query filters and sorts": {path: list, body: q(map[string]any{
			"filter": []any{map[string]any{"k": "total_tasks", "v": 3, "o": "gte"}},
			"sort":   []any{map[string]any{"key": "total_tasks", "desc": true}}}),
			want: []string{"gcp-2", "aws-2", "aws-1"}, ordered: true, total: 3},
		"a query pages after sorting": {path: list, body: q(map[string]any{
			"sort": []any{map[string]any{"key": "job_id"}}, "page": map[string]any{"start": 2, "limit": 2}}),
			want: []string{"aws-2", "azure-1"}, ordered: true, total: 5},
		"only trims the records": {path: list, body: q(map[string]any{"only": []any{"job_id", "status"}}),
			want: all, total: 5, fields: []string{"job_id", "status"}},
		"count_only counts without records": {path: list, body: q(map[string]any{"count_only": true}), want: nil, total: 5},
		"keyword searches ids and data sources": {path: list, body: q(map[string]any{"keyword": "GCP"}),
			want: []string{"gcp-1", "gcp-2"}, total: 2},
		"filter_or matches either condition": {path: list, body: q(map[string]any{"filter_or": []any{
			map[string]any{"k": "status", "v": "FAILURE", "o": "eq"},
			map[string]any{"k": "data_source_id", "v": "azure", "o": "eq"}}}),
			want: []string{"aws-2", "azure-1"}, total: 2},
		"filter fields and a query combine": {path: list, body: q(map[string]any{"filter": []any{
			map[string]any{"k": "error_code", "v": "ERROR_JOB_TASK", "o": "eq"}}}, "data_source_id", "aws"),
			want: []string{"aws-2"}, total: 1},
		"the older POST jobs/search lists the same": {path: "/cost-analysis/v1/jobs/search",
			body: map[string]any{"domain_id": ns, "status": "SUCCESS"}, want: []string{"aws-1", "gcp-1"}, total: 2},
		"the older GET jobs takes its filters from the URL": {method: "GET",
			path: "/cost-analysis/v1/jobs?domain_id=" + ns + "&data_source_id=gcp&status=IN_PROGRESS", want: []string{"gcp-2"}, total: 1},
		"the older GET jobs takes a JSON query from the URL": {method: "GET",
			path: "/cost-analysis/v1/jobs?domain_id=" + ns + `&query={"filter":[{"k":"job_id","v":"azure","o":"contain"}]}`,
			want: []string{"azure-1"}, total: 1},
	})
}

func TestJobTaskListFiltersAndQuery(t *testing.T) {
	ns := listFixture(t)
	const list = "/cost-analysis/v1/job-task/list"
	runListCases(t, "job_task_id", map[string]listCase{
		"no filter lists every JobTask of the domain": {path: list, body: map[string]any{"domain_id": ns},
			want: []string{"aws-1-0", "aws-1-1", "aws-2-0", "gcp-1-0"}, total: 4},
		"job_id keeps one Job's tasks": {path: list, body: map[string]any{"domain_id": ns, "job_id": "aws-1"},
			want: []string{"aws-1-0", "aws-1-1"}, total: 2},
		"status PENDING keeps the tasks waiting for a slot": {path: list, body: map[string]any{"domain_id": ns, "status": "PENDING"},
			want: []string{"gcp-1-0"}, total: 1},
		"data_source_id keeps one source's tasks": {path: list, body: map[string]any{"domain_id": ns, "data_source_id": "aws"},
			want: []string{"aws-1-0", "aws-1-1", "aws-2-0"}, total: 3},
		"job_task_id keeps one task": {path: list, body: map[string]any{"domain_id": ns, "job_task_id": "aws-2-0"},
			want: []string{"aws-2-0"}, total: 1},
		"a query filters on task options": {path: list, body: map[string]any{"domain_id": ns, "query": map[string]any{
			"filter": []any{map[string]any{"k": "options.account_id", "v": "acc-2", "o": "eq"}},
			"sort":   []any{map[string]any{"key": "job_task_id"}}}},
			want: []string{"aws-1-1", "aws-2-0"}, ordered: true, total: 2},
		"filter fields and a query combine": {path: list, body: map[string]any{"domain_id": ns, "job_id": "aws-1",
			"query": map[string]any{"filter": []any{map[string]any{"k": "created_count", "v": 1, "o": "gte"}}}},
			want: []string{"aws-1-0"}, total: 1},
		"only trims the records": {path: list, body: map[string]any{"domain_id": ns, "job_id": "aws-2",
			"query": map[string]any{"only": []any{"job_task_id", "options"}}},
			want: []string{"aws-2-0"}, total: 1, fields: []string{"job_task_id", "options"}},
	})
}

func TestStatGroupsByStatusAndDataSource(t *testing.T) {
	ns := listFixture(t)
	group := func(key string, fields ...any) map[string]any {
		return map[string]any{"domain_id": ns, "query": map[string]any{"aggregate": []any{
			map[string]any{"group": map[string]any{"keys": []any{map[string]any{"key": key, "name": key}}, "fields": fields}},
			map[string]any{"sort": map[string]any{"key": key}}}}}
	}
	count := map[string]any{"name": "count", "operator": "count"}
	tests := map[string]struct {
		path string
		body map[string]any
		key  string
		want map[string]map[string]float64 // group → field → value
	}{
		"Jobs grouped by status": {"/cost-analysis/v1/job/stat", group("status", count), "status",
			map[string]map[string]float64{"SUCCESS": {"count": 2}, "FAILURE": {"count": 1}, "IN_PROGRESS": {"count": 1}, "SCOPE_NONE": {"count": 1}}},
		"Jobs grouped by data source with their tasks summed": {"/cost-analysis/v1/job/stat",
			group("data_source_id", count, map[string]any{"key": "total_tasks", "name": "tasks", "operator": "sum"}), "data_source_id",
			map[string]map[string]float64{"aws": {"count": 2, "tasks": 8}, "gcp": {"count": 2, "tasks": 9}, "azure": {"count": 1, "tasks": 0}}},
		"the older jobs/stat groups the same": {"/cost-analysis/v1/jobs/stat", group("status", count), "status",
			map[string]map[string]float64{"SUCCESS": {"count": 2}, "FAILURE": {"count": 1}, "IN_PROGRESS": {"count": 1}, "SCOPE_NONE": {"count": 1}}},
		"JobTasks grouped by status": {"/cost-analysis/v1/job-task/stat", group("status", count), "status",
			map[string]map[string]float64{"SUCCESS": {"count": 2}, "FAILURE": {"count": 1}, "PENDING": {"count": 1}}},
		"JobTasks grouped by data source with created counts summed": {"/cost-analysis/v1/job-task/stat",
			group("data_source_id", count, map[string]any{"key": "created_count", "name": "created", "operator": "sum"}), "data_source_id",
			map[string]map[string]float64{"aws": {"count": 3, "created": 15}, "gcp": {"count": 1, "created": 0}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := do(t, "POST", tc.path, readerToken, tc.body)
			if r.Status != http.StatusOK {
				t.Fatalf("got %d %s", r.Status, r.Body)
			}
			got := map[string]map[string]float64{}
			for _, rec := range r.results() {
				k, _ := rec[tc.key].(string)
				got[k] = map[string]float64{}
				for f, v := range rec {
					if n, ok := v.(float64); ok {
						got[k][f] = n
					}
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("groups %v, want %v", got, tc.want)
			}
			for k, fields := range tc.want {
				for f, v := range fields {
					if got[k][f] != v {
						t.Errorf("%s %s = %v, want %v (answer %s)", k, f, got[k][f], v, r.Body)
					}
				}
			}
		})
	}
	t.Run("a paged stat counts its groups", func(t *testing.T) {
		body := group("data_source_id", count)
		body["query"].(map[string]any)["page"] = map[string]any{"start": 1, "limit": 1}
		r := do(t, "POST", "/cost-analysis/v1/job/stat", readerToken, body)
		if len(r.results()) != 1 || r.JSON["total_count"] != 3.0 {
			t.Errorf("got %s, want one group of 3", r.Body)
		}
	})
	t.Run("distinct lists the data sources", func(t *testing.T) {
		r := do(t, "POST", "/cost-analysis/v1/job/stat", readerToken,
			map[string]any{"domain_id": ns, "query": map[string]any{"distinct": "data_source_id"}})
		var got []string
		for _, v := range r.JSON["results"].([]any) {
			got = append(got, v.(string))
		}
		if !slices.Equal(sorted(got), []string{"aws", "azure", "gcp"}) {
			t.Errorf("got %s", r.Body)
		}
	})
}

func TestCancel(t *testing.T) {
	ns := newDomain(t)
	createJobs(t, ns,
		jobSetup{name: "running", dataSource: "aws", status: costv1.JobStatus{Status: costv1.JobInProgress, TotalTasks: 2, RemainedTasks: 2}},
		jobSetup{name: "running-old-path", dataSource: "aws", status: costv1.JobStatus{Status: costv1.JobInProgress}},
		jobSetup{name: "done", dataSource: "aws", status: costv1.JobStatus{Status: costv1.JobSuccess, FinishedAt: ts("2026-09-01T10:00:00Z")}},
		jobSetup{name: "waiting", dataSource: "aws"},
	)
	tests := map[string]struct {
		path      string
		body      map[string]any
		status    int
		code      string
		message   string
		canceled  string // the Job whose spec.cancel must now be true
		unchanged string // the Job whose spec.cancel must still be false
	}{
		"cancel sets spec.cancel of a running Job and answers its JobInfo": {path: "/cost-analysis/v1/job/cancel",
			body: map[string]any{"domain_id": ns, "job_id": "running"}, status: http.StatusOK, canceled: "running"},
		"the older job/{job_id}/cancel does the same": {path: "/cost-analysis/v1/job/running-old-path/cancel",
			body: map[string]any{"domain_id": ns}, status: http.StatusOK, canceled: "running-old-path"},
		"a finished Job cannot be canceled": {path: "/cost-analysis/v1/job/cancel",
			body: map[string]any{"domain_id": ns, "job_id": "done"}, status: http.StatusBadRequest,
			code: spaceone.CodeJobState, message: "Only running jobs can be canceled. (job_state = SUCCESS)", unchanged: "done"},
		"a Job not picked up yet cannot be canceled": {path: "/cost-analysis/v1/job/cancel",
			body: map[string]any{"domain_id": ns, "job_id": "waiting"}, status: http.StatusBadRequest,
			code: spaceone.CodeJobState, message: "Only running jobs can be canceled. (job_state = SCOPE_NONE)", unchanged: "waiting"},
		"an unknown Job is not found": {path: "/cost-analysis/v1/job/cancel",
			body: map[string]any{"domain_id": ns, "job_id": "nope"}, status: http.StatusNotFound, code: spaceone.CodeNotFound},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := do(t, "POST", tc.path, cancellerToken, tc.body)
			if r.Status != tc.status || r.code() != tc.code {
				t.Fatalf("got %d %s, want %d %q", r.Status, r.Body, tc.status, tc.code)
			}
			if tc.message != "" && r.message() != tc.message {
				t.Errorf("message %q, want %q", r.message(), tc.message)
			}
			if tc.canceled != "" {
				if r.JSON["job_id"] != tc.canceled || r.JSON["status"] != "IN_PROGRESS" || !slices.Equal(keysOf(r.JSON), sorted(jobInfoFields)) {
					t.Errorf("answer %s, want the JobInfo of %s", r.Body, tc.canceled)
				}
				if !cancelOf(t, ns, tc.canceled) {
					t.Errorf("spec.cancel of %s is still false", tc.canceled)
				}
			}
			if tc.unchanged != "" && cancelOf(t, ns, tc.unchanged) {
				t.Errorf("spec.cancel of %s became true", tc.unchanged)
			}
		})
	}
}

func cancelOf(t *testing.T, ns, name string) bool {
	t.Helper()
	var j costv1.Job
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &j); err != nil {
		t.Fatal(err)
	}
	return j.Spec.Cancel
}

func TestBadRequestsGetSpaceONEErrors(t *testing.T) {
	ns := newDomain(t)
	tests := map[string]struct {
		path    string
		body    any
		status  int
		code    string
		message string
	}{
		"a call without domain_id": {"/cost-analysis/v1/job/list", map[string]any{}, http.StatusBadRequest,
			spaceone.CodeRequiredParameter, "Required parameter. (key = domain_id)"},
		"a get without job_id": {"/cost-analysis/v1/job/get", map[string]any{"domain_id": ns}, http.StatusBadRequest,
			spaceone.CodeRequiredParameter, "Required parameter. (key = job_id)"},
		"a get without job_task_id": {"/cost-analysis/v1/job-task/get", map[string]any{"domain_id": ns}, http.StatusBadRequest,
			spaceone.CodeRequiredParameter, "Required parameter. (key = job_task_id)"},
		"a job_id that is not a string": {"/cost-analysis/v1/job/get", map[string]any{"domain_id": ns, "job_id": 5}, http.StatusBadRequest,
			spaceone.CodeInvalidParameter, "Parameter is invalid. (key = job_id, reason = expected a string)"},
		"a domain_id that cannot be a namespace": {"/cost-analysis/v1/job/list", map[string]any{"domain_id": "Domain_A"}, http.StatusBadRequest,
			spaceone.CodeInvalidParameter, "Parameter is invalid. (key = domain_id, reason = not a namespace name)"},
		"an unknown status": {"/cost-analysis/v1/job-task/list", map[string]any{"domain_id": ns, "status": "DONE"}, http.StatusBadRequest,
			spaceone.CodeInvalidParameter, ""},
		"a body that is not JSON": {"/cost-analysis/v1/job/list", "domain_id=x", http.StatusBadRequest,
			spaceone.CodeInvalidParameter, "Parameter is invalid. (key = body, reason = the body must be a JSON object)"},
		"a query that is not an object": {"/cost-analysis/v1/job/list", map[string]any{"domain_id": ns, "query": "status=SUCCESS"}, http.StatusBadRequest,
			spaceone.CodeInvalidParameter, "Parameter is invalid. (key = query, reason = expected an object)"},
		"a query with an unknown operator": {"/cost-analysis/v1/job/list", map[string]any{"domain_id": ns,
			"query": map[string]any{"filter": []any{map[string]any{"k": "status", "v": "x", "o": "like"}}}}, http.StatusBadRequest,
			spaceone.CodeInvalidParameter, "query.filter[0].o"},
		"only that is not a list of strings": {"/cost-analysis/v1/job/get", map[string]any{"domain_id": ns, "job_id": "x", "only": []any{1}},
			http.StatusBadRequest, spaceone.CodeInvalidParameter, "key = only"},
		"a stat without a query": {"/cost-analysis/v1/job/stat", map[string]any{"domain_id": ns}, http.StatusBadRequest,
			spaceone.CodeRequiredParameter, "Required parameter. (key = query)"},
		"a stat with an unknown group operator": {"/cost-analysis/v1/job-task/stat", map[string]any{"domain_id": ns, "query": map[string]any{
			"aggregate": []any{map[string]any{"group": map[string]any{"keys": []any{map[string]any{"key": "status", "name": "s"}},
				"fields": []any{map[string]any{"name": "n", "operator": "median"}}}}}}}, http.StatusBadRequest,
			spaceone.CodeInvalidParameter, "query.aggregate[0].group.fields[0].operator"},
		"an unknown Job": {"/cost-analysis/v1/job/get", map[string]any{"domain_id": ns, "job_id": "nope"}, http.StatusNotFound,
			spaceone.CodeNotFound, "Resource cannot be found or access is denied. (job_id = nope)"},
		"an unknown route": {"/cost-analysis/v1/job/list/all", map[string]any{"domain_id": ns}, http.StatusNotFound,
			spaceone.CodeNotFound, "No such route. (method = POST, path = /cost-analysis/v1/job/list/all)"},
		"a GET route called with POST": {"/cost-analysis/v1/jobs", map[string]any{"domain_id": ns}, http.StatusMethodNotAllowed,
			spaceone.CodeMethodNotAllowed, "allowed = GET"},
		"an unknown JobTask": {"/cost-analysis/v1/job-task/get", map[string]any{"domain_id": ns, "job_task_id": "nope-0"}, http.StatusNotFound,
			spaceone.CodeNotFound, "Resource cannot be found or access is denied. (job_task_id = nope-0)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := do(t, "POST", tc.path, readerToken, tc.body)
			if r.Status != tc.status || r.code() != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, tc.status, tc.code)
			}
			if !strings.Contains(r.message(), tc.message) {
				t.Errorf("message %q, want it to hold %q", r.message(), tc.message)
			}
			if keys := keysOf(r.JSON); !slices.Equal(keys, []string{"detail"}) {
				t.Errorf("body fields %v, want only detail", keys)
			}
		})
	}
}

func TestMeteringReportsWhatARunConsumed(t *testing.T) {
	ns := newDomain(t)
	jobs := createJobs(t, ns,
		jobSetup{name: "metered", dataSource: "aws", status: costv1.JobStatus{Status: costv1.JobSuccess,
			Metering: &costv1.MeteringSummary{ResourceSpecCode: "cpu-100m.memory-64Mi", TaskPodSeconds: 7200, CollectedBytes: 5 << 30}}},
		jobSetup{name: "small", dataSource: "aws", status: costv1.JobStatus{Status: costv1.JobInProgress,
			Metering: &costv1.MeteringSummary{TaskPodSeconds: 1800, CollectedBytes: 512 << 20}}},
		jobSetup{name: "fresh", dataSource: "aws"},
	)
	type entry struct {
		spec    string
		factor  string
		value   float64
		measure float64
	}
	tests := map[string]struct {
		job  string
		want []entry
	}{
		"task pod time is hours on the collector's spec, and data is GB": {"metered", []entry{
			{"cpu-100m.memory-64Mi", "Duration", 2, 4}, {metering.ResourceSpecFlow, "flow", 5, 10}}},
		"a collector without resources is the default spec": {"small", []entry{
			{"default", "Duration", 0.5, 4}, {metering.ResourceSpecFlow, "flow", 0.5, 10}}},
		"a Job not picked up yet has consumed nothing": {"fresh", nil},
	}
	ids := map[string]string{}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := do(t, "GET", "/v5/"+ns+"/jobs/"+tc.job+"/metering", readerToken, nil)
			if r.Status != http.StatusOK || !slices.Equal(keysOf(r.JSON), []string{"product_info_list"}) {
				t.Fatalf("got %d %s", r.Status, r.Body)
			}
			list, ok := r.JSON["product_info_list"].([]any)
			if !ok || len(list) != len(tc.want) {
				t.Fatalf("product_info_list = %v, want %d entries", r.JSON["product_info_list"], len(tc.want))
			}
			again := do(t, "GET", "/v5/"+ns+"/jobs/"+tc.job+"/metering", readerToken, nil)
			for i, w := range tc.want {
				p := list[i].(map[string]any)
				if !slices.Equal(keysOf(p), sorted(productInfoFields)) {
					t.Errorf("fields %v, want the seed's %v", keysOf(p), sorted(productInfoFields))
				}
				if p["resource_spec_code"] != w.spec || p["usage_factor"] != w.factor || p["usage_value"] != w.value ||
					p["usage_measure_id"] != w.measure || p["cloud_service_type"] != metering.CloudServiceType || p["resource_size"] != 1.0 {
					t.Errorf("entry %d = %v, want %+v", i, p, w)
				}
				id, _ := p["id"].(string)
				if prev := again.JSON["product_info_list"].([]any)[i].(map[string]any)["id"]; prev != id {
					t.Errorf("entry %d's id changed between calls: %v, then %v", i, id, prev)
				}
				if other, dup := ids[id]; dup || len(id) != 36 {
					t.Errorf("entry %d's id %q is not a unique UUID (also %s)", i, id, other)
				}
				ids[id] = tc.job
			}
		})
	}
	t.Run("ids derive from the Job's UID", func(t *testing.T) {
		got := metering.Products(jobs["metered"])
		if got[0].ID == got[1].ID || got[0].ID != metering.Products(jobs["metered"].DeepCopy())[0].ID {
			t.Errorf("ids %s, %s are not stable and distinct", got[0].ID, got[1].ID)
		}
	})
}

func TestMeteringErrorsInEnglishAndChinese(t *testing.T) {
	ns := newDomain(t)
	createJobs(t, ns, jobSetup{name: "metered", dataSource: "aws",
		status: costv1.JobStatus{Status: costv1.JobSuccess, Metering: &costv1.MeteringSummary{TaskPodSeconds: 60}}})
	tests := map[string]struct {
		path, token, language string
		status                int
		code, message         string
	}{
		"no token": {"/v5/" + ns + "/jobs/metered/metering", "", "", http.StatusUnauthorized, spaceone.MeteringCodeNoToken,
			"The request carries no token: set X-Auth-Token or Authorization: Bearer."},
		"no token, in Chinese": {"/v5/" + ns + "/jobs/metered/metering", "", "zh-cn", http.StatusUnauthorized, spaceone.MeteringCodeNoToken,
			"请求未携带令牌：请设置X-Auth-Token或Authorization: Bearer。"},
		"an invalid token, in Chinese": {"/v5/" + ns + "/jobs/metered/metering", "garbage", "zh-cn", http.StatusUnauthorized,
			spaceone.MeteringCodeInvalidToken, "令牌无效或已过期。"},
		"an invalid job id": {"/v5/" + ns + "/jobs/Not_A_Job/metering", readerToken, "en-us", http.StatusBadRequest,
			spaceone.MeteringCodeInvalidJobID, "The value of parameter job_id is invalid."},
		"an invalid job id, in Chinese": {"/v5/" + ns + "/jobs/Not_A_Job/metering", readerToken, "zh-cn", http.StatusBadRequest,
			spaceone.MeteringCodeInvalidJobID, "参数job_id的值无效。"},
		"a job id longer than a Job name can be": {"/v5/" + ns + "/jobs/" + strings.Repeat("j", 53) + "/metering", readerToken, "", http.StatusBadRequest,
			spaceone.MeteringCodeInvalidJobID, "The value of parameter job_id is invalid."},
		"an invalid project id": {"/v5/Not_A_Project/jobs/metered/metering", readerToken, "", http.StatusBadRequest,
			spaceone.MeteringCodeInvalidProjectID, "The value of parameter project_id is invalid."},
		"a caller without access, in Chinese": {"/v5/" + ns + "/jobs/metered/metering", strangerToken, "zh-CN", http.StatusForbidden,
			spaceone.MeteringCodeForbidden, "您无权读取任务metered。"},
		"an unknown Job": {"/v5/" + ns + "/jobs/nope/metering", readerToken, "en-us", http.StatusNotFound,
			spaceone.MeteringCodeJobNotFound, "Job nope does not exist."},
		"an unknown Job, in Chinese": {"/v5/" + ns + "/jobs/nope/metering", readerToken, "zh-cn", http.StatusNotFound,
			spaceone.MeteringCodeJobNotFound, "任务nope不存在。"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var headers []string
			if tc.language != "" {
				headers = []string{"X-Language", tc.language}
			}
			r := do(t, "GET", tc.path, tc.token, nil, headers...)
			if r.Status != tc.status || r.JSON["error_code"] != tc.code || r.JSON["error_msg"] != tc.message {
				t.Errorf("got %d %s, want %d %s %q", r.Status, r.Body, tc.status, tc.code, tc.message)
			}
			if !slices.Equal(keysOf(r.JSON), []string{"error_code", "error_msg"}) || len(tc.code) != 12 {
				t.Errorf("body %s is not the seed's {error_code (12 characters), error_msg}", r.Body)
			}
		})
	}
}

func TestNoAnswerShowsSecretData(t *testing.T) {
	// domainA holds a Secret and a DataSource that reads it; do() fails any answer
	// that shows the Secret's data, whichever route it came from.
	createJobs(t, domainA, jobSetup{name: "secret-source", dataSource: "billing",
		status: costv1.JobStatus{Status: costv1.JobFailure, ErrorCode: costv1.ErrorPluginUnavailable, ErrorMessage: "plugin unreachable"}})
	createJobTasks(t, domainA, taskSetup{job: "secret-source", dataSource: "billing", options: `{"month":"2026-09"}`})
	everything := map[string]any{"domain_id": domainA, "query": map[string]any{}}
	stat := map[string]any{"domain_id": domainA, "query": map[string]any{"aggregate": []any{
		map[string]any{"group": map[string]any{"keys": []any{map[string]any{"key": "data_source_id", "name": "ds"}},
			"fields": []any{map[string]any{"key": "options", "name": "all", "operator": "push"}}}}}}}
	calls := map[string]struct {
		method, path string
		body         any
	}{
		"job list":      {"POST", "/cost-analysis/v1/job/list", everything},
		"job get":       {"POST", "/cost-analysis/v1/job/get", map[string]any{"domain_id": domainA, "job_id": "secret-source"}},
		"job stat":      {"POST", "/cost-analysis/v1/job/stat", stat},
		"job-task list": {"POST", "/cost-analysis/v1/job-task/list", everything},
		"job-task stat": {"POST", "/cost-analysis/v1/job-task/stat", stat},
		"metering":      {"GET", "/v5/" + domainA + "/jobs/secret-source/metering", nil},
	}
	for name, c := range calls {
		t.Run(name+" shows no secret data", func(t *testing.T) {
			if r := do(t, c.method, c.path, readerToken, c.body); r.Status != http.StatusOK {
				t.Errorf("got %d %s", r.Status, r.Body)
			}
		})
	}
}

func TestSelfSignedServerServesTLS(t *testing.T) {
	opts := spaceone.DefaultOptions()
	opts.BindAddress = "127.0.0.1:0"
	opts.SelfSignedHosts = []string{"cost-analysis-spaceone.cost-analysis-system.svc"}
	srv := spaceone.New(reader, k8s, spaceone.NewKubeAuthenticator(mustAuth(kubeauth.Options{})), opts)
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: insecureTLS()}}
	resp, err := client.Get("https://" + ln.Addr().String() + "/v5/" + domainA + "/jobs/x/metering")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status %d, want 401", resp.StatusCode)
	}
	leaf := resp.TLS.PeerCertificates[0]
	if !slices.Contains(leaf.DNSNames, "localhost") || !slices.Contains(leaf.DNSNames, opts.SelfSignedHosts[0]) {
		t.Errorf("certificate names %v, want localhost and %s", leaf.DNSNames, opts.SelfSignedHosts[0])
	}
	if leaf.NotAfter.Before(time.Now().Add(300 * 24 * time.Hour)) {
		t.Errorf("certificate expires %v, want about a year", leaf.NotAfter)
	}
}

func TestOptionsEnableTheAPI(t *testing.T) {
	tests := map[string]struct {
		address string
		want    bool
	}{
		"the default address serves": {":8443", true},
		"0 disables the API":         {"0", false},
		"an empty address disables":  {"", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := spaceone.DefaultOptions()
			o.BindAddress = tc.address
			if o.Enabled() != tc.want {
				t.Errorf("Enabled() = %v, want %v", o.Enabled(), tc.want)
			}
		})
	}
}
