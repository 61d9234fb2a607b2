// Package taskpod is the contract between the operator and a task pod: the
// environment a task's collector container receives, the task file it reads its task
// from, where the DataSource's secret is mounted, and the JSON result the collector
// writes to its termination message.
//
// A run's tasks run as completion indexes of Indexed batch Jobs, so a pod's spec is
// the same for every task of its batch Job: the run's identities, the plugin and the
// store come through the environment, and the task itself (its JobTask and options)
// from the file named by the pod's completion index (JOB_COMPLETION_INDEX, set by
// Kubernetes) in the directory EnvTasksDir names: a ConfigMap of the batch Job's
// tasks, one key per index, mounted there. A collector run by hand (or by another
// engine) may instead get its task through EnvJobTaskID, EnvJobTaskUID,
// EnvTaskOptions and EnvTaskChanged.
// The JobTask controller builds pods from it and reads results back with it; the
// shipped collector (cmd/collector) implements the other side.
package taskpod

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Environment variables set on every task container.
const (
	EnvJobID            = "COST_ANALYSIS_JOB_ID"
	EnvJobTaskID        = "COST_ANALYSIS_JOB_TASK_ID"
	EnvDataSourceID     = "COST_ANALYSIS_DATA_SOURCE_ID"
	EnvDomainID         = "COST_ANALYSIS_DOMAIN_ID"
	EnvTaskOptions      = "COST_ANALYSIS_TASK_OPTIONS"   // JSON object returned by get_tasks
	EnvTaskChanged      = "COST_ANALYSIS_TASK_CHANGED"   // JSON {"start","end","filter"} or empty
	EnvPluginOptions    = "COST_ANALYSIS_PLUGIN_OPTIONS" // JSON object: DataSource spec.plugin.options
	EnvPluginSchema     = "COST_ANALYSIS_PLUGIN_SCHEMA"
	EnvPluginEndpoint   = "COST_ANALYSIS_PLUGIN_ENDPOINT" // host:port of the plugin's gRPC server
	EnvPluginTLS        = "COST_ANALYSIS_PLUGIN_TLS"      // "true" when the plugin speaks TLS
	EnvPluginServerName = "COST_ANALYSIS_PLUGIN_TLS_SERVER_NAME"
	EnvPluginInsecure   = "COST_ANALYSIS_PLUGIN_TLS_INSECURE_SKIP_VERIFY"
	EnvPluginCAFile     = "COST_ANALYSIS_PLUGIN_TLS_CA_FILE" // PEM bundle that signs the plugin's certificate
	EnvSecretDir        = "COST_ANALYSIS_SECRET_DIR"         // directory holding one file per secret key

	// The run's identities, so a task's rows are tied to this Job and JobTask and
	// not to an earlier object of the same name.
	EnvJobUID        = "COST_ANALYSIS_JOB_UID"
	EnvJobTaskUID    = "COST_ANALYSIS_JOB_TASK_UID"
	EnvDataSourceUID = "COST_ANALYSIS_DATA_SOURCE_UID"
	// EnvPodName is the pod's own name (downward API): the attempt that wrote a
	// task's rows.
	EnvPodName = "COST_ANALYSIS_POD_NAME"
	// EnvStoreDSN is the PostgreSQL DSN of the run's store, from the store Secret
	// (an env valueFrom secretKeyRef, never a value in the pod spec).
	EnvStoreDSN = "COST_ANALYSIS_STORE_DSN"
	// EnvTasksDir is the directory of the batch Job's task files: the file named by
	// the pod's completion index holds its Task as JSON.
	EnvTasksDir = "COST_ANALYSIS_TASKS_DIR"
	// EnvCompletionIndex is set by Kubernetes in every pod of an Indexed Job.
	EnvCompletionIndex = "JOB_COMPLETION_INDEX"
)

// TasksMountPath is where a batch Job's task ConfigMap is mounted.
const TasksMountPath = "/var/run/cost-analysis/tasks"

// Task is one task as its pod reads it from its task file.
type Task struct {
	// JobTaskID and JobTaskUID are the JobTask's name and UID.
	JobTaskID  string `json:"job_task_id"`
	JobTaskUID string `json:"job_task_uid"`
	// Options are the task_options get_tasks returned (a JSON object).
	Options json.RawMessage `json:"task_options"`
	// Changed is the task's task_changed window ({"start","end","filter"}), if any.
	Changed json.RawMessage `json:"task_changed,omitempty"`
}

// ParseTask reads a task file. It refuses anything but a complete task: a pod never
// runs with a guessed identity.
func ParseTask(b []byte) (Task, error) {
	var t Task
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return Task{}, fmt.Errorf("the task file is not a task: %w", err)
	}
	if dec.More() {
		return Task{}, errors.New("the task file holds more than one JSON value")
	}
	if t.JobTaskID == "" || t.JobTaskUID == "" {
		return Task{}, errors.New("the task file names no job_task_id or job_task_uid")
	}
	if len(t.Options) == 0 || t.Options[0] != '{' {
		return Task{}, errors.New("the task file's task_options is not a JSON object")
	}
	if string(t.Changed) == "null" {
		t.Changed = nil
	}
	return t, nil
}

