package controllers

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

func task(index int32, st costv1.JobTaskState, created int64) *costv1.JobTask {
	return &costv1.JobTask{
		ObjectMeta: metav1.ObjectMeta{Name: JobTaskName("run", int(index))},
		Spec:       costv1.JobTaskSpec{Index: index},
		Status:     costv1.JobTaskStatus{Status: st, CreatedCount: created},
	}
}

func TestSummarizeTasks(t *testing.T) {
	tasks := []*costv1.JobTask{
		task(0, "", 0), task(1, costv1.TaskInProgress, 0), task(2, costv1.TaskSuccess, 10),
		task(3, costv1.TaskSuccess, 5), task(4, costv1.TaskFailure, 0), task(5, costv1.TaskCanceled, 0),
		task(6, costv1.TaskTimeout, 0), task(7, costv1.TaskPending, 0),
	}
	tasks[4].Status.ErrorCode, tasks[4].Status.ErrorMessage = "ERROR_GET_DATA", "boom"
	s := summarizeTasks(tasks)
	want := costv1.TaskCounts{Pending: 2, InProgress: 1, Success: 2, Failure: 1, Canceled: 1, Timeout: 1}
	if s.Counts != want || s.Observed != 8 || s.CreatedCount != 15 {
		t.Fatalf("got %+v observed %d created %d", s.Counts, s.Observed, s.CreatedCount)
	}
	if s.FirstFailure == nil || s.FirstFailure.Name != "run-4" {
		t.Fatalf("first failure %+v, want run-4", s.FirstFailure)
	}
}

func TestDecideOutcome(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	base := runState{Planned: true, TotalTasks: 3, Policy: costv1.FailurePolicyFail, Deadline: now.Add(time.Hour), Now: now, TimeoutString: "1h0m0s"}
	sum := func(tasks ...*costv1.JobTask) taskSummary { return summarizeTasks(tasks) }
	tests := map[string]struct {
		rs        func(runState) runState
		summary   taskSummary
		wantDone  bool
		wantState costv1.JobState
		wantCode  string
	}{
		"a run with tasks still open goes on": {
			summary: sum(task(0, costv1.TaskSuccess, 1), task(1, costv1.TaskInProgress, 0), task(2, "", 0)),
		},
		"a run whose every task succeeded is a success": {
			summary:  sum(task(0, costv1.TaskSuccess, 1), task(1, costv1.TaskSuccess, 0), task(2, costv1.TaskSuccess, 0)),
			wantDone: true, wantState: costv1.JobSuccess,
		},
		"a run with zero tasks succeeds at once": {
			rs:       func(r runState) runState { r.TotalTasks = 0; return r },
			wantDone: true, wantState: costv1.JobSuccess,
		},
		"a run whose JobTasks are not all created yet goes on": {
			summary: sum(task(0, costv1.TaskSuccess, 1), task(1, costv1.TaskSuccess, 0)),
		},
		"a failed task ends the run under the Fail policy": {
			summary:  sum(task(0, costv1.TaskFailure, 0), task(1, costv1.TaskInProgress, 0), task(2, "", 0)),
			wantDone: true, wantState: costv1.JobFailure, wantCode: costv1.ErrorJobTask,
		},
		"a failed task lets the others finish under the Continue policy": {
			rs:      func(r runState) runState { r.Policy = costv1.FailurePolicyContinue; return r },
			summary: sum(task(0, costv1.TaskFailure, 0), task(1, costv1.TaskInProgress, 0), task(2, costv1.TaskSuccess, 0)),
		},
		"under the Continue policy the run fails once all tasks ended": {
			rs:       func(r runState) runState { r.Policy = costv1.FailurePolicyContinue; return r },
			summary:  sum(task(0, costv1.TaskFailure, 0), task(1, costv1.TaskSuccess, 0), task(2, costv1.TaskSuccess, 0)),
			wantDone: true, wantState: costv1.JobFailure, wantCode: costv1.ErrorJobTask,
		},
		"a passed deadline times the run out": {
			rs:       func(r runState) runState { r.Now = r.Deadline; return r },
			summary:  sum(task(0, costv1.TaskInProgress, 0)),
			wantDone: true, wantState: costv1.JobTimeout, wantCode: costv1.ErrorJobTimeout,
		},
		"a passed deadline times out a run that never planned": {
			rs:       func(r runState) runState { r.Planned = false; r.Now = r.Deadline.Add(time.Minute); return r },
			wantDone: true, wantState: costv1.JobTimeout, wantCode: costv1.ErrorJobTimeout,
		},
		"cancel wins over everything": {
			rs:       func(r runState) runState { r.Cancel = true; r.Now = r.Deadline.Add(time.Minute); return r },
			summary:  sum(task(0, costv1.TaskFailure, 0)),
			wantDone: true, wantState: costv1.JobCanceled, wantCode: costv1.ErrorJobCanceled,
		},
		"an unplanned run goes on": {
			rs: func(r runState) runState { r.Planned = false; return r },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rs := base
			if tc.rs != nil {
				rs = tc.rs(rs)
			}
			o, done := decideOutcome(rs, tc.summary)
			if done != tc.wantDone || o.State != tc.wantState || o.ErrorCode != tc.wantCode {
				t.Fatalf("got done=%v %+v, want done=%v %s %s", done, o, tc.wantDone, tc.wantState, tc.wantCode)
			}
		})
	}
}

