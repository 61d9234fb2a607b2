package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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
	"github.com/costops/cost-analysis-operator/internal/admission"
	"github.com/costops/cost-analysis-operator/internal/indexes"
	"github.com/costops/cost-analysis-operator/internal/plugin"
)

const indexBatchJobJob = indexes.BatchJobJob

// jobScope holds what one reconcile of a Job read and decided.
type jobScope struct {
	job      *costv1.Job
	orig     *costv1.Job
	now      time.Time
	ds       *costv1.DataSource
	settings runSettings
	summary  taskSummary
	// stop ends the phase list early (the run ended or must wait).
	stop bool
}

func newJobScope(job *costv1.Job, now time.Time) *jobScope {
	return &jobScope{job: job, orig: job.DeepCopy(), now: now, settings: effectiveSettings(job, nil)}
}

// metaNow is t as the API stores it, to the second, rounded up: so that the stored
// times never precede what they record (a timeout is never enforced early) and stay
// in order (startedAt <= updatedAt <= finishedAt).
func metaNow(t time.Time) metav1.Time {
	r := t.Truncate(time.Second)
	if r.Before(t) {
		r = r.Add(time.Second)
	}
	return metav1.NewTime(r)
}

// runSettings are a Job's effective run settings.
type runSettings struct {
	Timeout     time.Duration
	Parallelism int32
	Retries     int32
	Policy      costv1.FailurePolicy
	TTL         *int32
}

