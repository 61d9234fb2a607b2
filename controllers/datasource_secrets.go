package controllers

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// Noticing a changed Secret without watching Secrets. The manager may not list or
// watch Secrets (it may only get the ones a DataSource names), so the DataSource
// controller remembers the resourceVersion of every Secret its last check read (""
// when the Secret was missing), and a poller gets the metadata of those Secrets
// alone every interval: one targeted GET per distinct Secret, no contents. A Secret
// whose version differs from the one a check used makes that DataSource be checked
// again.

// secretVersions maps a Secret to the resourceVersion a check read ("" for missing).
type secretVersions map[types.NamespacedName]string

// recordingReader is a client.Reader that notes the version of every Secret read
// through it.
type recordingReader struct {
	client.Reader
	seen secretVersions
}

func (r *recordingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := r.Reader.Get(ctx, key, obj, opts...)
	if sec, ok := obj.(*corev1.Secret); ok {
		switch {
		case err == nil:
			r.seen[key] = sec.ResourceVersion
		case apierrors.IsNotFound(err):
			r.seen[key] = ""
		}
	}
	return err
}

// secretPoller re-checks DataSources whose Secrets changed since their last check.
type secretPoller struct {
	reader   client.Reader // the API reader: Secrets are never cached
	interval time.Duration
	events   chan event.TypedGenericEvent[*costv1.DataSource]

	mu   sync.Mutex
	used map[types.NamespacedName]secretVersions // DataSource -> what its last check read
}

func newSecretPoller(reader client.Reader, interval time.Duration) *secretPoller {
	return &secretPoller{
		reader:   reader,
		interval: interval,
		events:   make(chan event.TypedGenericEvent[*costv1.DataSource], 1024),
		used:     map[types.NamespacedName]secretVersions{},
	}
}

// remember records the Secrets a check of ds read; forget drops a deleted DataSource.
func (p *secretPoller) remember(ds types.NamespacedName, seen secretVersions) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used[ds] = seen
}

func (p *secretPoller) forget(ds types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.used, ds)
}

// Start implements manager.Runnable: it polls until ctx ends. It runs on the leader
// only (the controller it feeds does too).
func (p *secretPoller) Start(ctx context.Context) error {
	if p.interval <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			for _, ds := range p.changed(ctx) {
				select {
				case p.events <- event.TypedGenericEvent[*costv1.DataSource]{Object: &costv1.DataSource{
					ObjectMeta: metav1.ObjectMeta{Namespace: ds.Namespace, Name: ds.Name}}}:
				case <-ctx.Done():
					return nil
				}
			}
		}
	}
}

// changed gets the metadata of every remembered Secret once and returns the
// DataSources that read a different version. A Secret that cannot be read now
// (RBAC, the API server) changes nothing: the DataSource's own recheck reports it.
func (p *secretPoller) changed(ctx context.Context) []types.NamespacedName {
	p.mu.Lock()
	used := make(map[types.NamespacedName]secretVersions, len(p.used))
	for ds, seen := range p.used {
		used[ds] = seen
	}
	p.mu.Unlock()

	now := map[types.NamespacedName]string{}
	var out []types.NamespacedName
	for ds, seen := range used {
		for key, version := range seen {
			current, ok := now[key]
			if !ok {
				meta := &metav1.PartialObjectMetadata{}
				meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
				err := p.reader.Get(ctx, key, meta)
				switch {
				case err == nil:
					current = meta.ResourceVersion
				case apierrors.IsNotFound(err):
					current = ""
				default:
					log.FromContext(ctx).V(1).Info("Cannot read a DataSource's Secret's version", "secret", key.String(), "err", err.Error())
					continue
				}
				now[key] = current
			}
			if current != version {
				out = append(out, ds)
				break
			}
		}
	}
	return out
}
