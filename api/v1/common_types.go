package v1

import (
	"k8s.io/apimachinery/pkg/runtime"
)

// Labels the operator puts on the objects it creates, so that a Job's children can be
// listed with a label selector (`kubectl get jobtasks -l cost-analysis.costops.dev/job=<name>`).
const (
	// LabelJob names the Job a JobTask or batch Job belongs to.
	LabelJob = "cost-analysis.costops.dev/job"
	// LabelJobTask names the JobTask a batch Job of the per-task engine ran; the
	// operator no longer sets it (a batch Job runs many tasks, one per completion
	// index), and keeps it for objects made before.
	LabelJobTask = "cost-analysis.costops.dev/job-task"
	// LabelDataSource names the DataSource a Job's children collect for.
	LabelDataSource = "cost-analysis.costops.dev/data-source"
	// LabelCreatedBy marks the Jobs the operator created for a DataSource: "schedule"
	// (its cron schedule) or "sync-now" (the sync-now annotation). Only these Jobs
	// count against the schedule's history limits.
	LabelCreatedBy = "cost-analysis.costops.dev/created-by"
	// AnnotationScheduledAt is the scheduled time (RFC 3339, UTC) of a Job the
	// schedule created.
	AnnotationScheduledAt = "cost-analysis.costops.dev/scheduled-at"
	// AnnotationSyncNow on a DataSource asks for one sync now: each new value
	// creates one Job (`kubectl annotate cads billing cost-analysis.costops.dev/sync-now="$(date +%s)" --overwrite`).
	AnnotationSyncNow = "cost-analysis.costops.dev/sync-now"
	// AnnotationReplacedBy on a Job names the newer run of its DataSource that
	// canceled it under concurrencyPolicy Replace.
	AnnotationReplacedBy = "cost-analysis.costops.dev/replaced-by"
	// AnnotationTaskHash records a digest of the task the plugin returned, so that a
	// plan resumed after a restart can tell whether the plugin answered the same way.
	AnnotationTaskHash = "cost-analysis.costops.dev/task-hash"
	// AnnotationTaskIndex carries a task pod's index in its Job's plan (pods of the
	// per-task engine; see AnnotationFirstTaskIndex for today's).
	AnnotationTaskIndex = "cost-analysis.costops.dev/task-index"
	// AnnotationFirstTaskIndex on a task batch Job's pod template is the plan index of
	// its completion index 0: a pod runs the task of index first + its
	// batch.kubernetes.io/job-completion-index.
	AnnotationFirstTaskIndex = "cost-analysis.costops.dev/first-task-index"
	// LabelQueueName is Kueue's label: a DataSource or Job that carries it has its
	// batch Jobs carry it too, created suspended, for Kueue (or another admission
	// controller) to admit.
	LabelQueueName = "kueue.x-k8s.io/queue-name"
)

// Values of LabelCreatedBy.
const (
	CreatedBySchedule = "schedule"
	CreatedBySyncNow  = "sync-now"
)

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// Name of the referenced object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
}

// ChangedWindow is a period of billing data that a run replaces: the plugin's
// ChangedInfo. start and end are months (YYYY-MM), days or ISO 8601 times; an open end
// means "until now". filter narrows the replacement (for example to one account).
type ChangedWindow struct {
	// Start of the window.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Start string `json:"start,omitempty"`
	// End of the window; empty means open-ended.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	End string `json:"end,omitempty"`
	// Filter narrows the window to part of the data (a free-form object).
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	// +optional
	Filter *runtime.RawExtension `json:"filter,omitempty"`
}

// FailurePolicy says what a task failure does to its Job.
// +kubebuilder:validation:Enum=Fail;Continue
type FailurePolicy string

const (
	// FailurePolicyFail ends the Job as FAILURE at the first failed task and cancels
	// the tasks still pending or running. The default.
	FailurePolicyFail FailurePolicy = "Fail"
	// FailurePolicyContinue lets the other tasks finish; the Job ends FAILURE if any
	// task failed, once all have finished.
	FailurePolicyContinue FailurePolicy = "Continue"
)
