package v1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// PluginSpec says where a DataSource's plugin listens and what it is given.
type PluginSpec struct {
	// Endpoint is host:port of a gRPC server that speaks the SpaceONE cost-analysis
	// plugin protocol, e.g. aws-cost-plugin.cost-system.svc:50051.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=260
	// +kubebuilder:validation:XValidation:rule="self.matches('^([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?|\\\\[[0-9A-Fa-f:.]+\\\\]):[0-9]{1,5}$')",message="plugin.endpoint must be host:port, for example my-plugin.cost-system.svc:50051"
	// +required
	Endpoint string `json:"endpoint"`
	// Options are passed to every plugin call as `options` (a free-form object).
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	// +optional
	Options *runtime.RawExtension `json:"options,omitempty"`
	// Schema names the secret schema the plugin expects (passed as `schema`).
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Schema string `json:"schema,omitempty"`
	// SecretRef names a Secret in the DataSource's namespace; its keys and values form
	// the plugin's `secret_data`. The Secret is never copied into any other object.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
	// TLS, when set, makes the operator and the collectors speak TLS to the plugin;
	// without it they use plaintext gRPC.
	// +optional
	TLS *PluginTLS `json:"tls,omitempty"`
}

// PluginTLS configures TLS towards the plugin.
type PluginTLS struct {
	// ServerName overrides the name checked against the plugin's certificate.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ServerName string `json:"serverName,omitempty"`
	// CASecretRef names a Secret key holding the PEM CA bundle that signs the plugin's
	// certificate; without it the system roots are used.
	// +optional
	CASecretRef *SecretKeySelector `json:"caSecretRef,omitempty"`
	// InsecureSkipVerify turns off certificate verification. For tests only.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// SecretKeySelector names one key of a Secret in the same namespace.
type SecretKeySelector struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// Key within the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Key string `json:"key"`
}

// CollectorSpec is the pod template of every task's batch Job: the container that
// runs the collector for one task, and where it may run.
type CollectorSpec struct {
	// Image of the collector container. Unset: the operator's default collector
	// image (the manager's --collector-image, which `make deploy` and the Helm chart
	// set to the collector image of the same release).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`
	// ImagePullPolicy of the collector container.
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	// Command overrides the image's entrypoint.
	// +optional
	Command []string `json:"command,omitempty"`
	// Args overrides the image's arguments.
	// +optional
	Args []string `json:"args,omitempty"`
	// Env adds environment variables; the task contract's own variables win.
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`
	// Resources of the collector container; also the resource spec reported by metering.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
	// ServiceAccountName the task pods run as.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// NodeSelector for task pods.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Tolerations of task pods.
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// Affinity of task pods.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`
	// PriorityClassName of task pods.
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`
	// ImagePullSecrets of task pods.
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	// PodSecurityContext of task pods.
	// +optional
	PodSecurityContext *corev1.PodSecurityContext `json:"podSecurityContext,omitempty"`
	// SecurityContext of the collector container.
	// +optional
	SecurityContext *corev1.SecurityContext `json:"securityContext,omitempty"`
	// PodLabels are added to every task pod.
	// +optional
	PodLabels map[string]string `json:"podLabels,omitempty"`
	// PodAnnotations are added to every task pod.
	// +optional
	PodAnnotations map[string]string `json:"podAnnotations,omitempty"`
}

// JobDefaults are the run settings a Job of this DataSource takes when it does not
// set its own.
type JobDefaults struct {
	// Timeout of a run, counted from the moment the operator picks the Job up.
	// Defaults to 2h (SpaceONE's JOB_TIMEOUT).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="timeout must be a positive duration such as 30m or 2h"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// Parallelism is the most tasks of one Job that run at a time. Defaults to 10.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	Parallelism *int32 `json:"parallelism,omitempty"`
	// TaskRetryLimit is how often a failed task pod is retried (the batch Job's
	// backoffLimit). Defaults to 0.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	TaskRetryLimit *int32 `json:"taskRetryLimit,omitempty"`
	// FailurePolicy says what a failed task does to the run. Defaults to Fail.
	// +optional
	FailurePolicy FailurePolicy `json:"failurePolicy,omitempty"`
	// TTLSecondsAfterFinished removes a task's finished batch Job (and its pod) after
	// this many seconds; its JobTask keeps the outcome. Unset keeps them until the Job
	// is deleted. At least 30s, so the outcome is read before the batch Job goes.
	// +kubebuilder:validation:Minimum=30
	// +optional
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`
}

