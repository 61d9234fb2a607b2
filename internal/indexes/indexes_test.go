package indexes

import (
	"slices"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

func TestIndexFunctions(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func(client.Object) []string
		obj  client.Object
		want []string
	}{
		{"a JobTask's Job", IndexJobTaskJob, &costv1.JobTask{Spec: costv1.JobTaskSpec{JobRef: costv1.LocalObjectReference{Name: "run"}}}, []string{"run"}},
		{"a JobTask without a Job", IndexJobTaskJob, &costv1.JobTask{}, nil},
		{"a Job's DataSource", IndexJobDataSource, &costv1.Job{Spec: costv1.JobSpec{DataSourceRef: costv1.LocalObjectReference{Name: "billing"}}}, []string{"billing"}},
		{"a task batch Job", IndexBatchJobJob, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{costv1.LabelJob: "run"}}}, []string{"run"}},
		{"another batch Job", IndexBatchJobJob, &batchv1.Job{}, nil},
		// The wrong kind is no index value, not a panic of the cache's informer.
		{"a Pod given to the JobTask index", IndexJobTaskJob, &corev1.Pod{}, nil},
		{"a Pod given to the Job index", IndexJobDataSource, &corev1.Pod{}, nil},
		{"a task pod's completion index", IndexPodCompletionIndex, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{
			"batch.kubernetes.io/job-name": "run-b0", "batch.kubernetes.io/job-completion-index": "7"}}}, []string{"run-b0/7"}},
		{"a pod of no Indexed Job", IndexPodCompletionIndex, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{
			"batch.kubernetes.io/job-name": "run-b0"}}}, nil},
		{"a batch Job given to the pod index", IndexPodCompletionIndex, &batchv1.Job{}, nil},
	} {
		if got := tc.fn(tc.obj); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
