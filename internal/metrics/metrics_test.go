package metrics

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

func TestStateCollectorReportsWhatTheClusterHolds(t *testing.T) {
	resetMetrics()
	scheme := runtime.NewScheme()
	if err := costv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-d)); return &t }
	job := func(name, ds string, st costv1.JobState, started *metav1.Time, timeout time.Duration) *costv1.Job {
		j := &costv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team-a"},
			Spec: costv1.JobSpec{DataSourceRef: costv1.LocalObjectReference{Name: ds}}, Status: costv1.JobStatus{Status: st, StartedAt: started}}
		if timeout > 0 {
			j.Spec.Timeout = &metav1.Duration{Duration: timeout}
		}
		return j
	}
	task := func(name string, st costv1.JobTaskState) *costv1.JobTask {
		return &costv1.JobTask{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team-a"},
			Spec: costv1.JobTaskSpec{DataSourceRef: costv1.LocalObjectReference{Name: "aws"}}, Status: costv1.JobTaskStatus{Status: st}}
	}
	aws := &costv1.DataSource{ObjectMeta: metav1.ObjectMeta{Name: "aws", Namespace: "team-a"},
		Spec: costv1.DataSourceSpec{JobDefaults: costv1.JobDefaults{Timeout: &metav1.Duration{Duration: time.Hour}}},
		Status: costv1.DataSourceStatus{Conditions: []metav1.Condition{
			{Type: costv1.ConditionPluginReady, Status: metav1.ConditionFalse, Reason: costv1.ReasonPluginUnavailable},
			{Type: costv1.ConditionStoreReady, Status: metav1.ConditionTrue, Reason: costv1.ReasonStoreConnected},
		}}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(aws,
		job("j1", "aws", costv1.JobSuccess, ago(3*time.Hour), 0),
		job("j2", "aws", costv1.JobInProgress, ago(2*time.Hour), 0),           // past the DataSource's 1h
		job("j3", "aws", costv1.JobInProgress, ago(2*time.Hour), 3*time.Hour), // its own 3h is not over
		job("j4", "gcp", costv1.JobInProgress, ago(3*time.Hour), 0),           // no DataSource: the operator's 2h
		job("j5", "gcp", "", nil, 0),
		task("t1", ""), task("t2", costv1.TaskInProgress), task("t3", costv1.TaskInProgress),
	).Build()
	timeout := func(j *costv1.Job, ds *costv1.DataSource) time.Duration {
		switch {
		case j.Spec.Timeout != nil:
			return j.Spec.Timeout.Duration
		case ds != nil && ds.Spec.JobDefaults.Timeout != nil:
			return ds.Spec.JobDefaults.Timeout.Duration
		}
		return 2 * time.Hour
	}
	want := `
# HELP cost_analysis_data_source_condition DataSource conditions (PluginReady, StoreReady): 1 for the condition's current status (True, False or Unknown; Unknown when not set yet), 0 for the other two.
# TYPE cost_analysis_data_source_condition gauge
cost_analysis_data_source_condition{data_source="aws",namespace="team-a",status="False",type="PluginReady"} 1
cost_analysis_data_source_condition{data_source="aws",namespace="team-a",status="True",type="PluginReady"} 0
cost_analysis_data_source_condition{data_source="aws",namespace="team-a",status="Unknown",type="PluginReady"} 0
cost_analysis_data_source_condition{data_source="aws",namespace="team-a",status="False",type="StoreReady"} 0
cost_analysis_data_source_condition{data_source="aws",namespace="team-a",status="True",type="StoreReady"} 1
cost_analysis_data_source_condition{data_source="aws",namespace="team-a",status="Unknown",type="StoreReady"} 0
# HELP cost_analysis_job_tasks JobTasks currently in the cluster, by namespace, data source and status.
# TYPE cost_analysis_job_tasks gauge
cost_analysis_job_tasks{data_source="aws",namespace="team-a",status="IN_PROGRESS"} 2
cost_analysis_job_tasks{data_source="aws",namespace="team-a",status="PENDING"} 1
# HELP cost_analysis_jobs Jobs currently in the cluster, by namespace, data source and status (PENDING = not picked up yet).
# TYPE cost_analysis_jobs gauge
cost_analysis_jobs{data_source="aws",namespace="team-a",status="IN_PROGRESS"} 2
cost_analysis_jobs{data_source="aws",namespace="team-a",status="SUCCESS"} 1
cost_analysis_jobs{data_source="gcp",namespace="team-a",status="IN_PROGRESS"} 1
cost_analysis_jobs{data_source="gcp",namespace="team-a",status="PENDING"} 1
# HELP cost_analysis_jobs_past_deadline IN_PROGRESS Jobs whose timeout has passed (the operator ends a run at its deadline, so anything above 0 for long is a stuck run), by namespace and data source; 0 for every data source that has Jobs.
# TYPE cost_analysis_jobs_past_deadline gauge
cost_analysis_jobs_past_deadline{data_source="aws",namespace="team-a"} 1
cost_analysis_jobs_past_deadline{data_source="gcp",namespace="team-a"} 1
`
	col := &stateCollector{reader: c, timeout: timeout, now: func() time.Time { return now }, elected: leading()}
	if err := testutil.CollectAndCompare(col, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	// The DataSource's counters exist at 0 from then on, so its first failure shows in rates.
	started := `
# HELP cost_analysis_jobs_finished_total Jobs that ended, by namespace, data source and final status.
# TYPE cost_analysis_jobs_finished_total counter
cost_analysis_jobs_finished_total{data_source="aws",namespace="team-a",status="CANCELED"} 0
cost_analysis_jobs_finished_total{data_source="aws",namespace="team-a",status="FAILURE"} 0
cost_analysis_jobs_finished_total{data_source="aws",namespace="team-a",status="SUCCESS"} 0
cost_analysis_jobs_finished_total{data_source="aws",namespace="team-a",status="TIMEOUT"} 0
`
	if err := testutil.CollectAndCompare(jobsFinished, strings.NewReader(started), "cost_analysis_jobs_finished_total"); err != nil {
		t.Error(err)
	}
	for _, m := range []struct {
		name string
		n    int
	}{{"tasks finished", testutil.CollectAndCount(tasksFinished)}, {"store operations", testutil.CollectAndCount(storeOps)},
		{"records created", testutil.CollectAndCount(recordsCreated)}, {"records committed", testutil.CollectAndCount(recordsCommitted)}} {
		if m.n == 0 {
			t.Errorf("no %s series for the DataSource", m.name)
		}
	}
}

func TestOnlyTheLeaderReportsState(t *testing.T) {
	resetMetrics()
	scheme := runtime.NewScheme()
	if err := costv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(&costv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j", Namespace: "team-c"}}).Build()
	elected := make(chan struct{})
	col := &stateCollector{reader: c, now: time.Now, elected: elected,
		timeout: func(*costv1.Job, *costv1.DataSource) time.Duration { return time.Hour }}
	if n := testutil.CollectAndCount(col); n != 0 {
		t.Errorf("a replica that does not lead reported %d series, want none", n)
	}
	close(elected)
	if n := testutil.CollectAndCount(col, "cost_analysis_jobs"); n != 1 {
		t.Errorf("the leader reported %d cost_analysis_jobs series, want 1", n)
	}
}

// leading is the elected channel of a replica that leads.
func leading() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

func TestPastDeadlineIsZeroForASourceWithNoStuckRun(t *testing.T) {
	resetMetrics()
	scheme := runtime.NewScheme()
	if err := costv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	started := metav1.NewTime(now.Add(-time.Minute))
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(&costv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "j", Namespace: "team-b"},
		Spec:       costv1.JobSpec{DataSourceRef: costv1.LocalObjectReference{Name: "azure"}},
		Status:     costv1.JobStatus{Status: costv1.JobInProgress, StartedAt: &started}}).Build()
	col := &stateCollector{reader: c, now: func() time.Time { return now }, elected: leading(),
		timeout: func(*costv1.Job, *costv1.DataSource) time.Duration { return 2 * time.Hour }}
	want := `
# HELP cost_analysis_jobs_past_deadline IN_PROGRESS Jobs whose timeout has passed (the operator ends a run at its deadline, so anything above 0 for long is a stuck run), by namespace and data source; 0 for every data source that has Jobs.
# TYPE cost_analysis_jobs_past_deadline gauge
cost_analysis_jobs_past_deadline{data_source="azure",namespace="team-b"} 0
`
	if err := testutil.CollectAndCompare(col, strings.NewReader(want), "cost_analysis_jobs_past_deadline"); err != nil {
		t.Fatal(err)
	}
}

