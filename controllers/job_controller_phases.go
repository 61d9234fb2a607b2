package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/indexes"
	"github.com/costops/cost-analysis-operator/internal/plugin"
)

// reconcileStart opens the run and writes IN_PROGRESS at once, so the timeout is
// anchored before anything slow happens.
func (r *JobReconciler) reconcileStart(ctx context.Context, s *jobScope) (reconcile.Result, error) {
	if s.job.Status.Status != "" {
		return reconcile.Result{}, nil
	}
	markRunning(&s.job.Status, s.job.CreationTimestamp, s.job.Generation, metaNow(s.now))
	log.FromContext(ctx).Info("Job started")
	return reconcile.Result{}, r.writeStatus(ctx, s)
}

// reconcileDataSource reads the DataSource and the settings it implies. A Job whose
// DataSource is missing fails, unless its tasks already run.
func (r *JobReconciler) reconcileDataSource(ctx context.Context, s *jobScope) (reconcile.Result, error) {
	ds := &costv1.DataSource{}
	err := r.client.Get(ctx, types.NamespacedName{Namespace: s.job.Namespace, Name: s.job.Spec.DataSourceRef.Name}, ds)
	switch {
	case err == nil:
		s.ds = ds
		s.settings = effectiveSettings(s.job, ds)
	case apierrors.IsNotFound(err):
		if s.planned() || s.job.Spec.Cancel {
			return reconcile.Result{}, nil
		}
		// The cache may not have seen a DataSource created just before the Job: ask
		// the API server before concluding.
		if err := r.apiReader.Get(ctx, types.NamespacedName{Namespace: s.job.Namespace, Name: s.job.Spec.DataSourceRef.Name}, ds); err == nil {
			s.ds = ds
			s.settings = effectiveSettings(s.job, ds)
			return reconcile.Result{}, nil
		} else if !apierrors.IsNotFound(err) {
			return reconcile.Result{}, err
		}
		msg := fmt.Sprintf("DataSource %s not found in namespace %s", s.job.Spec.DataSourceRef.Name, s.job.Namespace)
		// GitOps tools may apply a Job before its DataSource: wait for it as long as
		// for an unreachable plugin (the DataSource watch brings the Job back).
		waitUntil := s.job.Status.StartedAt.Add(r.planRetryWindow)
		if d := s.deadline(); d.Before(waitUntil) {
			waitUntil = d
		}
		if s.now.Before(waitUntil) {
			meta.SetStatusCondition(&s.job.Status.Conditions, metav1.Condition{Type: costv1.ConditionPlanned,
				Status: metav1.ConditionFalse, Reason: costv1.ReasonWaitingForDataSource, Message: msg})
			s.stop = true
			return reconcile.Result{RequeueAfter: waitUntil.Sub(s.now)}, nil
		}
		if d := s.deadline(); !s.now.Before(d) {
			return reconcile.Result{}, nil // reconcileEnd times the run out
		}
		r.end(ctx, s, outcome{State: costv1.JobFailure, Reason: costv1.ReasonPlanFailed, ErrorCode: costv1.ErrorDataSourceNotFound, ErrorMessage: msg})
	default:
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, nil
}

// reconcilePlan asks the plugin how to divide the run, lays the tasks out on batch
// Jobs and creates one JobTask per task, with deterministic names, so that a plan
// interrupted by a restart resumes without creating anything twice.
func (r *JobReconciler) reconcilePlan(ctx context.Context, s *jobScope) (reconcile.Result, error) {
	if s.planned() || s.job.Spec.Cancel {
		return reconcile.Result{}, nil
	}
	if d := s.deadline(); !d.IsZero() && !s.now.Before(d) {
		return reconcile.Result{}, nil // reconcileEnd times the run out
	}
	res, wait := r.getTasks(ctx, s)
	if res == nil {
		return wait, nil
	}
	return reconcile.Result{}, r.createPlan(ctx, s, res)
}

// failPlan ends a run whose plan failed.
func (r *JobReconciler) failPlan(ctx context.Context, s *jobScope, code string, err error) {
	r.end(ctx, s, outcome{State: costv1.JobFailure, Reason: costv1.ReasonPlanFailed, ErrorCode: code, ErrorMessage: err.Error()})
}

// getTasks calls the plugin's get_tasks. A nil answer means the run failed (ended
// here) or must wait (wait says how long).
func (r *JobReconciler) getTasks(ctx context.Context, s *jobScope) (res *plugin.TasksResult, wait reconcile.Result) {
	in, ierr := resolvePluginInputs(ctx, r.apiReader, s.ds, r.pluginCallTimeout)
	if ierr != nil {
		r.failPlan(ctx, s, ierr.Code, ierr)
		return nil, wait
	}
	cl, err := r.plugins.Client(in.Conn)
	if err != nil {
		r.failPlan(ctx, s, costv1.ErrorPluginUnavailable, err)
		return nil, wait
	}
	req := plugin.GetTasksRequest{
		Options: in.Options, SecretData: in.SecretData, Schema: in.Schema,
		Start: s.job.Spec.Start, DomainID: s.job.Namespace,
	}
	if t := s.ds.Status.LastSynchronizedAt; t != nil {
		req.LastSynchronizedAt = t.UTC().Format(time.RFC3339)
	}
	callCtx, cancel := context.WithDeadline(ctx, s.deadline())
	res, err = cl.GetTasks(callCtx, req)
	cancel()
	if err == nil {
		return res, wait
	}
	var malformed *plugin.MalformedError
	switch {
	case errors.As(err, &malformed):
		r.failPlan(ctx, s, costv1.ErrorGetJobTasks, fmt.Errorf("the plugin returned malformed tasks: %w", err))
	case plugin.IsUnavailable(err) && s.now.Before(s.job.Status.StartedAt.Add(r.planRetryWindow)):
		log.FromContext(ctx).Info("Plugin unavailable, retrying the plan", "err", err.Error())
		meta.SetStatusCondition(&s.job.Status.Conditions, metav1.Condition{Type: costv1.ConditionPlanned,
			Status: metav1.ConditionFalse, Reason: costv1.ReasonWaitingForPlugin, Message: err.Error()})
		return nil, reconcile.Result{RequeueAfter: 5 * time.Second}
	case plugin.IsUnavailable(err):
		r.failPlan(ctx, s, costv1.ErrorPluginUnavailable, err)
	default:
		r.failPlan(ctx, s, costv1.ErrorGetJobTasks, err)
	}
	return nil, wait
}

// createPlan records the plan's size and layout, then creates its JobTasks.
func (r *JobReconciler) createPlan(ctx context.Context, s *jobScope, res *plugin.TasksResult) error {
	st := &s.job.Status
	n := int32(len(res.Tasks))
	if st.TotalTasks > 0 && st.TotalTasks != n {
		r.failPlan(ctx, s, costv1.ErrorPlanChanged, fmt.Errorf("the plan was interrupted and get_tasks now returns %d tasks instead of %d", n, st.TotalTasks))
		return nil
	}
	tasks, err := buildJobTasks(s.job, res.Tasks)
	if err != nil {
		r.failPlan(ctx, s, costv1.ErrorGetJobTasks, err)
		return nil
	}
	// Record the size and layout of the plan before creating anything, so a
	// restart knows them.
	st.TotalTasks = n
	st.Changed, st.LastChangedAt = changedWindows(res.Changed)
	st.SyncedAccounts = int32(len(res.SyncedAccounts))
	if st.BatchJobs == nil {
		l := planLayout(taskFileSizes(tasks), r.indexesPerBatchJob)
		st.BatchJobs = &costv1.BatchJobsStatus{IndexesPerBatchJob: l.per, Count: l.count(), Queue: queueName(s.job, s.ds)}
	}
	applyTasks(st, taskSummary{})
	if err := r.writeStatus(ctx, s); err != nil {
		return err
	}

	start := time.Now()
	if err := r.createTasks(ctx, s.job, tasks); err != nil {
		var changed *planChangedError
		if errors.As(err, &changed) {
			r.failPlan(ctx, s, costv1.ErrorPlanChanged, err)
			return nil
		}
		return err
	}
	s.tasks = tasks
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: costv1.ConditionPlanned, Status: metav1.ConditionTrue,
		Reason: costv1.ReasonTasksCreated, Message: fmt.Sprintf("the plugin planned %d tasks", n)})
	log.FromContext(ctx).Info("Job planned", "tasks", n, "batchJobs", st.BatchJobs.Count, "duration", time.Since(start).String())
	r.recorder.Eventf(s.job, nil, corev1.EventTypeNormal, "Planned", "Plan", "The plugin planned %d tasks", n)
	return nil
}