func TestApplyTasksProjectsOpenTasksOfAFinishedJob(t *testing.T) {
	tests := map[string]struct {
		state costv1.JobState
		want  costv1.TaskCounts
	}{
		"a canceled Job counts open tasks as canceled":    {state: costv1.JobCanceled, want: costv1.TaskCounts{Success: 1, Canceled: 3}},
		"a timed-out Job counts open tasks as timed out":  {state: costv1.JobTimeout, want: costv1.TaskCounts{Success: 1, Timeout: 3}},
		"a running Job counts uncreated tasks as pending": {state: costv1.JobInProgress, want: costv1.TaskCounts{Success: 1, Pending: 2, InProgress: 1}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := &costv1.JobStatus{Status: tc.state, TotalTasks: 4}
			applyTasks(st, summarizeTasks([]*costv1.JobTask{task(0, costv1.TaskSuccess, 7), task(1, costv1.TaskInProgress, 0), task(2, "", 0)}))
			if st.Tasks != tc.want {
				t.Fatalf("counts %+v, want %+v", st.Tasks, tc.want)
			}
			wantRemained := int32(0)
			if !tc.state.Finished() {
				wantRemained = 3
			}
			if st.RemainedTasks != wantRemained || st.CreatedCount != 7 {
				t.Fatalf("remained %d created %d", st.RemainedTasks, st.CreatedCount)
			}
		})
	}
}

func TestStampUpdatedWritesOnlyRealChanges(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Minute))
	old := &costv1.JobStatus{Status: costv1.JobInProgress, TotalTasks: 2, UpdatedAt: &t0, ObservedGeneration: 1}
	same := old.DeepCopy()
	if stampUpdated(old, same, 1, t1) || !same.UpdatedAt.Equal(&t0) {
		t.Fatalf("an unchanged status was stamped")
	}
	changed := old.DeepCopy()
	changed.RemainedTasks = 1
	if !stampUpdated(old, changed, 1, t1) || !changed.UpdatedAt.Equal(&t1) {
		t.Fatalf("a changed status was not stamped")
	}
}

func TestEarliestStartIsLastChangedAt(t *testing.T) {
	got := earliestStart([]costv1.ChangedWindow{{Start: "2026-09"}, {Start: "2026-08-15"}, {Start: "bogus"}, {Start: "2026-10-01T00:00:00Z"}})
	if got == nil || got.Format("2006-01-02") != "2026-08-15" {
		t.Fatalf("got %v, want 2026-08-15", got)
	}
	if earliestStart(nil) != nil {
		t.Fatalf("no windows must give no time")
	}
}

func TestResourceSpecCode(t *testing.T) {
	tests := map[string]struct {
		res  corev1.ResourceRequirements
		want string
	}{
		"no resources is the default spec": {want: "default"},
		"requests name the spec": {res: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("64Mi"), corev1.ResourceCPU: resource.MustParse("100m")}}, want: "cpu-100m.memory-64Mi"},
		"limits stand in for missing requests": {res: corev1.ResourceRequirements{Limits: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("1")}}, want: "cpu-1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := resourceSpecCode(costv1.CollectorSpec{Resources: tc.res}); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMeteringSumsFinishedTasks(t *testing.T) {
	start := metav1.NewTime(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	end := metav1.NewTime(start.Add(90 * time.Second))
	a, b := task(0, costv1.TaskSuccess, 1), task(1, costv1.TaskInProgress, 0)
	a.Status.StartedAt, a.Status.FinishedAt, a.Status.CollectedBytes = &start, &end, 1000
	b.Status.StartedAt, b.Status.CollectedBytes = &start, 5
	st := &costv1.JobStatus{Status: costv1.JobInProgress, TotalTasks: 2, Metering: &costv1.MeteringSummary{ResourceSpecCode: "cpu-1"}}
	applyTasks(st, summarizeTasks([]*costv1.JobTask{a, b}))
	if m := st.Metering; m.TaskPodSeconds != 90 || m.CollectedBytes != 1005 || m.ResourceSpecCode != "cpu-1" {
		t.Fatalf("metering %+v", m)
	}
}