func TestTaskFinishedRecordsDurationErrorCodeAndRecords(t *testing.T) {
	resetMetrics()
	t0 := metav1.NewTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(90 * time.Second))
	task := func(st costv1.JobTaskState, code string, started *metav1.Time, created int64) *costv1.JobTask {
		return &costv1.JobTask{ObjectMeta: metav1.ObjectMeta{Namespace: "team-t"},
			Spec:   costv1.JobTaskSpec{DataSourceRef: costv1.LocalObjectReference{Name: "aws"}},
			Status: costv1.JobTaskStatus{Status: st, ErrorCode: code, StartedAt: started, FinishedAt: &t1, CreatedCount: created}}
	}
	TaskFinished(task(costv1.TaskSuccess, "", &t0, 24))
	TaskFinished(task(costv1.TaskFailure, "ERROR_TASK_POD", nil, 0))
	want := `
# HELP cost_analysis_job_task_errors_total JobTasks that ended with an error code, by namespace, data source and error code.
# TYPE cost_analysis_job_task_errors_total counter
cost_analysis_job_task_errors_total{data_source="aws",error_code="ERROR_TASK_POD",namespace="team-t"} 1
# HELP cost_analysis_job_tasks_finished_total JobTasks that ended, by namespace, data source and final status.
# TYPE cost_analysis_job_tasks_finished_total counter
cost_analysis_job_tasks_finished_total{data_source="aws",namespace="team-t",status="CANCELED"} 0
cost_analysis_job_tasks_finished_total{data_source="aws",namespace="team-t",status="FAILURE"} 1
cost_analysis_job_tasks_finished_total{data_source="aws",namespace="team-t",status="SUCCESS"} 1
cost_analysis_job_tasks_finished_total{data_source="aws",namespace="team-t",status="TIMEOUT"} 0
`
	if err := testutil.CollectAndCompare(tasksFinished, strings.NewReader(want), "cost_analysis_job_tasks_finished_total"); err != nil {
		t.Error(err)
	}
	if err := testutil.CollectAndCompare(taskErrors, strings.NewReader(want), "cost_analysis_job_task_errors_total"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(recordsCreated.WithLabelValues("team-t", "aws")); got != 24 {
		t.Errorf("records created %v, want 24", got)
	}
	if n := testutil.CollectAndCount(taskDuration); n != 1 {
		t.Errorf("%d duration series, want 1 (a task that never ran has no duration)", n)
	}
}

