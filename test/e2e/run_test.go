package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
	"github.com/costops/cost-analysis-operator/test/e2e/framework"
)

// The sample Secret, DataSource and Job of config/samples, applied as a user would,
// run to SUCCESS; the Job's status, its JobTasks, their batch Jobs and the
// DataSource's status say what happened.
func TestSampleRunsToSuccess(t *testing.T) {
	k := setup(t)
	t.Parallel()

	rendered := k.kubectl("kustomize", filepath.Join(env.Root, "config", "samples"))
	// The sample points at the plugin of `make run` / `make demo`; this suite's runs elsewhere.
	rendered = strings.ReplaceAll(rendered, "endpoint: 10.201.0.1:50051", "endpoint: "+env.PluginAddr)
	out := k.apply(rendered)
	for _, want := range []string{"secret/sample-billing-credentials created", "datasource.cost-analysis.costops.dev/sample-billing created",
		"job.cost-analysis.costops.dev/sample-billing-2026-09 created"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply said %q, want %q in it", out, want)
		}
	}
	const name = "sample-billing-2026-09"
	k.wait("cajob/"+name, "{.status.status}", "SUCCESS", 2*time.Minute)

	// The sample plugin plans one task per account (2) and month from the Job's start
	// to the current month.
	months := 0
	for m := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC); !m.After(time.Now().UTC()); m = m.AddDate(0, 1, 0) {
		months++
	}
	n := int32(2 * months)

	j := k.job(name)
	st := j.Status
	if st.TotalTasks != n || st.Tasks.Success != n || st.CreatedCount != int64(24*n) || st.SyncedAccounts != 2 {
		t.Errorf("status: totalTasks %d, tasks %+v, createdCount %d, syncedAccounts %d; want %d tasks, all SUCCESS, %d records, 2 accounts",
			st.TotalTasks, st.Tasks, st.CreatedCount, st.SyncedAccounts, n, 24*n)
	}
	countsAddUp(t, j)
	if c := condition(st.Conditions, costv1.ConditionSucceeded); c == nil || c.Status != metav1.ConditionTrue || c.Reason != costv1.ReasonAllTasksSucceeded {
		t.Errorf("condition %s, want Succeeded=True (AllTasksSucceeded)", fmtCond(c))
	}
	if c := condition(st.Conditions, costv1.ConditionPlanned); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("condition %s, want Planned=True", fmtCond(c))
	}
	if st.CreatedAt == nil || !st.CreatedAt.Equal(&j.CreationTimestamp) || st.StartedAt == nil || st.FinishedAt == nil ||
		st.StartedAt.Before(st.CreatedAt) || st.FinishedAt.Before(st.StartedAt) {
		t.Errorf("times: createdAt %v, startedAt %v, finishedAt %v (object created %v): want created <= started <= finished",
			st.CreatedAt, st.StartedAt, st.FinishedAt, j.CreationTimestamp)
	}
	if st.LastChangedAt == nil || !st.LastChangedAt.Time.Equal(time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("lastChangedAt %v, want 2026-09-01 (the start of the plugin's changed window)", st.LastChangedAt)
	}
	// On the real node the collector reports the bytes it streamed; kwok's stage
	// reports 4096 per task.
	var wantBytes int64
	for _, jt := range k.jobTasks(name) {
		wantBytes += jt.Status.CollectedBytes
		if !env.RealNode && jt.Status.CollectedBytes != 4096 {
			t.Errorf("JobTask %s: collectedBytes %d, want kwok's 4096", jt.Name, jt.Status.CollectedBytes)
		}
	}
	if m := st.Metering; m == nil || wantBytes <= 0 || m.CollectedBytes != wantBytes || m.ResourceSpecCode != "cpu-100m.memory-64Mi" {
		t.Errorf("metering %+v, want the tasks' %d collected bytes on cpu-100m.memory-64Mi", m, wantBytes)
	}
	if env.RealNode {
		for _, p := range k.pods(name) {
			if p.Spec.NodeName != env.Cluster.RealNodeName() {
				t.Errorf("sample task pod %s ran on %q, want the real node", p.Name, p.Spec.NodeName)
			}
		}
	}

	ds := k.dataSource("sample-billing")
	if ds.Status.LastSynchronizedAt == nil || !ds.Status.LastSynchronizedAt.Equal(&j.CreationTimestamp) {
		t.Errorf("DataSource lastSynchronizedAt %v, want the Job's creation time %v", ds.Status.LastSynchronizedAt, j.CreationTimestamp)
	}
	if l := ds.Status.LastJob; l == nil || l.Name != name || l.Status != costv1.JobSuccess {
		t.Errorf("DataSource lastJob %+v, want %s SUCCESS", l, name)
	}
	if c := condition(ds.Status.Conditions, costv1.ConditionPluginReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("DataSource condition %s, want PluginReady=True", fmtCond(c))
	}

	tasks := k.jobTasks(name)
	var names, want []string
	for i := range n {
		want = append(want, fmt.Sprintf("%s-%d", name, i))
	}
	for _, jt := range tasks {
		names = append(names, jt.Name)
		if jt.Status.Status != costv1.TaskSuccess || jt.Status.CreatedCount != 24 || jt.Status.BatchJobName != name+"-b0" ||
			jt.Status.StartedAt == nil || jt.Status.FinishedAt == nil {
			t.Errorf("JobTask %s: status %+v, want SUCCESS with 24 records, its batch Job and times", jt.Name, jt.Status)
		}
		if !metav1.IsControlledBy(&jt, j) || jt.Labels[costv1.LabelDataSource] != "sample-billing" {
			t.Errorf("JobTask %s: owners %v, labels %v: want it controlled by Job %s, labelled with its DataSource", jt.Name, jt.OwnerReferences, jt.Labels, name)
		}
		var opts map[string]any
		if err := json.Unmarshal(jt.Spec.TaskOptions.Raw, &opts); err != nil || opts["account_id"] == nil || opts["month"] == nil {
			t.Errorf("JobTask %s: taskOptions %s, want the plugin's account_id and month", jt.Name, jt.Spec.TaskOptions.Raw)
		}
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("JobTasks %v, want %v", names, want)
	}
	// The tasks ran as the completion indexes of one Indexed batch Job. A task ends
	// when its pod succeeds; the batch Job's Complete condition follows from the
	// upstream Job controller (about a second later).
	k.eventually(30*time.Second, func() error {
		bjs := k.batchJobs(name)
		if len(bjs) != 1 {
			return fmt.Errorf("%d batch Jobs, want 1", len(bjs))
		}
		bj := bjs[0]
		if len(bj.OwnerReferences) != 1 || bj.OwnerReferences[0].Kind != "Job" || bj.OwnerReferences[0].Name != name || !batchComplete(&bj) ||
			bj.Status.CompletedIndexes != fmt.Sprintf("0-%d", n-1) {
			return fmt.Errorf("batch Job %s: owners %v, conditions %v, completedIndexes %q: want it owned by Job %s and Complete",
				bj.Name, bj.OwnerReferences, bj.Status.Conditions, bj.Status.CompletedIndexes, name)
		}
		return nil
	})
}

