package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/indexes"
	"github.com/costops/cost-analysis-operator/internal/metrics"
	"github.com/costops/cost-analysis-operator/internal/store"
)

// How a run's records are committed, and why the manager does it.
//
// A run ends in two steps. When its outcome is known (every task succeeded, a
// task failed, the timeout passed, spec.cancel was set) the Job controller
// records it in status.ending, still IN_PROGRESS, with the Stored condition
// Unknown (Committing or RollingBack). Then it commits the run's records (on
// SUCCESS) or rolls them back (otherwise) in the store, one transaction each,
// and only then writes the terminal status. The manager runs the commit itself,
// not a finalize pod: it is one short SQL transaction, the manager already has
// the run's windows (the Job's changed windows and its JobTasks' task_changed)
// and the store's DSN, and a pod would add a scheduling round trip and a second
// place where a failure must be mapped back. A manager killed mid-commit leaves
// status.ending in place; the next one (or the new leader) makes the same call
// again, and Commit and Rollback are idempotent, so nothing is lost or doubled.
//
// While a failed, timed-out or canceled run rolls back, its batch Jobs and pods
// are already stopped (stopBatchJobs; the JobTask controller ends its open tasks,
// see stopping): a pod still writing
// would hold the rollback up, and once the run is rolled back the store refuses
// any late write of it.

// end records the run's outcome; reconcileClose commits or rolls back its
// records and then writes it as the terminal status.
func (r *JobReconciler) end(ctx context.Context, s *jobScope, o outcome) {
	s.stop = true
	st := &s.job.Status
	if st.Ending != nil {
		return
	}
	now := metaNow(s.now)
	st.Ending = &costv1.JobEnding{Status: o.State, Reason: o.Reason, ErrorCode: o.ErrorCode, ErrorMessage: o.ErrorMessage, Since: &now}
	applyTasks(st, s.summary)
	if st.Store != nil {
		setStoredClosing(s)
	}
	log.FromContext(ctx).Info("Job reached its outcome", "status", o.State, "errorCode", o.ErrorCode, "store", st.Store != nil)
}

func setStoredClosing(s *jobScope) {
	e := s.job.Status.Ending
	c := metav1.Condition{Type: costv1.ConditionStored, Status: metav1.ConditionUnknown,
		Reason: costv1.ReasonRollingBack, Message: "the run ended " + string(e.Status) + ": deleting its records"}
	if e.Status == costv1.JobSuccess {
		c.Reason, c.Message = costv1.ReasonCommitting, "every task succeeded: committing the run's records"
	}
	if n := s.job.Status.Store.Attempts; n > 0 {
		c.Message = fmt.Sprintf("%s (%d failed attempts)", c.Message, n)
	}
	meta.SetStatusCondition(&s.job.Status.Conditions, c)
}

// finish writes the outcome held in status.ending as the terminal status.
func (r *JobReconciler) finish(ctx context.Context, s *jobScope) {
	st := &s.job.Status
	e := st.Ending
	o := outcome{State: e.Status, Reason: e.Reason, ErrorCode: e.ErrorCode, ErrorMessage: e.ErrorMessage}
	st.Ending = nil
	applyOutcome(st, o, s.job.Generation, metaNow(s.now))
	applyTasks(st, s.summary)
	log.FromContext(ctx).Info("Job finished", "status", o.State, "errorCode", o.ErrorCode, "totalTasks", st.TotalTasks, "createdCount", st.CreatedCount)
	evType := corev1.EventTypeNormal
	if o.State != costv1.JobSuccess {
		evType = corev1.EventTypeWarning
	}
	r.recorder.Eventf(s.job, nil, evType, o.Reason, "Finish", "Job ended %s: %s", o.State, firstNonEmpty(o.ErrorMessage, "every task succeeded"))
	metrics.JobFinished(s.job)
}

