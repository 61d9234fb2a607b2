package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/plugin"
)

// This file computes a Job's status from what was observed. Nothing here does I/O.

// taskSummary is what the Job controller observed of a Job's JobTasks.
type taskSummary struct {
	// Observed is the number of JobTasks found.
	Observed int32
	// Counts per state; a JobTask without a status counts as pending.
	Counts       costv1.TaskCounts
	CreatedCount int64
	// TaskSeconds and CollectedBytes are the metering figures of the tasks.
	TaskSeconds    int64
	CollectedBytes int64
	// FirstFailure is the failed task with the lowest index, if any.
	FirstFailure *failedTask
}

type failedTask struct {
	Name         string
	ErrorCode    string
	ErrorMessage string
}

// summarizeTasks counts the JobTasks per state and sums their created counts.
func summarizeTasks(tasks []*costv1.JobTask) taskSummary {
	var s taskSummary
	firstIndex := int32(-1)
	for _, t := range tasks {
		s.Observed++
		s.CreatedCount += t.Status.CreatedCount
		s.CollectedBytes += t.Status.CollectedBytes
		if a, b := t.Status.StartedAt, t.Status.FinishedAt; a != nil && b != nil && b.After(a.Time) {
			s.TaskSeconds += int64(b.Sub(a.Time).Seconds())
		}
		switch t.Status.Status {
		case costv1.TaskInProgress:
			s.Counts.InProgress++
		case costv1.TaskSuccess:
			s.Counts.Success++
		case costv1.TaskFailure, costv1.TaskTimeout:
			if t.Status.Status == costv1.TaskFailure {
				s.Counts.Failure++
			} else {
				s.Counts.Timeout++
			}
			if firstIndex < 0 || t.Spec.Index < firstIndex {
				firstIndex = t.Spec.Index
				s.FirstFailure = &failedTask{Name: t.Name, ErrorCode: t.Status.ErrorCode, ErrorMessage: t.Status.ErrorMessage}
			}
		case costv1.TaskCanceled:
			s.Counts.Canceled++
		default:
			s.Counts.Pending++
		}
	}
	return s
}

func finishedTasks(c costv1.TaskCounts) int32 {
	return c.Success + c.Failure + c.Canceled + c.Timeout
}

// outcome is how a run ends.
type outcome struct {
	State        costv1.JobState
	Reason       string
	ErrorCode    string
	ErrorMessage string
}

// runState is what decideOutcome needs to know about a run besides its tasks.
type runState struct {
	Cancel bool
	// ReplacedBy names the newer run that canceled this one (concurrencyPolicy Replace).
	ReplacedBy    string
	Planned       bool
	TotalTasks    int32
	Policy        costv1.FailurePolicy
	Deadline      time.Time
	Now           time.Time
	TimeoutString string
}

// decideOutcome says whether a running Job ends now, and how. Cancel wins over a
// timeout, a timeout over task outcomes.
func decideOutcome(rs runState, s taskSummary) (outcome, bool) {
	if rs.Cancel && rs.ReplacedBy != "" {
		return outcome{State: costv1.JobCanceled, Reason: costv1.ReasonReplaced, ErrorCode: costv1.ErrorJobCanceled,
			ErrorMessage: "the Job was canceled: Job " + rs.ReplacedBy + " replaced it (concurrencyPolicy Replace)"}, true
	}
	if rs.Cancel {
		return outcome{State: costv1.JobCanceled, Reason: costv1.ReasonCanceled,
			ErrorCode: costv1.ErrorJobCanceled, ErrorMessage: "the Job was canceled (spec.cancel is true)"}, true
	}
	if !rs.Deadline.IsZero() && !rs.Now.Before(rs.Deadline) {
		return outcome{State: costv1.JobTimeout, Reason: costv1.ReasonTimedOut,
			ErrorCode: costv1.ErrorJobTimeout, ErrorMessage: "the Job did not finish within its timeout of " + rs.TimeoutString}, true
	}
	if !rs.Planned {
		return outcome{}, false
	}
	failed := s.Counts.Failure + s.Counts.Timeout
	if failed > 0 && rs.Policy != costv1.FailurePolicyContinue {
		return taskFailure(s, failed), true
	}
	if s.Observed < rs.TotalTasks || finishedTasks(s.Counts) < rs.TotalTasks {
		return outcome{}, false
	}
	if failed > 0 || s.Counts.Canceled > 0 {
		return taskFailure(s, failed), true
	}
	return outcome{State: costv1.JobSuccess, Reason: costv1.ReasonAllTasksSucceeded}, true
}