func batchComplete(bj *batchv1.Job) bool {
	for _, c := range bj.Status.Conditions {
		if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// What a user sees with kubectl get: the printer columns of each kind, -o wide, the
// category, the field selectors the CRDs declare, and that `kubectl get jobs` still
// means batch Jobs.
func TestKubectlGetColumnsAndFieldSelectors(t *testing.T) {
	k := setup(t)
	t.Parallel()

	k.createDataSource("good", source{options: map[string]any{"tasks": 2}})
	k.createDataSource("bad", source{options: map[string]any{"tasks": 2}, pods: map[string]string{fakeResult: "failure"}})
	k.createJob("good-run", "good")
	k.createJob("bad-run", "bad")
	k.wait("cajob/good-run", "{.status.status}", "SUCCESS", 90*time.Second)
	k.wait("cajob/bad-run", "{.status.status}", "FAILURE", 90*time.Second)
	k.wait("cads/good", "{.status.lastJob.status}", "SUCCESS", 30*time.Second)
	k.wait("cads/bad", "{.status.lastJob.status}", "FAILURE", 30*time.Second)

	out := k.kubectl("get", "cajob")
	t.Logf("kubectl get cajob:\n%s", out)
	tb := oneTable(t, out)
	if want := []string{"NAME", "STATUS", "DATA SOURCE", "TOTAL", "REMAINED", "CREATED", "FINISHED", "AGE"}; !slices.Equal(tb.header, want) {
		t.Errorf("kubectl get cajob columns %q, want %q", tb.header, want)
	}
	// CREATED is what the run committed: 0, since its kwok pods store nothing (the
	// JobTasks' own CREATED below is what their fake termination messages said).
	expectRow(t, tb.row(t, "good-run"), map[string]string{"STATUS": "SUCCESS", "DATA SOURCE": "good", "TOTAL": "2", "REMAINED": "0", "CREATED": "0"})
	bad := tb.row(t, "bad-run")
	expectRow(t, bad, map[string]string{"STATUS": "FAILURE", "DATA SOURCE": "bad", "TOTAL": "2", "REMAINED": "0"})
	// No record created: the operator leaves status.createdCount unset rather than 0.
	if c := bad["CREATED"]; c != "0" && c != "" {
		t.Errorf("bad-run: column CREATED is %q, want 0 or empty", c)
	}
	for _, r := range tb.rows {
		if r["FINISHED"] == "" || r["AGE"] == "" {
			t.Errorf("row %v: want FINISHED and AGE shown", r)
		}
	}

	out = k.kubectl("get", "cajob", "-o", "wide")
	t.Logf("kubectl get cajob -o wide:\n%s", out)
	tb = oneTable(t, out)
	if want := []string{"NAME", "STATUS", "DATA SOURCE", "TOTAL", "REMAINED", "CREATED", "ERROR", "STARTED", "FINISHED", "AGE"}; !slices.Equal(tb.header, want) {
		t.Errorf("kubectl get cajob -o wide columns %q, want %q", tb.header, want)
	}
	expectRow(t, tb.row(t, "bad-run"), map[string]string{"ERROR": costv1.ErrorJobTask})
	expectRow(t, tb.row(t, "good-run"), map[string]string{"ERROR": ""})

	for selector, want := range map[string][]string{
		"status.status=FAILURE":         {"bad-run"},
		"status.status=SUCCESS":         {"good-run"},
		"status.status!=SUCCESS":        {"bad-run"},
		"spec.dataSourceRef.name=good":  {"good-run"},
		"status.status=IN_PROGRESS":     nil,
		"spec.dataSourceRef.name=other": nil,
	} {
		out, errOut, err := k.try("get", "cajob", "--field-selector", selector)
		if err != nil {
			t.Errorf("kubectl get cajob --field-selector %s: %v", selector, err)
			continue
		}
		var got []string
		if len(want) > 0 || strings.TrimSpace(out) != "" {
			got = oneTable(t, out).names()
		} else if !strings.Contains(errOut, "No resources found") {
			t.Errorf("kubectl get cajob --field-selector %s: stderr %q, want No resources found", selector, errOut)
		}
		if !slices.Equal(got, want) {
			t.Errorf("kubectl get cajob --field-selector %s: %v, want %v", selector, got, want)
		}
	}
	if _, errOut, err := k.try("get", "cajob", "--field-selector", "status.totalTasks=2"); err == nil || !strings.Contains(errOut, "field label not supported") {
		t.Errorf("kubectl get cajob --field-selector status.totalTasks=2: err %v, stderr %q: want it refused (not a selectable field)", err, errOut)
	}

	out = k.kubectl("get", "catask", "--field-selector", "spec.jobRef.name=good-run,status.status=SUCCESS")
	t.Logf("kubectl get catask --field-selector spec.jobRef.name=good-run,status.status=SUCCESS:\n%s", out)
	tb = oneTable(t, out)
	if want := []string{"NAME", "STATUS", "JOB", "INDEX", "CREATED", "FINISHED", "AGE"}; !slices.Equal(tb.header, want) {
		t.Errorf("kubectl get catask columns %q, want %q", tb.header, want)
	}
	if got := tb.names(); !slices.Equal(got, []string{"good-run-0", "good-run-1"}) {
		t.Errorf("succeeded tasks of good-run: %v", got)
	}
	expectRow(t, tb.row(t, "good-run-1"), map[string]string{"STATUS": "SUCCESS", "JOB": "good-run", "INDEX": "1", "CREATED": "24"})
	tb = oneTable(t, k.kubectl("get", "catask", "--field-selector", "spec.jobRef.name=bad-run,status.status=FAILURE", "-o", "wide"))
	if len(tb.rows) == 0 {
		t.Errorf("no FAILURE task of bad-run")
	}
	for _, r := range tb.rows {
		expectRow(t, r, map[string]string{"JOB": "bad-run", "ERROR": "FAKE_ERROR", "ATTEMPTS": "1"})
	}
	if got := oneTable(t, k.kubectl("get", "catask", "-l", costv1.LabelJob+"=good-run")).names(); len(got) != 2 {
		t.Errorf("kubectl get catask -l %s=good-run: %v, want 2 tasks", costv1.LabelJob, got)
	}

	out = k.kubectl("get", "cads")
	t.Logf("kubectl get cads:\n%s", out)
	tb = oneTable(t, out)
	if want := []string{"NAME", "READY", "STORE", "SCHEDULE", "SUSPENDED", "NEXT SYNC", "LAST STATUS", "LAST SYNC", "AGE"}; !slices.Equal(tb.header, want) {
		t.Errorf("kubectl get cads columns %q, want %q", tb.header, want)
	}
	expectRow(t, tb.row(t, "good"), map[string]string{"READY": "True", "STORE": "True", "SCHEDULE": "", "NEXT SYNC": "", "LAST STATUS": "SUCCESS"})
	expectRow(t, tb.row(t, "bad"), map[string]string{"READY": "True", "LAST STATUS": "FAILURE", "LAST SYNC": ""})
	if tb.row(t, "good")["LAST SYNC"] == "" {
		t.Errorf("good: LAST SYNC empty after a SUCCESS")
	}
	out = k.kubectl("get", "cads", "-o", "wide")
	t.Logf("kubectl get cads -o wide:\n%s", out)
	tb = oneTable(t, out)
	expectRow(t, tb.row(t, "good"), map[string]string{"ENDPOINT": env.PluginAddr, "LAST JOB": "good-run"})
	expectRow(t, tb.row(t, "bad"), map[string]string{"LAST JOB": "bad-run"})

	out = k.kubectl("get", "costanalysis")
	t.Logf("kubectl get costanalysis:\n%s", out)
	var all []string
	for _, tb := range parseTables(out) {
		all = append(all, tb.names()...)
	}
	for _, want := range []string{"datasource.cost-analysis.costops.dev/good", "datasource.cost-analysis.costops.dev/bad",
		"job.cost-analysis.costops.dev/good-run", "job.cost-analysis.costops.dev/bad-run",
		"jobtask.cost-analysis.costops.dev/good-run-0", "jobtask.cost-analysis.costops.dev/bad-run-1"} {
		if !slices.Contains(all, want) {
			t.Errorf("kubectl get costanalysis: no %s in %v", want, all)
		}
	}

	tb = oneTable(t, k.kubectl("get", "jobs"))
	if slices.Contains(tb.header, "DATA SOURCE") || !slices.Contains(tb.header, "COMPLETIONS") {
		t.Errorf("kubectl get jobs columns %q: want the batch Jobs' columns", tb.header)
	}
	if got := tb.names(); !slices.Contains(got, "good-run-b0") {
		t.Errorf("kubectl get jobs: %v, want the runs' batch Jobs", got)
	}
}

func expectRow(t *testing.T, row map[string]string, want map[string]string) {
	t.Helper()
	for col, v := range want {
		if row[col] != v {
			t.Errorf("%s: column %s is %q, want %q (row %v)", row["NAME"], col, row[col], v, row)
		}
	}
}

// One task of four fails (its pod's collector reports an error); the failure policy
// decides what happens to the others and to the Job.
func TestTaskFailureWithEachPolicy(t *testing.T) {
	if skipReason != "" {
		t.Skip(skipReason)
	}
	t.Parallel()
	failing := map[string]string{fakeFailIndexes: "1", fakeDuration: "1s"}

	t.Run("Fail ends the run at the first failure and cancels the rest", func(t *testing.T) {
		k := setup(t)
		t.Parallel()
		k.createDataSource("billing", source{options: map[string]any{"tasks": 4}, pods: failing})
		k.createJob("run", "billing", func(s *costv1.JobSpec) {
			s.FailurePolicy = costv1.FailurePolicyFail
			s.Parallelism = ptr[int32](1)
		})
		k.wait("cajob/run", "{.status.status}", "FAILURE", 90*time.Second)
		j := k.job("run")
		if j.Status.ErrorCode != costv1.ErrorJobTask || j.Status.ErrorMessage != "task run-1 failed: FAKE_ERROR: simulated task failure" {
			t.Errorf("error %s %q, want %s \"task run-1 failed: FAKE_ERROR: simulated task failure\"", j.Status.ErrorCode, j.Status.ErrorMessage, costv1.ErrorJobTask)
		}
		if c := j.Status.Tasks; c.Failure != 1 || c.Success+c.Canceled != 3 {
			t.Errorf("counts %+v: want 1 failure, the others succeeded or canceled", c)
		}
		countsAddUp(t, j)
		if c := condition(j.Status.Conditions, costv1.ConditionSucceeded); c == nil || c.Status != metav1.ConditionFalse || c.Reason != costv1.ReasonTaskFailed {
			t.Errorf("condition %s, want Succeeded=False (TaskFailed)", fmtCond(c))
		}
		// The tasks follow the Job: each ends, none is left running.
		k.eventually(30*time.Second, func() error {
			counts := map[costv1.JobTaskState]int32{}
			for _, jt := range k.jobTasks("run") {
				counts[jt.Status.Status]++
				if jt.Name == "run-1" && (jt.Status.Status != costv1.TaskFailure || jt.Status.ErrorCode != "FAKE_ERROR") {
					return fmt.Errorf("run-1: %s %s, want FAILURE FAKE_ERROR", jt.Status.Status, jt.Status.ErrorCode)
				}
			}
			if counts[costv1.TaskSuccess] != j.Status.Tasks.Success || counts[costv1.TaskCanceled] != j.Status.Tasks.Canceled || counts[costv1.TaskFailure] != 1 {
				return fmt.Errorf("JobTasks per status %v, want the Job's counts %+v", counts, j.Status.Tasks)
			}
			return noRunningPods(k, "run")
		})
	})

	t.Run("Continue runs every task and then fails the run", func(t *testing.T) {
		k := setup(t)
		t.Parallel()
		k.createDataSource("billing", source{options: map[string]any{"tasks": 4}, pods: failing})
		k.createJob("run", "billing", func(s *costv1.JobSpec) {
			s.FailurePolicy = costv1.FailurePolicyContinue
			s.Parallelism = ptr[int32](2)
			s.TaskRetryLimit = ptr[int32](1)
		})
		k.wait("cajob/run", "{.status.status}", "FAILURE", 90*time.Second)
		j := k.job("run")
		if c, n := j.Status.Tasks, k.reportedCount("run"); c.Success != 3 || c.Failure != 1 || c.Canceled != 0 || n != 72 {
			t.Errorf("counts %+v, tasks reported %d records: want 3 succeeded (72 records) and 1 failed", c, n)
		}
		kwokCommitted(t, j, costv1.ReasonRolledBack)
		countsAddUp(t, j)
		if j.Status.ErrorCode != costv1.ErrorJobTask || !strings.HasPrefix(j.Status.ErrorMessage, "task run-1 failed: FAKE_ERROR") {
			t.Errorf("error %s %q, want %s about task run-1", j.Status.ErrorCode, j.Status.ErrorMessage, costv1.ErrorJobTask)
		}
		jt := &costv1.JobTask{}
		k.get(jt, "catask", "run-1")
		// taskRetryLimit 1: the batch Job ran a second pod for the index before giving up.
		if jt.Status.Status != costv1.TaskFailure || jt.Status.ErrorCode != "FAKE_ERROR" || jt.Status.ErrorMessage != "simulated task failure" || jt.Status.Attempts != 2 {
			t.Errorf("run-1: %+v, want FAILURE FAKE_ERROR \"simulated task failure\" after 2 attempts", jt.Status)
		}
		if ds := k.dataSource("billing"); ds.Status.LastSynchronizedAt != nil {
			t.Errorf("DataSource lastSynchronizedAt %v after a failed run, want it unset", ds.Status.LastSynchronizedAt)
		}
	})
}

func noRunningPods(k *kube, job string) error {
	for _, p := range k.pods(job) {
		if p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodPending {
			return fmt.Errorf("pod %s is still %s", p.Name, p.Status.Phase)
		}
	}
	return nil
}

// Setting spec.cancel with kubectl patch stops a run: its pods are deleted, its
// JobTasks end CANCELED, and so does the Job, with counts that add up. A canceled Job
// cannot be un-canceled.
func TestCancelWithKubectlPatch(t *testing.T) {
	k := setup(t)
	t.Parallel()
	k.createDataSource("billing", source{options: map[string]any{"tasks": 6}, pods: map[string]string{fakeDuration: "1h"}})
	k.createJob("run", "billing", func(s *costv1.JobSpec) { s.Parallelism = ptr[int32](3) })
	k.wait("cajob/run", "{.status.tasks.inProgress}", "3", 90*time.Second)
	k.eventually(30*time.Second, func() error {
		var running int
		for _, p := range k.pods("run") {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		if running != 3 {
			return fmt.Errorf("%d task pods Running, want 3 (the parallelism)", running)
		}
		return nil
	})

	k.kubectl("patch", "cajob", "run", "--type=merge", "-p", `{"spec":{"cancel":true}}`)
	k.wait("cajob/run", "{.status.status}", "CANCELED", 60*time.Second)
	j := k.job("run")
	if c := j.Status.Tasks; c.Canceled != 6 || c.Success+c.Failure+c.Timeout != 0 {
		t.Errorf("counts %+v, want all 6 CANCELED", c)
	}
	countsAddUp(t, j)
	if j.Status.ErrorCode != costv1.ErrorJobCanceled || j.Status.FinishedAt == nil {
		t.Errorf("errorCode %q, finishedAt %v: want %s and a finish time", j.Status.ErrorCode, j.Status.FinishedAt, costv1.ErrorJobCanceled)
	}
	k.eventually(60*time.Second, func() error {
		if pods := k.pods("run"); len(pods) > 0 {
			return fmt.Errorf("%d task pods left, e.g. %s (%s)", len(pods), pods[0].Name, pods[0].Status.Phase)
		}
		for _, jt := range k.jobTasks("run") {
			if jt.Status.Status != costv1.TaskCanceled {
				return fmt.Errorf("JobTask %s is %q, want CANCELED", jt.Name, jt.Status.Status)
			}
		}
		return nil
	})
	if n := len(k.jobTasks("run")); n != 6 {
		t.Errorf("%d JobTasks, want 6", n)
	}

	_, errOut, err := k.try("patch", "cajob", "run", "--type=merge", "-p", `{"spec":{"cancel":false}}`)
	if err == nil || !strings.Contains(errOut, "spec.cancel cannot be set back to false") {
		t.Errorf("un-cancel: err %v, stderr %q: want it refused", err, errOut)
	}
}

// A run that does not finish within its timeout ends TIMEOUT, and so do its tasks.
func TestTimeout(t *testing.T) {
	k := setup(t)
	t.Parallel()
	k.createDataSource("billing", source{options: map[string]any{"tasks": 4}, pods: map[string]string{fakeDuration: "1h"}})
	k.createJob("run", "billing", func(s *costv1.JobSpec) {
		s.Parallelism = ptr[int32](2)
		s.Timeout = &metav1.Duration{Duration: 8 * time.Second}
	})
	k.wait("cajob/run", "{.status.status}", "TIMEOUT", 60*time.Second)
	j := k.job("run")
	if j.Status.ErrorCode != costv1.ErrorJobTimeout || !strings.Contains(j.Status.ErrorMessage, "8s") {
		t.Errorf("error %s %q, want %s naming the 8s timeout", j.Status.ErrorCode, j.Status.ErrorMessage, costv1.ErrorJobTimeout)
	}
	if c := j.Status.Tasks; c.Timeout != 4 {
		t.Errorf("counts %+v, want all 4 TIMEOUT", c)
	}
	countsAddUp(t, j)
	if j.Status.StartedAt == nil || j.Status.FinishedAt == nil {
		t.Fatalf("startedAt %v, finishedAt %v", j.Status.StartedAt, j.Status.FinishedAt)
	}
	// Times are stored to the second, the start rounded up: the timeout is never early.
	if d := j.Status.FinishedAt.Sub(j.Status.StartedAt.Time); d < 8*time.Second || d > 20*time.Second {
		t.Errorf("ran %s from startedAt to finishedAt, want the 8s timeout (give or take the reconcile)", d)
	}
	k.eventually(60*time.Second, func() error {
		if pods := k.pods("run"); len(pods) > 0 {
			return fmt.Errorf("%d task pods left", len(pods))
		}
		for _, jt := range k.jobTasks("run") {
			if jt.Status.Status != costv1.TaskTimeout || jt.Status.ErrorCode != costv1.ErrorJobTimeout {
				return fmt.Errorf("JobTask %s is %q %s, want TIMEOUT %s", jt.Name, jt.Status.Status, jt.Status.ErrorCode, costv1.ErrorJobTimeout)
			}
		}
		return nil
	})
}

// kubectl delete of a Job removes its JobTasks, their batch Jobs and their pods,
// through the owner references and the cluster's garbage collector.
func TestDeleteCascades(t *testing.T) {
	k := setup(t)
	t.Parallel()
	k.createDataSource("billing", source{options: map[string]any{"tasks": 5}, pods: map[string]string{fakeDuration: "1h"}})
	k.createJob("run", "billing", func(s *costv1.JobSpec) { s.Parallelism = ptr[int32](3) })
	k.wait("cajob/run", "{.status.tasks.inProgress}", "3", 90*time.Second)
	k.eventually(30*time.Second, func() error {
		if n := len(k.pods("run")); n != 3 {
			return fmt.Errorf("%d task pods, want 3", n)
		}
		return nil
	})
	if n := len(k.jobTasks("run")); n != 5 {
		t.Fatalf("%d JobTasks before the delete, want 5", n)
	}

	out := k.kubectl("delete", "cajob", "run")
	if !strings.Contains(out, `job.cost-analysis.costops.dev "run" deleted`) {
		t.Errorf("kubectl delete said %q", out)
	}
	k.eventually(90*time.Second, func() error {
		if n := len(k.jobTasks("run")); n > 0 {
			return fmt.Errorf("%d JobTasks left", n)
		}
		if n := len(k.batchJobs("run")); n > 0 {
			return fmt.Errorf("%d batch Jobs left", n)
		}
		if n := len(k.pods("run")); n > 0 {
			return fmt.Errorf("%d pods left", n)
		}
		return nil
	})
	// The DataSource stays.
	k.dataSource("billing")
}

// Every sample in config/samples/invalid is refused at admission with a message that
// says what to fix, and nothing is created.
func TestInvalidSamplesRefused(t *testing.T) {
	k := setup(t)
	t.Parallel()
	want := map[string][]string{
		"datasource_bad_endpoint.yaml": {`spec.plugin.endpoint: Invalid value: "grpc://plugin": plugin.endpoint must be host:port`},
		"datasource_bad_policy.yaml":   {`spec.jobDefaults.failurePolicy: Unsupported value: "Retry": supported values: "Fail", "Continue"`},
		"job_bad_start.yaml":           {`spec.start: Invalid value: "09/2026": spec.start must be a month (YYYY-MM) or a day (YYYY-MM-DD)`},
		"job_negative_timeout.yaml":    {`spec.timeout: Invalid value: "-5m": spec.timeout must be a positive duration such as 30m or 2h`},
		"job_no_datasource.yaml":       {`spec.dataSourceRef: Required value`},
		"job_zero_parallelism.yaml":    {`spec.parallelism: Invalid value: 0: spec.parallelism in body should be greater than or equal to 1`},
	}
	dir := filepath.Join(env.Root, "config", "samples", "invalid")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples in %s: %v", dir, err)
	}
	for _, f := range files {
		base := filepath.Base(f)
		_, errOut, err := k.try("apply", "-f", f)
		if err == nil {
			t.Errorf("kubectl apply -f %s: accepted, want it refused", base)
			continue
		}
		t.Logf("kubectl apply -f %s:\n%s", base, errOut)
		msgs, known := want[base]
		if !known {
			// A sample added after this test: it must be refused for what it is.
			msgs = []string{"is invalid"}
			t.Logf("%s: no expected message recorded here; checked that it is refused as invalid", base)
		}
		for _, m := range msgs {
			if !strings.Contains(errOut, m) {
				t.Errorf("kubectl apply -f %s: %q, want %q in it", base, strings.TrimSpace(errOut), m)
			}
		}
	}
	for name := range want {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("sample %s is gone: update this test", name)
		}
	}
	if out, _, _ := k.try("get", "costanalysis", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Errorf("objects created from invalid samples:\n%s", out)
	}
}

// Applying the same DataSource and Job twice with server-side apply changes nothing
// the second time, and the operator never takes over a field of the user's: it
// writes the status alone, which is what lets Argo CD keep them in sync.
func TestServerSideApplyTwiceIsANoop(t *testing.T) {
	k := setup(t)
	t.Parallel()
	manifests := fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: billing-credentials
stringData:
  api_key: e2e
---
apiVersion: cost-analysis.costops.dev/v1
kind: DataSource
metadata:
  name: billing
spec:
  plugin:
    endpoint: %s
    secretRef:
      name: billing-credentials
    options:
      tasks: 2
  collector:
    image: ghcr.io/costops/cost-analysis-collector:e2e
    nodeSelector:
      type: kwok
    tolerations:
    - key: kwok.x-k8s.io/node
      operator: Exists
      effect: NoSchedule
  jobDefaults:
    parallelism: 2
---
apiVersion: cost-analysis.costops.dev/v1
kind: Job
metadata:
  name: run
spec:
  dataSourceRef:
    name: billing
  start: "2026-09"
`, env.PluginAddr)
	k.apply(manifests, "--server-side")
	k.wait("cajob/run", "{.status.status}", "SUCCESS", 90*time.Second)
	k.wait("cads/billing", "{.status.lastJob.status}", "SUCCESS", 30*time.Second)

	rv := func() map[string]string {
		m := map[string]string{}
		for _, obj := range []string{"secret/billing-credentials", "cads/billing", "cajob/run"} {
			m[obj] = k.kubectl("get", obj, "-o", "jsonpath={.metadata.resourceVersion}/{.metadata.generation}")
		}
		return m
	}
	before := rv()
	out := k.apply(manifests, "--server-side")
	if after := rv(); !equalMaps(before, after) {
		t.Errorf("the second server-side apply changed objects: resourceVersion/generation %v, then %v (kubectl said %q)", before, after, out)
	}

	for _, obj := range []string{"cads/billing", "cajob/run"} {
		var u struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		k.get(&u, obj)
		for _, mf := range u.Metadata.ManagedFields {
			if !strings.HasPrefix(mf.Manager, "kubectl") && mf.Subresource != "status" {
				t.Errorf("%s: field manager %q (%s) owns fields outside the status: %s", obj, mf.Manager, mf.Operation, mf.FieldsV1)
			}
		}
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// The plugin dies while the Job waits on get_tasks: the Job waits for it (Planned is
// False with WaitingForPlugin) and, once it is back within the plan retry window, the
// run goes on and succeeds. A plugin that never comes back fails the run when the
// window ends.
func TestPluginStoppedMidPlan(t *testing.T) {
	if skipReason != "" {
		t.Skip(skipReason)
	}
	t.Parallel()

	t.Run("back within the plan retry window", func(t *testing.T) {
		k := setup(t)
		t.Parallel()
		// A plugin of this test's own, so that stopping it disturbs no other test.
		port, err := framework.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		plugin, err := env.StartPlugin(context.Background(), "plugin-"+k.ns, addr)
		if err != nil {
			t.Fatal(err)
		}
		k.createDataSource("billing", source{endpoint: addr, options: map[string]any{"tasks": 3, "stall_get_tasks_seconds": 3}})
		k.createJob("run", "billing")
		k.wait("cajob/run", "{.status.status}", "IN_PROGRESS", 30*time.Second)
		k.eventually(20*time.Second, func() error {
			b, err := os.ReadFile(plugin.LogPath)
			if err != nil || !strings.Contains(string(b), "get_tasks") {
				return fmt.Errorf("the plugin has not been asked get_tasks yet (%w)", err)
			}
			return nil
		})
		if err := plugin.Kill(); err != nil {
			t.Fatal(err)
		}
		t.Logf("plugin killed during get_tasks")
		k.wait("cajob/run", `{.status.conditions[?(@.type=="Planned")].reason}`, costv1.ReasonWaitingForPlugin, planRetryWindow)
		if j := k.job("run"); j.Status.Status != costv1.JobInProgress || j.Status.TotalTasks != 0 {
			t.Fatalf("while the plugin is away: status %s, totalTasks %d; want IN_PROGRESS and no plan yet", j.Status.Status, j.Status.TotalTasks)
		}
		if err := plugin.Start(); err != nil {
			t.Fatal(err)
		}
		t.Logf("plugin started again")
		k.wait("cajob/run", "{.status.status}", "SUCCESS", 90*time.Second)
		j := k.job("run")
		if j.Status.TotalTasks != 3 || j.Status.Tasks.Success != 3 {
			t.Errorf("totalTasks %d, counts %+v: want 3 tasks, all SUCCESS", j.Status.TotalTasks, j.Status.Tasks)
		}
		if c := condition(j.Status.Conditions, costv1.ConditionPlanned); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("condition %s, want Planned=True", fmtCond(c))
		}
		if n := len(k.jobTasks("run")); n != 3 {
			t.Errorf("%d JobTasks, want 3", n)
		}
	})

	t.Run("never back", func(t *testing.T) {
		k := setup(t)
		t.Parallel()
		port, err := framework.FreePort() // nothing listens there
		if err != nil {
			t.Fatal(err)
		}
		k.createDataSource("billing", source{endpoint: fmt.Sprintf("127.0.0.1:%d", port), options: map[string]any{"tasks": 3}})
		k.createJob("run", "billing")
		k.wait("cajob/run", `{.status.conditions[?(@.type=="Planned")].reason}`, costv1.ReasonWaitingForPlugin, 30*time.Second)
		k.wait("cajob/run", "{.status.status}", "FAILURE", planRetryWindow+30*time.Second)
		j := k.job("run")
		if j.Status.ErrorCode != costv1.ErrorPluginUnavailable {
			t.Errorf("errorCode %s (%s), want %s", j.Status.ErrorCode, j.Status.ErrorMessage, costv1.ErrorPluginUnavailable)
		}
		if d := j.Status.FinishedAt.Sub(j.Status.StartedAt.Time); d < planRetryWindow {
			t.Errorf("failed %s after the start, before the plan retry window of %s ended", d, planRetryWindow)
		}
		countsAddUp(t, j)
	})
}

// The manager is SIGKILLed and started again in the middle of a plan and in the
// middle of a run: the runs finish as if nothing happened, without a JobTask, batch
// Job or pod too many, and never more tasks at once than the parallelism.
//
// Not parallel: it stops the suite's manager; the other tests run after it.
func TestManagerKilledAndRestarted(t *testing.T) {
	if skipReason != "" {
		t.Skip(skipReason)
	}

	t.Run("mid-run", func(t *testing.T) {
		k := setup(t)
		const n, parallelism = 24, 4
		k.createDataSource("billing", source{options: map[string]any{"tasks": n}, pods: map[string]string{fakeDuration: "2s"}})
		k.createJob("run", "billing", func(s *costv1.JobSpec) { s.Parallelism = ptr[int32](parallelism) })
		k.eventually(90*time.Second, func() error {
			if j := k.job("run"); j.Status.Tasks.Success < parallelism {
				return fmt.Errorf("%d tasks succeeded so far", j.Status.Tasks.Success)
			}
			return nil
		})
		killManager(t)
		j := k.job("run")
		t.Logf("manager killed with %d of %d tasks succeeded", j.Status.Tasks.Success, n)
		time.Sleep(3 * time.Second) // pods finish while no manager runs
		restartManager(t)

		k.wait("cajob/run", "{.status.status}", "SUCCESS", 2*time.Minute)
		j = k.job("run")
		if r := k.reportedCount("run"); j.Status.TotalTasks != n || j.Status.Tasks.Success != n || r != int64(24*n) {
			t.Errorf("totalTasks %d, counts %+v, tasks reported %d: want %d tasks, all SUCCESS, %d records", j.Status.TotalTasks, j.Status.Tasks, r, n, 24*n)
		}
		kwokCommitted(t, j, costv1.ReasonCommitted)
		countsAddUp(t, j)
		tasks, bjs, pods := k.jobTasks("run"), k.batchJobs("run"), k.pods("run")
		if len(tasks) != n || len(bjs) != 1 || len(pods) != n {
			t.Errorf("%d JobTasks, %d batch Jobs, %d pods: want %d JobTasks on one batch Job, one pod per task, nothing twice", len(tasks), len(bjs), len(pods), n)
		}
		perTask := map[string]int{}
		for _, p := range pods {
			if i, ok := taskpod.PodTaskIndex(p.Annotations, costv1.AnnotationFirstTaskIndex); ok {
				perTask[fmt.Sprintf("run-%d", i)]++
			}
			if p.Status.Phase != corev1.PodSucceeded {
				t.Errorf("pod %s is %s", p.Name, p.Status.Phase)
			}
		}
		for _, jt := range tasks {
			if perTask[jt.Name] != 1 || jt.Status.Status != costv1.TaskSuccess || jt.Status.Attempts != 1 {
				t.Errorf("JobTask %s: %d pods, status %s, attempts %d; want 1 pod, SUCCESS, 1 attempt", jt.Name, perTask[jt.Name], jt.Status.Status, jt.Status.Attempts)
			}
		}
		if most := mostAtOnce(pods); most > parallelism {
			t.Errorf("%d task pods ran at once, more than the parallelism %d", most, parallelism)
		}
	})

	t.Run("mid-plan", func(t *testing.T) {
		k := setup(t)
		const n = 400
		k.createDataSource("billing", source{options: map[string]any{"tasks": n}, pods: map[string]string{fakeDuration: "1h"}})
		k.createJob("run", "billing", func(s *costv1.JobSpec) { s.Parallelism = ptr[int32](1) })
		// Kill the manager as soon as the plan has begun creating JobTasks.
		var have int
		k.eventually(60*time.Second, func() error {
			have = countJobTasks(k)
			if have == 0 {
				return fmt.Errorf("no JobTask yet")
			}
			return nil
		})
		killManager(t)
		have = countJobTasks(k)
		if have < n {
			t.Logf("manager killed with %d of %d JobTasks created", have, n)
		} else {
			t.Logf("the plan was done (%d JobTasks) before the manager could be killed; checking the restart all the same", have)
		}
		restartManager(t)
		k.wait("cajob/run", `{.status.conditions[?(@.type=="Planned")].status}`, "True", 2*time.Minute)
		j := k.job("run")
		if j.Status.Status != costv1.JobInProgress || j.Status.TotalTasks != n {
			t.Fatalf("after the restart: status %s (%s), totalTasks %d; want IN_PROGRESS with %d tasks", j.Status.Status, j.Status.ErrorMessage, j.Status.TotalTasks, n)
		}
		if got := countJobTasks(k); got != n {
			t.Errorf("%d JobTasks, want %d", got, n)
		}
		k.wait("cajob/run", "{.status.tasks.inProgress}", "1", 60*time.Second)
		if pods := k.pods("run"); len(pods) != 1 {
			t.Errorf("%d task pods with parallelism 1", len(pods))
		}
		// Done: cancel rather than wait for 400 tasks.
		k.kubectl("patch", "cajob", "run", "--type=merge", "-p", `{"spec":{"cancel":true}}`)
		k.wait("cajob/run", "{.status.status}", "CANCELED", 60*time.Second)
		j = k.job("run")
		countsAddUp(t, j)
		if j.Status.Tasks.Canceled != n {
			t.Errorf("counts %+v, want all %d CANCELED", j.Status.Tasks, n)
		}
	})
}

func killManager(t *testing.T) {
	t.Helper()
	pid := env.Manager.Pid()
	if err := env.Manager.Kill(); err != nil {
		t.Fatal(err)
	}
	t.Logf("manager (pid %d) killed with SIGKILL", pid)
}

func restartManager(t *testing.T) {
	t.Helper()
	start := time.Now()
	if err := env.StartManager(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("manager started again (pid %d), ready in %s", env.Manager.Pid(), time.Since(start).Round(time.Millisecond))
}

// countJobTasks counts the namespace's JobTasks with a list of one item, the rest
// being counted by the API server (remainingItemCount).
func countJobTasks(k *kube) int {
	k.t.Helper()
	var l struct {
		Metadata struct {
			RemainingItemCount *int64 `json:"remainingItemCount"`
		} `json:"metadata"`
		Items []json.RawMessage `json:"items"`
	}
	out := k.kubectl("get", "--raw", "/apis/"+costv1.GroupVersion.String()+"/namespaces/"+k.ns+"/jobtasks?limit=1")
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		k.t.Fatal(err)
	}
	n := len(l.Items)
	if l.Metadata.RemainingItemCount != nil {
		n += int(*l.Metadata.RemainingItemCount)
	}
	return n
}

// mostAtOnce is the most pods that ran at the same time, from their start and finish
// times (seconds; a pod that finished in the second another started does not overlap).
func mostAtOnce(pods []corev1.Pod) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, p := range pods {
		if p.Status.StartTime == nil || len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Terminated == nil {
			continue
		}
		edges = append(edges, edge{p.Status.StartTime.Time, 1}, edge{p.Status.ContainerStatuses[0].State.Terminated.FinishedAt.Time, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta // ends first
	})
	most, cur := 0, 0
	for _, e := range edges {
		cur += e.delta
		most = max(most, cur)
	}
	return most
}
