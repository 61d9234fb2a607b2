package controllers

import (
	"context"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrl "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/admission"
	"github.com/costops/cost-analysis-operator/internal/indexes"
	"github.com/costops/cost-analysis-operator/internal/metrics"
)

// RBAC of the JobTask controller (see job_controller.go for the rest). JobTasks are
// read through the cache, and their status patched once per change.
// +kubebuilder:rbac:groups=cost-analysis.costops.dev,resources=jobtasks,verbs=get;list;watch
// +kubebuilder:rbac:groups=cost-analysis.costops.dev,resources=jobtasks/status,verbs=patch
// A task's batch Job is owned by its JobTask with blockOwnerDeletion (see jobs/finalizers).
// +kubebuilder:rbac:groups=cost-analysis.costops.dev,resources=jobtasks/finalizers,verbs=update
// Task batch Jobs: cached (list, watch; only the operator's, by label), created when
// a task is admitted, deleted when its run ends early.
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=list;watch;create;delete
// Task pods: cached (list, watch; only the operator's, by label) for their
// termination message, and listed live when the cache may be behind;
// deletecollection stops a task's pods at once when its run ends early.
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;watch;deletecollection

// JobTaskReconciler runs one JobTask as a batch/v1 Job, within its Job's parallelism,
// and maps the batch Job's outcome and its pod's termination message back into the
// JobTask's status. When the Job ends, it stops the task.
type JobTaskReconciler struct {
	client    client.Client
	apiReader client.Reader
	recorder  events.EventRecorder
	ledger    *admission.Ledger
	clock     clock.PassiveClock
	wake      chan event.TypedGenericEvent[*costv1.JobTask]

	// written holds the resourceVersion of our last status write per JobTask until the
	// cache has caught up with it, so a reconcile never acts on an older copy (and, say,
	// ends a task twice).
	written sync.Map // types.UID -> string
	// created holds the tasks whose batch Job this controller created and the cache
	// has not shown yet, so a reconcile in between does not create it again.
	created sync.Map // types.UID -> time.Time of the create

	maxConcurrent int
	// collectorImage is the image of task pods whose DataSource names none.
	collectorImage string
}

var _ reconcile.Reconciler = (*JobTaskReconciler)(nil)

// JobTaskOption configures a JobTaskReconciler.
type JobTaskOption func(*JobTaskReconciler)

// WithTaskClock injects the clock (tests).
func WithTaskClock(c clock.PassiveClock) JobTaskOption {
	return func(r *JobTaskReconciler) { r.clock = c }
}

// WithMaxConcurrentTasks sets how many JobTasks are reconciled at once.
func WithMaxConcurrentTasks(n int) JobTaskOption {
	return func(r *JobTaskReconciler) { r.maxConcurrent = n }
}

// WithCollectorImage sets the collector image of task pods whose DataSource's
// spec.collector names none (the manager's --collector-image).
func WithCollectorImage(image string) JobTaskOption {
	return func(r *JobTaskReconciler) { r.collectorImage = image }
}

// NewJobTaskReconciler returns a JobTaskReconciler and the admission ledger it shares
// with the Job controller.
func NewJobTaskReconciler(mgr manager.Manager, opts ...JobTaskOption) (*JobTaskReconciler, *admission.Ledger) {
	r := &JobTaskReconciler{
		client:        mgr.GetClient(),
		apiReader:     mgr.GetAPIReader(),
		recorder:      mgr.GetEventRecorder("cost-analysis-jobtask"),
		clock:         clock.RealClock{},
		wake:          make(chan event.TypedGenericEvent[*costv1.JobTask], 4096),
		maxConcurrent: 16,
	}
	r.ledger = admission.New(func(task types.NamespacedName) {
		r.wake <- event.TypedGenericEvent[*costv1.JobTask]{Object: &costv1.JobTask{
			ObjectMeta: metav1.ObjectMeta{Namespace: task.Namespace, Name: task.Name}}}
	})
	for _, o := range opts {
		o(r)
	}
	return r, r.ledger
}

