package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

// This file builds a run's Indexed batch Jobs and their task ConfigMaps, and lays the
// run's tasks out on them. Nothing here does I/O.

// BatchJobName is the name of a run's batch Job number k (and of its task ConfigMap):
// <job>-b<k>, shortened with a digest of the Job's name when it would pass the 63
// characters a batch Job's name may have (it becomes a pod label).
func BatchJobName(job string, k int32) string {
	suffix := "-b" + strconv.Itoa(int(k))
	if len(job)+len(suffix) <= 63 {
		return job + suffix
	}
	sum := sha256.Sum256([]byte(job))
	return job[:63-len(suffix)-9] + "-" + hex.EncodeToString(sum[:])[:8] + suffix
}

// Bounds of a run's layout. A batch Job's task ConfigMap stays far from the 1 MiB
// limit of an object: at most maxTaskBytesPerBatchJob of task files.
const (
	// DefaultIndexesPerBatchJob is the most tasks one batch Job runs (the manager's
	// --indexes-per-batch-job).
	DefaultIndexesPerBatchJob = 1000
	maxTaskBytesPerBatchJob   = 512 << 10
	// maxIndexesPerBatchJob is the API server's limit on completions of an Indexed
	// Job with backoffLimitPerIndex.
	maxIndexesPerBatchJob = 100000
)

// layout places a run's tasks on its batch Jobs: task i is completion index
// i mod per of batch Job i / per.
type layout struct {
	per, tasks int32
}

func layoutOf(st *costv1.JobStatus) (layout, bool) {
	if st.BatchJobs == nil || st.BatchJobs.IndexesPerBatchJob < 1 {
		return layout{}, false
	}
	return layout{per: st.BatchJobs.IndexesPerBatchJob, tasks: st.TotalTasks}, true
}

// count is the number of batch Jobs.
func (l layout) count() int32 { return (l.tasks + l.per - 1) / l.per }

// place is the batch Job and completion index of the task of plan index i.
func (l layout) place(i int32) (k, completion int32) { return i / l.per, i % l.per }

// first is the plan index of batch Job k's completion index 0.
func (l layout) first(k int32) int32 { return k * l.per }

// size is the number of tasks of batch Job k.
func (l layout) size(k int32) int32 { return min(l.per, l.tasks-k*l.per) }

// planLayout chooses how many tasks a batch Job runs: at most perJob, and few enough
// that the largest task files of the plan fit one ConfigMap.
func planLayout(taskBytes []int, perJob int) layout {
	largest := 1
	for _, n := range taskBytes {
		largest = max(largest, n)
	}
	per := min(max(perJob, 1), maxIndexesPerBatchJob, max(maxTaskBytesPerBatchJob/largest, 1))
	return layout{per: int32(per), tasks: int32(len(taskBytes))}
}

// taskFile is the task file of a JobTask (internal/taskpod).
func taskFile(t *costv1.JobTask) taskpod.Task {
	f := taskpod.Task{JobTaskID: t.Name, JobTaskUID: string(t.UID), Options: json.RawMessage("{}")}
	if len(t.Spec.TaskOptions.Raw) > 0 {
		f.Options = t.Spec.TaskOptions.Raw
	}
	if t.Spec.TaskChanged != nil {
		f.Changed, _ = json.Marshal(t.Spec.TaskChanged)
	}
	return f
}

// buildTaskConfigMap holds the task files of batch Job k, one key per completion
// index. tasks are the batch Job's JobTasks, in plan order.
func buildTaskConfigMap(job *costv1.Job, k int32, tasks []*costv1.JobTask) *corev1.ConfigMap {
	data := make(map[string]string, len(tasks))
	for i, t := range tasks {
		data[strconv.Itoa(i)] = taskFile(t).Encode()
	}
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:      BatchJobName(job.Name, k),
			Namespace: job.Namespace,
			Labels: map[string]string{
				costv1.LabelJob:        job.Name,
				costv1.LabelDataSource: job.Spec.DataSourceRef.Name,
			},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, costv1.GroupVersion.WithKind("Job"))},
		},
		Data:      data,
		Immutable: ptr.To(true),
	}
}