// Encode renders a task file.
func (t Task) Encode() string {
	b, _ := json.Marshal(t)
	return string(b)
}

// SecretMountPath is where the DataSource's Secret is mounted in the task container;
// each key of the Secret is a file, and together they form the plugin's secret_data.
const SecretMountPath = "/var/run/cost-analysis/secret"

// SecretGroup is the group that may read the mounted Secret's files (mode 0440): the
// task pod's fsGroup unless the collector template sets its own. It is the group of
// the non-root user of the project's collector image.
const SecretGroup int64 = 65532

// CAMountPath is where the plugin's CA bundle (spec.plugin.tls.caSecretRef) is
// mounted; the bundle is the file CAFileName in it.
const (
	CAMountPath = "/var/run/cost-analysis/plugin-ca"
	CAFileName  = "ca.crt"
)

// ContainerName is the name of the collector container in every task pod.
const ContainerName = "collector"

// MaxMessageBytes is the kubelet's limit on a termination message.
const MaxMessageBytes = 4096

// Result is the JSON object a collector writes to its termination message:
// created_count on success; error_code and error_message (with a non-zero exit) on
// failure. CollectedBytes is the size of the data collected, for metering.
type Result struct {
	CreatedCount   *int64 `json:"created_count,omitempty"`
	CollectedBytes int64  `json:"collected_bytes,omitempty"`
	ErrorCode      string `json:"error_code,omitempty"`
	ErrorMessage   string `json:"error_message,omitempty"`
}

// Failed reports whether the result describes a failure.
func (r Result) Failed() bool { return r.ErrorCode != "" || r.ErrorMessage != "" }

// ErrNoMessage is returned by ParseResult when the container left no message.
var ErrNoMessage = errors.New("the task container wrote no termination message")

// ParseResult reads a termination message. A successful result must carry a
// non-negative created_count; a failure must carry an error_code or error_message.
// Anything else is an error: the operator never invents a count.
func ParseResult(msg string) (Result, error) {
	msg = strings.TrimSpace(msg)
	if msg == "" {
		return Result{}, ErrNoMessage
	}
	var r Result
	dec := json.NewDecoder(strings.NewReader(msg))
	if err := dec.Decode(&r); err != nil {
		return Result{}, fmt.Errorf("the termination message is not a JSON result object: %w (message %q)", err, truncate(msg, 200))
	}
	if r.Failed() {
		return r, nil
	}
	if r.CreatedCount == nil {
		return Result{}, fmt.Errorf("the termination message has no created_count (message %q)", truncate(msg, 200))
	}
	if *r.CreatedCount < 0 || r.CollectedBytes < 0 {
		return Result{}, fmt.Errorf("the termination message has a negative figure (message %q)", truncate(msg, 200))
	}
	return r, nil
}

// Encode renders a result as a termination message, cut to the kubelet's limit
// (only error_message is ever long enough to need it).
func (r Result) Encode() string {
	b, _ := json.Marshal(r)
	for len(b) > MaxMessageBytes && len(r.ErrorMessage) > 0 {
		cut := len(r.ErrorMessage) - (len(b) - MaxMessageBytes) - 3
		if cut < 0 {
			cut = 0
		}
		r.ErrorMessage = r.ErrorMessage[:cut] + "..."
		b, _ = json.Marshal(r)
	}
	return string(b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// AnnotationCompletionIndex is the annotation Kubernetes gives each pod of an
// Indexed Job: its completion index.
const AnnotationCompletionIndex = "batch.kubernetes.io/job-completion-index"

// LabelCompletionIndex is the same index as a pod label, to select a completion
// index's pods.
const LabelCompletionIndex = "batch.kubernetes.io/job-completion-index"

// AnnotationIndexFailureCount is the number of earlier failed pods of the pod's
// completion index, set by Kubernetes when the Job has backoffLimitPerIndex.
const AnnotationIndexFailureCount = "batch.kubernetes.io/job-index-failure-count"

// PodTaskIndex is the plan index of the task a pod runs: its batch Job's first task
// index (annotationFirst, on the pod template) plus its completion index. ok is
// false for a pod that carries neither.
func PodTaskIndex(annotations map[string]string, annotationFirst string) (index int32, ok bool) {
	ci, err := strconv.ParseInt(annotations[AnnotationCompletionIndex], 10, 32)
	if err != nil || ci < 0 {
		return 0, false
	}
	first, err := strconv.ParseInt(annotations[annotationFirst], 10, 32)
	if err != nil || first < 0 || first+ci > math.MaxInt32 {
		return 0, false
	}
	return int32(first + ci), true
}
