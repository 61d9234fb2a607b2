package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// JobState is the status of a Job, as SpaceONE's JobInfo documents it. Unset means the
// operator has not picked the Job up yet (the API's SCOPE_NONE).
// +kubebuilder:validation:Enum=IN_PROGRESS;SUCCESS;FAILURE;TIMEOUT;CANCELED
type JobState string

const (
	JobInProgress JobState = "IN_PROGRESS"
	JobSuccess    JobState = "SUCCESS"
	JobFailure    JobState = "FAILURE"
	JobTimeout    JobState = "TIMEOUT"
	JobCanceled   JobState = "CANCELED"
)

// Finished reports whether the state is final.
func (s JobState) Finished() bool {
	switch s {
	case JobSuccess, JobFailure, JobTimeout, JobCanceled:
		return true
	}
	return false
}

// JobSpec is one collection run of one DataSource.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.cancel) || !oldSelf.cancel || (has(self.cancel) && self.cancel)",message="spec.cancel cannot be set back to false: a canceled Job stays canceled"
// +kubebuilder:validation:XValidation:rule="has(self.start) == has(oldSelf.start) && (!has(self.start) || self.start == oldSelf.start)",message="spec.start is immutable: create a new Job to collect another period"
type JobSpec struct {
	// DataSourceRef names the DataSource (same namespace) this run collects. Immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.dataSourceRef is immutable: create a new Job for another DataSource"
	// +required
	DataSourceRef LocalObjectReference `json:"dataSourceRef"`
	// Start is passed to the plugin's get_tasks as `start`: the first month (YYYY-MM)
	// or day (YYYY-MM-DD) to collect. Empty lets the plugin pick from the DataSource's
	// lastSynchronizedAt.
	// +kubebuilder:validation:MaxLength=10
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]{4}-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?$')",message="spec.start must be a month (YYYY-MM) or a day (YYYY-MM-DD)"
	// +optional
	Start string `json:"start,omitempty"`
	// Cancel, once set to true, cancels the run: running task pods are stopped and the
	// Job ends CANCELED. It cannot be set back to false.
	// +optional
	Cancel bool `json:"cancel,omitempty"`
	// Timeout of the run, counted from the moment the operator picks the Job up; when
	// it passes the run ends TIMEOUT. Defaults to the DataSource's jobDefaults.timeout.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="spec.timeout must be a positive duration such as 30m or 2h"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Parallelism is the most tasks of this run that run at a time.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	Parallelism *int32 `json:"parallelism,omitempty"`
	// TaskRetryLimit is how often a failed task pod is retried.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	TaskRetryLimit *int32 `json:"taskRetryLimit,omitempty"`
	// FailurePolicy says what a failed task does to the run.
	// +optional
	FailurePolicy FailurePolicy `json:"failurePolicy,omitempty"`
}

// TaskCounts counts a Job's tasks per state.
type TaskCounts struct {
	// +optional
	Pending int32 `json:"pending,omitempty"`
	// +optional
	InProgress int32 `json:"inProgress,omitempty"`
	// +optional
	Success int32 `json:"success,omitempty"`
	// +optional
	Failure int32 `json:"failure,omitempty"`
	// +optional
	Canceled int32 `json:"canceled,omitempty"`
	// +optional
	Timeout int32 `json:"timeout,omitempty"`
}

