package controllers

import (
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// This file holds what the Job and JobTask controllers both use.

// Defaults for a Job when neither it nor its DataSource says otherwise.
const (
	DefaultJobTimeout     = 2 * time.Hour // SpaceONE's JOB_TIMEOUT
	DefaultParallelism    = 10
	DefaultTaskRetryLimit = 0
)

// JobTaskName is the deterministic name of a Job's task.
func JobTaskName(job string, index int) string { return job + "-" + strconv.Itoa(index) }

// runSettings are a Job's effective run settings.
type runSettings struct {
	Timeout     time.Duration
	Parallelism int32
	Retries     int32
	Policy      costv1.FailurePolicy
	TTL         *int32
}

// effectiveSettings merges the Job's settings over its DataSource's defaults over the
// operator's defaults.
func effectiveSettings(job *costv1.Job, ds *costv1.DataSource) runSettings {
	s := runSettings{Timeout: DefaultJobTimeout, Parallelism: DefaultParallelism, Retries: DefaultTaskRetryLimit, Policy: costv1.FailurePolicyFail}
	if ds != nil {
		d := ds.Spec.JobDefaults
		if d.Timeout != nil && d.Timeout.Duration > 0 {
			s.Timeout = d.Timeout.Duration
		}
		if d.Parallelism != nil {
			s.Parallelism = *d.Parallelism
		}
		if d.TaskRetryLimit != nil {
			s.Retries = *d.TaskRetryLimit
		}
		if d.FailurePolicy != "" {
			s.Policy = d.FailurePolicy
		}
		s.TTL = d.TTLSecondsAfterFinished
	}
	if job.Spec.Timeout != nil && job.Spec.Timeout.Duration > 0 {
		s.Timeout = job.Spec.Timeout.Duration
	}
	if job.Spec.Parallelism != nil {
		s.Parallelism = *job.Spec.Parallelism
	}
	if job.Spec.TaskRetryLimit != nil {
		s.Retries = *job.Spec.TaskRetryLimit
	}
	if job.Spec.FailurePolicy != "" {
		s.Policy = job.Spec.FailurePolicy
	}
	return s
}

// stopping says whether a Job's open tasks must stop, and with which Job state:
// once the Job finished, and already while a failed, timed-out or canceled run is
// rolled back (a task still writing would hold the rollback up; the store refuses
// its rows once the run is rolled back anyway).
func stopping(job *costv1.Job) (costv1.JobState, bool) {
	if job.Status.Status.Finished() {
		return job.Status.Status, true
	}
	if e := job.Status.Ending; e != nil && e.Status != costv1.JobSuccess {
		return e.Status, true
	}
	return "", false
}

// queueName is the admission queue a run's batch Jobs carry: the Job's
// kueue.x-k8s.io/queue-name, else its DataSource's.
func queueName(job *costv1.Job, ds *costv1.DataSource) string {
	if q := job.Labels[costv1.LabelQueueName]; q != "" {
		return q
	}
	if ds != nil {
		return ds.Labels[costv1.LabelQueueName]
	}
	return ""
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// metaNow is t as the API stores it, to the second, rounded up: so that the stored
// times never precede what they record (a timeout is never enforced early) and stay
// in order (startedAt <= updatedAt <= finishedAt).
func metaNow(t time.Time) metav1.Time {
	r := t.Truncate(time.Second)
	if r.Before(t) {
		r = r.Add(time.Second)
	}
	return metav1.NewTime(r)
}