// effectiveSettings merges the Job's settings over its DataSource's defaults over the
// operator's defaults.
func effectiveSettings(job *costv1.Job, ds *costv1.DataSource) runSettings {
	s := runSettings{Timeout: DefaultJobTimeout, Parallelism: DefaultParallelism, Retries: DefaultTaskRetryLimit, Policy: costv1.FailurePolicyFail}
	if ds != nil {
		d := ds.Spec.JobDefaults
		if d.Timeout != nil && d.Timeout.Duration > 0 {
			s.Timeout = d.Timeout.Duration
		}
		if d.Parallelism != nil {
			s.Parallelism = *d.Parallelism
		}
		if d.TaskRetryLimit != nil {
			s.Retries = *d.TaskRetryLimit
		}
		if d.FailurePolicy != "" {
			s.Policy = d.FailurePolicy
		}
		s.TTL = d.TTLSecondsAfterFinished
	}
	if job.Spec.Timeout != nil && job.Spec.Timeout.Duration > 0 {
		s.Timeout = job.Spec.Timeout.Duration
	}
	if job.Spec.Parallelism != nil {
		s.Parallelism = *job.Spec.Parallelism
	}
	if job.Spec.TaskRetryLimit != nil {
		s.Retries = *job.Spec.TaskRetryLimit
	}
	if job.Spec.FailurePolicy != "" {
		s.Policy = job.Spec.FailurePolicy
	}
	return s
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

// reconcilePlan asks the plugin how to divide the run and creates one JobTask per
// task, with deterministic names, so that a plan interrupted by a restart resumes
// without creating anything twice.
func (r *JobReconciler) reconcilePlan(ctx context.Context, s *jobScope) (reconcile.Result, error) {
	if s.planned() || s.job.Spec.Cancel || s.stop {
		return reconcile.Result{}, nil
	}
	if d := s.deadline(); !d.IsZero() && !s.now.Before(d) {
		return reconcile.Result{}, nil // reconcileEnd times the run out
	}
	logger := log.FromContext(ctx)
	failPlan := func(code string, err error) {
		r.end(ctx, s, outcome{State: costv1.JobFailure, Reason: costv1.ReasonPlanFailed, ErrorCode: code, ErrorMessage: err.Error()})
	}
	in, ierr := resolvePluginInputs(ctx, r.apiReader, s.ds, r.pluginCallTimeout)
	if ierr != nil {
		failPlan(ierr.Code, ierr)
		return reconcile.Result{}, nil
	}
	cl, err := r.plugins.Client(in.Conn)
	if err != nil {
		failPlan(costv1.ErrorPluginUnavailable, err)
		return reconcile.Result{}, nil
	}
	req := plugin.GetTasksRequest{
		Options: in.Options, SecretData: in.SecretData, Schema: in.Schema,
		Start: s.job.Spec.Start, DomainID: s.job.Namespace,
	}
	if t := s.ds.Status.LastSynchronizedAt; t != nil {
		req.LastSynchronizedAt = t.UTC().Format(time.RFC3339)
	}
	callCtx, cancel := context.WithDeadline(ctx, s.deadline())
	res, err := cl.GetTasks(callCtx, req)
	cancel()
	if err != nil {
		var malformed *plugin.MalformedError
		switch {
		case errors.As(err, &malformed):
			failPlan(costv1.ErrorGetJobTasks, fmt.Errorf("the plugin returned malformed tasks: %w", err))
		case plugin.IsUnavailable(err) && s.now.Before(s.job.Status.StartedAt.Add(r.planRetryWindow)):
			logger.Info("Plugin unavailable, retrying the plan", "err", err.Error())
			meta.SetStatusCondition(&s.job.Status.Conditions, metav1.Condition{Type: costv1.ConditionPlanned,
				Status: metav1.ConditionFalse, Reason: costv1.ReasonWaitingForPlugin, Message: err.Error()})
			return reconcile.Result{RequeueAfter: 5 * time.Second}, nil
		case plugin.IsUnavailable(err):
			failPlan(costv1.ErrorPluginUnavailable, err)
		default:
			failPlan(costv1.ErrorGetJobTasks, err)
		}
		return reconcile.Result{}, nil
	}

	st := &s.job.Status
	n := int32(len(res.Tasks))
	if st.TotalTasks > 0 && st.TotalTasks != n {
		failPlan(costv1.ErrorPlanChanged, fmt.Errorf("the plan was interrupted and get_tasks now returns %d tasks instead of %d", n, st.TotalTasks))
		return reconcile.Result{}, nil
	}
	tasks, err := buildJobTasks(s.job, res.Tasks)
	if err != nil {
		failPlan(costv1.ErrorGetJobTasks, err)
		return reconcile.Result{}, nil
	}
	// Record the size of the plan before creating anything, so a restart knows it.
	st.TotalTasks = n
	st.Changed, st.LastChangedAt = changedWindows(res.Changed)
	st.SyncedAccounts = int32(len(res.SyncedAccounts))
	applyTasks(st, taskSummary{})
	if err := r.writeStatus(ctx, s); err != nil {
		return reconcile.Result{}, err
	}

	start := time.Now()
	if err := r.createTasks(ctx, s.job, tasks); err != nil {
		var changed *planChangedError
		if errors.As(err, &changed) {
			failPlan(costv1.ErrorPlanChanged, err)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	offer := make(map[string]int32, len(tasks))
	for _, t := range tasks {
		offer[t.Name] = t.Spec.Index
	}
	r.ledger.Offer(ledgerJob(ctx, r.client, s.job, s.settings.Parallelism), offer)
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: costv1.ConditionPlanned, Status: metav1.ConditionTrue,
		Reason: costv1.ReasonTasksCreated, Message: fmt.Sprintf("the plugin planned %d tasks", n)})
	logger.Info("Job planned", "tasks", n, "duration", time.Since(start).String())
	r.recorder.Eventf(s.job, nil, corev1.EventTypeNormal, "Planned", "Plan", "The plugin planned %d tasks", n)
	return reconcile.Result{}, nil
}

type planChangedError struct{ msg string }

func (e *planChangedError) Error() string { return e.msg }

// createTasks creates the JobTasks that do not exist yet, planWorkers at a time. A
// JobTask that exists must be the same task (same digest), or the plan changed.
func (r *JobReconciler) createTasks(ctx context.Context, job *costv1.Job, tasks []*costv1.JobTask) error {
	var existing costv1.JobTaskList
	if err := r.client.List(ctx, &existing, client.InNamespace(job.Namespace),
		client.MatchingFields{indexes.JobTaskJob: job.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	have := make(map[string]string, len(existing.Items))
	for i := range existing.Items {
		have[existing.Items[i].Name] = existing.Items[i].Annotations[costv1.AnnotationTaskHash]
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
		if h, ok := have[t.Name]; ok {
			if h != t.Annotations[costv1.AnnotationTaskHash] {
				setErr(&planChangedError{msg: fmt.Sprintf("JobTask %s exists with other task options than get_tasks now returns", t.Name)})
				break
			}
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
	return nil
}

// JobTaskName is the deterministic name of a Job's task.
func JobTaskName(job string, index int) string { return job + "-" + strconv.Itoa(index) }

// buildJobTasks turns the plugin's tasks into JobTask objects owned by the Job.
func buildJobTasks(job *costv1.Job, tasks []plugin.Task) ([]*costv1.JobTask, error) {
	out := make([]*costv1.JobTask, 0, len(tasks))
	for i, t := range tasks {
		opts, err := toRaw(t.Options)
		if err != nil || opts == nil {
			return nil, fmt.Errorf("task %d: task_options cannot be encoded: %w", i, err)
		}
		var changed *costv1.ChangedWindow
		if t.Changed != nil {
			w, err := changedWindow(*t.Changed)
			if err != nil {
				return nil, fmt.Errorf("task %d: task_changed: %w", i, err)
			}
			changed = &w
		}
		digest := sha256.New()
		digest.Write(opts.Raw)
		if changed != nil {
			b, _ := json.Marshal(changed)
			digest.Write(b)
		}
		jt := &costv1.JobTask{
			ObjectMeta: metav1.ObjectMeta{
				Name:      JobTaskName(job.Name, i),
				Namespace: job.Namespace,
				Labels: map[string]string{
					costv1.LabelJob:        job.Name,
					costv1.LabelDataSource: job.Spec.DataSourceRef.Name,
				},
				Annotations: map[string]string{costv1.AnnotationTaskHash: hex.EncodeToString(digest.Sum(nil))[:16]},
			},
			Spec: costv1.JobTaskSpec{
				JobRef:        costv1.LocalObjectReference{Name: job.Name},
				DataSourceRef: job.Spec.DataSourceRef,
				Index:         int32(i),
				TaskOptions:   *opts,
				TaskChanged:   changed,
			},
		}
		jt.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(job, costv1.GroupVersion.WithKind("Job"))}
		out = append(out, jt)
	}
	return out, nil
}

func changedWindow(c plugin.Changed) (costv1.ChangedWindow, error) {
	w := costv1.ChangedWindow{Start: c.Start, End: c.End}
	if len(c.Filter) > 0 {
		f, err := toRaw(c.Filter)
		if err != nil {
			return w, err
		}
		w.Filter = f
	}
	return w, nil
}

// maxChangedWindows bounds the windows kept in a Job's status.
const maxChangedWindows = 256

// changedWindows converts the job-level windows and finds the earliest start.
func changedWindows(in []plugin.Changed) ([]costv1.ChangedWindow, *metav1.Time) {
	var out []costv1.ChangedWindow
	for _, c := range in {
		w, err := changedWindow(c)
		if err != nil {
			continue
		}
		out = append(out, w)
	}
	earliest := earliestStart(out)
	if len(out) > maxChangedWindows {
		out = out[:maxChangedWindows]
	}
	return out, earliest
}

// reconcileTasks aggregates the JobTasks into the status and passes a changed
// parallelism on to the admission ledger.
func (r *JobReconciler) reconcileTasks(ctx context.Context, s *jobScope) (reconcile.Result, error) {
	if s.stop {
		return reconcile.Result{}, nil
	}
	sum, err := r.observeTasks(ctx, s.job)
	if err != nil {
		return reconcile.Result{}, err
	}
	s.summary = sum
	if s.ds != nil && s.job.Status.Metering == nil {
		s.job.Status.Metering = &costv1.MeteringSummary{ResourceSpecCode: resourceSpecCode(s.ds.Spec.Collector)}
	}
	applyTasks(&s.job.Status, sum)
	r.ledger.Resize(client.ObjectKeyFromObject(s.job), s.job.UID, int(s.settings.Parallelism))
	return reconcile.Result{}, nil
}

func (r *JobReconciler) observeTasks(ctx context.Context, job *costv1.Job) (taskSummary, error) {
	tasks, err := r.listTasks(ctx, job)
	if err != nil {
		return taskSummary{}, err
	}
	return summarizeTasks(tasks), nil
}

// reconcileEnd decides whether the run ends now: cancel, timeout, a failed task, or
// every task done.
func (r *JobReconciler) reconcileEnd(ctx context.Context, s *jobScope) (reconcile.Result, error) {
	if s.stop {
		return reconcile.Result{}, nil
	}
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
	if s.stop {
		return reconcile.Result{}, nil
	}
	d := s.deadline()
	if d.IsZero() {
		return reconcile.Result{}, nil
	}
	return reconcile.Result{RequeueAfter: d.Sub(s.now) + 100*time.Millisecond}, nil
}

// reconcileFinished keeps a finished Job's counts true to its JobTasks (they follow
// the Job to CANCELED or TIMEOUT) and its DataSource's status up to date. It never
// re-opens the run, and writes nothing when nothing changed.
func (r *JobReconciler) reconcileFinished(ctx context.Context, s *jobScope) (reconcile.Result, error) {
	r.ledger.Forget(client.ObjectKeyFromObject(s.job))
	sum, err := r.observeTasks(ctx, s.job)
	if err != nil {
		return reconcile.Result{}, err
	}
	s.summary = sum
	applyTasks(&s.job.Status, sum)
	return reconcile.Result{}, r.releaseAndRecord(ctx, s.job)
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

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ledgerJob describes a Job to the admission ledger.
func ledgerJob(ctx context.Context, c client.Reader, job *costv1.Job, parallelism int32) admission.Job {
	return admission.Job{
		NamespacedName: types.NamespacedName{Namespace: job.Namespace, Name: job.Name},
		UID:            job.UID,
		Limit:          int(parallelism),
		Running:        func() []string { return runningBatchJobs(ctx, c, job.Namespace, job.Name) },
		Planned:        meta.IsStatusConditionTrue(job.Status.Conditions, costv1.ConditionPlanned),
	}
}