// JobStatus holds every field of SpaceONE's JobInfo, plus what Kubernetes users expect.
// It holds counts, never a list of tasks, so it stays small for any number of tasks.
type JobStatus struct {
	// Status of the run. Unset until the operator picks the Job up.
	// +optional
	Status JobState `json:"status,omitempty"`
	// ErrorCode is a SpaceONE-style error code when the run failed (e.g.
	// ERROR_GET_JOB_TASKS, ERROR_JOB_TASK, ERROR_DATA_SOURCE_NOT_FOUND).
	// +optional
	ErrorCode string `json:"errorCode,omitempty"`
	// ErrorMessage is the cause, in words.
	// +optional
	ErrorMessage string `json:"errorMessage,omitempty"`
	// TotalTasks is the number of tasks the plugin planned.
	// +optional
	TotalTasks int32 `json:"totalTasks"`
	// RemainedTasks is the number of tasks not finished yet.
	// +optional
	RemainedTasks int32 `json:"remainedTasks"`
	// Tasks counts the tasks per state.
	// +optional
	Tasks TaskCounts `json:"tasks,omitempty"`
	// CreatedCount is the number of records the run stored: while it runs, the sum
	// of its tasks' reported counts; once committed, the rows the commit made
	// visible (status.store.committedRows); after a rollback, 0.
	// +optional
	CreatedCount int64 `json:"createdCount"`
	// Changed are the plugin's job-level changed windows.
	// +kubebuilder:validation:MaxItems=256
	// +listType=atomic
	// +optional
	Changed []ChangedWindow `json:"changed,omitempty"`
	// SyncedAccounts is the number of accounts the plugin reported as synchronized.
	// +optional
	SyncedAccounts int32 `json:"syncedAccounts,omitempty"`
	// Metering sums what the run consumed (the job metering API reads it).
	// +optional
	Metering *MeteringSummary `json:"metering,omitempty"`
	// CreatedAt is the Job's creation time (SpaceONE's created_at).
	// +optional
	CreatedAt *metav1.Time `json:"createdAt,omitempty"`
	// StartedAt is when the operator picked the Job up; the timeout counts from here.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// UpdatedAt is the last change of the run's status.
	// +optional
	UpdatedAt *metav1.Time `json:"updatedAt,omitempty"`
	// FinishedAt is when the run ended. Set once.
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
	// LastChangedAt is the start of the earliest changed window: the point from which
	// this run's data replaces older data.
	// +optional
	LastChangedAt *metav1.Time `json:"lastChangedAt,omitempty"`
	// Store is where the run's records go and what its commit or rollback did.
	// +optional
	Store *JobStoreStatus `json:"store,omitempty"`
	// BatchJobs says how the run's tasks are laid out on Indexed batch Jobs.
	// +optional
	BatchJobs *BatchJobsStatus `json:"batchJobs,omitempty"`
	// Ending is the outcome the run reached, held while its records are committed
	// or rolled back; the status above becomes it when that is done.
	// +optional
	Ending *JobEnding `json:"ending,omitempty"`
	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Succeeded, Planned, Stored, and Admitted when the run names a queue.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// JobStoreStatus is the store of one run, fixed when the run is planned so that
// its tasks and its commit use the same database.
type JobStoreStatus struct {
	// SecretName is the Secret (in the Job's namespace, key "dsn") the run's task
	// pods and its commit read the DSN from: the DataSource's store Secret, or the
	// Job's own copy of the operator's default store (owned by the Job).
	// +kubebuilder:validation:MaxLength=253
	// +optional
	SecretName string `json:"secretName,omitempty"`
	// Default is true when the run uses the operator's default store.
	// +optional
	Default bool `json:"default,omitempty"`
	// CommittedRows and CommittedBytes are what the commit made visible.
	// +optional
	CommittedRows *int64 `json:"committedRows,omitempty"`
	// +optional
	CommittedBytes *int64 `json:"committedBytes,omitempty"`
	// Attempts counts the failed commit or rollback attempts of this run.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// LastAttemptAt is when the last failed attempt was made: the next waits
	// its backoff from then (1 s, doubling to 64 s).
	// +optional
	LastAttemptAt *metav1.Time `json:"lastAttemptAt,omitempty"`
}

// JobEnding is an outcome waiting for its commit or rollback.
type JobEnding struct {
	// Status the run ends with.
	// +required
	Status JobState `json:"status"`
	// Reason of the Succeeded condition.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Reason string `json:"reason,omitempty"`
	// +kubebuilder:validation:MaxLength=128
	// +optional
	ErrorCode string `json:"errorCode,omitempty"`
	// +kubebuilder:validation:MaxLength=32768
	// +optional
	ErrorMessage string `json:"errorMessage,omitempty"`
	// Since is when the outcome was reached.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
}

// MeteringSummary is what a run consumed: its task pods' run time on the collector's
// resource spec, and the data the collectors reported.
type MeteringSummary struct {
	// ResourceSpecCode names the collector's resource requests (limits when no
	// requests are set), e.g. "cpu-100m.memory-64Mi"; "default" when none are set.
	// +optional
	ResourceSpecCode string `json:"resourceSpecCode,omitempty"`
	// TaskPodSeconds is the summed run time of the tasks that ran, from each task's
	// startedAt to its finishedAt.
	// +optional
	TaskPodSeconds int64 `json:"taskPodSeconds"`
	// CollectedBytes is the summed size of the data the collectors reported.
	// +optional
	CollectedBytes int64 `json:"collectedBytes"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cajob,categories=costanalysis
// +kubebuilder:selectablefield:JSONPath=`.status.status`
// +kubebuilder:selectablefield:JSONPath=`.spec.dataSourceRef.name`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.status`
// +kubebuilder:printcolumn:name="Data Source",type=string,JSONPath=`.spec.dataSourceRef.name`
// +kubebuilder:printcolumn:name="Total",type=integer,JSONPath=`.status.totalTasks`
// +kubebuilder:printcolumn:name="Remained",type=integer,JSONPath=`.status.remainedTasks`
// +kubebuilder:printcolumn:name="Created",type=integer,JSONPath=`.status.createdCount`,description="Cost records created"
// +kubebuilder:printcolumn:name="Error",type=string,JSONPath=`.status.errorCode`,priority=1
// +kubebuilder:printcolumn:name="Started",type=date,JSONPath=`.status.startedAt`,priority=1
// +kubebuilder:printcolumn:name="Finished",type=date,JSONPath=`.status.finishedAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 52",message="a Job name is at most 52 characters: it is part of the names and labels of its JobTasks and batch Jobs"

// Job is one collection run of one DataSource. Its name is SpaceONE's job_id and its
// namespace the domain_id.
type Job struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec JobSpec `json:"spec"`
	// +optional
	Status JobStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// JobList contains a list of Job.
type JobList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Job `json:"items"`
}

// BatchJobsStatus is the layout of a run's tasks on Indexed batch Jobs: the task of
// plan index i is completion index i mod indexesPerBatchJob of batch Job number
// i / indexesPerBatchJob, named <job>-b<number>. The batch Jobs are made in order,
// and share the Job's parallelism.
type BatchJobsStatus struct {
	// IndexesPerBatchJob is the number of tasks (completion indexes) per batch Job.
	// +kubebuilder:validation:Minimum=1
	IndexesPerBatchJob int32 `json:"indexesPerBatchJob"`
	// Count is how many batch Jobs the run's tasks need.
	// +kubebuilder:validation:Minimum=0
	Count int32 `json:"count"`
	// Created is how many of them the operator has created (batch Jobs 0 to
	// created-1); one missing among them is lost.
	// +optional
	Created int32 `json:"created,omitempty"`
	// Queue is the kueue.x-k8s.io/queue-name the batch Jobs carry: they are created
	// suspended, and run once an admission controller resumes them.
	// +optional
	Queue string `json:"queue,omitempty"`
	// Suspended is how many created batch Jobs still wait for admission.
	// +optional
	Suspended int32 `json:"suspended,omitempty"`
}

// Condition types and reasons of a Job.
const (
	// ConditionSucceeded is Unknown while the run goes on, True when it ended SUCCESS
	// and False when it ended otherwise; its reason says how.
	ConditionSucceeded = "Succeeded"
	// ConditionPlanned is True once the plugin's get_tasks answered and every JobTask
	// of the plan exists; a Job whose plan was interrupted resumes it until then.
	ConditionPlanned = "Planned"
	// ConditionStored says where the run's records are: Unknown while they are
	// being committed (reason Committing) or rolled back (RollingBack), True once
	// committed (Committed), False once rolled back (RolledBack).
	ConditionStored = "Stored"
	// ConditionAdmitted appears when the run names a queue (kueue.x-k8s.io/queue-name):
	// False (WaitingForAdmission) while a batch Job of the run waits suspended for
	// the admission controller, True (Admitted) once all of them run. The wait counts
	// against the Job's timeout and nothing else.
	ConditionAdmitted = "Admitted"
	// ReasonWaitingForAdmission: batch Jobs of the run wait for admission (Admitted).
	ReasonWaitingForAdmission = "WaitingForAdmission"
	// ReasonAdmitted: every batch Job of the run was admitted (Admitted).
	ReasonAdmitted = "Admitted"

	// ReasonCommitting: every task succeeded; the run's records are being
	// committed.
	ReasonCommitting = "Committing"
	// ReasonCommitted: the run's records replaced the older data of its windows.
	ReasonCommitted = "Committed"
	// ReasonRollingBack: the run failed, timed out or was canceled; its records
	// are being deleted.
	ReasonRollingBack = "RollingBack"
	// ReasonRolledBack: the run's records are deleted; the store is as before it.
	ReasonRolledBack = "RolledBack"
	// ReasonCommitFailed: the commit kept failing; the run was rolled back.
	ReasonCommitFailed = "CommitFailed"
	// ReasonWaitingForStore: the run's store does not answer yet; the operator
	// retries within the plan's retry window.
	ReasonWaitingForStore = "WaitingForStore"

	// ReasonRunning: the run is planning or running tasks.
	ReasonRunning = "Running"
	// ReasonAllTasksSucceeded: every task succeeded (also when there were none).
	ReasonAllTasksSucceeded = "AllTasksSucceeded"
	// ReasonTaskFailed: a task failed and the failure policy ended the run.
	ReasonTaskFailed = "TaskFailed"
	// ReasonPlanFailed: get_tasks failed, the plugin was unreachable or answered
	// something unusable, or the DataSource or its Secret was missing.
	ReasonPlanFailed = "PlanFailed"
	// ReasonCanceled: spec.cancel was set.
	ReasonCanceled = "Canceled"
	// ReasonTimedOut: the run's timeout passed.
	ReasonTimedOut = "TimedOut"
	// ReasonWaitingForDataSource: the DataSource does not exist yet; the operator
	// waits for it until the plan retry window passes (Planned).
	ReasonWaitingForDataSource = "WaitingForDataSource"
	// ReasonTasksCreated: the plan's JobTasks all exist (Planned).
	ReasonTasksCreated = "TasksCreated"
	// ReasonDuplicateJob: another run of the DataSource was in progress under the
	// Forbid concurrency policy (Succeeded False).
	ReasonDuplicateJob = "DuplicateJob"
	// ReasonReplaced: a newer run of the DataSource replaced this one under the
	// Replace concurrency policy (Succeeded False, the run CANCELED).
	ReasonReplaced = "Replaced"
	// ReasonWaitingForPreviousRun: under Replace, the run waits for the run it
	// replaces to be rolled back (Planned Unknown).
	ReasonWaitingForPreviousRun = "WaitingForPreviousRun"
	// ReasonWaitingForPlugin: get_tasks could not reach the plugin yet; the operator
	// retries until the plan retry window passes (Planned).
	ReasonWaitingForPlugin = "WaitingForPlugin"
)

// SpaceONE-style error codes a Job or JobTask can end with.
const (
	ErrorGetJobTasks        = "ERROR_GET_JOB_TASKS"
	ErrorDataSourceNotFound = "ERROR_DATA_SOURCE_NOT_FOUND"
	ErrorSecretNotFound     = "ERROR_SECRET_NOT_FOUND"
	ErrorPluginUnavailable  = "ERROR_PLUGIN_UNAVAILABLE"
	ErrorInvalidPluginData  = "ERROR_INVALID_PLUGIN_DATA"
	ErrorPlanChanged        = "ERROR_PLAN_CHANGED"
	ErrorJobTask            = "ERROR_JOB_TASK"
	ErrorJobTimeout         = "ERROR_JOB_TIMEOUT"
	ErrorJobCanceled        = "ERROR_JOB_CANCELED"
	ErrorTaskResult         = "ERROR_TASK_RESULT"
	ErrorTaskPod            = "ERROR_TASK_POD"
	ErrorBatchJobLost       = "ERROR_BATCH_JOB_LOST"
	// ErrorCommitFailed: the run's records could not be committed (the store kept
	// refusing, or a window of the plugin's is invalid); they were rolled back.
	ErrorCommitFailed = "ERROR_COMMIT_FAILED"
	// ErrorDuplicateJob: another run of the same DataSource was in progress and the
	// DataSource's concurrencyPolicy is Forbid (SpaceONE's code for the same check).
	ErrorDuplicateJob = "ERROR_DUPLICATE_JOB"
	// ErrorStoreNotConfigured: the DataSource names no store and the operator has
	// no default store.
	ErrorStoreNotConfigured = "ERROR_STORE_NOT_CONFIGURED"
	// ErrorStoreUnavailable: the run's store could not be reached (or its schema
	// applied) within the plan's retry window.
	ErrorStoreUnavailable = "ERROR_STORE_UNAVAILABLE"
)

func init() {
	register(&Job{}, &JobList{})
}