// SetupWithManager registers the controller. It watches JobTasks, the batch Jobs they
// own, their pods, the moment their Job ends, and the ledger's wake-ups.
func (r *JobTaskReconciler) SetupWithManager(mgr manager.Manager) error {
	return builder.ControllerManagedBy(mgr).
		Named("jobtask").
		For(&costv1.JobTask{}).
		Owns(&batchv1.Job{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(podToTask)).
		Watches(&costv1.Job{}, handler.Funcs{UpdateFunc: r.jobEnded}).
		WatchesRawSource(source.Channel(r.wake, &handler.TypedEnqueueRequestForObject[*costv1.JobTask]{})).
		WithOptions(ctrl.Options{MaxConcurrentReconciles: r.maxConcurrent}).
		Complete(r)
}

func podToTask(_ context.Context, o client.Object) []reconcile.Request {
	name := o.GetLabels()[costv1.LabelJobTask]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}

// jobEnded enqueues the open tasks of a Job at the moment the Job ends, so they stop.
func (r *JobTaskReconciler) jobEnded(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	oldJob, ok1 := e.ObjectOld.(*costv1.Job)
	newJob, ok2 := e.ObjectNew.(*costv1.Job)
	if !ok1 || !ok2 {
		return
	}
	if _, was := stopping(oldJob); was {
		return
	}
	if _, now := stopping(newJob); !now {
		return
	}
	var list costv1.JobTaskList
	if err := r.client.List(ctx, &list, client.InNamespace(newJob.Namespace),
		client.MatchingFields{indexes.JobTaskJob: newJob.Name}, client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "Listing the tasks of an ended Job", "job", klog.KObj(newJob))
		return
	}
	for i := range list.Items {
		if !list.Items[i].Status.Status.Finished() {
			q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
}

// Reconcile moves one JobTask along: admit and create its batch Job, follow it, or
// stop it when its Job ended.
func (r *JobTaskReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	task := &costv1.JobTask{}
	if err := r.client.Get(ctx, req.NamespacedName, task); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if v, ok := r.written.Load(task.UID); ok {
		cmp, err := resourceversion.CompareResourceVersion(task.ResourceVersion, v.(string))
		if err == nil && cmp < 0 {
			return reconcile.Result{RequeueAfter: time.Second}, nil // our write's event will bring us back
		}
		r.written.Delete(task.UID)
	}
	jobKey := types.NamespacedName{Namespace: task.Namespace, Name: task.Spec.JobRef.Name}
	if task.Status.Status.Finished() {
		r.ledger.Release(jobKey, task.Name)
		r.created.Delete(task.UID)
		return reconcile.Result{}, nil
	}
	if !task.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	job := &costv1.Job{}
	if err := r.client.Get(ctx, jobKey, job); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err) // the Job is gone: GC removes the task
	}
	if !metav1.IsControlledBy(task, job) {
		return reconcile.Result{}, nil // left over from an older Job of the same name
	}
	now := metaNow(r.clock.Now())
	if state, stop := stopping(job); stop {
		return reconcile.Result{}, r.stopTask(ctx, task, job, state, now)
	}
	if job.Status.Status == "" {
		// A JobTask exists only once its Job has started (the plan writes the Job's
		// status before creating tasks): this is the cache running behind that write.
		// Look again shortly; the ledger may already hold a slot for this task, and
		// no other event would bring it back.
		return reconcile.Result{RequeueAfter: 500 * time.Millisecond}, nil
	}

	bj := &batchv1.Job{}
	err := r.client.Get(ctx, types.NamespacedName{Namespace: task.Namespace, Name: BatchJobName(task.Name)}, bj)
	switch {
	case apierrors.IsNotFound(err):
		if at, ok := r.created.Load(task.UID); ok && now.Sub(at.(time.Time)) < 30*time.Second {
			return reconcile.Result{RequeueAfter: 5 * time.Second}, nil // its event is on the way
		}
		r.created.Delete(task.UID)
		return r.startTask(ctx, task, job, now)
	case err != nil:
		return reconcile.Result{}, err
	}
	r.created.Delete(task.UID)
	if !metav1.IsControlledBy(bj, task) {
		// A batch Job of an older JobTask with this name, on its way out.
		return reconcile.Result{RequeueAfter: 5 * time.Second}, nil
	}
	if !bj.DeletionTimestamp.IsZero() {
		if _, done := batchJobFinished(bj); !done {
			if task.Status.Status == costv1.TaskInProgress {
				return r.startTask(ctx, task, job, now) // fails it as lost
			}
			return reconcile.Result{RequeueAfter: 2 * time.Second}, nil // recreated once gone
		}
	}
	// The pods (from the cache) tell when the task started and, as soon as its pod
	// succeeded, that it is done.
	pods, err := r.taskPods(ctx, r.client, task)
	if err != nil {
		return reconcile.Result{}, err
	}
	st := observeTask(task.Status, bj, pods, now)
	if st.Status.Finished() && !podsCaughtUp(bj, pods) {
		// The batch Job's end reached the cache before its pods' did: read the pods
		// from the API server rather than judge the task on a stale view.
		if pods, err = r.taskPods(ctx, r.apiReader, task); err != nil {
			return reconcile.Result{}, err
		}
		st = observeTask(task.Status, bj, pods, now)
	}
	return reconcile.Result{}, r.writeStatus(ctx, task, st, jobKey)
}