// reconcileStore fixes the run's store before anything is planned: the
// DataSource's own, or a Job-owned copy of the operator's default store's Secret
// (task pods read Secrets of their own namespace only). It is written at once, so
// no task pod is ever built without it.
func (r *JobReconciler) reconcileStore(ctx context.Context, s *jobScope) (reconcile.Result, error) {
	if s.ds == nil || s.job.Spec.Cancel {
		return reconcile.Result{}, nil
	}
	if st := s.job.Status.Store; st != nil && st.SecretName != "" {
		return reconcile.Result{}, nil
	}
	tgt, serr := resolveStore(ctx, r.apiReader, s.ds, r.stores)
	if serr != nil {
		r.end(ctx, s, outcome{State: costv1.JobFailure, Reason: costv1.ReasonStoreNotConfigured, ErrorCode: serr.Code, ErrorMessage: serr.Error()})
		return reconcile.Result{}, nil
	}
	// The store must answer, with its schema applied, before tasks write to it.
	if _, err := r.openStore(ctx, tgt.DSN); err != nil {
		waitUntil := s.job.Status.StartedAt.Add(r.planRetryWindow)
		if d := s.deadline(); d.Before(waitUntil) {
			waitUntil = d
		}
		if s.now.Before(waitUntil) {
			meta.SetStatusCondition(&s.job.Status.Conditions, metav1.Condition{Type: costv1.ConditionPlanned,
				Status: metav1.ConditionFalse, Reason: costv1.ReasonWaitingForStore, Message: err.Error()})
			s.stop = true
			return reconcile.Result{RequeueAfter: min(5*time.Second, waitUntil.Sub(s.now))}, nil
		}
		if d := s.deadline(); !s.now.Before(d) {
			return reconcile.Result{}, nil // reconcileEnd times the run out
		}
		r.end(ctx, s, outcome{State: costv1.JobFailure, Reason: costv1.ReasonPlanFailed, ErrorCode: costv1.ErrorStoreUnavailable,
			ErrorMessage: "the store did not answer within the plan's retry window: " + err.Error()})
		return reconcile.Result{}, nil
	}
	name := tgt.SecretName
	if tgt.Default {
		name = StoreSecretName(s.job.Name)
		if err := ensureStoreSecret(ctx, r.client, r.apiReader, s.job, tgt.DSN); err != nil {
			return reconcile.Result{}, fmt.Errorf("giving the run its store secret: %w", err)
		}
	}
	s.job.Status.Store = &costv1.JobStoreStatus{SecretName: name, Default: tgt.Default}
	return reconcile.Result{}, r.writeStatus(ctx, s)
}

func (r *JobReconciler) openStore(ctx context.Context, dsn string) (*store.Store, error) {
	if r.stores == nil || r.stores.Registry == nil {
		return nil, errors.New("the operator has no store registry")
	}
	ctx, cancel := context.WithTimeout(ctx, r.storeCallTimeout)
	defer cancel()
	return r.stores.Registry.Get(ctx, dsn)
}

