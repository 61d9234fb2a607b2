// Package indexes holds every field index the manager's cache keeps, with the keys the
// controllers and the HTTP API look objects up by. Register them once with Setup,
// from main.go and from the test suites.
package indexes

import (
	"context"

	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

const (
	// JobTaskJob indexes JobTasks by the name of their Job (spec.jobRef.name).
	JobTaskJob = "spec.jobRef.name"
	// JobDataSource indexes Jobs by the name of their DataSource.
	JobDataSource = "spec.dataSourceRef.name"
	// DataSourceSecret indexes DataSources by every Secret they read (the plugin's
	// secret, the TLS CA and the store's).
	DataSourceSecret = "spec.plugin.secrets"
	// BatchJobJob indexes the task batch Jobs by the name of their cost-analysis Job.
	BatchJobJob = "metadata.labels.job"
)

// Setup registers every index with the manager's field indexer.
func Setup(ctx context.Context, indexer client.FieldIndexer) error {
	if err := indexer.IndexField(ctx, &costv1.JobTask{}, JobTaskJob, func(o client.Object) []string {
		return []string{o.(*costv1.JobTask).Spec.JobRef.Name}
	}); err != nil {
		return err
	}
	if err := indexer.IndexField(ctx, &costv1.Job{}, JobDataSource, func(o client.Object) []string {
		return []string{o.(*costv1.Job).Spec.DataSourceRef.Name}
	}); err != nil {
		return err
	}
	if err := indexer.IndexField(ctx, &costv1.DataSource{}, DataSourceSecret, func(o client.Object) []string {
		return SecretsOf(o.(*costv1.DataSource))
	}); err != nil {
		return err
	}
	return indexer.IndexField(ctx, &batchv1.Job{}, BatchJobJob, func(o client.Object) []string {
		if v := o.GetLabels()[costv1.LabelJob]; v != "" {
			return []string{v}
		}
		return nil
	})
}

// SecretsOf lists the Secrets a DataSource reads.
func SecretsOf(ds *costv1.DataSource) []string {
	var names []string
	if ref := ds.Spec.Plugin.SecretRef; ref != nil {
		names = append(names, ref.Name)
	}
	if tls := ds.Spec.Plugin.TLS; tls != nil && tls.CASecretRef != nil {
		names = append(names, tls.CASecretRef.Name)
	}
	if st := ds.Spec.Store; st != nil && st.SecretRef != nil {
		names = append(names, st.SecretRef.Name)
	}
	return names
}
