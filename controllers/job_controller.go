// Package controllers holds the reconcilers of DataSource, Job and JobTask.
package controllers

import (
	"context"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrl "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/indexes"
	"github.com/costops/cost-analysis-operator/internal/plugin"
)

// The manager's RBAC, verb by verb (config/rbac/role.yaml is generated from these
// markers; the README's RBAC table says the same). Jobs are read through the cache;
// patch: a run under the Replace policy cancels the run it replaces
// (job_controller_claim.go), and the HTTP API's cancel sets spec.cancel.
// +kubebuilder:rbac:groups=cost-analysis.costops.dev,resources=jobs,verbs=get;list;watch;patch
// The Job's status: one merge patch per reconcile that changed it.
// +kubebuilder:rbac:groups=cost-analysis.costops.dev,resources=jobs/status,verbs=patch
// JobTasks, batch Jobs, task ConfigMaps and the Job's store Secret are owned by the
// Job with blockOwnerDeletion,
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
// Task batch Jobs: cached (list, watch; only the operator's, by label); created as
// the run's slots free up, patched to share the Job's parallelism among them and
// to suspend them when the run ends early.
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=list;watch;create;patch
// Task ConfigMaps (one per batch Job, the task of each completion index): created
// with the batch Job; get, live, to check that one that exists is the run's.
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;create
// Task pods: deletecollection stops every pod of a run at once when it ends early.
// +kubebuilder:rbac:groups="",resources=pods,verbs=deletecollection
// Events about Jobs, JobTasks and DataSources (events.k8s.io: create, and patch to
// count a repeated event).
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// JobReconciler runs a Job: it plans the run with the plugin, creates the JobTasks,
// runs them on Indexed batch Jobs, aggregates their outcome into the Job's status and
// ends the run.
type JobReconciler struct {
	client    client.Client
	apiReader client.Reader
	plugins   *plugin.Pool
	recorder  events.EventRecorder
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

	// written remembers our last status write per Job, so a reconcile that reads an
	// older copy from the cache waits for the newer one instead of acting twice, and
	// count-only updates are batched.
	written ownWrites

	// countsInterval is the least time between two status writes of a running Job
	// that only change its task counts.
	countsInterval time.Duration

	// indexesPerBatchJob is the most tasks one batch Job runs.
	indexesPerBatchJob int
	// collectorImage is the image of task pods whose DataSource names none.
	collectorImage string
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

// WithIndexesPerBatchJob sets the most tasks one batch Job runs (the manager's
// --indexes-per-batch-job).
func WithIndexesPerBatchJob(n int) JobOption {
	return func(r *JobReconciler) { r.indexesPerBatchJob = n }
}

// WithCollectorImage sets the collector image of task pods whose DataSource's
// spec.collector names none (the manager's --collector-image).
func WithCollectorImage(image string) JobOption {
	return func(r *JobReconciler) { r.collectorImage = image }
}

// NewJobReconciler returns a JobReconciler using the manager's client and cache.
func NewJobReconciler(mgr manager.Manager, plugins *plugin.Pool, opts ...JobOption) *JobReconciler {
	r := &JobReconciler{
		client:             mgr.GetClient(),
		apiReader:          mgr.GetAPIReader(),
		plugins:            plugins,
		recorder:           mgr.GetEventRecorder("cost-analysis-job"),
		indexesPerBatchJob: DefaultIndexesPerBatchJob,
		clock:              clock.RealClock{},
		planWorkers:        32,
		pluginCallTimeout:  30 * time.Second,
		planRetryWindow:    2 * time.Minute,
		maxConcurrent:      4,
		countsInterval:     time.Second,
		storeCallTimeout:   time.Minute,
		commitRetryWindow:  10 * time.Minute,
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// SetupWithManager registers the controller: it watches Jobs and the JobTasks and
// batch Jobs they own.
func (r *JobReconciler) SetupWithManager(mgr manager.Manager) error {
	return builder.ControllerManagedBy(mgr).
		Named("job").
		For(&costv1.Job{}).
		Watches(&costv1.JobTask{}, handler.Funcs{
			CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				enqueueTaskJob(e.Object, q)
			},
			UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				enqueueTaskJob(e.ObjectNew, q)
			},
			DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				enqueueTaskJob(e.Object, q)
			},
		}).
		Owns(&batchv1.Job{}).
		Watches(&costv1.DataSource{}, handler.EnqueueRequestsFromMapFunc(r.dataSourceToJobs)).
		WithOptions(ctrl.Options{MaxConcurrentReconciles: r.maxConcurrent}).
		Complete(r)
}

// taskEventBatch is how long the changes of a Job's tasks gather before the Job is
// reconciled: one reconcile (one read of all its tasks) sums the changes of many,
// as the upstream Job controller batches its pods' changes (by 1 s). A Job's own
// changes and its batch Jobs' are reconciled at once.
const taskEventBatch = 500 * time.Millisecond

// enqueueTaskJob queues the Job that controls a JobTask, after taskEventBatch.
func enqueueTaskJob(o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	ref := metav1.GetControllerOfNoCopy(o)
	if ref == nil || ref.Kind != "Job" || ref.APIVersion != costv1.GroupVersion.String() {
		return
	}
	q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: ref.Name}}, taskEventBatch)
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

// jobScope holds what one reconcile of a Job read and decided.
type jobScope struct {
	job      *costv1.Job
	orig     *costv1.Job
	now      time.Time
	ds       *costv1.DataSource
	settings runSettings
	summary  taskSummary
	// tasks are the run's JobTasks: those the plan just created, else the cache's.
	tasks []*costv1.JobTask
	// stop ends the phase list early (the run ended or must wait).
	stop bool
}

func newJobScope(job *costv1.Job, now time.Time) *jobScope {
	return &jobScope{job: job, orig: job.DeepCopy(), now: now, settings: effectiveSettings(job, nil)}
}

// deadline is when the run times out: startedAt + timeout.
func (s *jobScope) deadline() time.Time {
	if s.job.Status.StartedAt == nil {
		return time.Time{}
	}
	return s.job.Status.StartedAt.Add(s.settings.Timeout)
}

func (s *jobScope) planned() bool {
	return meta.IsStatusConditionTrue(s.job.Status.Conditions, costv1.ConditionPlanned)
}

// Reconcile runs the phases of a Job over a scope and writes its status once.
func (r *JobReconciler) Reconcile(ctx context.Context, req reconcile.Request) (res reconcile.Result, retErr error) {
	job := &costv1.Job{}
	if err := r.client.Get(ctx, req.NamespacedName, job); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.forget(req.NamespacedName)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if r.written.behind(job) {
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
		r.reconcileBatchJobs,
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