// DataSourceSpec defines a billing source and its plugin.
type DataSourceSpec struct {
	// Plugin is the SpaceONE cost-analysis plugin that plans and collects the data.
	// +required
	Plugin PluginSpec `json:"plugin"`
	// Collector is the pod template of every task's batch Job. Unset: the
	// operator's default collector image and nothing else.
	// +optional
	Collector CollectorSpec `json:"collector,omitempty"`
	// JobDefaults apply to every Job of this DataSource that does not override them.
	// +optional
	JobDefaults JobDefaults `json:"jobDefaults,omitempty"`
	// Store is where the collected records go. Without it the operator's default
	// store is used (the manager's --default-store-secret); when the operator has
	// none either, the DataSource is not ready (condition StoreReady False,
	// StoreNotConfigured) and its Jobs fail with ERROR_STORE_NOT_CONFIGURED.
	// +optional
	Store *StoreSpec `json:"store,omitempty"`
	// Schedule makes the DataSource sync itself on a cron schedule, with CronJob's
	// semantics. Its concurrencyPolicy also governs Jobs created by hand (or by Argo
	// CD) for this DataSource; without a schedule that policy is Forbid.
	// +optional
	Schedule *ScheduleSpec `json:"schedule,omitempty"`
}

// ConcurrencyPolicy says what happens when a run of a DataSource is due, or a Job of
// it is created, while another run of it is in progress.
// +kubebuilder:validation:Enum=Allow;Forbid;Replace
type ConcurrencyPolicy string

const (
	// ConcurrencyForbid: a scheduled run that is due while another runs is skipped;
	// a Job created by hand (or a sync-now) while another runs ends FAILURE with
	// ERROR_DUPLICATE_JOB before it plans anything. The default.
	ConcurrencyForbid ConcurrencyPolicy = "Forbid"
	// ConcurrencyReplace: the running run is canceled (its records rolled back) and
	// the new one starts once that rollback is done.
	ConcurrencyReplace ConcurrencyPolicy = "Replace"
	// ConcurrencyAllow: runs of the DataSource may overlap; the one that commits last
	// holds the data of the windows they share.
	ConcurrencyAllow ConcurrencyPolicy = "Allow"
)

// ScheduleSpec is a DataSource's periodic sync, with the fields (and meanings) of a
// CronJob's.
// +kubebuilder:validation:XValidation:rule="!has(self.startPolicy) || !(has(self.startPolicy.lookbackMonths) && has(self.startPolicy.lookbackDays))",message="schedule.startPolicy sets lookbackMonths or lookbackDays, not both"
type ScheduleSpec struct {
	// Cron is the schedule in the standard five-field cron format ("0 3 * * *") or
	// one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly,
	// interpreted in timeZone.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[^ ]+( +[^ ]+){4})$')",message="schedule.cron must have five fields (minute hour day-of-month month day-of-week), e.g. '0 3 * * *', or be @hourly, @daily, @weekly, @monthly or @yearly"
	// +kubebuilder:validation:XValidation:rule="!self.contains('TZ=')",message="schedule.cron must not set TZ= or CRON_TZ=: use schedule.timeZone"
	// +required
	Cron string `json:"cron"`
	// TimeZone is the IANA name of the zone the schedule is read in, e.g.
	// "Asia/Seoul". Defaults to UTC.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$')",message="schedule.timeZone must be an IANA time zone name such as UTC or Asia/Seoul"
	// +optional
	TimeZone *string `json:"timeZone,omitempty"`
	// Suspend stops new scheduled runs; running ones go on. Defaults to false.
	// +optional
	Suspend *bool `json:"suspend,omitempty"`
	// ConcurrencyPolicy: Forbid (default), Replace or Allow. It applies to every
	// Job of this DataSource, scheduled or not.
	// +optional
	ConcurrencyPolicy ConcurrencyPolicy `json:"concurrencyPolicy,omitempty"`
	// StartingDeadlineSeconds: a scheduled run missed by more than this (the
	// manager was down, or the schedule suspended) is not started. Unset means no
	// deadline. After downtime only the latest missed run starts, never a burst.
	// +kubebuilder:validation:Minimum=0
	// +optional
	StartingDeadlineSeconds *int64 `json:"startingDeadlineSeconds,omitempty"`
	// SuccessfulJobsHistoryLimit is how many succeeded Jobs of the schedule (and of
	// sync-now requests) are kept; older ones are deleted with their JobTasks, batch
	// Jobs and pods. Defaults to 3. Jobs created by hand are never deleted.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	SuccessfulJobsHistoryLimit *int32 `json:"successfulJobsHistoryLimit,omitempty"`
	// FailedJobsHistoryLimit is how many failed, timed-out or canceled Jobs of the
	// schedule are kept. Defaults to 1.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	FailedJobsHistoryLimit *int32 `json:"failedJobsHistoryLimit,omitempty"`
	// StartPolicy sets spec.start of the scheduled Jobs. Unset leaves start empty,
	// so the plugin derives the window from lastSynchronizedAt (SpaceONE's way).
	// +optional
	StartPolicy *StartPolicy `json:"startPolicy,omitempty"`
}

