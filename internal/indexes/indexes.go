// Package indexes holds every field index the manager's cache keeps, with the keys the
// controllers and the HTTP API look objects up by. Register them once with Setup,
// from main.go and from the test suites.
package indexes

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

const (
	// JobTaskJob indexes JobTasks by the name of their Job (spec.jobRef.name).
	JobTaskJob = "spec.jobRef.name"
	// JobDataSource indexes Jobs by the name of their DataSource.
	JobDataSource = "spec.dataSourceRef.name"
	// BatchJobJob indexes the task batch Jobs by the name of their cost-analysis Job.
	BatchJobJob = "metadata.labels.job"
	// PodCompletionIndex indexes task pods by their batch Job and completion index
	// (PodCompletionIndexKey), so a task's pods are found without scanning the
	// namespace's.
	PodCompletionIndex = "metadata.labels.completionIndex"
)

// PodCompletionIndexKey is the PodCompletionIndex key of a batch Job's completion index.
func PodCompletionIndexKey(batchJob, index string) string { return batchJob + "/" + index }

// Setup registers every index with the manager's field indexer.
func Setup(ctx context.Context, indexer client.FieldIndexer) error {
	for _, ix := range []struct {
		obj   client.Object
		field string
		fn    client.IndexerFunc
		what  string
	}{
		{&costv1.JobTask{}, JobTaskJob, IndexJobTaskJob, "JobTasks by Job"},
		{&costv1.Job{}, JobDataSource, IndexJobDataSource, "Jobs by DataSource"},
		{&batchv1.Job{}, BatchJobJob, IndexBatchJobJob, "task batch Jobs by Job"},
		{&corev1.Pod{}, PodCompletionIndex, IndexPodCompletionIndex, "task pods by batch Job and completion index"},
	} {
		if err := indexer.IndexField(ctx, ix.obj, ix.field, ix.fn); err != nil {
			return fmt.Errorf("setting the index of %s (%s): %w", ix.what, ix.field, err)
		}
	}
	return nil
}

// IndexJobTaskJob is the JobTaskJob index: a JobTask's Job.
func IndexJobTaskJob(o client.Object) []string {
	t, ok := o.(*costv1.JobTask)
	if !ok || t.Spec.JobRef.Name == "" {
		return nil
	}
	return []string{t.Spec.JobRef.Name}
}

// IndexJobDataSource is the JobDataSource index: a Job's DataSource.
func IndexJobDataSource(o client.Object) []string {
	j, ok := o.(*costv1.Job)
	if !ok || j.Spec.DataSourceRef.Name == "" {
		return nil
	}
	return []string{j.Spec.DataSourceRef.Name}
}

// IndexBatchJobJob is the BatchJobJob index: the cost-analysis Job a task batch
// Job belongs to (its label).
func IndexBatchJobJob(o client.Object) []string {
	if v := o.GetLabels()[costv1.LabelJob]; v != "" {
		return []string{v}
	}
	return nil
}

func IndexPodCompletionIndex(o client.Object) []string {
	if _, ok := o.(*corev1.Pod); !ok {
		return nil
	}
	l := o.GetLabels()
	bj, ci := l[batchv1.JobNameLabel], l[batchv1.JobCompletionIndexAnnotation]
	if bj == "" || ci == "" {
		return nil
	}
	return []string{PodCompletionIndexKey(bj, ci)}
}
