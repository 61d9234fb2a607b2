package spaceone_test

import (
	"context"
	"fmt"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/indexes"
)

// indexerReader is a stand-in for the manager's cache that reads as
// controller-runtime's CacheReader does (pkg/cache/internal/cache_reader.go): objects
// live in a client-go indexer (namespace index plus the field indexes of
// internal/indexes, keyed as controller-runtime keys them); List takes the objects of
// the namespace or of one field index in the indexer's order (a map's: arbitrary),
// deep-copies them unless UnsafeDisableDeepCopy is set, and meta.SetList copies each
// object's struct into the typed list's Items.
type indexerReader struct {
	jobs, tasks toolscache.Indexer
}

// fieldIndexName and namespacedKey are controller-runtime's FieldIndexName and
// KeyToNamespacedKey.
func fieldIndexName(field string) string { return "field:" + field }

func namespacedKeys(ns, v string) []string {
	return []string{ns + "/" + v, "__all_namespaces/" + v}
}

func newIndexerReader(jobs []costv1.Job, tasks []costv1.JobTask) *indexerReader {
	r := &indexerReader{
		jobs: toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{
			toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc,
			fieldIndexName(indexes.JobDataSource): func(o any) ([]string, error) {
				j := o.(*costv1.Job)
				return namespacedKeys(j.Namespace, j.Spec.DataSourceRef.Name), nil
			},
		}),
		tasks: toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{
			toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc,
			fieldIndexName(indexes.JobTaskJob): func(o any) ([]string, error) {
				t := o.(*costv1.JobTask)
				return namespacedKeys(t.Namespace, t.Spec.JobRef.Name), nil
			},
		}),
	}
	for i := range jobs {
		if err := r.jobs.Add(jobs[i].DeepCopy()); err != nil {
			panic(err)
		}
	}
	for i := range tasks {
		if err := r.tasks.Add(tasks[i].DeepCopy()); err != nil {
			panic(err)
		}
	}
	return r
}

func (r *indexerReader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	var store toolscache.Indexer
	switch obj.(type) {
	case *costv1.Job:
		store = r.jobs
	case *costv1.JobTask:
		store = r.tasks
	default:
		return fmt.Errorf("unexpected object %T", obj)
	}
	item, ok, err := store.GetByKey(key.Namespace + "/" + key.Name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s not found", key)
	}
	// Get always deep-copies in controller-runtime's cache reader.
	switch o := obj.(type) {
	case *costv1.Job:
		item.(*costv1.Job).DeepCopyInto(o)
	case *costv1.JobTask:
		item.(*costv1.JobTask).DeepCopyInto(o)
	}
	return nil
}

func (r *indexerReader) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	var store toolscache.Indexer
	switch list.(type) {
	case *costv1.JobList:
		store = r.jobs
	case *costv1.JobTaskList:
		store = r.tasks
	default:
		return fmt.Errorf("unexpected list %T", list)
	}
	lo := client.ListOptions{}
	lo.ApplyOptions(opts)
	var objs []any
	var err error
	switch {
	case lo.FieldSelector != nil:
		reqs := lo.FieldSelector.Requirements()
		if len(reqs) != 1 || (reqs[0].Operator != selection.Equals && reqs[0].Operator != selection.DoubleEquals) {
			return fmt.Errorf("only one exact field match is supported here, got %v", lo.FieldSelector)
		}
		ns := lo.Namespace
		if ns == "" {
			ns = "__all_namespaces"
		}
		objs, err = store.ByIndex(fieldIndexName(reqs[0].Field), ns+"/"+reqs[0].Value)
	case lo.Namespace != "":
		objs, err = store.ByIndex(toolscache.NamespaceIndex, lo.Namespace)
	default:
		objs = store.List()
	}
	if err != nil {
		return err
	}
	noDeepCopy := lo.UnsafeDisableDeepCopy != nil && *lo.UnsafeDisableDeepCopy
	out := make([]runtime.Object, 0, len(objs))
	for _, item := range objs {
		obj := item.(runtime.Object)
		if lo.LabelSelector != nil {
			m, err := apimeta.Accessor(obj)
			if err != nil {
				return err
			}
			if !lo.LabelSelector.Matches(labels.Set(m.GetLabels())) {
				continue
			}
		}
		if !noDeepCopy {
			obj = obj.DeepCopyObject()
		}
		out = append(out, obj)
	}
	if err := apimeta.SetList(list, out); err != nil {
		return err
	}
	list.SetContinue("continue-not-supported")
	return nil
}

// indexerStore is an informer's store over one of the indexerReader's indexers, as
// the API reads a synced informer in place.
type indexerStore struct{ toolscache.Indexer }

func (indexerStore) HasSynced() bool { return true }
