package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/indexes"
	"github.com/costops/cost-analysis-operator/internal/schedule"
)

// RBAC of the schedule controller (see job_controller.go for the rest): it creates
// a DataSource's scheduled and sync-now Jobs, deletes those beyond the history
// limits, and patches the DataSource's schedule status (datasources/status).
// +kubebuilder:rbac:groups=cost-analysis.costops.dev,resources=jobs,verbs=create;delete
// Scheduled Jobs are owned by their DataSource with blockOwnerDeletion (see jobs/finalizers).
// +kubebuilder:rbac:groups=cost-analysis.costops.dev,resources=datasources/finalizers,verbs=update

// ScheduleReconciler makes DataSources sync themselves: it creates a Job when the
// schedule is due (named after the scheduled time, so that no manager can create
// the same run twice), one for each new value of the sync-now annotation, and
// deletes the schedule's finished Jobs beyond its history limits. What is due is
// decided by internal/schedule from the injected clock; this controller only
// reads the cluster and carries the decision out.
type ScheduleReconciler struct {
	client    client.Client
	apiReader client.Reader
	recorder  events.EventRecorder
	clock     clock.PassiveClock
}

var _ reconcile.Reconciler = (*ScheduleReconciler)(nil)

// ScheduleOption configures a ScheduleReconciler.
type ScheduleOption func(*ScheduleReconciler)

// WithScheduleClock injects the clock the schedule is read with (tests).
func WithScheduleClock(c clock.PassiveClock) ScheduleOption {
	return func(r *ScheduleReconciler) { r.clock = c }
}

// NewScheduleReconciler returns a ScheduleReconciler.
func NewScheduleReconciler(mgr manager.Manager, opts ...ScheduleOption) *ScheduleReconciler {
	r := &ScheduleReconciler{
		client:    mgr.GetClient(),
		apiReader: mgr.GetAPIReader(),
		recorder:  mgr.GetEventRecorder("cost-analysis-schedule"),
		clock:     clock.RealClock{},
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// SetupWithManager registers the controller: DataSources (spec and annotation
// changes) and the creation, end and deletion of their Jobs.
func (r *ScheduleReconciler) SetupWithManager(mgr manager.Manager) error {
	return builder.ControllerManagedBy(mgr).
		Named("schedule").
		For(&costv1.DataSource{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&costv1.Job{}, handler.EnqueueRequestsFromMapFunc(jobToDataSource), builder.WithPredicates(jobStateChanged{})).
		Complete(r)
}

func jobToDataSource(_ context.Context, o client.Object) []reconcile.Request {
	j, ok := o.(*costv1.Job)
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: j.Namespace, Name: j.Spec.DataSourceRef.Name}}}
}

// jobStateChanged passes a Job's creation, deletion and changes of its status
// (not its counts), which is all the schedule acts on.
type jobStateChanged struct{ predicate.Funcs }

func (jobStateChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*costv1.Job)
	n, ok2 := e.ObjectNew.(*costv1.Job)
	return !ok1 || !ok2 || o.Status.Status != n.Status.Status
}

// Reconcile carries out the schedule's decision for one DataSource.
func (r *ScheduleReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	ds := &costv1.DataSource{}
	if err := r.client.Get(ctx, req.NamespacedName, ds); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !ds.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	now := r.clock.Now()
	var jobs costv1.JobList
	if err := r.client.List(ctx, &jobs, client.InNamespace(ds.Namespace), client.MatchingFields{indexes.JobDataSource: ds.Name}); err != nil {
		return reconcile.Result{}, err
	}
	orig := ds.DeepCopy()
	if err := r.pruneActive(ctx, ds, jobs.Items); err != nil {
		return reconcile.Result{}, err
	}
	if err := r.syncNow(ctx, ds, now); err != nil {
		return reconcile.Result{}, err
	}
	var res reconcile.Result
	var err error
	if ds.Spec.Schedule != nil {
		res, err = r.schedule(ctx, ds, jobs.Items, now)
		if err != nil {
			return reconcile.Result{}, err
		}
	} else {
		ds.Status.NextScheduleTime = nil
		meta.RemoveStatusCondition(&ds.Status.Conditions, costv1.ConditionScheduled)
	}
	if err := r.pruneHistory(ctx, ds, jobs.Items); err != nil {
		return reconcile.Result{}, err
	}
	if !equality.Semantic.DeepEqual(orig.Status, ds.Status) {
		// The optimistic lock keeps a claim of status.active that lands meanwhile.
		if err := r.client.Status().Patch(ctx, ds, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			if apierrors.IsConflict(err) {
				return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
			}
			return reconcile.Result{}, client.IgnoreNotFound(err)
		}
	}
	return res, nil
}

