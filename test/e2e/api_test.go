package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// A curl session against the manager's HTTPS API, as the README shows it: a
// ServiceAccount token from `kubectl create token`, RBAC from `kubectl create role`,
// and the SpaceONE cost-analysis and job metering routes answering from the same
// Jobs and JobTasks that kubectl shows.
func TestHTTPAPIWithCurl(t *testing.T) {
	k := setup(t)
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("this test drives the API with curl, as a user would: %v", err)
	}

	k.createDataSource("billing", source{options: map[string]any{"tasks": 3}})
	k.createJob("done", "billing")
	// A run that stays IN_PROGRESS until the API cancels it.
	k.createDataSource("slow", source{options: map[string]any{"tasks": 2}, pods: map[string]string{fakeDuration: "1h"}})
	k.createJob("long", "slow")

	// Readers may get and list; the operator may also patch (cancel); a stranger has a
	// token and no role.
	for _, sa := range []string{"reader", "operator", "stranger"} {
		k.kubectl("create", "serviceaccount", sa)
	}
	resources := "--resource=jobs.cost-analysis.costops.dev,jobtasks.cost-analysis.costops.dev"
	k.kubectl("create", "role", "reader", "--verb=get,list", resources)
	k.kubectl("create", "role", "operator", "--verb=get,list,patch", resources)
	k.kubectl("create", "rolebinding", "reader", "--role=reader", "--serviceaccount="+k.ns+":reader")
	k.kubectl("create", "rolebinding", "operator", "--role=operator", "--serviceaccount="+k.ns+":operator")
	token := func(sa string) string { return strings.TrimSpace(k.kubectl("create", "token", sa)) }
	reader, operator, stranger := token("reader"), token("operator"), token("stranger")

	k.wait("cajob/done", "{.status.status}", "SUCCESS", 2*time.Minute)
	k.wait("cajob/long", "{.status.tasks.inProgress}", "2", 90*time.Second)
	done := k.job("done")

	c := &curl{t: t, base: "https://" + env.APIAddr}
	domain := fmt.Sprintf(`"domain_id": %q`, k.ns)

	// Job list with a Query, as in the README.
	var jobs struct {
		Results    []map[string]any `json:"results"`
		TotalCount int              `json:"total_count"`
	}
	c.ok(&jobs, reader, "POST", "/cost-analysis/v1/job/list",
		`{`+domain+`, "query": {"filter": [{"k": "status", "v": "SUCCESS", "o": "eq"}]}}`)
	if jobs.TotalCount != 1 || len(jobs.Results) != 1 {
		t.Fatalf("job list of SUCCESS: %d results, total_count %d; want only Job done", len(jobs.Results), jobs.TotalCount)
	}
	got := jobs.Results[0]
	for key, want := range map[string]any{"job_id": "done", "status": "SUCCESS", "data_source_id": "billing", "domain_id": k.ns,
		"total_tasks": 3.0, "remained_tasks": 0.0, "error_code": "", "created_at": done.CreationTimestamp.UTC().Format(time.RFC3339),
		"finished_at": done.Status.FinishedAt.UTC().Format(time.RFC3339)} {
		if got[key] != want {
			t.Errorf("JobInfo %s = %v, want %v", key, got[key], want)
		}
	}
	for _, key := range []string{"error_message", "updated_at", "last_changed_at"} {
		if _, ok := got[key]; !ok {
			t.Errorf("JobInfo has no %s: %v", key, got)
		}
	}

	// The filter fields of JobQuery, and the older GET forms.
	c.ok(&jobs, reader, "POST", "/cost-analysis/v1/job/list", `{`+domain+`, "status": "IN_PROGRESS"}`)
	if jobs.TotalCount != 1 || jobs.Results[0]["job_id"] != "long" {
		t.Errorf("job list status=IN_PROGRESS: %v, want Job long", jobs.Results)
	}
	c.ok(&jobs, reader, "GET", "/cost-analysis/v1/jobs?domain_id="+k.ns+"&data_source_id=slow", "")
	if jobs.TotalCount != 1 || jobs.Results[0]["job_id"] != "long" {
		t.Errorf("GET jobs?data_source_id=slow: %v, want Job long", jobs.Results)
	}
	var job map[string]any
	c.ok(&job, reader, "POST", "/cost-analysis/v1/job/get", `{`+domain+`, "job_id": "done", "only": ["job_id", "status"]}`)
	if len(job) != 2 || job["job_id"] != "done" || job["status"] != "SUCCESS" {
		t.Errorf("job get with only: %v, want job_id and status alone", job)
	}
	c.ok(&job, reader, "GET", "/cost-analysis/v1/job/done?domain_id="+k.ns, "")
	if job["job_id"] != "done" || job["total_tasks"] != 3.0 {
		t.Errorf("GET job/done: %v", job)
	}

	// JobTasks of a Job: created counts add up to the Job's.
	var tasks struct {
		Results    []map[string]any `json:"results"`
		TotalCount int              `json:"total_count"`
	}
	c.ok(&tasks, reader, "POST", "/cost-analysis/v1/job-task/list",
		`{`+domain+`, "job_id": "done", "query": {"sort": [{"key": "job_task_id"}]}}`)
	if tasks.TotalCount != 3 {
		t.Fatalf("job-task list of done: total_count %d, want 3", tasks.TotalCount)
	}
	var created float64
	for i, task := range tasks.Results {
		if task["job_task_id"] != fmt.Sprintf("done-%d", i) || task["status"] != "SUCCESS" || task["job_id"] != "done" ||
			task["data_source_id"] != "billing" || task["started_at"] == "" || task["finished_at"] == "" {
			t.Errorf("JobTaskInfo %d: %v", i, task)
		}
		if opts, ok := task["options"].(map[string]any); !ok || opts["account_id"] == nil {
			t.Errorf("JobTaskInfo %d options %v, want the plugin's task options", i, task["options"])
		}
		n, _ := task["created_count"].(float64)
		created += n
	}
	if r := k.reportedCount("done"); int64(created) != r || created == 0 {
		t.Errorf("JobTaskInfos say %v records were created, the JobTasks %d", created, r)
	}
	var task map[string]any
	c.ok(&task, reader, "POST", "/cost-analysis/v1/job-task/get", `{`+domain+`, "job_task_id": "done-1"}`)
	if task["job_task_id"] != "done-1" || task["job_id"] != "done" {
		t.Errorf("job-task get: %v", task)
	}

	// Stat: tasks by status across both runs, Jobs by data source.
	var stat struct {
		Results []map[string]any `json:"results"`
	}
	c.ok(&stat, reader, "POST", "/cost-analysis/v1/job-task/stat", `{`+domain+`, "query": {"aggregate": [
		{"group": {"keys": [{"key": "status", "name": "status"}], "fields": [{"name": "n", "operator": "count"}]}},
		{"sort": {"key": "status"}}]}}`)
	if fmt.Sprint(stat.Results) != "[map[n:2 status:IN_PROGRESS] map[n:3 status:SUCCESS]]" {
		t.Errorf("job-task stat by status: %v, want 2 IN_PROGRESS and 3 SUCCESS", stat.Results)
	}
	c.ok(&stat, reader, "POST", "/cost-analysis/v1/jobs/stat", `{`+domain+`, "query": {"aggregate": [
		{"group": {"keys": [{"key": "data_source_id", "name": "ds"}], "fields": [{"key": "total_tasks", "name": "tasks", "operator": "sum"}]}},
		{"sort": {"key": "ds"}}]}}`)
	if fmt.Sprint(stat.Results) != "[map[ds:billing tasks:3] map[ds:slow tasks:2]]" {
		t.Errorf("job stat by data source: %v", stat.Results)
	}

	// Job metering: the task pods' hours and the data they collected.
	var metering struct {
		ProductInfoList []map[string]any `json:"product_info_list"`
	}
	c.ok(&metering, reader, "GET", "/v5/"+k.ns+"/jobs/done/metering", "")
	if len(metering.ProductInfoList) != 2 {
		t.Fatalf("metering: %v, want the task pods' duration and the flow", metering.ProductInfoList)
	}
	factors := map[string]float64{}
	for _, p := range metering.ProductInfoList {
		for _, key := range []string{"id", "cloud_service_type", "resource_type", "resource_spec_code", "resource_size",
			"resource_size_measure_id", "usage_factor", "usage_value", "usage_measure_id"} {
			if _, ok := p[key]; !ok {
				t.Errorf("product_info has no %s: %v", key, p)
			}
		}
		factors[fmt.Sprint(p["usage_factor"])] = p["usage_value"].(float64)
	}
	if m := done.Status.Metering; m == nil || factors["Duration"] <= 0 ||
		factors["flow"] != float64(m.CollectedBytes)/(1<<30) {
		t.Errorf("metering usage %v, want task-pod hours > 0 and the %v collected bytes in GB", factors, done.Status.Metering)
	}

	// No token, a token without a role, a bad request: SpaceONE's error bodies.
	status, body := c.call("", "POST", "/cost-analysis/v1/job/list", `{`+domain+`}`)
	c.wantError(status, body, 401, "ERROR_AUTHENTICATE_FAILURE")
	status, body = c.call(stranger, "POST", "/cost-analysis/v1/job/list", `{`+domain+`}`)
	c.wantError(status, body, 403, "ERROR_PERMISSION_DENIED")
	status, body = c.call(reader, "POST", "/cost-analysis/v1/job/get", `{`+domain+`}`)
	c.wantError(status, body, 400, "ERROR_REQUIRED_PARAMETER")
	status, body = c.call(reader, "POST", "/cost-analysis/v1/job/get", `{`+domain+`, "job_id": "nope"}`)
	c.wantError(status, body, 404, "ERROR_NOT_FOUND")
	status, body = c.call(stranger, "GET", "/v5/"+k.ns+"/jobs/done/metering", "")
	if status != 403 || !strings.Contains(body, `"error_code"`) || !strings.Contains(body, `"error_msg"`) {
		t.Errorf("metering as a stranger: %d %s, want 403 with error_code and error_msg", status, body)
	}
	status, body = c.call(reader, "GET", "/v5/"+k.ns+"/jobs/NOT_A_NAME/metering", "", "X-Language: zh-cn")
	if status != 400 || !strings.ContainsFunc(body, func(r rune) bool { return unicode.Is(unicode.Han, r) }) {
		t.Errorf("metering of an invalid job id in zh-cn: %d %s, want 400 in Chinese", status, body)
	}

	// Cancel needs patch; it ends the run through the engine; a second cancel is refused.
	status, body = c.call(reader, "POST", "/cost-analysis/v1/job/cancel", `{`+domain+`, "job_id": "long"}`)
	c.wantError(status, body, 403, "ERROR_PERMISSION_DENIED")
	c.ok(&job, operator, "POST", "/cost-analysis/v1/job/long/cancel", `{`+domain+`}`)
	if job["job_id"] != "long" {
		t.Errorf("cancel answered %v, want the JobInfo of long", job)
	}
	if spec := k.job("long").Spec; !spec.Cancel {
		t.Errorf("after the API's cancel spec.cancel is false")
	}
	k.wait("cajob/long", "{.status.status}", "CANCELED", 60*time.Second)
	if j := k.job("long"); j.Status.Tasks.Canceled != 2 || j.Status.ErrorCode != costv1.ErrorJobCanceled {
		t.Errorf("after cancel: tasks %+v, error %s; want both CANCELED, %s", j.Status.Tasks, j.Status.ErrorCode, costv1.ErrorJobCanceled)
	}
	status, body = c.call(operator, "POST", "/cost-analysis/v1/job/cancel", `{`+domain+`, "job_id": "long"}`)
	c.wantError(status, body, 400, "ERROR_JOB_STATE")

	// Secrets never appear: the DataSource's secret data is not in any answer.
	c.ok(&tasks, reader, "POST", "/cost-analysis/v1/job-task/list", `{`+domain+`}`)
	if raw, _ := json.Marshal(tasks); bytes.Contains(raw, []byte(`"api_key"`)) {
		t.Errorf("a job-task list shows the secret's key: %s", raw)
	}
}