// startTask creates the task's batch Job once the ledger admits it. A task that had
// started and lost its batch Job fails: it may have written data, so it is not rerun
// behind the user's back.
func (r *JobTaskReconciler) startTask(ctx context.Context, task *costv1.JobTask, job *costv1.Job, now metav1.Time) (reconcile.Result, error) {
	jobKey := types.NamespacedName{Namespace: task.Namespace, Name: job.Name}
	if task.Status.Status == costv1.TaskInProgress {
		st := *task.Status.DeepCopy()
		failTask(&st, costv1.ErrorBatchJobLost, "the task's batch Job "+BatchJobName(task.Name)+" was deleted while the task ran")
		st.FinishedAt, st.UpdatedAt = &now, &now
		return reconcile.Result{}, r.writeStatus(ctx, task, st, jobKey)
	}
	ds := &costv1.DataSource{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: task.Namespace, Name: task.Spec.DataSourceRef.Name}, ds); err != nil {
		if !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		st := *task.Status.DeepCopy()
		failTask(&st, costv1.ErrorDataSourceNotFound, "DataSource "+task.Spec.DataSourceRef.Name+" not found")
		st.FinishedAt, st.UpdatedAt = &now, &now
		return reconcile.Result{}, r.writeStatus(ctx, task, st, jobKey)
	}
	if ds.Spec.Collector.Image == "" && r.collectorImage == "" {
		st := *task.Status.DeepCopy()
		failTask(&st, costv1.ErrorTaskPod, "DataSource "+ds.Name+" names no spec.collector.image and the operator has no default (--collector-image)")
		st.FinishedAt, st.UpdatedAt = &now, &now
		return reconcile.Result{}, r.writeStatus(ctx, task, st, jobKey)
	}
	if job.Status.Ending != nil {
		return reconcile.Result{}, nil // the run is being committed: nothing more starts
	}
	if job.Status.Store == nil || job.Status.Store.SecretName == "" {
		// The Job writes its store before it plans, so this is the cache running
		// behind that write (or a run planned before the operator had a store).
		return reconcile.Result{RequeueAfter: time.Second}, nil
	}
	settings := effectiveSettings(job, ds)
	if !r.ledger.Admit(ledgerJob(ctx, r.client, job, settings.Parallelism), task.Name, task.Spec.Index) {
		return reconcile.Result{}, nil // woken when a slot frees
	}
	var deadline time.Time
	if job.Status.StartedAt != nil {
		deadline = job.Status.StartedAt.Add(settings.Timeout)
	}
	bj := buildBatchJob(batchJobInput{Task: task, Job: job, DS: ds, Settings: settings, Deadline: deadline, Now: now.Time, DefaultImage: r.collectorImage})
	if err := r.client.Create(ctx, bj); err != nil && !apierrors.IsAlreadyExists(err) {
		r.ledger.Release(jobKey, task.Name)
		return reconcile.Result{}, err
	}
	r.created.Store(task.UID, now.Time)
	log.FromContext(ctx).V(1).Info("Created the task's batch Job", "batchJob", klog.KObj(bj))
	return reconcile.Result{}, nil
}

