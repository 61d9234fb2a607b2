// Package controllers holds the reconcilers of DataSource, Job and JobTask.
package controllers

import (
	"context"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrl "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/admission"
	"github.com/costops/cost-analysis-operator/internal/indexes"
	"github.com/costops/cost-analysis-operator/internal/plugin"
)

// Defaults for a Job when neither it nor its DataSource says otherwise.
const (
	DefaultJobTimeout     = 2 * time.Hour // SpaceONE's JOB_TIMEOUT
	DefaultParallelism    = 10
	DefaultTaskRetryLimit = 0
)

// The manager's RBAC, verb by verb (config/rbac/role.yaml is generated from these
// markers; the README's RBAC table says the same). Jobs are read through the cache;
// patch: a run under the Replace policy cancels the run it replaces
// (job_controller_claim.go), and the HTTP API's cancel sets spec.cancel.
// +kubebuilder:rbac:groups=cost-analysis.costops.dev,resources=jobs,verbs=get;list;watch;patch
// The Job's status: one merge patch per reconcile that changed it.
// +kubebuilder:rbac:groups=cost-analysis.costops.dev,resources=jobs/status,verbs=patch
// JobTasks and the Job's store Secret are owned by the Job with blockOwnerDeletion,
// which the OwnerReferencesPermissionEnforcement admission plugin allows only to
// whoever may update the owner's finalizers.
// +kubebuilder:rbac:groups=cost-analysis.costops.dev,resources=jobs/finalizers,verbs=update
// JobTasks: created by the plan (deleted by the garbage collector with their Job).
// +kubebuilder:rbac:groups=cost-analysis.costops.dev,resources=jobtasks,verbs=get;list;watch;create
// DataSources are read through the cache; their status is patched when a run
// claims or releases its DataSource (status.active) and on SUCCESS
// (lastSynchronizedAt).
// +kubebuilder:rbac:groups=cost-analysis.costops.dev,resources=datasources,verbs=get;list;watch
// +kubebuilder:rbac:groups=cost-analysis.costops.dev,resources=datasources/status,verbs=patch
// Secrets: get, one at a time and never cached, of the Secrets a DataSource names
// (plugin secret, plugin CA, store) and of the default store's; create and update of
// a Job's own copy of the default store's Secret (<job>-store, store.go), which its
// task pods read. No list or watch: a changed Secret is noticed by comparing
// versions (datasource_secrets.go). RBAC cannot narrow create to a name, nor get
// and update to names chosen by users and Jobs; the namespaced install narrows
// them to the watched namespaces.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;update
// Events about Jobs, JobTasks and DataSources (events.k8s.io: create, and patch to
// count a repeated event).
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// JobReconciler runs a Job: it plans the run with the plugin, creates the JobTasks,
// aggregates their outcome into the Job's status and ends the run.
type JobReconciler struct {
	client    client.Client
	apiReader client.Reader
	plugins   *plugin.Pool
	recorder  events.EventRecorder
	ledger    *admission.Ledger
	clock     clock.PassiveClock

	planWorkers       int
	pluginCallTimeout time.Duration
	planRetryWindow   time.Duration
	maxConcurrent     int

	// stores reach the runs' databases; storeCallTimeout bounds each commit or
	// rollback transaction, commitRetryWindow how long a failing commit is retried
	// before the run fails (and is rolled back).
	stores            *Stores
	storeCallTimeout  time.Duration
	commitRetryWindow time.Duration

	// written remembers our last status write per Job (its resourceVersion and time),
	// so a reconcile that reads an older copy from the cache waits for the newer one
	// instead of acting twice, and count-only updates are batched.
	written sync.Map // types.NamespacedName -> lastWrite

	// countsInterval is the least time between two status writes of a running Job
	// that only change its task counts.
	countsInterval time.Duration
}

var _ reconcile.Reconciler = (*JobReconciler)(nil)

// JobOption configures a JobReconciler.
type JobOption func(*JobReconciler)

// WithClock injects the clock (tests).
func WithClock(c clock.PassiveClock) JobOption { return func(r *JobReconciler) { r.clock = c } }

