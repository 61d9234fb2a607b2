package controllers

import (
	"context"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/indexes"
	"github.com/costops/cost-analysis-operator/internal/metrics"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

// RBAC of the JobTask controller (see job_controller.go for the rest). JobTasks are
// read through the cache, and their status patched once per change.
// +kubebuilder:rbac:groups=cost-analysis.costops.dev,resources=jobtasks,verbs=get;list;watch
// +kubebuilder:rbac:groups=cost-analysis.costops.dev,resources=jobtasks/status,verbs=patch
// Task pods: cached (list, watch; only the operator's, by label) for their
// termination message, and listed live when the cache may be behind.
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;watch

// JobTaskReconciler keeps a JobTask's status true to its completion index: the
// index's pods (their phase and termination message) and its batch Job's
// completedIndexes, failedIndexes and conditions. It writes a task at most twice over
// its life (IN_PROGRESS, then its end) and never touches the cluster otherwise: the
// Job controller runs the batch Jobs.
type JobTaskReconciler struct {
	client    client.Client
	apiReader client.Reader
	recorder  events.EventRecorder
	clock     clock.PassiveClock
	written   ownWrites

	maxConcurrent int
	// progressDelay holds a task's IN_PROGRESS write until its pod has run this
	// long: a task that ends sooner is written once, with its end.
	progressDelay time.Duration
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

// WithTaskProgressDelay sets how long a task's pod runs before its IN_PROGRESS is
// written (0: at once).
func WithTaskProgressDelay(d time.Duration) JobTaskOption {
	return func(r *JobTaskReconciler) { r.progressDelay = d }
}

// NewJobTaskReconciler returns a JobTaskReconciler using the manager's client and cache.
func NewJobTaskReconciler(mgr manager.Manager, opts ...JobTaskOption) *JobTaskReconciler {
	r := &JobTaskReconciler{
		client:        mgr.GetClient(),
		apiReader:     mgr.GetAPIReader(),
		recorder:      mgr.GetEventRecorder("cost-analysis-jobtask"),
		clock:         clock.RealClock{},
		maxConcurrent: 16,
		progressDelay: DefaultTaskProgressDelay,
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// SetupWithManager registers the controller. It watches JobTasks, their pods, the
// batch Jobs that run them, and the moment their Job ends.
func (r *JobTaskReconciler) SetupWithManager(mgr manager.Manager) error {
	return builder.ControllerManagedBy(mgr).
		Named("jobtask").
		For(&costv1.JobTask{}, builder.WithPredicates(predicate.Funcs{UpdateFunc: r.notOwnWrite})).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(podToTask),
			builder.WithPredicates(predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool { return podChanged(e.ObjectOld, e.ObjectNew) }})).
		Watches(&batchv1.Job{}, handler.Funcs{
			CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				r.batchJobChanged(ctx, nil, e.Object, false, q)
			},
			UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				r.batchJobChanged(ctx, e.ObjectOld, e.ObjectNew, false, q)
			},
			DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				r.batchJobChanged(ctx, nil, e.Object, true, q)
			},
		}).
		Watches(&costv1.Job{}, handler.Funcs{UpdateFunc: r.jobEnded}).
		WithOptions(ctrl.Options{MaxConcurrentReconciles: r.maxConcurrent}).
		Complete(r)
}

// notOwnWrite drops the event of our own last status write of a JobTask: the
// reconcile that wrote it already acted on what it shows. Every other change (a
// deletion, a write by someone else, a cache resync) is reconciled. A task whose end
// we wrote is not written again, so it is forgotten here.
func (r *JobTaskReconciler) notOwnWrite(e event.UpdateEvent) bool {
	if !r.written.isLast(e.ObjectNew) {
		return true
	}
	if t, ok := e.ObjectNew.(*costv1.JobTask); ok && t.Status.Status.Finished() {
		r.written.forget(client.ObjectKeyFromObject(t))
	}
	return false
}

// podChanged reports whether a task pod's update changes what its task's status is
// read from: its phase, start, result (containers' states, reason, message), the
// failure count Kubernetes keeps on it, or its deletion. Its scheduling, conditions
// and finalizers (the Job controller's tracking finalizer) decide nothing.
func podChanged(oldObj, newObj client.Object) bool {
	o, ok1 := oldObj.(*corev1.Pod)
	n, ok2 := newObj.(*corev1.Pod)
	if !ok1 || !ok2 {
		return true
	}
	return o.Status.Phase != n.Status.Phase ||
		!o.DeletionTimestamp.Equal(n.DeletionTimestamp) ||
		!o.Status.StartTime.Equal(n.Status.StartTime) ||
		o.Status.Reason != n.Status.Reason || o.Status.Message != n.Status.Message ||
		o.Annotations[taskpod.AnnotationIndexFailureCount] != n.Annotations[taskpod.AnnotationIndexFailureCount] ||
		!equality.Semantic.DeepEqual(o.Status.ContainerStatuses, n.Status.ContainerStatuses)
}

