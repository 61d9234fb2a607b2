package spaceone

import (
	"context"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// Reading the cache in place. A List from controller-runtime's cache, even with
// UnsafeDisableDeepCopy, copies every object's struct into the list's Items: about
// 50 MB per call over 100,000 JobTasks, for an answer of a page. The API only reads,
// so it takes the informer's objects themselves from its indexer, through the same
// indexes the List would use, and never modifies them.

// Store is an informer's store as the API reads it.
type Store interface {
	// ByIndex returns the objects whose index holds value; they belong to the cache
	// and must not be modified.
	ByIndex(index, value string) ([]any, error)
	// HasSynced reports whether the store holds the whole cluster's state.
	HasSynced() bool
}

// informerStore is a Store over a client-go shared informer.
type informerStore struct {
	inf toolscache.SharedIndexInformer
}

func (s informerStore) ByIndex(index, value string) ([]any, error) {
	return s.inf.GetIndexer().ByIndex(index, value)
}

func (s informerStore) HasSynced() bool { return s.inf.HasSynced() }

// storesOf finds the Job and JobTask informers behind a controller-runtime cache; nil
// when reader is not one (the API then Lists).
func storesOf(reader client.Reader) (jobs, tasks Store) {
	c, ok := reader.(cache.Informers)
	if !ok {
		return nil, nil
	}
	store := func(obj client.Object) Store {
		inf, err := c.GetInformer(context.Background(), obj)
		if err != nil {
			return nil
		}
		if sii, ok := inf.(toolscache.SharedIndexInformer); ok {
			return informerStore{sii}
		}
		return nil
	}
	return store(&costv1.Job{}), store(&costv1.JobTask{})
}

// WithStores makes the server read Jobs and JobTasks from these stores (tests and
// benchmarks; New finds the informers of a controller-runtime cache by itself).
func (s *Server) WithStores(jobs, tasks Store) *Server {
	s.jobStore, s.taskStore = jobs, tasks
	return s
}

// ReadsInPlace reports whether the server reads Jobs and JobTasks from informer
// stores rather than through List.
func (s *Server) ReadsInPlace() bool { return s.jobStore != nil && s.taskStore != nil }

// fieldIndexKey is the name of the informer index controller-runtime's cache keeps
// for a field index registered with IndexField, and the key under which it files
// the objects of one namespace whose field holds value. controller-runtime keeps
// this format private; it was read from controller-runtime v0.25.2,
// pkg/cache/internal/cache_reader.go (FieldIndexName: "field:"+field;
// KeyToNamespacedKey: namespace+"/"+value). TestServerReadsTheCacheInPlace pins
// it: with a wrong key the in-place answers differ from List's and it fails.
func fieldIndexKey(field, namespace, value string) (index, key string) {
	return "field:" + field, namespace + "/" + value
}

// fromStore returns the namespace's objects (or, with field, those whose field index
// holds value), and false when the store cannot answer: absent or not synced.
func fromStore(st Store, ns, field, value string) ([]any, bool) {
	if st == nil || !st.HasSynced() {
		return nil, false
	}
	var objs []any
	var err error
	if field != "" {
		objs, err = st.ByIndex(fieldIndexKey(field, ns, value))
	} else {
		objs, err = st.ByIndex(toolscache.NamespaceIndex, ns)
	}
	if err != nil { // the index does not exist: List knows what to do
		return nil, false
	}
	return objs, true
}
