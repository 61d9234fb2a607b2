package controllers

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

// This file maps a task's completion index (its batch Job's verdict and the index's
// pods) to the JobTask's status. Nothing here does I/O.

// batchJobFinished reports whether a batch Job ended, and whether it succeeded.
func batchJobFinished(bj *batchv1.Job) (succeeded, finished bool) {
	for _, c := range bj.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return true, true
		case batchv1.JobFailed:
			return false, true
		}
	}
	return false, false
}

func batchJobCondition(bj *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range bj.Status.Conditions {
		if bj.Status.Conditions[i].Type == t && bj.Status.Conditions[i].Status == corev1.ConditionTrue {
			return &bj.Status.Conditions[i]
		}
	}
	return nil
}

// observeTask computes a JobTask's status from its batch Job (completion index ci)
// and that index's pods. A task ends as soon as its pod's end is seen, before the
// batch Job records it, as the upstream Job controller moves on to its next index.
func observeTask(old costv1.JobTaskStatus, bj *batchv1.Job, ci int32, pods []*corev1.Pod, now metav1.Time) costv1.JobTaskStatus {
	st := *old.DeepCopy()
	st.BatchJobName = bj.Name
	st.Attempts = max(st.Attempts, attempts(pods))
	if st.StartedAt == nil {
		st.StartedAt = earliestPodStart(pods)
	}
	completed := parseIndexSet(bj.Status.CompletedIndexes).has(ci)
	failed := bj.Status.FailedIndexes != nil && parseIndexSet(*bj.Status.FailedIndexes).has(ci)
	_, bjFinished := batchJobFinished(bj)
	switch {
	case completed || lastPod(pods, corev1.PodSucceeded) != nil:
		finishFromPods(&st, pods, true, now)
	case failed:
		finishFromPods(&st, pods, false, now)
	case bjFinished:
		cond := batchJobCondition(bj, batchv1.JobFailed)
		switch {
		case cond != nil && cond.Reason == batchv1.JobReasonDeadlineExceeded:
			st.Status = costv1.TaskTimeout
			st.ErrorCode = costv1.ErrorJobTimeout
			st.ErrorMessage = "the task ran past the Job's deadline: " + cond.Message
			st.FinishedAt = &now
		case cond != nil && cond.Reason == batchv1.JobReasonMaxFailedIndexesExceeded:
			// Another task failed under the Fail policy: the run ends, and the Job
			// controller cancels this one with the rest.
			if anyPodRunning(pods) {
				st.Status = costv1.TaskInProgress
			}
		case cond != nil:
			st = failedStatus(st, costv1.ErrorTaskPod, fmt.Sprintf("the task's batch Job %s failed before the task ended (%s: %s)", bj.Name, cond.Reason, cond.Message), now)
		}
	case anyPodRunning(pods) || st.Status == costv1.TaskInProgress:
		st.Status = costv1.TaskInProgress
	}
	if st.Status == "" {
		// Not started yet: nothing worth a write; the batch Job's name and attempts
		// are recorded with IN_PROGRESS.
		return *old.DeepCopy()
	}
	if st.Status != old.Status || st.StartedAt != nil && old.StartedAt == nil {
		st.UpdatedAt = &now
	}
	return st
}

// attempts is the number of pods the task's index ran: the pods seen, or the failures
// Kubernetes counted before the latest of them (failed pods may be gone).
func attempts(pods []*corev1.Pod) int32 {
	n := int32(len(pods))
	for _, p := range pods {
		if c, err := strconv.ParseInt(p.Annotations[taskpod.AnnotationIndexFailureCount], 10, 32); err == nil {
			n = max(n, int32(c)+1)
		}
	}
	return n
}

// finishFromPods ends a task from its pods: the result of its pod that succeeded, or
// the error its last failed pod reported.
func finishFromPods(st *costv1.JobTaskStatus, pods []*corev1.Pod, succeeded bool, now metav1.Time) {
	st.FinishedAt = &now
	if succeeded {
		pod := lastPod(pods, corev1.PodSucceeded)
		if pod == nil {
			*st = failedStatus(*st, costv1.ErrorTaskResult, "the task's completion index succeeded but its pod is gone, so its result cannot be read", now)
			return
		}
		if t := podFinish(pod); !t.IsZero() && containerTerminated(pod) != nil {
			st.FinishedAt = &t
		}
		res, err := taskpod.ParseResult(terminationMessage(pod))
		switch {
		case err != nil:
			*st = failedStatus(*st, costv1.ErrorTaskResult, fmt.Sprintf("pod %s succeeded but its result is unusable: %v", pod.Name, err), *st.FinishedAt)
		case res.Failed():
			*st = failedStatus(*st, firstNonEmpty(res.ErrorCode, costv1.ErrorTaskResult), res.ErrorMessage, *st.FinishedAt)
		default:
			st.Status = costv1.TaskSuccess
			st.CreatedCount = *res.CreatedCount
			st.CollectedBytes = res.CollectedBytes
			st.ErrorCode, st.ErrorMessage = "", ""
		}
		return
	}
	pod := lastPod(pods, corev1.PodFailed)
	if pod == nil {
		*st = failedStatus(*st, costv1.ErrorTaskPod, "the task's pod failed or was deleted, and no retry is left", now)
		return
	}
	if t := podFinish(pod); !t.IsZero() && containerTerminated(pod) != nil {
		now = t
	}
	if res, err := taskpod.ParseResult(terminationMessage(pod)); err == nil && res.Failed() {
		*st = failedStatus(*st, firstNonEmpty(res.ErrorCode, costv1.ErrorTaskPod), res.ErrorMessage, now)
		return
	}
	msg := fmt.Sprintf("pod %s failed: %s %s", pod.Name, pod.Status.Reason, pod.Status.Message)
	if term := containerTerminated(pod); term != nil {
		msg = fmt.Sprintf("pod %s exited with code %d (%s) and no usable result", pod.Name, term.ExitCode, term.Reason)
	}
	*st = failedStatus(*st, costv1.ErrorTaskPod, msg, now)
}