// schedule applies the cron decision: start the due run, or record why not.
func (r *ScheduleReconciler) schedule(ctx context.Context, ds *costv1.DataSource, jobs []costv1.Job, now time.Time) (reconcile.Result, error) {
	spec := ds.Spec.Schedule
	st := &ds.Status
	sched, err := schedule.Parse(spec.Cron, ptr.Deref(spec.TimeZone, ""))
	if err != nil {
		st.NextScheduleTime = nil
		setScheduled(ds, metav1.ConditionFalse, costv1.ReasonInvalidSchedule, err.Error())
		r.recorder.Eventf(ds, nil, corev1.EventTypeWarning, costv1.ReasonInvalidSchedule, "Schedule", "%s", err.Error())
		return reconcile.Result{}, nil
	}
	since := ds.CreationTimestamp.Time
	if st.LastScheduleTime != nil {
		since = st.LastScheduleTime.Time
	}
	active := unfinished(jobs)
	if latest, ok := sched.MostRecent(since, now); ok {
		// The run of the due time itself, created by an earlier attempt of this
		// reconcile whose status write did not land, is not another run.
		own := schedule.JobName(ds.Name, latest)
		active = slices.DeleteFunc(active, func(n string) bool { return n == own })
	}
	in := schedule.Input{Now: now, Since: since, Suspend: ptr.Deref(spec.Suspend, false), Policy: ds.Policy(), Active: active}
	if spec.StartingDeadlineSeconds != nil {
		in.StartingDeadline = ptr.To(time.Duration(*spec.StartingDeadlineSeconds) * time.Second)
	}
	d := sched.Decide(in)
	if !d.Start.IsZero() {
		job, err := r.createRun(ctx, ds, schedule.JobName(ds.Name, d.Start), costv1.CreatedBySchedule, func(j *costv1.Job) {
			j.Annotations = map[string]string{costv1.AnnotationScheduledAt: d.Start.UTC().Format(time.RFC3339)}
			j.Spec.Start = schedule.StartFor(spec.StartPolicy, d.Start, sched.Location())
		})
		if err != nil {
			return reconcile.Result{}, err
		}
		log.FromContext(ctx).Info("Started the scheduled run", "job", job, "scheduledAt", d.Start)
		r.recorder.Eventf(ds, nil, corev1.EventTypeNormal, costv1.ReasonRunStarted, "Schedule", "Job %s: %s", job, d.Message)
	} else if d.Reason == costv1.ReasonSkippedActiveRun || d.Reason == costv1.ReasonMissedDeadline {
		log.FromContext(ctx).Info("Skipped a scheduled run", "reason", d.Reason, "message", d.Message)
		r.recorder.Eventf(ds, nil, corev1.EventTypeWarning, d.Reason, "Schedule", "%s", d.Message)
	}
	if !d.Handled.IsZero() {
		st.LastScheduleTime = &metav1.Time{Time: d.Handled}
	}
	st.NextScheduleTime = nil
	if !d.Next.IsZero() {
		st.NextScheduleTime = &metav1.Time{Time: d.Next}
	}
	switch d.Reason {
	case costv1.ReasonRunStarted:
		setScheduled(ds, metav1.ConditionTrue, d.Reason, d.Message)
	case costv1.ReasonWaitingForNext:
		// Keep the outcome of the last scheduled time; replace only a suspension
		// or an invalid schedule, which no longer hold.
		if c := meta.FindStatusCondition(st.Conditions, costv1.ConditionScheduled); c == nil ||
			c.Reason == costv1.ReasonSuspended || c.Reason == costv1.ReasonInvalidSchedule || c.ObservedGeneration != ds.Generation {
			setScheduled(ds, metav1.ConditionTrue, d.Reason, d.Message)
		}
	default:
		setScheduled(ds, metav1.ConditionFalse, d.Reason, d.Message)
	}
	if d.Next.IsZero() {
		return reconcile.Result{}, nil
	}
	// Come back when the next run is due (a little after, so that it is due).
	return reconcile.Result{RequeueAfter: d.Next.Sub(now) + 100*time.Millisecond}, nil
}

func setScheduled(ds *costv1.DataSource, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&ds.Status.Conditions, metav1.Condition{Type: costv1.ConditionScheduled,
		Status: status, Reason: reason, Message: msg, ObservedGeneration: ds.Generation})
}