// stopping says whether a Job's open tasks must stop, and with which Job state:
// once the Job finished, and already while a failed, timed-out or canceled run is
// rolled back (a task still writing would hold the rollback up; the store refuses
// its rows once the run is rolled back anyway).
func stopping(job *costv1.Job) (costv1.JobState, bool) {
	if job.Status.Status.Finished() {
		return job.Status.Status, true
	}
	if e := job.Status.Ending; e != nil && e.Status != costv1.JobSuccess {
		return e.Status, true
	}
	return "", false
}

// stopTask ends a task whose Job ended (or is ending with state): its batch Job
// and pods are deleted and it becomes CANCELED (or TIMEOUT).
func (r *JobTaskReconciler) stopTask(ctx context.Context, task *costv1.JobTask, job *costv1.Job, state costv1.JobState, now metav1.Time) error {
	bj := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: task.Namespace, Name: BatchJobName(task.Name)}}
	if err := r.client.Delete(ctx, bj, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
		return err
	}
	// Delete the pods too, rather than wait for the garbage collector: the run is over now.
	if err := r.client.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(task.Namespace),
		client.MatchingLabels{costv1.LabelJobTask: task.Name}, client.GracePeriodSeconds(0)); client.IgnoreNotFound(err) != nil {
		return err
	}
	st := stopTask(task.Status, state, now)
	return r.writeStatus(ctx, task, st, types.NamespacedName{Namespace: task.Namespace, Name: job.Name})
}

func (r *JobTaskReconciler) taskPods(ctx context.Context, reader client.Reader, task *costv1.JobTask) ([]*corev1.Pod, error) {
	var list corev1.PodList
	if err := reader.List(ctx, &list, client.InNamespace(task.Namespace),
		client.MatchingLabels{costv1.LabelJobTask: task.Name}); err != nil {
		return nil, err
	}
	pods := make([]*corev1.Pod, 0, len(list.Items))
	for i := range list.Items {
		pods = append(pods, &list.Items[i])
	}
	return pods, nil
}

// writeStatus patches the JobTask's status when it changed; a task that just ended
// gives its slot back and is counted in the metrics.
func (r *JobTaskReconciler) writeStatus(ctx context.Context, task *costv1.JobTask, st costv1.JobTaskStatus, jobKey types.NamespacedName) error {
	st.ObservedGeneration = task.Status.ObservedGeneration
	if equality.Semantic.DeepEqual(task.Status, st) {
		return nil // nothing to say: observedGeneration alone is not worth a write
	}
	st.ObservedGeneration = task.Generation
	orig := task.DeepCopy()
	log.FromContext(ctx).V(1).Info("Writing the JobTask's status", "from", orig.Status.Status, "to", st.Status)
	task.Status = st
	if err := r.client.Status().Patch(ctx, task, client.MergeFrom(orig)); err != nil {
		return client.IgnoreNotFound(err)
	}
	r.written.Store(task.UID, task.ResourceVersion)
	if !orig.Status.Status.Finished() && st.Status.Finished() {
		r.ledger.Release(jobKey, task.Name)
		metrics.TaskFinished(task)
		if st.Status == costv1.TaskFailure {
			r.recorder.Eventf(task, nil, corev1.EventTypeWarning, "TaskFailed", "Run", "%s: %s", st.ErrorCode, st.ErrorMessage)
		}
		log.FromContext(ctx).Info("JobTask finished", "status", st.Status, "createdCount", st.CreatedCount, "errorCode", st.ErrorCode)
	}
	return nil
}