// curl runs curl against the manager's API (its self-signed certificate: -k).
type curl struct {
	t    *testing.T
	base string
}

// call returns the HTTP status and body; headers are "Name: value".
func (c *curl) call(token, method, path, body string, headers ...string) (int, string) {
	c.t.Helper()
	args := []string{"-sS", "-k", "--max-time", "30", "-X", method, "-w", "\n%{http_code}"}
	if token != "" {
		args = append(args, "-H", "X-Auth-Token: "+token)
	}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	if body != "" {
		args = append(args, "-H", "Content-Type: application/json", "--data-binary", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", append(args, c.base+path)...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("curl %s %s: %v\n%s", method, path, err, out)
	}
	s := strings.TrimRight(string(out), "\n")
	i := strings.LastIndexByte(s, '\n')
	status, err := strconv.Atoi(s[i+1:])
	if err != nil {
		c.t.Fatalf("curl %s %s: no status in %q", method, path, s)
	}
	return status, s[:max(i, 0)]
}

// ok calls and decodes a 200 answer into out.
func (c *curl) ok(out any, token, method, path, body string) {
	c.t.Helper()
	status, answer := c.call(token, method, path, body)
	if status != 200 {
		c.t.Fatalf("%s %s %s: %d %s", method, path, body, status, answer)
	}
	reflect.ValueOf(out).Elem().SetZero() // a fresh answer, not merged into the last one
	if err := json.Unmarshal([]byte(answer), out); err != nil {
		c.t.Fatalf("%s %s: %v in %s", method, path, err, answer)
	}
}

// wantError checks a SpaceONE error answer: {"detail": {"code", "message"}}.
func (c *curl) wantError(status int, body string, wantStatus int, wantCode string) {
	c.t.Helper()
	var e struct {
		Detail struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"detail"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || status != wantStatus || e.Detail.Code != wantCode || e.Detail.Message == "" {
		c.t.Errorf("got %d %s, want %d with code %s and a message", status, body, wantStatus, wantCode)
	}
}