func TestJobFinishedRecordsStatusDurationAndErrorCode(t *testing.T) {
	resetMetrics()
	t0 := metav1.NewTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(10 * time.Minute))
	JobFinished(&costv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "team-j"},
		Spec:   costv1.JobSpec{DataSourceRef: costv1.LocalObjectReference{Name: "gcp"}},
		Status: costv1.JobStatus{Status: costv1.JobFailure, ErrorCode: costv1.ErrorJobTask, StartedAt: &t0, FinishedAt: &t1}})
	want := `
# HELP cost_analysis_job_errors_total Jobs that ended with an error code (FAILURE, TIMEOUT, CANCELED), by namespace, data source and error code.
# TYPE cost_analysis_job_errors_total counter
cost_analysis_job_errors_total{data_source="gcp",error_code="ERROR_JOB_TASK",namespace="team-j"} 1
# HELP cost_analysis_jobs_finished_total Jobs that ended, by namespace, data source and final status.
# TYPE cost_analysis_jobs_finished_total counter
cost_analysis_jobs_finished_total{data_source="gcp",namespace="team-j",status="CANCELED"} 0
cost_analysis_jobs_finished_total{data_source="gcp",namespace="team-j",status="FAILURE"} 1
cost_analysis_jobs_finished_total{data_source="gcp",namespace="team-j",status="SUCCESS"} 0
cost_analysis_jobs_finished_total{data_source="gcp",namespace="team-j",status="TIMEOUT"} 0
`
	if err := testutil.CollectAndCompare(jobsFinished, strings.NewReader(want), "cost_analysis_jobs_finished_total"); err != nil {
		t.Error(err)
	}
	if err := testutil.CollectAndCompare(jobErrors, strings.NewReader(want), "cost_analysis_job_errors_total"); err != nil {
		t.Error(err)
	}
	h, err := jobDuration.GetMetricWithLabelValues("team-j", "gcp", "FAILURE")
	if err != nil {
		t.Fatal(err)
	}
	var m dto.Metric
	if err := h.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	if c, s := m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum(); c != 1 || s != 600 {
		t.Errorf("job duration: %d samples summing %vs, want 1 of 600s", c, s)
	}
}