// podToTask maps a task pod to its JobTask: <job>-<first task index + completion index>.
func podToTask(_ context.Context, o client.Object) []reconcile.Request {
	job := o.GetLabels()[costv1.LabelJob]
	i, ok := taskpod.PodTaskIndex(o.GetAnnotations(), costv1.AnnotationFirstTaskIndex)
	if job == "" || !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: JobTaskName(job, int(i))}}}
}

// batchJobChanged enqueues the open tasks a batch Job's change may decide: those its
// completedIndexes or failedIndexes gained since old (all of them listed there when
// there is no old: a creation, or the cache's first list after a restart), and all of
// them once it ended or is gone.
func (r *JobTaskReconciler) batchJobChanged(ctx context.Context, old, o client.Object, gone bool, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	bj, ok := o.(*batchv1.Job)
	job := o.GetLabels()[costv1.LabelJob]
	if !ok || job == "" {
		return
	}
	_, finished := batchJobFinished(bj)
	all := gone || finished || !bj.DeletionTimestamp.IsZero()
	var decided, before indexSet
	if !all {
		decided = decidedIndexes(bj)
		if prev, ok := old.(*batchv1.Job); ok {
			before = decidedIndexes(prev)
		}
		if len(decided) == 0 || equality.Semantic.DeepEqual(decided, before) {
			return
		}
	}
	first64, err := strconv.ParseInt(bj.Annotations[costv1.AnnotationFirstTaskIndex], 10, 32)
	if err != nil {
		return // not a batch Job of this engine
	}
	first := int32(first64)
	var list costv1.JobTaskList
	if err := r.client.List(ctx, &list, client.InNamespace(bj.Namespace),
		client.MatchingFields{indexes.JobTaskJob: job}, client.UnsafeDisableDeepCopy); err != nil {
		log.FromContext(ctx).Error(err, "Listing the tasks of a batch Job", "batchJob", klog.KObj(bj))
		return
	}
	for i := range list.Items {
		t := &list.Items[i]
		if t.Status.Status.Finished() {
			continue
		}
		ci := t.Spec.Index - first
		if ci < 0 || bj.Spec.Completions != nil && ci >= *bj.Spec.Completions {
			continue
		}
		if all || decided.has(ci) && !before.has(ci) {
			q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(t)})
		}
	}
}

// decidedIndexes are a batch Job's completed and failed indexes.
func decidedIndexes(bj *batchv1.Job) indexSet {
	out := parseIndexSet(bj.Status.CompletedIndexes)
	if f := bj.Status.FailedIndexes; f != nil {
		out = append(out, parseIndexSet(*f)...)
	}
	return out
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

// taskScope holds what one reconcile of a JobTask read.
type taskScope struct {
	task *costv1.JobTask
	job  *costv1.Job
	now  metav1.Time
}

// Reconcile follows one JobTask: it reads its Job, its batch Job and its completion
// index's pods, and writes the status they imply.
func (r *JobTaskReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	task := &costv1.JobTask{}
	if err := r.client.Get(ctx, req.NamespacedName, task); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.forget(req.NamespacedName)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if r.written.behind(task) {
		return reconcile.Result{RequeueAfter: time.Second}, nil // our write's event will bring us back
	}
	if task.Status.Status.Finished() {
		r.written.forget(req.NamespacedName)
		return reconcile.Result{}, nil
	}
	if !task.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	job := &costv1.Job{}
	if err := r.client.Get(ctx, types.NamespacedName{Namespace: task.Namespace, Name: task.Spec.JobRef.Name}, job); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err) // the Job is gone: GC removes the task
	}
	if !metav1.IsControlledBy(task, job) {
		return reconcile.Result{}, nil // left over from an older Job of the same name
	}
	s := &taskScope{task: task, job: job, now: metaNow(r.clock.Now())}
	if state, stop := stopping(job); stop {
		// The Job controller stops the run's batch Jobs and pods at once; the task
		// records how it ended.
		return reconcile.Result{}, r.writeStatus(ctx, s, stoppedStatus(task.Status, state, s.now))
	}
	return r.reconcileIndex(ctx, s)
}