type planChangedError struct{ msg string }

func (e *planChangedError) Error() string { return e.msg }

// createTasks creates the JobTasks that do not exist yet, planWorkers at a time, and
// gives every task its UID. A JobTask that exists must be the same task (same
// digest), or the plan changed.
func (r *JobReconciler) createTasks(ctx context.Context, job *costv1.Job, tasks []*costv1.JobTask) error {
	var existing costv1.JobTaskList
	if err := r.client.List(ctx, &existing, client.InNamespace(job.Namespace),
		client.MatchingFields{indexes.JobTaskJob: job.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	have := make(map[string]*costv1.JobTask, len(existing.Items))
	for i := range existing.Items {
		if metav1.IsControlledBy(&existing.Items[i], job) {
			have[existing.Items[i].Name] = &existing.Items[i]
		}
	}
	work := make(chan *costv1.JobTask)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	setErr := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	workers := max(r.planWorkers, 1)
	for range workers {
		wg.Go(func() {
			for t := range work {
				if err := r.createTask(ctx, t); err != nil {
					setErr(err)
				}
			}
		})
	}
	for _, t := range tasks {
		if cur, ok := have[t.Name]; ok {
			if cur.Annotations[costv1.AnnotationTaskHash] != t.Annotations[costv1.AnnotationTaskHash] {
				setErr(&planChangedError{msg: fmt.Sprintf("JobTask %s exists with other task options than get_tasks now returns", t.Name)})
				break
			}
			t.UID = cur.UID
			continue
		}
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		work <- t
	}
	close(work)
	wg.Wait()
	return firstErr
}

// createTask creates one JobTask (t gets its UID), or checks that the one that
// exists is the same task.
func (r *JobReconciler) createTask(ctx context.Context, t *costv1.JobTask) error {
	err := r.client.Create(ctx, t)
	if err == nil || !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur := &costv1.JobTask{}
	if err := r.apiReader.Get(ctx, client.ObjectKeyFromObject(t), cur); err != nil {
		return err
	}
	if cur.Annotations[costv1.AnnotationTaskHash] != t.Annotations[costv1.AnnotationTaskHash] {
		return &planChangedError{msg: fmt.Sprintf("JobTask %s exists with other task options than get_tasks now returns", t.Name)}
	}
	t.UID = cur.UID
	return nil
}

// reconcileTasks aggregates the JobTasks into the status.
func (r *JobReconciler) reconcileTasks(ctx context.Context, s *jobScope) (reconcile.Result, error) {
	tasks, err := r.listTasks(ctx, s.job)
	if err != nil {
		return reconcile.Result{}, err
	}
	if s.tasks == nil || len(tasks) >= len(s.tasks) {
		s.tasks = tasks // else the plan just created them, and the cache is behind
	}
	s.summary = summarizeTasks(s.tasks)
	if s.ds != nil && s.job.Status.Metering == nil {
		s.job.Status.Metering = &costv1.MeteringSummary{ResourceSpecCode: resourceSpecCode(s.ds.Spec.Collector)}
	}
	applyTasks(&s.job.Status, s.summary)
	return reconcile.Result{}, nil
}

// reconcileEnd decides whether the run ends now: cancel, timeout, a failed task, or
// every task done.
func (r *JobReconciler) reconcileEnd(ctx context.Context, s *jobScope) (reconcile.Result, error) {
	o, done := decideOutcome(runState{
		Cancel: s.job.Spec.Cancel, ReplacedBy: s.job.Annotations[costv1.AnnotationReplacedBy], Planned: s.planned(), TotalTasks: s.job.Status.TotalTasks,
		Policy: s.settings.Policy, Deadline: s.deadline(), Now: s.now, TimeoutString: s.settings.Timeout.String(),
	}, s.summary)
	if !done {
		return reconcile.Result{}, nil
	}
	if o.State == costv1.JobFailure && o.Reason == costv1.ReasonTaskFailed {
		r.recorder.Eventf(s.job, nil, corev1.EventTypeWarning, "TaskFailed", "Aggregate", "%s", o.ErrorMessage)
	}
	r.end(ctx, s, o)
	return reconcile.Result{}, nil
}

// reconcileDeadline enforces the timeout: the Job comes back exactly at its deadline,
// without polling in between.
func (r *JobReconciler) reconcileDeadline(_ context.Context, s *jobScope) (reconcile.Result, error) {
	d := s.deadline()
	if d.IsZero() {
		return reconcile.Result{}, nil
	}
	return reconcile.Result{RequeueAfter: d.Sub(s.now) + 100*time.Millisecond}, nil
}

// reconcileFinished keeps a finished Job's counts true to its JobTasks (they follow
// the Job to CANCELED or TIMEOUT), makes sure nothing of an early-ended run still
// runs, and keeps its DataSource's status up to date. It never re-opens the run, and
// writes nothing when nothing changed.
func (r *JobReconciler) reconcileFinished(ctx context.Context, s *jobScope) (reconcile.Result, error) {
	if s.job.Status.Status != costv1.JobSuccess {
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
	return reconcile.Result{}, r.releaseAndRecord(ctx, s.job)
}