// batchJobInput is what a run's batch Job is built from.
type batchJobInput struct {
	Job      *costv1.Job
	DS       *costv1.DataSource
	Settings runSettings
	Layout   layout
	// K is the batch Job's number; Parallelism its share of the Job's.
	K           int32
	Parallelism int32
	// Queue is the admission queue (kueue.x-k8s.io/queue-name): the batch Job is
	// created suspended for the admission controller to resume.
	Queue    string
	Deadline time.Time // the Job's own deadline
	Now      time.Time
	// DefaultImage is the collector image of a DataSource whose template names
	// none (the manager's --collector-image).
	DefaultImage string
}

// buildBatchJob renders batch Job k of a run: an Indexed Job with one completion
// index per task, from the DataSource's collector template and the task-pod contract
// (internal/taskpod). Its pod spec is the same for every task, and its size does not
// grow with the number of tasks: a pod reads its task from the batch Job's task
// ConfigMap by its completion index.
func buildBatchJob(in batchJobInput) *batchv1.Job {
	job, ds, c := in.Job, in.DS, in.DS.Spec.Collector
	name := BatchJobName(job.Name, in.K)
	labels := map[string]string{
		costv1.LabelJob:        job.Name,
		costv1.LabelDataSource: job.Spec.DataSourceRef.Name,
	}
	podLabels := map[string]string{}
	for k, v := range c.PodLabels {
		podLabels[k] = v
	}
	for k, v := range labels {
		podLabels[k] = v
	}
	podAnnotations := map[string]string{}
	for k, v := range c.PodAnnotations {
		podAnnotations[k] = v
	}
	podAnnotations[costv1.AnnotationFirstTaskIndex] = strconv.Itoa(int(in.Layout.first(in.K)))
	if in.Queue != "" {
		labels[costv1.LabelQueueName] = in.Queue
	}

	env := contractEnv(in)
	reserved := map[string]bool{taskpod.EnvCompletionIndex: true}
	for _, e := range env {
		reserved[e.Name] = true
	}
	var userEnv []corev1.EnvVar
	for _, e := range c.Env {
		if !reserved[e.Name] {
			userEnv = append(userEnv, e)
		}
	}
	image := c.Image
	if image == "" {
		image = in.DefaultImage
	}
	container := corev1.Container{
		Name:                     taskpod.ContainerName,
		Image:                    image,
		ImagePullPolicy:          c.ImagePullPolicy,
		Command:                  c.Command,
		Args:                     c.Args,
		Env:                      append(userEnv, env...),
		Resources:                c.Resources,
		SecurityContext:          c.SecurityContext,
		TerminationMessagePath:   corev1.TerminationMessagePathDefault,
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
		VolumeMounts:             []corev1.VolumeMount{{Name: "tasks", MountPath: taskpod.TasksMountPath, ReadOnly: true}},
	}
	volumes := []corev1.Volume{{Name: "tasks", VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}, DefaultMode: ptr.To[int32](0o444)}}}}
	if ref := ds.Spec.Plugin.SecretRef; ref != nil {
		volumes = append(volumes, corev1.Volume{Name: "plugin-secret", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: ref.Name, DefaultMode: ptr.To[int32](0o440)}}})
		container.VolumeMounts = append(container.VolumeMounts, corev1.VolumeMount{Name: "plugin-secret", MountPath: taskpod.SecretMountPath, ReadOnly: true})
	}

	if tls := ds.Spec.Plugin.TLS; tls != nil && tls.CASecretRef != nil {
		volumes = append(volumes, corev1.Volume{Name: "plugin-ca", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: tls.CASecretRef.Name, DefaultMode: ptr.To[int32](0o444),
				Items: []corev1.KeyToPath{{Key: tls.CASecretRef.Key, Path: taskpod.CAFileName}}}}})
		container.VolumeMounts = append(container.VolumeMounts, corev1.VolumeMount{Name: "plugin-ca", MountPath: taskpod.CAMountPath, ReadOnly: true})
	}

	size := in.Layout.size(in.K)
	spec := batchv1.JobSpec{
		CompletionMode: ptr.To(batchv1.IndexedCompletion),
		Completions:    ptr.To(size),
		Parallelism:    ptr.To(in.Parallelism),
		// A task's retries are its own: each index has the task retry limit, and
		// the batch Job's overall backoffLimit never ends it early.
		BackoffLimitPerIndex: ptr.To(in.Settings.Retries),
		BackoffLimit:         ptr.To[int32](math.MaxInt32),
		// A pod evicted or preempted (a disruption, not the task's fault) is
		// replaced without using up a retry.
		PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
			Action: batchv1.PodFailurePolicyActionIgnore,
			OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{
				Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}},
		}}},
		TTLSecondsAfterFinished: in.Settings.TTL,
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: podAnnotations},
			Spec: corev1.PodSpec{
				RestartPolicy:                 corev1.RestartPolicyNever,
				Containers:                    []corev1.Container{container},
				Volumes:                       volumes,
				ServiceAccountName:            c.ServiceAccountName,
				AutomountServiceAccountToken:  ptr.To(c.ServiceAccountName != ""),
				NodeSelector:                  c.NodeSelector,
				Tolerations:                   c.Tolerations,
				Affinity:                      c.Affinity,
				PriorityClassName:             c.PriorityClassName,
				ImagePullSecrets:              c.ImagePullSecrets,
				SecurityContext:               podSecurityContext(c.PodSecurityContext),
				TerminationGracePeriodSeconds: ptr.To[int64](30),
			},
		},
	}
	if in.Settings.Policy != costv1.FailurePolicyContinue {
		// Fail: the first task that fails ends the batch Job (and the Job controller
		// cancels the rest of the run). Continue: every index runs to its end.
		spec.MaxFailedIndexes = ptr.To[int32](0)
	}
	if in.Queue != "" {
		spec.Suspend = ptr.To(true)
	}
	if !in.Deadline.IsZero() {
		// Never later than the Job's own deadline. A batch Job that waits for
		// admission starts this count when it is resumed; the Job's own deadline
		// still ends the run in time.
		secs := int64(math.Ceil(in.Deadline.Sub(in.Now).Seconds()))
		spec.ActiveDeadlineSeconds = ptr.To(max(secs, 1))
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:            name,
			Namespace:       job.Namespace,
			Labels:          labels,
			Annotations:     map[string]string{costv1.AnnotationFirstTaskIndex: podAnnotations[costv1.AnnotationFirstTaskIndex]},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, costv1.GroupVersion.WithKind("Job"))},
		},
		Spec: spec,
	}
}