// WithPlanWorkers sets how many JobTasks are created concurrently while planning.
func WithPlanWorkers(n int) JobOption { return func(r *JobReconciler) { r.planWorkers = n } }

// WithPluginCallTimeout sets the deadline of each plugin call.
func WithPluginCallTimeout(d time.Duration) JobOption {
	return func(r *JobReconciler) { r.pluginCallTimeout = d }
}

// WithPlanRetryWindow sets how long an unreachable plugin is retried before the Job fails.
func WithPlanRetryWindow(d time.Duration) JobOption {
	return func(r *JobReconciler) { r.planRetryWindow = d }
}

// WithMaxConcurrentJobs sets how many Jobs are reconciled at once.
func WithMaxConcurrentJobs(n int) JobOption { return func(r *JobReconciler) { r.maxConcurrent = n } }

// WithStores sets how the runs reach their stores.
func WithStores(s *Stores) JobOption { return func(r *JobReconciler) { r.stores = s } }

// WithCommitRetryWindow sets how long a failing commit is retried before the run
// fails with ERROR_COMMIT_FAILED and is rolled back.
func WithCommitRetryWindow(d time.Duration) JobOption {
	return func(r *JobReconciler) { r.commitRetryWindow = d }
}

// NewJobReconciler returns a JobReconciler using the manager's client and cache.
func NewJobReconciler(mgr manager.Manager, plugins *plugin.Pool, ledger *admission.Ledger, opts ...JobOption) *JobReconciler {
	r := &JobReconciler{
		client:            mgr.GetClient(),
		apiReader:         mgr.GetAPIReader(),
		plugins:           plugins,
		recorder:          mgr.GetEventRecorder("cost-analysis-job"),
		ledger:            ledger,
		clock:             clock.RealClock{},
		planWorkers:       32,
		pluginCallTimeout: 30 * time.Second,
		planRetryWindow:   2 * time.Minute,
		maxConcurrent:     4,
		countsInterval:    time.Second,
		storeCallTimeout:  time.Minute,
		commitRetryWindow: 10 * time.Minute,
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// SetupWithManager registers the controller: it watches Jobs and the JobTasks they own.
func (r *JobReconciler) SetupWithManager(mgr manager.Manager) error {
	return builder.ControllerManagedBy(mgr).
		Named("job").
		For(&costv1.Job{}).
		Owns(&costv1.JobTask{}).
		Watches(&costv1.DataSource{}, handler.EnqueueRequestsFromMapFunc(r.dataSourceToJobs)).
		WithOptions(ctrl.Options{MaxConcurrentReconciles: r.maxConcurrent}).
		Complete(r)
}

// dataSourceToJobs wakes the Jobs of a DataSource that have not planned yet (one may be
// waiting for the DataSource to appear).
func (r *JobReconciler) dataSourceToJobs(ctx context.Context, o client.Object) []reconcile.Request {
	var list costv1.JobList
	if err := r.client.List(ctx, &list, client.InNamespace(o.GetNamespace()),
		client.MatchingFields{indexes.JobDataSource: o.GetName()}, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		j := &list.Items[i]
		if !j.Status.Status.Finished() && !meta.IsStatusConditionTrue(j.Status.Conditions, costv1.ConditionPlanned) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(j)})
		}
	}
	return reqs
}