func taskFailure(s taskSummary, failed int32) outcome {
	o := outcome{State: costv1.JobFailure, Reason: costv1.ReasonTaskFailed, ErrorCode: costv1.ErrorJobTask}
	switch {
	case s.FirstFailure != nil:
		o.ErrorMessage = "task " + s.FirstFailure.Name + " failed"
		if s.FirstFailure.ErrorCode != "" {
			o.ErrorMessage += ": " + s.FirstFailure.ErrorCode
		}
		if s.FirstFailure.ErrorMessage != "" {
			o.ErrorMessage += ": " + s.FirstFailure.ErrorMessage
		}
		if failed > 1 {
			o.ErrorMessage += " (and " + itoa(failed-1) + " more)"
		}
	default:
		o.ErrorMessage = "a task was canceled outside the run"
	}
	return o
}

// projectCounts gives the counts a finished Job reports: tasks that have not ended
// yet are counted as what they are about to become (CANCELED, or TIMEOUT when the Job
// timed out), so the counts add up at once; the JobTasks follow.
func projectCounts(c costv1.TaskCounts, total, observed int32, state costv1.JobState) costv1.TaskCounts {
	open := c.Pending + c.InProgress + max(total-observed, 0)
	c.Pending, c.InProgress = 0, 0
	if state == costv1.JobTimeout {
		c.Timeout += open
	} else {
		c.Canceled += open
	}
	return c
}

// applyTasks writes the task figures into the status.
func applyTasks(st *costv1.JobStatus, s taskSummary) {
	counts := s.Counts
	if st.Status.Finished() {
		counts = projectCounts(counts, st.TotalTasks, s.Observed, st.Status)
	} else if s.Observed < st.TotalTasks {
		counts.Pending += st.TotalTasks - s.Observed
	}
	st.Tasks = counts
	st.RemainedTasks = st.TotalTasks - finishedTasks(counts)
	if st.RemainedTasks < 0 {
		st.RemainedTasks = 0
	}
	// Once the run is committed (or rolled back), what it stored is what the store
	// says, not what the tasks reported: a retried task's first attempt, or a task
	// pod on a kwok node that wrote nothing, counts for nothing.
	st.CreatedCount = s.CreatedCount
	collected := s.CollectedBytes
	if sto := st.Store; sto != nil && sto.CommittedRows != nil {
		st.CreatedCount = *sto.CommittedRows
		if sto.CommittedBytes != nil {
			collected = *sto.CommittedBytes
		}
	}
	if s.Observed > 0 || st.Metering != nil {
		m := costv1.MeteringSummary{TaskPodSeconds: s.TaskSeconds, CollectedBytes: collected}
		if st.Metering != nil {
			m.ResourceSpecCode = st.Metering.ResourceSpecCode
		}
		st.Metering = &m
	}
}

// resourceSpecCode names a collector's resources for metering: its requests (or
// limits) as "cpu-100m.memory-64Mi".
func resourceSpecCode(c costv1.CollectorSpec) string {
	list := c.Resources.Requests
	if len(list) == 0 {
		list = c.Resources.Limits
	}
	if len(list) == 0 {
		return "default"
	}
	names := make([]string, 0, len(list))
	for name := range list {
		names = append(names, string(name))
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		q := list[corev1.ResourceName(n)]
		parts = append(parts, n+"-"+q.String())
	}
	return strings.Join(parts, ".")
}

// applyOutcome ends the run in the status. finishedAt is set once.
func applyOutcome(st *costv1.JobStatus, o outcome, generation int64, now metav1.Time) {
	st.Status = o.State
	st.ErrorCode = o.ErrorCode
	st.ErrorMessage = o.ErrorMessage
	if st.FinishedAt == nil {
		st.FinishedAt = &now
	}
	cond := metav1.ConditionFalse
	msg := o.ErrorMessage
	if o.State == costv1.JobSuccess {
		cond = metav1.ConditionTrue
		msg = "every task succeeded"
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: costv1.ConditionSucceeded, Status: cond, Reason: o.Reason, Message: msg, ObservedGeneration: generation,
	})
}

// markRunning opens the run: IN_PROGRESS, startedAt, and the Succeeded condition Unknown.
func markRunning(st *costv1.JobStatus, created metav1.Time, generation int64, now metav1.Time) {
	st.Status = costv1.JobInProgress
	st.CreatedAt = &created
	if st.StartedAt == nil {
		st.StartedAt = &now
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: costv1.ConditionSucceeded, Status: metav1.ConditionUnknown, Reason: costv1.ReasonRunning,
		Message: "the run is in progress", ObservedGeneration: generation,
	})
}