// reconcileIndex maps the task's completion index to its status.
func (r *JobTaskReconciler) reconcileIndex(ctx context.Context, s *taskScope) (reconcile.Result, error) {
	l, ok := layoutOf(&s.job.Status)
	if !ok {
		// The plan writes the layout before it creates a task: this is the cache
		// running behind that write. Look again shortly.
		return reconcile.Result{RequeueAfter: time.Second}, nil
	}
	k, ci := l.place(s.task.Spec.Index)
	name := BatchJobName(s.job.Name, k)
	bj := &batchv1.Job{}
	err := r.client.Get(ctx, types.NamespacedName{Namespace: s.task.Namespace, Name: name}, bj)
	if apierrors.IsNotFound(err) && k >= s.job.Status.BatchJobs.Created {
		// Not created yet, as far as the cache knows. Its pods bring the task back,
		// unless they came first, before the cache saw their batch Job (or the
		// Job's status counting it): then look again shortly, since a pod that runs
		// for long sends no other event.
		if n, err := r.cachedIndexPods(ctx, s.task.Namespace, name, ci); err != nil || n > 0 {
			return reconcile.Result{RequeueAfter: time.Second}, err
		}
		return reconcile.Result{}, nil
	}
	if apierrors.IsNotFound(err) {
		// The Job says it created this batch Job: ask the API server before calling
		// it lost (the cache may not have seen the create).
		err = r.apiReader.Get(ctx, types.NamespacedName{Namespace: s.task.Namespace, Name: name}, bj)
		if apierrors.IsNotFound(err) {
			return reconcile.Result{}, r.writeStatus(ctx, s, failedStatus(s.task.Status, costv1.ErrorBatchJobLost,
				"the task's batch Job "+name+" was deleted before the task finished", s.now))
		}
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	if !metav1.IsControlledBy(bj, s.job) {
		return reconcile.Result{RequeueAfter: 5 * time.Second}, nil // a batch Job of an older Job of this name, on its way out
	}
	pods, err := r.indexPods(ctx, r.client, bj, ci)
	if err != nil {
		return reconcile.Result{}, err
	}
	st := observeTask(s.task.Status, bj, ci, pods, s.now)
	if st.Status.Finished() && !podsCaughtUp(bj, ci, pods) {
		// The batch Job's verdict reached the cache before the pod's end did: read
		// the pods from the API server rather than judge the task on a stale view.
		if pods, err = r.indexPods(ctx, r.apiReader, bj, ci); err != nil {
			return reconcile.Result{}, err
		}
		st = observeTask(s.task.Status, bj, ci, pods, s.now)
	}
	if !st.Status.Finished() && !bj.DeletionTimestamp.IsZero() {
		if _, done := batchJobFinished(bj); !done {
			st = failedStatus(st, costv1.ErrorBatchJobLost, "the task's batch Job "+bj.Name+" was deleted before the task finished", s.now)
		}
	}
	if wait := progressHold(s.task.Status, st, r.clock.Now(), r.progressDelay); wait > 0 {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	return reconcile.Result{}, r.writeStatus(ctx, s, st)
}

// cachedIndexPods counts the pods in the cache of the completion index ci of the
// batch Job called name, whatever owns them.
func (r *JobTaskReconciler) cachedIndexPods(ctx context.Context, namespace, name string, ci int32) (int, error) {
	var list corev1.PodList
	err := r.client.List(ctx, &list, client.InNamespace(namespace),
		client.MatchingFields{indexes.PodCompletionIndex: indexes.PodCompletionIndexKey(name, itoa(ci))}, client.UnsafeDisableDeepCopy)
	return len(list.Items), err
}

// indexPods lists the pods of a batch Job's completion index.
// From the cache it uses the index; from the API server, the labels.
func (r *JobTaskReconciler) indexPods(ctx context.Context, reader client.Reader, bj *batchv1.Job, ci int32) ([]*corev1.Pod, error) {
	var list corev1.PodList
	sel := client.ListOption(client.MatchingFields{indexes.PodCompletionIndex: indexes.PodCompletionIndexKey(bj.Name, itoa(ci))})
	if reader != r.client {
		sel = client.MatchingLabels{batchv1.JobNameLabel: bj.Name, taskpod.LabelCompletionIndex: itoa(ci)}
	}
	if err := reader.List(ctx, &list, client.InNamespace(bj.Namespace), sel); err != nil {
		return nil, err
	}
	pods := make([]*corev1.Pod, 0, len(list.Items))
	for i := range list.Items {
		// Only the pods of this batch Job, not of an older one of the same name.
		if metav1.IsControlledBy(&list.Items[i], bj) {
			pods = append(pods, &list.Items[i])
		}
	}
	return pods, nil
}

// writeStatus patches the JobTask's status when it changed; a task that just ended
// is counted in the metrics.
func (r *JobTaskReconciler) writeStatus(ctx context.Context, s *taskScope, st costv1.JobTaskStatus) error {
	task := s.task
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
	r.written.wrote(task, s.now.Time)
	if !orig.Status.Status.Finished() && st.Status.Finished() {
		metrics.TaskFinished(task)
		if st.Status == costv1.TaskFailure {
			r.recorder.Eventf(task, nil, corev1.EventTypeWarning, "TaskFailed", "Run", "%s: %s", st.ErrorCode, st.ErrorMessage)
		}
		log.FromContext(ctx).Info("JobTask finished", "status", st.Status, "createdCount", st.CreatedCount, "errorCode", st.ErrorCode)
	}
	return nil
}
