package v1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
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
	// Image of the collector container.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +required
	Image string `json:"image"`
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
	// Collector is the pod template of every task's batch Job.
	// +required
	Collector CollectorSpec `json:"collector"`
	// JobDefaults apply to every Job of this DataSource that does not override them.
	// +optional
	JobDefaults JobDefaults `json:"jobDefaults,omitempty"`
	// Store is where the collected records go. Without it the operator's default
	// store is used (the manager's --default-store-secret); when the operator has
	// none either, the DataSource is not ready (condition StoreReady False,
	// StoreNotConfigured) and its Jobs fail with ERROR_STORE_NOT_CONFIGURED.
	// +optional
	Store *StoreSpec `json:"store,omitempty"`
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
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.spec.plugin.endpoint`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="PluginReady")].status`
// +kubebuilder:printcolumn:name="Store",type=string,JSONPath=`.status.conditions[?(@.type=="StoreReady")].status`
// +kubebuilder:printcolumn:name="Last Job",type=string,JSONPath=`.status.lastJob.name`
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
	SchemeBuilder.Register(&DataSource{}, &DataSourceList{})
}
