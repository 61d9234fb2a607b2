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
	"sigs.k8s.io/controller-runtime/pkg/source"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/plugin"
	"github.com/costops/cost-analysis-operator/internal/store"
)

// DataSourceReconciler checks that a DataSource's plugin accepts its options and
// secret (the plugin's verify) and reports it in the PluginReady condition. It checks
// again when the DataSource changes, when one of its Secrets changes (noticed by a
// poller of the Secrets' versions, datasource_secrets.go: the manager does not watch
// Secrets), and every recheck interval.
type DataSourceReconciler struct {
	client    client.Client
	apiReader client.Reader
	plugins   *plugin.Pool
	clock     clock.PassiveClock

	callTimeout     time.Duration
	recheckInterval time.Duration
	retryInterval   time.Duration

	stores  *Stores
	secrets *secretPoller
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

// WithSecretCheckInterval sets how often the versions of the DataSources' Secrets
// are compared with those their last check read; 0 turns that off (a changed
// Secret is then noticed at the next recheck).
func WithSecretCheckInterval(d time.Duration) DataSourceOption {
	return func(r *DataSourceReconciler) { r.secrets.interval = d }
}

// WithVerifyTimeout sets the deadline of verify and init calls.
func WithVerifyTimeout(d time.Duration) DataSourceOption {
	return func(r *DataSourceReconciler) { r.callTimeout = d }
}

// WithDataSourceStores sets how DataSources reach their stores (StoreReady, retention).
func WithDataSourceStores(s *Stores) DataSourceOption {
	return func(r *DataSourceReconciler) { r.stores = s }
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
		secrets:         newSecretPoller(mgr.GetAPIReader(), 10*time.Second),
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// SetupWithManager registers the controller and the poller of its Secrets' versions.
func (r *DataSourceReconciler) SetupWithManager(mgr manager.Manager) error {
	if err := mgr.Add(r.secrets); err != nil {
		return err
	}
	return builder.ControllerManagedBy(mgr).
		Named("datasource").
		For(&costv1.DataSource{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(r.secrets.events, &handler.TypedEnqueueRequestForObject[*costv1.DataSource]{})).
		Complete(r)
}

// Reconcile verifies the plugin and writes the PluginReady condition.
func (r *DataSourceReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	ds := &costv1.DataSource{}
	if err := r.client.Get(ctx, req.NamespacedName, ds); err != nil {
		if apierrors.IsNotFound(err) {
			r.secrets.forget(req.NamespacedName)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !ds.DeletionTimestamp.IsZero() {
		r.secrets.forget(req.NamespacedName)
		return reconcile.Result{}, nil
	}
	orig := ds.DeepCopy()
	secrets := &recordingReader{Reader: r.apiReader, seen: secretVersions{}}
	defer r.secrets.remember(req.NamespacedName, secrets.seen)
	cond, metadata := r.verify(ctx, secrets, ds)
	cond.ObservedGeneration = ds.Generation
	meta.SetStatusCondition(&ds.Status.Conditions, cond)
	storeCond := r.checkStore(ctx, secrets, ds)
	storeCond.ObservedGeneration = ds.Generation
	meta.SetStatusCondition(&ds.Status.Conditions, storeCond)
	ds.Status.ObservedGeneration = ds.Generation
	if metadata != nil {
		ds.Status.PluginMetadata = metadata
	}
	if !equality.Semantic.DeepEqual(orig.Status, ds.Status) {
		// The optimistic lock: the schedule and Job controllers write this status
		// too (its conditions list and status.active), and a JSON merge patch
		// replaces a list whole, so a patch from a stale copy must fail, not win.
		if err := r.client.Status().Patch(ctx, ds, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			switch {
			case apierrors.IsNotFound(err):
				return reconcile.Result{}, nil
			case apierrors.IsConflict(err):
				return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
			}
			return reconcile.Result{}, err
		}
	}
	if cond.Status == metav1.ConditionTrue && storeCond.Status == metav1.ConditionTrue {
		return reconcile.Result{RequeueAfter: r.recheckInterval}, nil
	}
	return reconcile.Result{RequeueAfter: r.retryInterval}, nil
}

// checkStore reports whether the DataSource's store answers with its schema
// applied (StoreReady), and applies its retention while it is there: records
// older than spec.store.retention months (default 12) and rollup rows older than
// 36 months are deleted, and month partitions left empty are dropped.
func (r *DataSourceReconciler) checkStore(ctx context.Context, secrets client.Reader, ds *costv1.DataSource) metav1.Condition {
	cond := metav1.Condition{Type: costv1.ConditionStoreReady, Status: metav1.ConditionFalse}
	tgt, serr := resolveStore(ctx, secrets, ds, r.stores)
	if serr != nil {
		cond.Reason, cond.Message = serr.Reason, serr.Error()
		return cond
	}
	if r.stores == nil || r.stores.Registry == nil {
		cond.Reason, cond.Message = costv1.ReasonStoreUnavailable, "the operator has no store registry"
		return cond
	}
	ctx, cancel := context.WithTimeout(ctx, r.callTimeout)
	defer cancel()
	db, err := r.stores.Registry.Get(ctx, tgt.DSN)
	if err == nil {
		err = db.Ping(ctx)
	}
	if err != nil {
		cond.Reason, cond.Message = costv1.ReasonStoreUnavailable, err.Error()
		return cond
	}
	where := "its own store"
	if tgt.Default {
		where = "the operator's default store"
	}
	cond.Status, cond.Reason = metav1.ConditionTrue, costv1.ReasonStoreConnected
	cond.Message = where + " (" + store.Redact(tgt.DSN) + ") answers and its schema is current"
	keep := costv1.DefaultRetentionMonths
	if st := ds.Spec.Store; st != nil && st.Retention != nil {
		keep = int(*st.Retention)
	}
	res, err := db.ApplyRetention(ctx, ds.Namespace, ds.Name, keep, r.clock.Now())
	if err != nil {
		log.FromContext(ctx).Error(err, "Applying the retention failed; trying again at the next check", "months", keep)
	} else if res.DeletedRows > 0 || res.DeletedRollupRows > 0 || len(res.DroppedPartitions) > 0 {
		log.FromContext(ctx).Info("Applied the retention", "keptFrom", res.KeptFrom, "deletedRows", res.DeletedRows,
			"deletedRollupRows", res.DeletedRollupRows, "droppedPartitions", res.DroppedPartitions)
	}
	return cond
}

// verify calls the plugin's verify (and init, for its metadata). Its Secrets are
// read through secrets, the API reader.
func (r *DataSourceReconciler) verify(ctx context.Context, secrets client.Reader, ds *costv1.DataSource) (metav1.Condition, *runtime.RawExtension) {
	cond := metav1.Condition{Type: costv1.ConditionPluginReady, Status: metav1.ConditionFalse}
	in, ierr := resolvePluginInputs(ctx, secrets, ds, r.callTimeout)
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