// StartPolicy derives a scheduled Job's spec.start from its scheduled time (in the
// schedule's time zone): re-reading the last months or days on every sync.
type StartPolicy struct {
	// LookbackMonths: start is the month this many months before the scheduled
	// time's month (0: that month), as YYYY-MM.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=120
	// +optional
	LookbackMonths *int32 `json:"lookbackMonths,omitempty"`
	// LookbackDays: start is the day this many days before the scheduled time's
	// day, as YYYY-MM-DD.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3660
	// +optional
	LookbackDays *int32 `json:"lookbackDays,omitempty"`
}

// Defaults of a schedule.
const (
	DefaultSuccessfulJobsHistoryLimit = 3
	DefaultFailedJobsHistoryLimit     = 1
)

// Policy is the DataSource's concurrency policy: its schedule's, or Forbid.
func (ds *DataSource) Policy() ConcurrencyPolicy {
	if ds.Spec.Schedule != nil && ds.Spec.Schedule.ConcurrencyPolicy != "" {
		return ds.Spec.Schedule.ConcurrencyPolicy
	}
	return ConcurrencyForbid
}

// StoreSpec names a DataSource's store: a PostgreSQL database.
type StoreSpec struct {
	// SecretRef names a Secret in the DataSource's namespace whose key "dsn" is a
	// PostgreSQL connection string (URL or key=value form). The manager reads it to
	// commit runs; task pods receive it as an environment variable from the Secret,
	// never in clear in their spec.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
	// Retention is how long records are kept, in months counted back from the
	// current month (default 12, SpaceONE's). Older months are dropped whole; the
	// monthly rollup is kept 36 months (or Retention, when longer).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1200
	// +optional
	Retention *int32 `json:"retention,omitempty"`
}

// DefaultRetentionMonths is the retention of a store that sets none.
const DefaultRetentionMonths = 12

// StoreDSNKey is the key of a store Secret that holds the DSN.
const StoreDSNKey = "dsn"

