package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

func TestStateCollectorCountsJobsAndTasksByState(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := costv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	job := func(name, ds string, st costv1.JobState) *costv1.Job {
		return &costv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team-a"},
			Spec: costv1.JobSpec{DataSourceRef: costv1.LocalObjectReference{Name: ds}}, Status: costv1.JobStatus{Status: st}}
	}
	task := func(name string, st costv1.JobTaskState) *costv1.JobTask {
		return &costv1.JobTask{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team-a"},
			Spec: costv1.JobTaskSpec{DataSourceRef: costv1.LocalObjectReference{Name: "aws"}}, Status: costv1.JobTaskStatus{Status: st}}
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		job("j1", "aws", costv1.JobSuccess), job("j2", "aws", costv1.JobSuccess), job("j3", "gcp", ""),
		task("t1", ""), task("t2", costv1.TaskInProgress), task("t3", costv1.TaskInProgress),
	).Build()
	want := `
# HELP cost_analysis_job_tasks JobTasks currently in the cluster, by namespace, data source and status.
# TYPE cost_analysis_job_tasks gauge
cost_analysis_job_tasks{data_source="aws",namespace="team-a",status="IN_PROGRESS"} 2
cost_analysis_job_tasks{data_source="aws",namespace="team-a",status="PENDING"} 1
# HELP cost_analysis_jobs Jobs currently in the cluster, by namespace, data source and status (PENDING = not picked up yet).
# TYPE cost_analysis_jobs gauge
cost_analysis_jobs{data_source="aws",namespace="team-a",status="SUCCESS"} 2
cost_analysis_jobs{data_source="gcp",namespace="team-a",status="PENDING"} 1
`
	if err := testutil.CollectAndCompare(&stateCollector{reader: c}, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestTaskFinishedRecordsDurationAndRecords(t *testing.T) {
	TaskFinished("team-a", "aws", "SUCCESS", 90*time.Second, 24)
	TaskFinished("team-a", "aws", "FAILURE", 0, 0)
	if got := testutil.ToFloat64(recordsCreated.WithLabelValues("team-a", "aws")); got != 24 {
		t.Fatalf("records created %v, want 24", got)
	}
	if got := testutil.ToFloat64(tasksFinished.WithLabelValues("team-a", "aws", "FAILURE")); got != 1 {
		t.Fatalf("failed tasks %v, want 1", got)
	}
	if n := testutil.CollectAndCount(taskDuration); n != 1 {
		t.Fatalf("%d duration series, want 1 (a task that never ran has no duration)", n)
	}
}

func TestStoreOperationsAreCountedByOperationAndResult(t *testing.T) {
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
cost_analysis_store_operations_total{data_source="aws",namespace="team-a",operation="commit",result="success"} 1
cost_analysis_store_operations_total{data_source="aws",namespace="team-a",operation="rollback",result="error"} 1
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