// podSecurityContext is the collector template's pod security context with an fsGroup:
// the mounted Secret's files are readable by their owner and group only (0440), and a
// non-root collector reads them through the pod's fsGroup, which the kubelet gives the
// files and every container. Without one of the template's, it is taskpod.SecretGroup.
func podSecurityContext(sc *corev1.PodSecurityContext) *corev1.PodSecurityContext {
	out := sc.DeepCopy()
	if out == nil {
		out = &corev1.PodSecurityContext{}
	}
	if out.FSGroup == nil {
		out.FSGroup = ptr.To(taskpod.SecretGroup)
	}
	return out
}

func contractEnv(in batchJobInput) []corev1.EnvVar {
	job, ds := in.Job, in.DS
	opts := "{}"
	if o := ds.Spec.Plugin.Options; o != nil && len(o.Raw) > 0 {
		opts = string(o.Raw)
	}
	env := []corev1.EnvVar{
		{Name: taskpod.EnvJobID, Value: job.Name},
		{Name: taskpod.EnvDataSourceID, Value: job.Spec.DataSourceRef.Name},
		{Name: taskpod.EnvDomainID, Value: job.Namespace},
		{Name: taskpod.EnvTasksDir, Value: taskpod.TasksMountPath},
		{Name: taskpod.EnvPluginOptions, Value: opts},
		{Name: taskpod.EnvPluginSchema, Value: ds.Spec.Plugin.Schema},
		{Name: taskpod.EnvPluginEndpoint, Value: ds.Spec.Plugin.Endpoint},
		{Name: taskpod.EnvSecretDir, Value: taskpod.SecretMountPath},
		{Name: taskpod.EnvJobUID, Value: string(in.Job.UID)},
		{Name: taskpod.EnvDataSourceUID, Value: string(ds.UID)},
		{Name: taskpod.EnvPodName, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}},
	}
	// The store's DSN, from the run's store Secret: never a value in the pod spec.
	if st := in.Job.Status.Store; st != nil && st.SecretName != "" {
		env = append(env, corev1.EnvVar{Name: taskpod.EnvStoreDSN, ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: st.SecretName}, Key: costv1.StoreDSNKey},
		}})
	}
	if tls := ds.Spec.Plugin.TLS; tls != nil {
		env = append(env,
			corev1.EnvVar{Name: taskpod.EnvPluginTLS, Value: "true"},
			corev1.EnvVar{Name: taskpod.EnvPluginServerName, Value: tls.ServerName},
			corev1.EnvVar{Name: taskpod.EnvPluginInsecure, Value: strconv.FormatBool(tls.InsecureSkipVerify)},
		)
		if tls.CASecretRef != nil {
			env = append(env, corev1.EnvVar{Name: taskpod.EnvPluginCAFile, Value: taskpod.CAMountPath + "/" + taskpod.CAFileName})
		}
	}
	return env
}