func TestErrorCodeLabelIsBounded(t *testing.T) {
	resetMetrics()
	c := &codeSet{seen: map[string]bool{}}
	tests := map[string]struct {
		code, want string
	}{
		"an operator's code is kept":         {costv1.ErrorPluginUnavailable, costv1.ErrorPluginUnavailable},
		"a collector's own code is kept":     {"FAKE_ERROR", "FAKE_ERROR"},
		"free text is OTHER":                 {"connection refused: 10.0.0.1", otherErrorCode},
		"a lower-case code is OTHER":         {"error_x", otherErrorCode},
		"a code of 65 characters is OTHER":   {"E" + strings.Repeat("X", 64), otherErrorCode},
		"the empty code is OTHER, not blank": {"", otherErrorCode},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := c.label(tc.code); got != tc.want {
				t.Errorf("label(%q) = %q, want %q", tc.code, got, tc.want)
			}
		})
	}
	for i := range 2 * maxErrorCodes {
		c.label(fmt.Sprintf("ERROR_%d", i))
	}
	if got := c.label("ERROR_NEW_AFTER_THE_CAP"); got != otherErrorCode {
		t.Errorf("a code past the first %d: %q, want %s", maxErrorCodes, got, otherErrorCode)
	}
	if got := c.label(costv1.ErrorPluginUnavailable); got != costv1.ErrorPluginUnavailable {
		t.Errorf("a code seen before the cap: %q, want it kept", got)
	}
}

func TestStoreOperationsAreCountedByOperationAndResult(t *testing.T) {
	resetMetrics()
	StoreOperation("team-a", "aws", "commit", 20*time.Millisecond, nil)
	StoreOperation("team-a", "aws", "rollback", time.Millisecond, errTest)
	RecordsCommitted("team-a", "aws", 42)
	RecordsCommitted("team-a", "aws", 0)
	want := `
# HELP cost_analysis_records_committed_total Cost records made visible by run commits in the store, by namespace and data source.
# TYPE cost_analysis_records_committed_total counter
cost_analysis_records_committed_total{data_source="aws",namespace="team-a"} 42
# HELP cost_analysis_store_operations_total Run commits and rollbacks in the store, by namespace, data source, operation (commit, rollback) and result (success, error).
# TYPE cost_analysis_store_operations_total counter
cost_analysis_store_operations_total{data_source="aws",namespace="team-a",operation="commit",result="error"} 0
cost_analysis_store_operations_total{data_source="aws",namespace="team-a",operation="commit",result="success"} 1
cost_analysis_store_operations_total{data_source="aws",namespace="team-a",operation="rollback",result="error"} 1
cost_analysis_store_operations_total{data_source="aws",namespace="team-a",operation="rollback",result="success"} 0
`
	if err := testutil.CollectAndCompare(recordsCommitted, strings.NewReader(want), "cost_analysis_records_committed_total"); err != nil {
		t.Error(err)
	}
	if err := testutil.CollectAndCompare(storeOps, strings.NewReader(want), "cost_analysis_store_operations_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(storeOpDuration); n != 2 {
		t.Errorf("%d duration series, want one per operation and result", n)
	}
}

var errTest = errors.New("test")

// resetMetrics empties the package's metric vectors: each test sees only its own series.
func resetMetrics() {
	for _, v := range []interface{ Reset() }{jobsFinished, jobErrors, jobDuration, tasksFinished, taskErrors, taskDuration,
		recordsCreated, recordsCommitted, storeOps, storeOpDuration} {
		v.Reset()
	}
}
