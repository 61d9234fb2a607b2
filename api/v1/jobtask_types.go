package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// JobTaskState is the status of a JobTask, as SpaceONE's JobTaskInfo documents it.
// Unset means the task waits to be admitted under its Job's parallelism; the HTTP API
// reports it as PENDING.
// +kubebuilder:validation:Enum=PENDING;IN_PROGRESS;SUCCESS;FAILURE;CANCELED;TIMEOUT
type JobTaskState string

const (
	TaskPending    JobTaskState = "PENDING"
	TaskInProgress JobTaskState = "IN_PROGRESS"
	TaskSuccess    JobTaskState = "SUCCESS"
	TaskFailure    JobTaskState = "FAILURE"
	TaskCanceled   JobTaskState = "CANCELED"
	TaskTimeout    JobTaskState = "TIMEOUT"
)

// Finished reports whether the state is final.
func (s JobTaskState) Finished() bool {
	switch s {
	case TaskSuccess, TaskFailure, TaskCanceled, TaskTimeout:
		return true
	}
	return false
}

// JobTaskSpec is one unit of a Job, as the plugin's get_tasks returned it. Immutable.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="JobTask spec is immutable"
type JobTaskSpec struct {
	// JobRef names the Job this task belongs to.
	// +required
	JobRef LocalObjectReference `json:"jobRef"`
	// DataSourceRef names the DataSource the task collects for.
	// +required
	DataSourceRef LocalObjectReference `json:"dataSourceRef"`
	// Index is the task's position in the plugin's answer, from 0.
	// +kubebuilder:validation:Minimum=0
	// +required
	Index int32 `json:"index"`
	// TaskOptions is the task_options object get_tasks returned for this task.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	// +required
	TaskOptions runtime.RawExtension `json:"taskOptions"`
	// TaskChanged is the task's own changed window, if the plugin gave one.
	// +optional
	TaskChanged *ChangedWindow `json:"taskChanged,omitempty"`
}

// JobTaskStatus holds every field of SpaceONE's JobTaskInfo and the task's batch Job.
type JobTaskStatus struct {
	// Status of the task. Unset while it waits to be admitted.
	// +optional
	Status JobTaskState `json:"status,omitempty"`
	// CreatedCount is the number of cost records the collector created.
	// +optional
	CreatedCount int64 `json:"createdCount,omitempty"`
	// ErrorCode of a failed task.
	// +optional
	ErrorCode string `json:"errorCode,omitempty"`
	// ErrorMessage of a failed task.
	// +optional
	ErrorMessage string `json:"errorMessage,omitempty"`
	// StartedAt is when the task's pod started.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// UpdatedAt is the last change of the task's status.
	// +optional
	UpdatedAt *metav1.Time `json:"updatedAt,omitempty"`
	// FinishedAt is when the task ended.
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
	// Attempts is the number of pods its batch Job started for the task's completion index.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// BatchJobName is the Indexed batch/v1 Job that runs the task, as its completion
	// index spec.index mod the Job's status.batchJobs.indexesPerBatchJob.
	// +optional
	BatchJobName string `json:"batchJobName,omitempty"`
	// CollectedBytes is the size of the data the collector reported, for metering.
	// +optional
	CollectedBytes int64 `json:"collectedBytes,omitempty"`
	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=catask,categories=costanalysis
// +kubebuilder:selectablefield:JSONPath=`.status.status`
// +kubebuilder:selectablefield:JSONPath=`.spec.jobRef.name`
// +kubebuilder:selectablefield:JSONPath=`.spec.dataSourceRef.name`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.status`
// +kubebuilder:printcolumn:name="Job",type=string,JSONPath=`.spec.jobRef.name`
// +kubebuilder:printcolumn:name="Index",type=integer,JSONPath=`.spec.index`
// +kubebuilder:printcolumn:name="Created",type=integer,JSONPath=`.status.createdCount`,description="Cost records created"
// +kubebuilder:printcolumn:name="Attempts",type=integer,JSONPath=`.status.attempts`,priority=1
// +kubebuilder:printcolumn:name="Error",type=string,JSONPath=`.status.errorCode`,priority=1
// +kubebuilder:printcolumn:name="Finished",type=date,JSONPath=`.status.finishedAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// JobTask is one unit of a Job, owned by it; its name is SpaceONE's job_task_id.
type JobTask struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec JobTaskSpec `json:"spec"`
	// +optional
	Status JobTaskStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// JobTaskList contains a list of JobTask.
type JobTaskList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []JobTask `json:"items"`
}

func init() {
	register(&JobTask{}, &JobTaskList{})
}
