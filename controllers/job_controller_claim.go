package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/indexes"
)

// One run of a DataSource at a time.
//
// Two runs of one source that overlap do the same work twice and race to replace
// each other's data, so a run must hold its DataSource before it plans anything.
// The holders are listed in the DataSource's status.active, and a run claims its
// DataSource with an optimistic-lock patch of that list: of two runs that claim
// at once exactly one patch lands, the other sees a conflict, reads the list
// again and finds the winner. The check therefore happens before the new run
// does anything (SpaceONE's duplicate check runs after it started, so two syncs
// can race), and an entry whose Job is gone or finished never blocks a later
// run (SpaceONE's stale-run bug): every claim checks the holders it finds
// against the API server.
//
// What happens when another run holds the DataSource is its concurrencyPolicy
// (spec.schedule.concurrencyPolicy, Forbid without a schedule):
//   - Forbid: the new Job ends FAILURE with ERROR_DUPLICATE_JOB, having planned
//     nothing and touched no data (a scheduled run is not even created: the
//     schedule skips it);
//   - Replace: the holder is canceled (spec.cancel, annotated with the Job that
//     replaced it), and the new Job waits, IN_PROGRESS with Planned Unknown
//     (WaitingForPreviousRun), until the holder is rolled back and gone from
//     status.active;
//   - Allow: the new Job is added beside the holders.
//
// A run leaves status.active when it finishes (syncDataSource).

// claimAttempts bounds the optimistic-lock retries of one reconcile.
const claimAttempts = 5

// reconcileClaim makes the run a holder of its DataSource, or applies the
// DataSource's concurrency policy when another run holds it.
func (r *JobReconciler) reconcileClaim(ctx context.Context, s *jobScope) (reconcile.Result, error) {
	if s.ds == nil || s.planned() || s.job.Spec.Cancel || s.job.Status.Ending != nil || holds(s.ds, s.job) {
		return reconcile.Result{}, nil
	}
	key := types.NamespacedName{Namespace: s.job.Namespace, Name: s.job.Spec.DataSourceRef.Name}
	for range claimAttempts {
		ds := &costv1.DataSource{}
		if err := r.apiReader.Get(ctx, key, ds); err != nil {
			if apierrors.IsNotFound(err) {
				return reconcile.Result{RequeueAfter: time.Second}, nil
			}
			return reconcile.Result{}, err
		}
		if holds(ds, s.job) {
			s.ds = ds
			return reconcile.Result{}, nil
		}
		live, err := liveActive(ctx, r.apiReader, ds, s.job.Name)
		if err != nil {
			return reconcile.Result{}, err
		}
		unclaimed, err := r.unclaimedRuns(ctx, ds, s.job.Name)
		if err != nil {
			return reconcile.Result{}, err
		}
		if len(live)+len(unclaimed) > 0 {
			names := append(activeNames(live), activeNames(unclaimed)...)
			switch ds.Policy() {
			case costv1.ConcurrencyForbid:
				msg := fmt.Sprintf("another run of DataSource %s is in progress (Job %s) and its concurrencyPolicy is Forbid: this Job did not run",
					ds.Name, strings.Join(names, ", "))
				r.recorder.Eventf(s.job, nil, corev1.EventTypeWarning, costv1.ReasonDuplicateJob, "Claim", "%s", msg)
				r.end(ctx, s, outcome{State: costv1.JobFailure, Reason: costv1.ReasonDuplicateJob, ErrorCode: costv1.ErrorDuplicateJob, ErrorMessage: msg})
				return reconcile.Result{}, nil
			case costv1.ConcurrencyReplace:
				if err := r.replace(ctx, s.job, append(live, unclaimed...)); err != nil {
					return reconcile.Result{}, err
				}
				meta.SetStatusCondition(&s.job.Status.Conditions, metav1.Condition{Type: costv1.ConditionPlanned,
					Status: metav1.ConditionUnknown, Reason: costv1.ReasonWaitingForPreviousRun,
					Message: fmt.Sprintf("waiting for Job %s to be canceled and rolled back (concurrencyPolicy Replace)", strings.Join(names, ", "))})
				s.stop = true
				// The DataSource watch brings the Job back when the holder leaves.
				return reconcile.Result{RequeueAfter: 5 * time.Second}, nil
			}
		}
		next := ds.DeepCopy()
		next.Status.Active = append(live, activeEntry(s.job))
		err = r.client.Status().Patch(ctx, next, client.MergeFromWithOptions(ds, client.MergeFromWithOptimisticLock{}))
		switch {
		case err == nil:
			s.ds = next
			log.FromContext(ctx).V(1).Info("The run holds its DataSource", "dataSource", klog.KObj(ds), "beside", activeNames(live))
			return reconcile.Result{}, nil
		case apierrors.IsConflict(err):
			continue
		case apierrors.IsNotFound(err):
			return reconcile.Result{RequeueAfter: time.Second}, nil
		default:
			return reconcile.Result{}, err
		}
	}
	return reconcile.Result{RequeueAfter: time.Second}, nil
}

// holds reports whether job is one of ds's active runs.
func holds(ds *costv1.DataSource, job *costv1.Job) bool {
	return slices.ContainsFunc(ds.Status.Active, func(a costv1.ActiveJob) bool { return a.Name == job.Name && a.UID == job.UID })
}

func activeEntry(job *costv1.Job) costv1.ActiveJob {
	a := costv1.ActiveJob{Name: job.Name, UID: job.UID}
	if v := job.Annotations[costv1.AnnotationScheduledAt]; v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			mt := metav1.NewTime(t)
			a.ScheduledTime = &mt
		}
	}
	return a
}