// reconcileClose commits (SUCCESS) or rolls back (otherwise) the run's records,
// then ends the run. A failure is retried with backoff: a commit for
// commitRetryWindow, after which (or at once, for a commit that can never
// succeed) the run turns FAILURE with ERROR_COMMIT_FAILED and is rolled back; a
// rollback until it succeeds.
func (r *JobReconciler) reconcileClose(ctx context.Context, s *jobScope) (reconcile.Result, error) {
	if s.job.Status.Ending.Status != costv1.JobSuccess {
		// Stop what still runs before the rollback: a pod still writing would hold
		// it up.
		if err := r.stopBatchJobs(ctx, s.job); err != nil {
			return reconcile.Result{}, err
		}
	}
	tasks, err := r.listTasks(ctx, s.job)
	if err != nil {
		return reconcile.Result{}, err
	}
	s.summary = summarizeTasks(tasks)
	applyTasks(&s.job.Status, s.summary)
	st := s.job.Status.Store
	if st == nil || st.SecretName == "" {
		r.finish(ctx, s) // no store was ever chosen: nothing was written
		return reconcile.Result{}, nil
	}
	if wait := closeBackoffLeft(st, s.now); wait > 0 {
		// The status write of the last failed attempt brings the Job back at
		// once: the backoff is kept here, not by the requeue alone.
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	e := s.job.Status.Ending
	run := store.RunRef{Domain: s.job.Namespace, DataSource: s.job.Spec.DataSourceRef.Name, Job: s.job.Name, JobUID: string(s.job.UID)}
	var stored store.WriteResult
	dsn, serr := readDSN(ctx, r.apiReader, types.NamespacedName{Namespace: s.job.Namespace, Name: st.SecretName})
	if serr != nil {
		err = serr
	} else {
		err = func() error {
			ns, ds := s.job.Namespace, s.job.Spec.DataSourceRef.Name
			t0 := time.Now()
			db, err := r.openStore(ctx, dsn)
			if err != nil {
				metrics.StoreOperation(ns, ds, storeOperation(e.Status), time.Since(t0), err)
				return err
			}
			cctx, cancel := context.WithTimeout(ctx, r.storeCallTimeout)
			defer cancel()
			t0 = time.Now()
			if e.Status != costv1.JobSuccess {
				err := db.Rollback(cctx, run)
				metrics.StoreOperation(ns, ds, "rollback", time.Since(t0), err)
				return err
			}
			windows, err := storeWindows(s.job.Status.Changed, tasks)
			if err != nil {
				return fmt.Errorf("%w: %w", store.ErrInvalidWindow, err)
			}
			err = db.Commit(cctx, run, windows)
			metrics.StoreOperation(ns, ds, "commit", time.Since(t0), err)
			if err != nil {
				return err
			}
			stored, err = db.CommittedRows(cctx, string(s.job.UID))
			return err
		}()
	}
	logger := log.FromContext(ctx)
	if err != nil {
		return r.closeFailed(ctx, s, err)
	}
	if e.Status == costv1.JobSuccess {
		st.CommittedRows, st.CommittedBytes = &stored.Rows, &stored.Bytes
		metrics.RecordsCommitted(s.job.Namespace, s.job.Spec.DataSourceRef.Name, stored.Rows)
		meta.SetStatusCondition(&s.job.Status.Conditions, metav1.Condition{Type: costv1.ConditionStored, Status: metav1.ConditionTrue,
			Reason: costv1.ReasonCommitted, Message: fmt.Sprintf("%d records committed; they replace the older data of the run's windows", stored.Rows)})
		logger.Info("Committed the run's records", "rows", stored.Rows, "bytes", stored.Bytes)
	} else {
		var zero int64
		st.CommittedRows, st.CommittedBytes = &zero, &zero
		reason := costv1.ReasonRolledBack
		msg := "the run's records were deleted: the store holds what it held before the run"
		if e.Reason == costv1.ReasonCommitFailed {
			reason = costv1.ReasonCommitFailed
			msg = "the commit failed; " + msg
		}
		meta.SetStatusCondition(&s.job.Status.Conditions, metav1.Condition{Type: costv1.ConditionStored, Status: metav1.ConditionFalse,
			Reason: reason, Message: msg})
		logger.Info("Rolled the run's records back", "status", e.Status)
	}
	r.finish(ctx, s)
	return reconcile.Result{}, nil
}

// closeBackoff is the wait after the n-th failed commit or rollback attempt:
// 1 s, doubling up to 64 s.
func closeBackoff(n int32) time.Duration { return time.Second << min(max(n-1, 0), 6) }

// closeBackoffLeft is how long the next commit or rollback attempt must still
// wait after the last failed one; 0 when it may go now.
func closeBackoffLeft(st *costv1.JobStoreStatus, now time.Time) time.Duration {
	if st.Attempts == 0 || st.LastAttemptAt == nil {
		return 0
	}
	return max(st.LastAttemptAt.Add(closeBackoff(st.Attempts)).Sub(now), 0)
}

// closeFailed handles a failed commit or rollback.
func (r *JobReconciler) closeFailed(ctx context.Context, s *jobScope, err error) (reconcile.Result, error) {
	st, e := s.job.Status.Store, s.job.Status.Ending
	st.Attempts++
	now := metaNow(s.now)
	st.LastAttemptAt = &now
	logger := log.FromContext(ctx)
	if e.Status != costv1.JobSuccess && errors.Is(err, store.ErrCommitted) {
		// A commit that was reported failed had in fact gone through (its answer
		// was lost): the records are committed, and the run is what it was.
		logger.Info("The run turned out committed; ending it SUCCESS")
		s.job.Status.Ending = &costv1.JobEnding{Status: costv1.JobSuccess, Reason: costv1.ReasonAllTasksSucceeded, Since: e.Since}
		st.LastAttemptAt = nil // a new step: it goes at once
		setStoredClosing(s)
		return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	permanent := errors.Is(err, store.ErrInvalidWindow) || errors.Is(err, store.ErrRolledBack) || errors.Is(err, store.ErrRunConflict)
	if e.Status == costv1.JobSuccess && (permanent || s.now.Sub(e.Since.Time) >= r.commitRetryWindow) {
		logger.Error(err, "The run's commit failed for good: rolling it back", "attempts", st.Attempts)
		s.job.Status.Ending = &costv1.JobEnding{Status: costv1.JobFailure, Reason: costv1.ReasonCommitFailed,
			ErrorCode: costv1.ErrorCommitFailed, ErrorMessage: "the run's records could not be committed: " + err.Error(), Since: &now}
		r.recorder.Eventf(s.job, nil, corev1.EventTypeWarning, costv1.ReasonCommitFailed, "Commit", "%s", err.Error())
		st.LastAttemptAt = nil // the rollback goes at once
		setStoredClosing(s)
		return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	setStoredClosing(s)
	c := meta.FindStatusCondition(s.job.Status.Conditions, costv1.ConditionStored)
	msg := err.Error()
	if len(msg) > 1024 {
		msg = msg[:1024] + "..."
	}
	c.Message += ": " + msg
	backoff := closeBackoff(st.Attempts)
	logger.Info("Commit or rollback failed; retrying", "err", err.Error(), "attempts", st.Attempts, "retryIn", backoff.String())
	return reconcile.Result{RequeueAfter: backoff}, nil
}

// listTasks lists the JobTasks a Job controls.
func (r *JobReconciler) listTasks(ctx context.Context, job *costv1.Job) ([]*costv1.JobTask, error) {
	var list costv1.JobTaskList
	if err := r.client.List(ctx, &list, client.InNamespace(job.Namespace),
		client.MatchingFields{indexes.JobTaskJob: job.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	tasks := make([]*costv1.JobTask, 0, len(list.Items))
	for i := range list.Items {
		if metav1.IsControlledBy(&list.Items[i], job) {
			tasks = append(tasks, &list.Items[i])
		}
	}
	return tasks, nil
}
