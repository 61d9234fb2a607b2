package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

// BatchJobName is the name of a JobTask's batch Job: the JobTask's own name when it
// fits the 63 characters a batch Job's name may have (it becomes a pod label), else a
// shortened name with a digest.
func BatchJobName(task string) string {
	if len(task) <= 63 {
		return task
	}
	sum := sha256.Sum256([]byte(task))
	return task[:54] + "-" + hex.EncodeToString(sum[:])[:8]
}

// batchJobInput is what a task's batch Job is built from.
type batchJobInput struct {
	Task     *costv1.JobTask
	Job      *costv1.Job
	DS       *costv1.DataSource
	Settings runSettings
	Deadline time.Time // the Job's own deadline
	Now      time.Time
	// DefaultImage is the collector image of a DataSource whose template names
	// none (the manager's --collector-image).
	DefaultImage string
}

// buildBatchJob renders a task's batch Job from the DataSource's collector template
// and the task-pod contract (internal/taskpod).
func buildBatchJob(in batchJobInput) *batchv1.Job {
	t, ds, c := in.Task, in.DS, in.DS.Spec.Collector
	labels := map[string]string{
		costv1.LabelJob:        t.Spec.JobRef.Name,
		costv1.LabelJobTask:    t.Name,
		costv1.LabelDataSource: t.Spec.DataSourceRef.Name,
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
	podAnnotations[costv1.AnnotationTaskIndex] = strconv.Itoa(int(t.Spec.Index))

	env := contractEnv(in)
	reserved := map[string]bool{}
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
	}
	var volumes []corev1.Volume
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

	spec := batchv1.JobSpec{
		Parallelism:             ptr.To[int32](1),
		Completions:             ptr.To[int32](1),
		BackoffLimit:            ptr.To(in.Settings.Retries),
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
	if !in.Deadline.IsZero() {
		// Never later than the Job's own deadline.
		secs := int64(math.Ceil(in.Deadline.Sub(in.Now).Seconds()))
		spec.ActiveDeadlineSeconds = ptr.To(max(secs, 1))
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:            BatchJobName(t.Name),
			Namespace:       t.Namespace,
			Labels:          labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(t, costv1.GroupVersion.WithKind("JobTask"))},
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
	t, ds := in.Task, in.DS
	opts := "{}"
	if o := ds.Spec.Plugin.Options; o != nil && len(o.Raw) > 0 {
		opts = string(o.Raw)
	}
	taskOpts := "{}"
	if len(t.Spec.TaskOptions.Raw) > 0 {
		taskOpts = string(t.Spec.TaskOptions.Raw)
	}
	changed := ""
	if t.Spec.TaskChanged != nil {
		b, _ := json.Marshal(t.Spec.TaskChanged)
		changed = string(b)
	}
	env := []corev1.EnvVar{
		{Name: taskpod.EnvJobID, Value: t.Spec.JobRef.Name},
		{Name: taskpod.EnvJobTaskID, Value: t.Name},
		{Name: taskpod.EnvDataSourceID, Value: t.Spec.DataSourceRef.Name},
		{Name: taskpod.EnvDomainID, Value: t.Namespace},
		{Name: taskpod.EnvTaskOptions, Value: taskOpts},
		{Name: taskpod.EnvTaskChanged, Value: changed},
		{Name: taskpod.EnvPluginOptions, Value: opts},
		{Name: taskpod.EnvPluginSchema, Value: ds.Spec.Plugin.Schema},
		{Name: taskpod.EnvPluginEndpoint, Value: ds.Spec.Plugin.Endpoint},
		{Name: taskpod.EnvSecretDir, Value: taskpod.SecretMountPath},
		{Name: taskpod.EnvJobUID, Value: string(in.Job.UID)},
		{Name: taskpod.EnvJobTaskUID, Value: string(t.UID)},
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