// DataSourceStatus is the observed state of a DataSource.
type DataSourceStatus struct {
	// LastSynchronizedAt is the creation time of the last Job that succeeded; it is
	// passed to the plugin's get_tasks as last_synchronized_at.
	// +optional
	LastSynchronizedAt *metav1.Time `json:"lastSynchronizedAt,omitempty"`
	// LastJob is the most recent Job of this DataSource that finished.
	// +optional
	LastJob *LastJobStatus `json:"lastJob,omitempty"`
	// LastSuccessfulJob is the most recent Job of this DataSource that succeeded.
	// +optional
	LastSuccessfulJob *LastJobStatus `json:"lastSuccessfulJob,omitempty"`
	// Active are the runs that hold this DataSource now: a Job is added when it
	// starts (after the concurrency check) and removed when it ends.
	// +kubebuilder:validation:MaxItems=1000
	// +listType=map
	// +listMapKey=name
	// +optional
	Active []ActiveJob `json:"active,omitempty"`
	// LastScheduleTime is the latest scheduled time the schedule acted on: a run
	// was started for it, or (condition Scheduled) skipped.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`
	// NextScheduleTime is when the schedule is next due; unset when there is no
	// schedule or it is suspended.
	// +optional
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`
	// SyncNow is the last sync-now request (annotation value) acted on, and its Job.
	// +optional
	SyncNow *SyncNowStatus `json:"syncNow,omitempty"`
	// PluginMetadata is what the plugin's init returned.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	// +optional
	PluginMetadata *runtime.RawExtension `json:"pluginMetadata,omitempty"`
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: PluginReady.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ActiveJob is a run that holds its DataSource.
type ActiveJob struct {
	// Name of the Job.
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// UID of the Job, so that a deleted and re-created Job of the same name is not
	// taken for the one that held the DataSource.
	// +optional
	UID types.UID `json:"uid,omitempty"`
	// ScheduledTime is the scheduled time of a Job the schedule created.
	// +optional
	ScheduledTime *metav1.Time `json:"scheduledTime,omitempty"`
}

// SyncNowStatus records the sync-now request acted on.
type SyncNowStatus struct {
	// Value of the sync-now annotation that was acted on.
	// +kubebuilder:validation:MaxLength=256
	// +required
	Value string `json:"value"`
	// Job created for it.
	// +kubebuilder:validation:MaxLength=253
	// +required
	Job string `json:"job"`
	// Time it was acted on.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
}

// LastJobStatus is the outcome of a DataSource's last finished Job.
type LastJobStatus struct {
	// Name of the Job.
	Name string `json:"name"`
	// Status the Job ended with.
	Status JobState `json:"status"`
	// FinishedAt is when it ended.
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=cads,categories=costanalysis
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.spec.plugin.endpoint`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="PluginReady")].status`
// +kubebuilder:printcolumn:name="Store",type=string,JSONPath=`.status.conditions[?(@.type=="StoreReady")].status`
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule.cron`
// +kubebuilder:printcolumn:name="Suspended",type=boolean,JSONPath=`.spec.schedule.suspend`
// +kubebuilder:printcolumn:name="Next Sync",type=string,JSONPath=`.status.nextScheduleTime`
// +kubebuilder:printcolumn:name="Last Job",type=string,JSONPath=`.status.lastJob.name`,priority=1
// +kubebuilder:printcolumn:name="Last Status",type=string,JSONPath=`.status.lastJob.status`
// +kubebuilder:printcolumn:name="Last Sync",type=date,JSONPath=`.status.lastSynchronizedAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="a DataSource name is at most 63 characters: it is used as a label value"

// DataSource is a billing source: its plugin, the collector pods that run its tasks,
// and the defaults of its Jobs. Its name is SpaceONE's data_source_id.
type DataSource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec DataSourceSpec `json:"spec"`
	// +optional
	Status DataSourceStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// DataSourceList contains a list of DataSource.
type DataSourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DataSource `json:"items"`
}

// Condition types and reasons of a DataSource.
const (
	// ConditionPluginReady is True when the plugin answered verify for the current
	// spec and Secret, False with the plugin's error otherwise.
	ConditionPluginReady = "PluginReady"
	// ConditionStoreReady is True when the DataSource's store (its own or the
	// operator's default) answered and holds the current schema.
	ConditionStoreReady = "StoreReady"

	// ConditionScheduled says what the schedule did last: True (RunStarted) when it
	// started a run at lastScheduleTime or is waiting for the next time, False when
	// the due run was skipped (SkippedActiveRun, MissedDeadline), the schedule is
	// suspended (Suspended) or cannot be read (InvalidSchedule).
	ConditionScheduled = "Scheduled"

	ReasonRunStarted       = "RunStarted"
	ReasonWaitingForNext   = "WaitingForNextTime"
	ReasonSkippedActiveRun = "SkippedActiveRun"
	ReasonMissedDeadline   = "MissedDeadline"
	ReasonSuspended        = "Suspended"
	ReasonInvalidSchedule  = "InvalidSchedule"

	// ReasonStoreConnected: the store answered and its schema is current.
	ReasonStoreConnected = "Connected"
	// ReasonStoreNotConfigured: no spec.store.secretRef and no default store (also
	// the reason a Job of such a DataSource fails with).
	ReasonStoreNotConfigured = "StoreNotConfigured"
	// ReasonStoreUnavailable: the store could not be reached or migrated.
	ReasonStoreUnavailable = "StoreUnavailable"

	// ReasonVerified: the plugin accepted the options and secret.
	ReasonVerified = "Verified"
	// ReasonVerifyFailed: the plugin rejected the options or secret, or failed.
	ReasonVerifyFailed = "VerifyFailed"
	// ReasonPluginUnavailable: the plugin could not be reached.
	ReasonPluginUnavailable = "PluginUnavailable"
	// ReasonSecretNotFound: spec.plugin.secretRef names a Secret that does not exist.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonInvalidSpec: the DataSource cannot be used as written (e.g. options that
	// are not an object, a missing CA key).
	ReasonInvalidSpec = "InvalidSpec"
)

func init() {
	register(&DataSource{}, &DataSourceList{})
}
