package controllers

import (
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/utils/ptr"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// batchJob is a batch Job of which index 0 is completed, failed ("failed") or
// neither (""), with a condition when cond is set.
func batchJob(index0 string, cond batchv1.JobConditionType, reason string) *batchv1.Job {
	bj := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "run-b0"}}
	bj.Status.CompletedIndexes = "3-5"
	bj.Status.FailedIndexes = ptr.To("7")
	switch index0 {
	case "completed":
		bj.Status.CompletedIndexes = "0,3-5"
	case "failed":
		bj.Status.FailedIndexes = ptr.To("0-1,7")
	}
	if cond != "" {
		bj.Status.Conditions = []batchv1.JobCondition{{Type: cond, Status: corev1.ConditionTrue, Reason: reason, Message: "m"}}
	}
	return bj
}

func pod(phase corev1.PodPhase, msg string, exit int32) *corev1.Pod {
	start := metav1.NewTime(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "run-0-abcde"}, Status: corev1.PodStatus{Phase: phase, StartTime: &start}}
	cs := corev1.ContainerStatus{Name: "collector"}
	if phase == corev1.PodSucceeded || phase == corev1.PodFailed {
		cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: exit, Message: msg, Reason: "Completed", FinishedAt: metav1.NewTime(start.Add(time.Minute))}
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
	return p
}

func TestObserveTask(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 11, 23, 10, 5, 0, 0, time.UTC))
	tests := map[string]struct {
		bj          *batchv1.Job
		pods        []*corev1.Pod
		wantState   costv1.JobTaskState
		wantCreated int64
		wantCode    string
		wantMsg     string
		// wantFinished is finishedAt (RFC 3339) when it must be the pod's finish time.
		wantFinished string
	}{
		"a batch Job whose pod is not running yet leaves the task pending": {
			bj: batchJob("", "", ""), pods: []*corev1.Pod{pod(corev1.PodPending, "", 0)}, wantState: "",
		},
		"a running pod makes the task IN_PROGRESS": {
			bj: batchJob("", "", ""), pods: []*corev1.Pod{pod(corev1.PodRunning, "", 0)}, wantState: costv1.TaskInProgress,
		},
		"a completed index with a result is a success with its count": {
			bj: batchJob("completed", "", ""), pods: []*corev1.Pod{pod(corev1.PodSucceeded, `{"created_count": 42, "collected_bytes": 100}`, 0)},
			wantState: costv1.TaskSuccess, wantCreated: 42,
		},
		"a completed index without a message fails the task": {
			bj: batchJob("completed", batchv1.JobComplete, ""), pods: []*corev1.Pod{pod(corev1.PodSucceeded, "", 0)},
			wantState: costv1.TaskFailure, wantCode: costv1.ErrorTaskResult, wantMsg: "wrote no termination message",
		},
		"a completed index with a malformed message fails the task": {
			bj: batchJob("completed", "", ""), pods: []*corev1.Pod{pod(corev1.PodSucceeded, "created 42 rows", 0)},
			wantState: costv1.TaskFailure, wantCode: costv1.ErrorTaskResult, wantMsg: "not a JSON result object",
		},
		"a completed index whose message lacks a count fails the task": {
			bj: batchJob("completed", "", ""), pods: []*corev1.Pod{pod(corev1.PodSucceeded, `{"rows": 4}`, 0)},
			wantState: costv1.TaskFailure, wantCode: costv1.ErrorTaskResult, wantMsg: "no created_count",
		},
		"a failed index carries the collector's error": {
			bj:        batchJob("failed", "", ""),
			pods:      []*corev1.Pod{pod(corev1.PodFailed, `{"error_code": "ERROR_GET_DATA", "error_message": "quota exceeded"}`, 1)},
			wantState: costv1.TaskFailure, wantCode: "ERROR_GET_DATA", wantMsg: "quota exceeded",
		},
		"a failed index without a message reports the exit code": {
			bj: batchJob("failed", batchv1.JobFailed, batchv1.JobReasonMaxFailedIndexesExceeded), pods: []*corev1.Pod{pod(corev1.PodFailed, "", 137)},
			wantState: costv1.TaskFailure, wantCode: costv1.ErrorTaskPod, wantMsg: "exited with code 137",
		},
		"a succeeded pod ends the task before its batch Job records the index": {
			bj: batchJob("", "", ""), pods: []*corev1.Pod{pod(corev1.PodSucceeded, `{"created_count": 7}`, 0)},
			wantState: costv1.TaskSuccess, wantCreated: 7, wantFinished: "2026-11-23T10:01:00Z",
		},
		"a succeeded pod with a malformed message fails the task before its batch Job records the index": {
			bj: batchJob("", "", ""), pods: []*corev1.Pod{pod(corev1.PodSucceeded, "done", 0)},
			wantState: costv1.TaskFailure, wantCode: costv1.ErrorTaskResult, wantMsg: "not a JSON result object",
		},
		"a failed pod alone does not end the task: the index may be retried": {
			bj: batchJob("", "", ""), pods: []*corev1.Pod{pod(corev1.PodFailed, `{"error_code": "E", "error_message": "m"}`, 1)},
			wantState: costv1.TaskInProgress,
		},
		"a batch Job past its deadline times the task out": {
			bj: batchJob("", batchv1.JobFailed, batchv1.JobReasonDeadlineExceeded), pods: []*corev1.Pod{pod(corev1.PodRunning, "", 0)},
			wantState: costv1.TaskTimeout, wantCode: costv1.ErrorJobTimeout,
		},
		"another index failing under the Fail policy leaves this one to the run's cancel": {
			bj: batchJob("", batchv1.JobFailed, batchv1.JobReasonMaxFailedIndexesExceeded), pods: []*corev1.Pod{pod(corev1.PodRunning, "", 0)},
			wantState: costv1.TaskInProgress,
		},
		"a failed index whose pods are gone (deleted) fails the task": {
			bj: batchJob("failed", "", ""), pods: nil,
			wantState: costv1.TaskFailure, wantCode: costv1.ErrorTaskPod, wantMsg: "failed or was deleted",
		},
		"a completed index whose pod is gone fails the task: its result is lost": {
			bj: batchJob("completed", "", ""), pods: nil,
			wantState: costv1.TaskFailure, wantCode: costv1.ErrorTaskResult, wantMsg: "pod is gone",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := observeTask(costv1.JobTaskStatus{}, tc.bj, 0, tc.pods, now)
			if st.Status != tc.wantState || st.CreatedCount != tc.wantCreated || st.ErrorCode != tc.wantCode || !strings.Contains(st.ErrorMessage, tc.wantMsg) {
				t.Fatalf("got %s created=%d %s %q", st.Status, st.CreatedCount, st.ErrorCode, st.ErrorMessage)
			}
			if tc.wantState.Finished() && st.FinishedAt == nil {
				t.Fatalf("finishedAt not set")
			}
			if tc.wantFinished != "" && st.FinishedAt.UTC().Format(time.RFC3339) != tc.wantFinished {
				t.Fatalf("finishedAt %v, want %s (the pod's finish)", st.FinishedAt, tc.wantFinished)
			}
			if tc.wantState != "" && len(tc.pods) > 0 && (st.StartedAt == nil || st.Attempts != 1) {
				t.Fatalf("startedAt %v attempts %d", st.StartedAt, st.Attempts)
			}
		})
	}
}