// failedStatus is a task's status once it failed with code and msg at now.
func failedStatus(old costv1.JobTaskStatus, code, msg string, now metav1.Time) costv1.JobTaskStatus {
	st := *old.DeepCopy()
	st.Status = costv1.TaskFailure
	st.ErrorCode = code
	st.ErrorMessage = strings.TrimSpace(msg)
	st.CreatedCount = 0
	st.FinishedAt, st.UpdatedAt = &now, &now
	return st
}

func containerTerminated(pod *corev1.Pod) *corev1.ContainerStateTerminated {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == taskpod.ContainerName || len(pod.Status.ContainerStatuses) == 1 {
			if cs.State.Terminated != nil {
				return cs.State.Terminated
			}
			return cs.LastTerminationState.Terminated
		}
	}
	return nil
}

func terminationMessage(pod *corev1.Pod) string {
	if t := containerTerminated(pod); t != nil {
		return t.Message
	}
	return ""
}

// lastPod is the pod in the phase that finished last.
func lastPod(pods []*corev1.Pod, phase corev1.PodPhase) *corev1.Pod {
	var cands []*corev1.Pod
	for _, p := range pods {
		if p.Status.Phase == phase {
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := podFinish(cands[i]), podFinish(cands[j])
		return a.Before(&b)
	})
	return cands[len(cands)-1]
}

func podFinish(p *corev1.Pod) metav1.Time {
	if t := containerTerminated(p); t != nil {
		return t.FinishedAt
	}
	return p.CreationTimestamp
}

func anyPodRunning(pods []*corev1.Pod) bool {
	for _, p := range pods {
		if p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			return true
		}
	}
	return false
}

func earliestPodStart(pods []*corev1.Pod) *metav1.Time {
	var best *metav1.Time
	for _, p := range pods {
		t := p.Status.StartTime
		if t == nil || p.Status.Phase == corev1.PodPending {
			continue
		}
		if best == nil || t.Before(best) {
			c := *t
			best = &c
		}
	}
	return best
}

// stoppedStatus ends a task because its Job ended: CANCELED, or TIMEOUT when the Job
// timed out.
func stoppedStatus(old costv1.JobTaskStatus, jobState costv1.JobState, now metav1.Time) costv1.JobTaskStatus {
	st := *old.DeepCopy()
	if jobState == costv1.JobTimeout {
		st.Status = costv1.TaskTimeout
		st.ErrorCode = costv1.ErrorJobTimeout
		st.ErrorMessage = "the Job timed out before this task finished"
	} else {
		st.Status = costv1.TaskCanceled
		st.ErrorCode = costv1.ErrorJobCanceled
		st.ErrorMessage = fmt.Sprintf("the Job ended %s before this task finished", jobState)
	}
	st.FinishedAt = &now
	st.UpdatedAt = &now
	return st
}

// podsCaughtUp reports whether the pods seen account for the batch Job's verdict on
// index ci: a pod in the phase the index ended with.
func podsCaughtUp(bj *batchv1.Job, ci int32, pods []*corev1.Pod) bool {
	switch {
	case parseIndexSet(bj.Status.CompletedIndexes).has(ci):
		return lastPod(pods, corev1.PodSucceeded) != nil
	case bj.Status.FailedIndexes != nil && parseIndexSet(*bj.Status.FailedIndexes).has(ci):
		return lastPod(pods, corev1.PodFailed) != nil
	}
	return true
}

// DefaultTaskProgressDelay is how long a task's pod runs before its IN_PROGRESS is
// written.
const DefaultTaskProgressDelay = time.Second

// progressHold is how long a task's first IN_PROGRESS write waits: until its pod has
// run delay, so that a task that ends sooner costs one status write (its end) instead
// of two. The status a reader sees is at most delay behind; startedAt is the pod's
// start either way.
func progressHold(old, st costv1.JobTaskStatus, now time.Time, delay time.Duration) time.Duration {
	if old.Status != "" || st.Status != costv1.TaskInProgress || st.StartedAt == nil {
		return 0
	}
	return max(st.StartedAt.Add(delay).Sub(now), 0)
}