// Reconcile runs the phases of a Job over a scope and writes its status once.
func (r *JobReconciler) Reconcile(ctx context.Context, req reconcile.Request) (res reconcile.Result, retErr error) {
	job := &costv1.Job{}
	if err := r.client.Get(ctx, req.NamespacedName, job); err != nil {
		if apierrors.IsNotFound(err) {
			r.ledger.Forget(req.NamespacedName)
			r.written.Delete(req.NamespacedName)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if r.stale(job) {
		// Our own last write has not reached the cache yet; its event will bring us back.
		return reconcile.Result{RequeueAfter: time.Second}, nil
	}
	if !job.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}

	s := newJobScope(job, r.clock.Now())
	defer func() {
		if err := r.writeStatus(ctx, s); err != nil && retErr == nil {
			retErr = err
		}
	}()

	if job.Status.Status.Finished() {
		return r.reconcileFinished(ctx, s)
	}
	if job.Status.Ending == nil {
		res, err := r.runPhases(ctx, s)
		if err != nil || s.job.Status.Ending == nil {
			return res, err
		}
		// Say where the run is (Stored: Committing or RollingBack) before the
		// store is touched.
		if err := r.writeStatus(ctx, s); err != nil {
			return reconcile.Result{}, err
		}
	}
	// The run reached its outcome: commit or roll back its records, then end it.
	return r.reconcileClose(ctx, s)
}

// runPhases runs a Job's phases until one ends the run or must wait.
func (r *JobReconciler) runPhases(ctx context.Context, s *jobScope) (reconcile.Result, error) {
	phases := []func(context.Context, *jobScope) (reconcile.Result, error){
		r.reconcileStart,
		r.reconcileDataSource,
		r.reconcileClaim,
		r.reconcileStore,
		r.reconcilePlan,
		r.reconcileTasks,
		r.reconcileEnd,
		r.reconcileDeadline,
	}
	for _, phase := range phases {
		res, err := phase(ctx, s)
		if err != nil || s.stop {
			return res, err
		}
		if !res.IsZero() {
			if wait, held := r.holdCounts(s); held && wait < res.RequeueAfter {
				res.RequeueAfter = wait
			}
			return res, nil
		}
	}
	if wait, held := r.holdCounts(s); held {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	return reconcile.Result{}, nil
}

// stale reports whether job is older than the status this controller last wrote.
func (r *JobReconciler) stale(job *costv1.Job) bool {
	v, ok := r.written.Load(client.ObjectKeyFromObject(job))
	if !ok || v.(lastWrite).uid != job.UID {
		return false
	}
	cmp, err := resourceversion.CompareResourceVersion(job.ResourceVersion, v.(lastWrite).rv)
	return err == nil && cmp < 0
}

type lastWrite struct {
	uid types.UID
	rv  string
	at  time.Time
}

// holdCounts keeps a running Job's status as it is when the only change is in the
// task counts and the last write was less than countsInterval ago; the Job comes
// back when the interval ends. A Job of many tasks is thus written about once a
// second while it runs, not once per task event.
func (r *JobReconciler) holdCounts(s *jobScope) (time.Duration, bool) {
	v, ok := r.written.Load(client.ObjectKeyFromObject(s.job))
	if !ok || v.(lastWrite).uid != s.job.UID {
		return 0, false
	}
	wait := r.countsInterval - s.now.Sub(v.(lastWrite).at)
	if wait <= 0 || !countsOnlyChange(&s.orig.Status, &s.job.Status) {
		return 0, false
	}
	s.job.Status = *s.orig.Status.DeepCopy()
	return wait, true
}

// writeStatus patches the status when it changed, and remembers the new version.
func (r *JobReconciler) writeStatus(ctx context.Context, s *jobScope) error {
	now := metaNow(s.now)
	if !stampUpdated(&s.orig.Status, &s.job.Status, s.job.Generation, now) {
		return nil
	}
	if err := r.client.Status().Patch(ctx, s.job, client.MergeFrom(s.orig)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	r.written.Store(client.ObjectKeyFromObject(s.job), lastWrite{uid: s.job.UID, rv: s.job.ResourceVersion, at: s.now})
	s.orig = s.job.DeepCopy()
	return nil
}

// runningBatchJobs lists the task batch Jobs of a Job that have not finished, to rebuild
// the admission ledger after a restart.
func runningBatchJobs(ctx context.Context, c client.Reader, namespace, job string) []string {
	var list batchv1.JobList
	if err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{indexBatchJobJob: job},
		client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "Listing batch Jobs to rebuild admission", "job", job)
		return nil
	}
	var names []string
	for i := range list.Items {
		bj := &list.Items[i]
		if _, done := batchJobFinished(bj); !done {
			names = append(names, bj.Labels[costv1.LabelJobTask])
		}
	}
	return names
}