func activeNames(active []costv1.ActiveJob) []string {
	names := make([]string, 0, len(active))
	for _, a := range active {
		names = append(names, a.Name)
	}
	return names
}

// liveActive are the entries of ds's status.active, other than self, whose Job
// still exists (same UID) and has not finished, read from the API server.
func liveActive(ctx context.Context, c client.Reader, ds *costv1.DataSource, self string) ([]costv1.ActiveJob, error) {
	var live []costv1.ActiveJob
	for _, a := range ds.Status.Active {
		if a.Name == self {
			continue
		}
		j := &costv1.Job{}
		err := c.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: a.Name}, j)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, err
		}
		if (a.UID != "" && j.UID != a.UID) || j.Status.Status.Finished() {
			continue
		}
		live = append(live, a)
	}
	return live, nil
}

// unclaimedRuns are the DataSource's runs that are planned and running without
// being in status.active: runs that started before the operator had this check.
func (r *JobReconciler) unclaimedRuns(ctx context.Context, ds *costv1.DataSource, self string) ([]costv1.ActiveJob, error) {
	var list costv1.JobList
	if err := r.client.List(ctx, &list, client.InNamespace(ds.Namespace), client.MatchingFields{indexes.JobDataSource: ds.Name}); err != nil {
		return nil, err
	}
	var out []costv1.ActiveJob
	for i := range list.Items {
		j := &list.Items[i]
		if j.Name == self || j.Status.Status != costv1.JobInProgress || !meta.IsStatusConditionTrue(j.Status.Conditions, costv1.ConditionPlanned) ||
			slices.ContainsFunc(ds.Status.Active, func(a costv1.ActiveJob) bool { return a.Name == j.Name }) {
			continue
		}
		out = append(out, activeEntry(j))
	}
	return out, nil
}

// replace cancels the runs that job replaces.
func (r *JobReconciler) replace(ctx context.Context, job *costv1.Job, holders []costv1.ActiveJob) error {
	for _, a := range holders {
		old := &costv1.Job{}
		if err := r.client.Get(ctx, types.NamespacedName{Namespace: job.Namespace, Name: a.Name}, old); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return err
		}
		if old.Spec.Cancel {
			continue
		}
		orig := old.DeepCopy()
		old.Spec.Cancel = true
		if old.Annotations == nil {
			old.Annotations = map[string]string{}
		}
		old.Annotations[costv1.AnnotationReplacedBy] = job.Name
		if err := r.client.Patch(ctx, old, client.MergeFrom(orig)); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		log.FromContext(ctx).Info("Canceling the run this one replaces", "replaced", a.Name)
		r.recorder.Eventf(old, job, corev1.EventTypeNormal, costv1.ReasonReplaced, "Replace",
			"Job %s replaces this run (concurrencyPolicy Replace): canceling it", job.Name)
	}
	return nil
}

// releaseAndRecord records a finished Job in its DataSource (lastJob, and on
// SUCCESS lastSuccessfulJob and lastSynchronizedAt, the Job's creation time, as
// in SpaceONE) and takes it out of status.active, with an optimistic lock so
// that a claim landing at the same time is never lost.
func (r *JobReconciler) releaseAndRecord(ctx context.Context, job *costv1.Job) error {
	key := types.NamespacedName{Namespace: job.Namespace, Name: job.Spec.DataSourceRef.Name}
	ds := &costv1.DataSource{}
	if err := r.client.Get(ctx, key, ds); err != nil {
		return client.IgnoreNotFound(err)
	}
	for attempt := 0; ; attempt++ {
		next := ds.DeepCopy()
		recordFinished(next, job)
		if equality.Semantic.DeepEqual(ds.Status, next.Status) {
			return nil
		}
		err := r.client.Status().Patch(ctx, next, client.MergeFromWithOptions(ds, client.MergeFromWithOptimisticLock{}))
		if err == nil {
			log.FromContext(ctx).Info("Recorded the finished Job in its DataSource", "dataSource", klog.KObj(ds))
			return nil
		}
		if !apierrors.IsConflict(err) || attempt >= claimAttempts {
			return client.IgnoreNotFound(err)
		}
		ds = &costv1.DataSource{}
		if err := r.apiReader.Get(ctx, key, ds); err != nil {
			return client.IgnoreNotFound(err)
		}
	}
}

// recordFinished applies a finished Job to its DataSource's status.
func recordFinished(ds *costv1.DataSource, job *costv1.Job) {
	st := &ds.Status
	if newerFinish(job, st.LastJob) {
		st.LastJob = &costv1.LastJobStatus{Name: job.Name, Status: job.Status.Status, FinishedAt: job.Status.FinishedAt}
	}
	if job.Status.Status == costv1.JobSuccess {
		created := job.CreationTimestamp
		if t := st.LastSynchronizedAt; t == nil || t.Before(&created) {
			st.LastSynchronizedAt = &created
		}
		if newerFinish(job, st.LastSuccessfulJob) {
			st.LastSuccessfulJob = &costv1.LastJobStatus{Name: job.Name, Status: job.Status.Status, FinishedAt: job.Status.FinishedAt}
		}
	}
	st.Active = slices.DeleteFunc(st.Active, func(a costv1.ActiveJob) bool { return a.Name == job.Name && (a.UID == "" || a.UID == job.UID) })
	if len(st.Active) == 0 {
		st.Active = nil
	}
}

func newerFinish(job *costv1.Job, last *costv1.LastJobStatus) bool {
	if last == nil || job.Status.FinishedAt == nil {
		return last == nil
	}
	if last.Name == job.Name {
		return last.Status != job.Status.Status
	}
	return last.FinishedAt == nil || last.FinishedAt.Before(job.Status.FinishedAt)
}
