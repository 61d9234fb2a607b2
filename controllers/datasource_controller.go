package controllers

import (
	"context"
	"encoding/json"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	corev1 "k8s.io/api/core/v1"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/indexes"
	"github.com/costops/cost-analysis-operator/internal/plugin"
)

// DataSourceReconciler checks that a DataSource's plugin accepts its options and
// secret (the plugin's verify) and reports it in the PluginReady condition. It checks
// again when the DataSource or one of its Secrets changes, and every recheck interval.
type DataSourceReconciler struct {
	client    client.Client
	apiReader client.Reader
	plugins   *plugin.Pool
	clock     clock.PassiveClock

	callTimeout     time.Duration
	recheckInterval time.Duration
	retryInterval   time.Duration
}

var _ reconcile.Reconciler = (*DataSourceReconciler)(nil)

// DataSourceOption configures a DataSourceReconciler.
type DataSourceOption func(*DataSourceReconciler)

// WithRecheckInterval sets how often a ready plugin is verified again.
func WithRecheckInterval(d time.Duration) DataSourceOption {
	return func(r *DataSourceReconciler) { r.recheckInterval = d }
}

// WithVerifyRetryInterval sets how soon a failed verify is tried again.
func WithVerifyRetryInterval(d time.Duration) DataSourceOption {
	return func(r *DataSourceReconciler) { r.retryInterval = d }
}

// WithVerifyTimeout sets the deadline of verify and init calls.
func WithVerifyTimeout(d time.Duration) DataSourceOption {
	return func(r *DataSourceReconciler) { r.callTimeout = d }
}

// NewDataSourceReconciler returns a DataSourceReconciler.
func NewDataSourceReconciler(mgr manager.Manager, plugins *plugin.Pool, opts ...DataSourceOption) *DataSourceReconciler {
	r := &DataSourceReconciler{
		client:          mgr.GetClient(),
		apiReader:       mgr.GetAPIReader(),
		plugins:         plugins,
		clock:           clock.RealClock{},
		callTimeout:     30 * time.Second,
		recheckInterval: 10 * time.Minute,
		retryInterval:   30 * time.Second,
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// SetupWithManager registers the controller. Secrets are watched by their metadata
// only: the manager never caches secret data.
func (r *DataSourceReconciler) SetupWithManager(mgr manager.Manager) error {
	return builder.ControllerManagedBy(mgr).
		Named("datasource").
		For(&costv1.DataSource{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.secretToDataSources)).
		Complete(r)
}

func (r *DataSourceReconciler) secretToDataSources(ctx context.Context, o client.Object) []reconcile.Request {
	var list costv1.DataSourceList
	if err := r.client.List(ctx, &list, client.InNamespace(o.GetNamespace()),
		client.MatchingFields{indexes.DataSourceSecret: o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "Listing the DataSources of a Secret")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// Reconcile verifies the plugin and writes the PluginReady condition.
func (r *DataSourceReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	ds := &costv1.DataSource{}
	if err := r.client.Get(ctx, req.NamespacedName, ds); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !ds.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	orig := ds.DeepCopy()
	cond, metadata := r.verify(ctx, ds)
	cond.ObservedGeneration = ds.Generation
	meta.SetStatusCondition(&ds.Status.Conditions, cond)
	ds.Status.ObservedGeneration = ds.Generation
	if metadata != nil {
		ds.Status.PluginMetadata = metadata
	}
	if !equality.Semantic.DeepEqual(orig.Status, ds.Status) {
		if err := r.client.Status().Patch(ctx, ds, client.MergeFrom(orig)); err != nil {
			if apierrors.IsNotFound(err) {
				return reconcile.Result{}, nil
			}
			return reconcile.Result{}, err
		}
	}
	if cond.Status == metav1.ConditionTrue {
		return reconcile.Result{RequeueAfter: r.recheckInterval}, nil
	}
	return reconcile.Result{RequeueAfter: r.retryInterval}, nil
}

// verify calls the plugin's verify (and init, for its metadata).
func (r *DataSourceReconciler) verify(ctx context.Context, ds *costv1.DataSource) (metav1.Condition, *runtime.RawExtension) {
	cond := metav1.Condition{Type: costv1.ConditionPluginReady, Status: metav1.ConditionFalse}
	in, ierr := resolvePluginInputs(ctx, r.apiReader, ds, r.callTimeout)
	if ierr != nil {
		cond.Reason, cond.Message = ierr.Reason, ierr.Error()
		return cond, nil
	}
	cl, err := r.plugins.Client(in.Conn)
	if err != nil {
		cond.Reason, cond.Message = costv1.ReasonInvalidSpec, err.Error()
		return cond, nil
	}
	err = cl.Verify(ctx, plugin.VerifyRequest{Options: in.Options, SecretData: in.SecretData, Schema: in.Schema, DomainID: ds.Namespace})
	if err != nil {
		cond.Reason, cond.Message = costv1.ReasonVerifyFailed, err.Error()
		if plugin.IsUnavailable(err) {
			cond.Reason = costv1.ReasonPluginUnavailable
		}
		return cond, nil
	}
	cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, costv1.ReasonVerified, "the plugin accepted the options and secret"
	md, err := cl.Init(ctx, in.Options, ds.Namespace)
	if err != nil {
		log.FromContext(ctx).Info("Plugin init failed; keeping the previous metadata", "err", err.Error())
		return cond, nil
	}
	raw, err := json.Marshal(md)
	if err != nil || len(md) == 0 {
		return cond, nil
	}
	return cond, &runtime.RawExtension{Raw: raw}
}
