package controllers

import (
	"fmt"
	"sort"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

// This file maps a task's batch Job and pods to the JobTask's status. Nothing here
// does I/O.

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

// observeTask computes a JobTask's status from its batch Job and that Job's pods.
func observeTask(old costv1.JobTaskStatus, bj *batchv1.Job, pods []*corev1.Pod, now metav1.Time) costv1.JobTaskStatus {
	st := *old.DeepCopy()
	st.BatchJobName = bj.Name
	st.Attempts = max(st.Attempts, bj.Status.Active+bj.Status.Succeeded+bj.Status.Failed, int32(len(pods)))
	if st.StartedAt == nil {
		st.StartedAt = earliestPodStart(pods)
	}
	succeeded, finished := batchJobFinished(bj)
	switch {
	case finished && succeeded:
		finishFromPods(&st, bj, pods, true, now)
	case !finished && lastPod(pods, corev1.PodSucceeded) != nil:
		// The task's one completion is in: the batch Job is certain to complete, and its
		// Complete condition comes a sync (about a second) later. The task's result is
		// the pod's; its slot goes to the next task now, as the upstream Job controller
		// starts its next pod.
		finishFromPods(&st, bj, pods, true, now)
	case finished:
		finishFromPods(&st, bj, pods, false, now)
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

func finishFromPods(st *costv1.JobTaskStatus, bj *batchv1.Job, pods []*corev1.Pod, succeeded bool, now metav1.Time) {
	st.FinishedAt = &now
	if c := bj.Status.CompletionTime; c != nil && succeeded {
		t := *c
		st.FinishedAt = &t
	}
	if succeeded {
		pod := lastPod(pods, corev1.PodSucceeded)
		if pod == nil {
			failTask(st, costv1.ErrorTaskResult, "the batch Job completed but its pod is gone, so its result cannot be read")
			return
		}
		if bj.Status.CompletionTime == nil {
			if t := podFinish(pod); !t.IsZero() && containerTerminated(pod) != nil {
				st.FinishedAt = &t
			}
		}
		res, err := taskpod.ParseResult(terminationMessage(pod))
		switch {
		case err != nil:
			failTask(st, costv1.ErrorTaskResult, fmt.Sprintf("pod %s succeeded but its result is unusable: %v", pod.Name, err))
		case res.Failed():
			failTask(st, firstNonEmpty(res.ErrorCode, costv1.ErrorTaskResult), res.ErrorMessage)
		default:
			st.Status = costv1.TaskSuccess
			st.CreatedCount = *res.CreatedCount
			st.CollectedBytes = res.CollectedBytes
			st.ErrorCode, st.ErrorMessage = "", ""
		}
		return
	}
	cond := batchJobCondition(bj, batchv1.JobFailed)
	if cond != nil && cond.Reason == batchv1.JobReasonDeadlineExceeded {
		st.Status = costv1.TaskTimeout
		st.ErrorCode = costv1.ErrorJobTimeout
		st.ErrorMessage = "the task ran past the Job's deadline: " + cond.Message
		return
	}
	pod := lastPod(pods, corev1.PodFailed)
	if pod != nil {
		if res, err := taskpod.ParseResult(terminationMessage(pod)); err == nil && res.Failed() {
			failTask(st, firstNonEmpty(res.ErrorCode, costv1.ErrorTaskPod), res.ErrorMessage)
			return
		}
	}
	msg := "the task's batch Job failed"
	if cond != nil {
		msg += fmt.Sprintf(" (%s: %s)", cond.Reason, cond.Message)
	}
	if pod != nil {
		if term := containerTerminated(pod); term != nil {
			msg += fmt.Sprintf("; pod %s exited with code %d (%s) and no usable result", pod.Name, term.ExitCode, term.Reason)
		} else {
			msg += fmt.Sprintf("; pod %s failed: %s %s", pod.Name, pod.Status.Reason, pod.Status.Message)
		}
	}
	failTask(st, costv1.ErrorTaskPod, msg)
}

func failTask(st *costv1.JobTaskStatus, code, msg string) {
	st.Status = costv1.TaskFailure
	st.ErrorCode = code
	st.ErrorMessage = strings.TrimSpace(msg)
	st.CreatedCount = 0
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

// stopTask ends a task because its Job ended: CANCELED, or TIMEOUT when the Job
// timed out.
func stopTask(old costv1.JobTaskStatus, jobState costv1.JobState, now metav1.Time) costv1.JobTaskStatus {
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

// podsCaughtUp reports whether the pods seen account for the batch Job's end: a
// finished pod in the phase the batch Job ended with.
func podsCaughtUp(bj *batchv1.Job, pods []*corev1.Pod) bool {
	succeeded, finished := batchJobFinished(bj)
	if !finished {
		return true
	}
	phase := corev1.PodFailed
	if succeeded {
		phase = corev1.PodSucceeded
	}
	return lastPod(pods, phase) != nil
}