// syncNow creates the run a new value of the sync-now annotation asks for.
func (r *ScheduleReconciler) syncNow(ctx context.Context, ds *costv1.DataSource, now time.Time) error {
	v := ds.Annotations[costv1.AnnotationSyncNow]
	if v == "" || (ds.Status.SyncNow != nil && ds.Status.SyncNow.Value == v) {
		return nil
	}
	if len(v) > 256 {
		r.recorder.Eventf(ds, nil, corev1.EventTypeWarning, "InvalidSyncNow", "SyncNow",
			"the %s annotation is longer than 256 characters: use a short value such as a timestamp", costv1.AnnotationSyncNow)
		return nil
	}
	job, err := r.createRun(ctx, ds, schedule.SyncNowJobName(ds.Name, v), costv1.CreatedBySyncNow, nil)
	if err != nil {
		return err
	}
	log.FromContext(ctx).Info("Started a sync-now run", "job", job, "value", v)
	r.recorder.Eventf(ds, nil, corev1.EventTypeNormal, "SyncNow", "SyncNow", "Job %s started for sync-now %q", job, v)
	ds.Status.SyncNow = &costv1.SyncNowStatus{Value: v, Job: job, Time: &metav1.Time{Time: now}}
	return nil
}

// createRun creates a Job of ds owned by it. AlreadyExists is success: the name
// is the run's identity, so a second create of the same run (another manager, or
// this one after a restart) is a no-op.
func (r *ScheduleReconciler) createRun(ctx context.Context, ds *costv1.DataSource, name, createdBy string, mutate func(*costv1.Job)) (string, error) {
	job := &costv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ds.Namespace,
			Labels: map[string]string{costv1.LabelDataSource: ds.Name, costv1.LabelCreatedBy: createdBy}},
		Spec: costv1.JobSpec{DataSourceRef: costv1.LocalObjectReference{Name: ds.Name}},
	}
	if mutate != nil {
		mutate(job)
	}
	if err := controllerutil.SetControllerReference(ds, job, r.client.Scheme()); err != nil {
		return "", err
	}
	if err := r.client.Create(ctx, job); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating Job %s: %w", name, err)
	}
	return name, nil
}

// unfinished names the Jobs of the DataSource that have not finished, whoever
// created them.
func unfinished(jobs []costv1.Job) []string {
	var names []string
	for i := range jobs {
		if !jobs[i].Status.Status.Finished() && jobs[i].DeletionTimestamp.IsZero() {
			names = append(names, jobs[i].Name)
		}
	}
	slices.Sort(names)
	return names
}

// pruneActive drops the entries of status.active whose Job is gone or finished
// (checked against the API server, since the cache may lag behind a claim).
func (r *ScheduleReconciler) pruneActive(ctx context.Context, ds *costv1.DataSource, jobs []costv1.Job) error {
	stale := false
	for _, a := range ds.Status.Active {
		i := slices.IndexFunc(jobs, func(j costv1.Job) bool { return j.Name == a.Name })
		if i < 0 || jobs[i].Status.Status.Finished() || (a.UID != "" && jobs[i].UID != a.UID) {
			stale = true
		}
	}
	if !stale {
		return nil
	}
	live, err := liveActive(ctx, r.apiReader, ds, "")
	if err != nil {
		return err
	}
	if len(live) != len(ds.Status.Active) {
		ds.Status.Active = live
	}
	return nil
}

// pruneHistory deletes the finished Jobs this controller created for ds beyond
// the schedule's history limits (3 succeeded and 1 failed by default, also for
// sync-now Jobs of a DataSource without a schedule), with their JobTasks, batch
// Jobs and pods. A running Job, or one created by hand, is never deleted.
func (r *ScheduleReconciler) pruneHistory(ctx context.Context, ds *costv1.DataSource, jobs []costv1.Job) error {
	succeeded, failed := int32(costv1.DefaultSuccessfulJobsHistoryLimit), int32(costv1.DefaultFailedJobsHistoryLimit)
	if s := ds.Spec.Schedule; s != nil {
		succeeded = ptr.Deref(s.SuccessfulJobsHistoryLimit, succeeded)
		failed = ptr.Deref(s.FailedJobsHistoryLimit, failed)
	}
	var history []schedule.Run
	for i := range jobs {
		j := &jobs[i]
		by := j.Labels[costv1.LabelCreatedBy]
		if !j.Status.Status.Finished() || (by != costv1.CreatedBySchedule && by != costv1.CreatedBySyncNow) ||
			!metav1.IsControlledBy(j, ds) || !j.DeletionTimestamp.IsZero() {
			continue
		}
		run := schedule.Run{Name: j.Name, Succeeded: j.Status.Status == costv1.JobSuccess, FinishedAt: j.CreationTimestamp.Time}
		if j.Status.FinishedAt != nil {
			run.FinishedAt = j.Status.FinishedAt.Time
		}
		history = append(history, run)
	}
	for _, name := range schedule.Prune(history, int(succeeded), int(failed)) {
		j := &costv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ds.Namespace, Name: name}}
		if err := r.client.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		log.FromContext(ctx).Info("Deleted a finished Job beyond the history limit", "job", name)
		r.recorder.Eventf(ds, nil, corev1.EventTypeNormal, "DeletedJob", "Prune", "Deleted finished Job %s (history limits %d succeeded, %d failed)", name, succeeded, failed)
	}
	return nil
}