// indexSet is a batch Job's completedIndexes or failedIndexes: "1,3-5,7".
type indexSet [][2]int32

// parseIndexSet reads an index list as the Job controller writes it; a malformed
// part is skipped (the API server validates the field, so there is none).
func parseIndexSet(s string) indexSet {
	var out indexSet
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseInt(lo, 10, 32)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.ParseInt(hi, 10, 32); err != nil || b < a {
				continue
			}
		}
		out = append(out, [2]int32{int32(a), int32(b)})
	}
	return out
}

func (s indexSet) has(i int32) bool {
	for _, r := range s {
		if i >= r[0] && i <= r[1] {
			return true
		}
	}
	return false
}

func (s indexSet) len() int32 {
	var n int32
	for _, r := range s {
		n += r[1] - r[0] + 1
	}
	return n
}

// batchJobShare is what allocating the Job's parallelism needs of one batch Job.
type batchJobShare struct {
	// Remaining is the number of its indexes neither completed nor failed.
	Remaining int32
	// Active is the number of its pods running.
	Active int32
	// Fixed: its parallelism cannot change (a batch Job an admission controller
	// has admitted with it); Parallelism is that value.
	Fixed       bool
	Parallelism int32
}

// shareParallelism divides the Job's parallelism among its batch Jobs, in order: each
// gets as much as it has indexes left, until none is left. The sum never passes the
// Job's parallelism, so neither do the pods running across the batch Jobs, and a
// batch Job's tail frees its slots for the next one at once. A batch Job keeps at
// least the pods it runs (a smaller parallelism would make the Job controller delete
// them): when the Job's parallelism shrinks, the batch Jobs drain down to it.
// next is what is left for a batch Job not created yet.
func shareParallelism(limit int32, jobs []batchJobShare) (shares []int32, next int32) {
	budget := limit
	shares = make([]int32, len(jobs))
	for i, j := range jobs {
		want := min(j.Remaining, max(budget, j.Active))
		if j.Fixed {
			want = min(j.Parallelism, j.Remaining)
		}
		shares[i] = max(want, 0)
		budget = max(budget-shares[i], 0)
	}
	return shares, budget
}

// taskFileSizes are the sizes of the plan's task files, for planLayout (the UIDs the
// tasks get on creation are counted at their fixed length).
func taskFileSizes(tasks []*costv1.JobTask) []int {
	const uidLen = len("00000000-0000-0000-0000-000000000000")
	out := make([]int, len(tasks))
	for i, t := range tasks {
		out[i] = len(taskFile(t).Encode()) + uidLen + len(strconv.Itoa(int(t.Spec.Index)))
	}
	return out
}