// stampUpdated sets updatedAt and observedGeneration when anything else in the status
// changed, so an unchanged run is never written.
func stampUpdated(old, st *costv1.JobStatus, generation int64, now metav1.Time) bool {
	for i := range st.Conditions {
		st.Conditions[i].ObservedGeneration = generation
	}
	st.ObservedGeneration = generation
	cmp := *st
	cmp.UpdatedAt = old.UpdatedAt
	if equality.Semantic.DeepEqual(old, &cmp) {
		st.UpdatedAt = old.UpdatedAt
		return false
	}
	st.UpdatedAt = &now
	return true
}

// earliestStart parses the changed windows' starts and returns the earliest.
func earliestStart(windows []costv1.ChangedWindow) *metav1.Time {
	var best *time.Time
	for _, w := range windows {
		t, ok := parsePluginTime(w.Start)
		if ok && (best == nil || t.Before(*best)) {
			best = &t
		}
	}
	if best == nil {
		return nil
	}
	mt := metav1.NewTime(*best)
	return &mt
}

// parsePluginTime reads the dates plugins use: YYYY-MM, YYYY-MM-DD or RFC 3339.
func parsePluginTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02", "2006-01"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func itoa(i int32) string { return strconv.FormatInt(int64(i), 10) }

// countsOnlyChange reports whether two statuses of a running Job differ in nothing
// but their task figures.
func countsOnlyChange(old, cur *costv1.JobStatus) bool {
	if cur.Status.Finished() || old.Status != cur.Status {
		return false
	}
	a, b := old.DeepCopy(), cur.DeepCopy()
	for _, st := range []*costv1.JobStatus{a, b} {
		st.Tasks, st.RemainedTasks, st.CreatedCount, st.UpdatedAt = costv1.TaskCounts{}, 0, 0, nil
		if st.Metering != nil {
			st.Metering.TaskPodSeconds, st.Metering.CollectedBytes = 0, 0
		}
		st.ObservedGeneration = 0
	}
	return equality.Semantic.DeepEqual(a, b)
}

// buildJobTasks turns the plugin's tasks into JobTask objects owned by the Job.
func buildJobTasks(job *costv1.Job, tasks []plugin.Task) ([]*costv1.JobTask, error) {
	out := make([]*costv1.JobTask, 0, len(tasks))
	for i, t := range tasks {
		opts, err := toRaw(t.Options)
		if err != nil || opts == nil {
			return nil, fmt.Errorf("task %d: task_options cannot be encoded: %w", i, err)
		}
		var changed *costv1.ChangedWindow
		if t.Changed != nil {
			w, err := changedWindow(*t.Changed)
			if err != nil {
				return nil, fmt.Errorf("task %d: task_changed: %w", i, err)
			}
			changed = &w
		}
		digest := sha256.New()
		digest.Write(opts.Raw)
		if changed != nil {
			b, _ := json.Marshal(changed)
			digest.Write(b)
		}
		jt := &costv1.JobTask{
			ObjectMeta: metav1.ObjectMeta{
				Name:      JobTaskName(job.Name, i),
				Namespace: job.Namespace,
				Labels: map[string]string{
					costv1.LabelJob:        job.Name,
					costv1.LabelDataSource: job.Spec.DataSourceRef.Name,
				},
				Annotations: map[string]string{costv1.AnnotationTaskHash: hex.EncodeToString(digest.Sum(nil))[:16]},
			},
			Spec: costv1.JobTaskSpec{
				JobRef:        costv1.LocalObjectReference{Name: job.Name},
				DataSourceRef: job.Spec.DataSourceRef,
				Index:         int32(i),
				TaskOptions:   *opts,
				TaskChanged:   changed,
			},
		}
		jt.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(job, costv1.GroupVersion.WithKind("Job"))}
		out = append(out, jt)
	}
	return out, nil
}

func changedWindow(c plugin.Changed) (costv1.ChangedWindow, error) {
	w := costv1.ChangedWindow{Start: c.Start, End: c.End}
	if len(c.Filter) > 0 {
		f, err := toRaw(c.Filter)
		if err != nil {
			return w, err
		}
		w.Filter = f
	}
	return w, nil
}

// maxChangedWindows bounds the windows kept in a Job's status.
const maxChangedWindows = 256

// changedWindows converts the job-level windows and finds the earliest start.
func changedWindows(in []plugin.Changed) ([]costv1.ChangedWindow, *metav1.Time) {
	var out []costv1.ChangedWindow
	for _, c := range in {
		w, err := changedWindow(c)
		if err != nil {
			continue
		}
		out = append(out, w)
	}
	earliest := earliestStart(out)
	if len(out) > maxChangedWindows {
		out = out[:maxChangedWindows]
	}
	return out, earliest
}