func TestStoppedStatus(t *testing.T) {
	now := metav1.Now()
	if st := stoppedStatus(costv1.JobTaskStatus{Status: costv1.TaskInProgress}, costv1.JobTimeout, now); st.Status != costv1.TaskTimeout {
		t.Fatalf("got %s, want TIMEOUT", st.Status)
	}
	for _, js := range []costv1.JobState{costv1.JobCanceled, costv1.JobFailure} {
		if st := stoppedStatus(costv1.JobTaskStatus{}, js, now); st.Status != costv1.TaskCanceled || st.FinishedAt == nil {
			t.Fatalf("Job %s: got %s, want CANCELED", js, st.Status)
		}
	}
}

func TestAttemptsCountTheIndexFailuresKubernetesCounted(t *testing.T) {
	p := pod(corev1.PodRunning, "", 0)
	p.Annotations = map[string]string{"batch.kubernetes.io/job-index-failure-count": "2"}
	if n := attempts([]*corev1.Pod{p}); n != 3 {
		t.Fatalf("attempts %d, want 3 (two failed pods before this one, gone)", n)
	}
	if n := attempts([]*corev1.Pod{pod(corev1.PodFailed, "", 1), pod(corev1.PodRunning, "", 0)}); n != 2 {
		t.Fatalf("attempts %d, want 2", n)
	}
}

func TestProgressHold(t *testing.T) {
	start := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	running := costv1.JobTaskStatus{Status: costv1.TaskInProgress, StartedAt: &metav1.Time{Time: start}}
	cases := map[string]struct {
		old, st costv1.JobTaskStatus
		now     time.Time
		want    time.Duration
	}{
		"a pod that just started waits for the rest of the delay": {st: running, now: start.Add(300 * time.Millisecond), want: 700 * time.Millisecond},
		"a pod that ran the delay is written":                     {st: running, now: start.Add(time.Second), want: 0},
		"a task that ended is written at once":                    {st: costv1.JobTaskStatus{Status: costv1.TaskSuccess, StartedAt: &metav1.Time{Time: start}}, now: start, want: 0},
		"a task already IN_PROGRESS is not held":                  {old: running, st: running, now: start, want: 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := progressHold(tc.old, tc.st, tc.now, time.Second); got != tc.want {
				t.Fatalf("hold %s, want %s", got, tc.want)
			}
		})
	}
}
