package controllers

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/indexes"
)

// How a run's tasks run.
//
// The plan's tasks are laid out on Indexed batch Jobs (status.batchJobs): task i is
// completion index i mod n of batch Job i / n, whose pods read their task from the
// batch Job's task ConfigMap by their completion index. A run of up to n tasks (1,000
// by default) is one batch Job: the cluster pays for it what it pays for any Indexed
// Job. The batch Jobs are created in order, each with its share of the Job's
// parallelism (shareParallelism): the sum of their parallelism never passes the
// Job's, and as a batch Job's last indexes finish, their slots go to the next one,
// which is created as soon as a slot is free for it. Task retries are Kubernetes'
// per index (backoffLimitPerIndex); under the Fail policy a batch Job fails at its
// first failed index (maxFailedIndexes 0) and the run cancels the rest.
//
// With a queue (kueue.x-k8s.io/queue-name on the Job or its DataSource) the batch
// Jobs carry the label and are created suspended; the admission controller resumes
// them. The operator changes a batch Job's parallelism only while it is suspended
// then, since an admission controller admits a Job for the pods it asked for.

// reconcileBatchJobs creates the run's batch Jobs and keeps their parallelism
// shared out.
func (r *JobReconciler) reconcileBatchJobs(ctx context.Context, s *jobScope) (reconcile.Result, error) {
	l, ok := layoutOf(&s.job.Status)
	if !s.planned() || s.job.Spec.Cancel {
		return reconcile.Result{}, nil
	}
	if !ok {
		if s.job.Status.TotalTasks > 0 {
			// Planned by a release that ran one batch Job per task: its tasks have no
			// place on Indexed batch Jobs. End it rather than let it wait for its timeout.
			r.end(ctx, s, outcome{State: costv1.JobFailure, Reason: costv1.ReasonPlanFailed, ErrorCode: costv1.ErrorPlanChanged,
				ErrorMessage: "the run was planned by an earlier release of the operator, which ran one batch Job per task; run it again"})
		}
		return reconcile.Result{}, nil
	}
	bs := s.job.Status.BatchJobs
	existing, err := r.batchJobs(ctx, s.job)
	if err != nil {
		return reconcile.Result{}, err
	}
	shares := make([]batchJobShare, bs.Created)
	jobs := make([]*batchv1.Job, bs.Created)
	suspended := int32(0)
	for k := range bs.Created {
		bj := existing[BatchJobName(s.job.Name, k)]
		if bj == nil {
			// Missing from the cache: lost (its tasks fail as lost), or created
			// just now and not seen yet.
			live := &batchv1.Job{}
			err := r.apiReader.Get(ctx, types.NamespacedName{Namespace: s.job.Namespace, Name: BatchJobName(s.job.Name, k)}, live)
			if client.IgnoreNotFound(err) != nil {
				return reconcile.Result{}, err
			}
			if err == nil && metav1.IsControlledBy(live, s.job) {
				bj = live
			}
		}
		jobs[k] = bj
		if bj == nil || !bj.DeletionTimestamp.IsZero() {
			continue // lost: nothing of it runs
		}
		if _, done := batchJobFinished(bj); done {
			continue
		}
		sh := batchJobShare{Remaining: l.size(k), Active: bj.Status.Active + ptr.Deref(bj.Status.Terminating, 0)}
		sh.Remaining -= parseIndexSet(bj.Status.CompletedIndexes).len()
		if f := bj.Status.FailedIndexes; f != nil {
			sh.Remaining -= parseIndexSet(*f).len()
		}
		sh.Remaining = max(sh.Remaining, 0)
		isSuspended := ptr.Deref(bj.Spec.Suspend, false)
		if isSuspended {
			suspended++
		}
		if bs.Queue != "" && !isSuspended {
			sh.Fixed, sh.Parallelism = true, ptr.Deref(bj.Spec.Parallelism, 0)
		}
		shares[k] = sh
	}
	given, next := shareParallelism(s.settings.Parallelism, shares)
	for k, bj := range jobs {
		if bj == nil || shares[k].Fixed || !bj.DeletionTimestamp.IsZero() {
			continue
		}
		if _, done := batchJobFinished(bj); done {
			continue
		}
		// The pods a batch Job may run are min(parallelism, indexes left): change
		// its parallelism only when that changes.
		cur := ptr.Deref(bj.Spec.Parallelism, 1)
		if min(cur, shares[k].Remaining) == given[k] {
			continue
		}
		patch := client.MergeFrom(bj.DeepCopy())
		bj.Spec.Parallelism = ptr.To(given[k])
		if err := r.client.Patch(ctx, bj, patch); client.IgnoreNotFound(err) != nil {
			return reconcile.Result{}, fmt.Errorf("sharing the Job's parallelism: %w", err)
		}
	}
	if bs.Created < l.count() && (next > 0 || bs.Created == 0) {
		if res, err := r.createBatchJobs(ctx, s, l, next, &suspended); err != nil || !res.IsZero() {
			return res, err
		}
	}
	bs.Suspended = suspended
	if bs.Queue != "" {
		c := metav1.Condition{Type: costv1.ConditionAdmitted, Status: metav1.ConditionTrue, Reason: costv1.ReasonAdmitted,
			Message: fmt.Sprintf("the run's batch Jobs were admitted from queue %s", bs.Queue)}
		if suspended > 0 {
			c.Status, c.Reason = metav1.ConditionFalse, costv1.ReasonWaitingForAdmission
			c.Message = fmt.Sprintf("%d of the run's batch Jobs wait, suspended, for admission from queue %s", suspended, bs.Queue)
		}
		meta.SetStatusCondition(&s.job.Status.Conditions, c)
	}
	return reconcile.Result{}, nil
}

// createBatchJobs creates the run's next batch Jobs while slots are free for them:
// for each, its task ConfigMap, then the batch Job.
func (r *JobReconciler) createBatchJobs(ctx context.Context, s *jobScope, l layout, free int32, suspended *int32) (reconcile.Result, error) {
	bs := s.job.Status.BatchJobs
	if s.ds == nil {
		r.end(ctx, s, outcome{State: costv1.JobFailure, Reason: costv1.ReasonTaskFailed, ErrorCode: costv1.ErrorDataSourceNotFound,
			ErrorMessage: fmt.Sprintf("DataSource %s was deleted before every task of the run had started", s.job.Spec.DataSourceRef.Name)})
		return reconcile.Result{}, nil
	}
	if s.ds.Spec.Collector.Image == "" && r.collectorImage == "" {
		r.end(ctx, s, outcome{State: costv1.JobFailure, Reason: costv1.ReasonTaskFailed, ErrorCode: costv1.ErrorTaskPod,
			ErrorMessage: "DataSource " + s.ds.Name + " names no spec.collector.image and the operator has no default (--collector-image)"})
		return reconcile.Result{}, nil
	}
	if st := s.job.Status.Store; st == nil || st.SecretName == "" {
		return reconcile.Result{}, fmt.Errorf("the run has no store secret") // reconcileStore writes it before the plan
	}
	byIndex := make(map[int32]*costv1.JobTask, len(s.tasks))
	for _, t := range s.tasks {
		byIndex[t.Spec.Index] = t
	}
	for (free > 0 || bs.Created == 0) && bs.Created < l.count() {
		k := bs.Created
		tasks := make([]*costv1.JobTask, 0, l.size(k))
		for i := l.first(k); i < l.first(k)+l.size(k); i++ {
			t := byIndex[i]
			if t == nil || t.UID == "" {
				// The cache has not seen every JobTask of the plan yet.
				return reconcile.Result{RequeueAfter: 200 * time.Millisecond}, nil
			}
			tasks = append(tasks, t)
		}
		if err := r.createOwned(ctx, s.job, buildTaskConfigMap(s.job, k, tasks), &corev1.ConfigMap{}); err != nil {
			return reconcile.Result{}, fmt.Errorf("creating the task ConfigMap of batch Job %d: %w", k, err)
		}
		parallelism := min(free, l.size(k))
		bj := buildBatchJob(batchJobInput{Job: s.job, DS: s.ds, Settings: s.settings, Layout: l, K: k, Parallelism: parallelism,
			Queue: bs.Queue, Deadline: s.deadline(), Now: s.now, DefaultImage: r.collectorImage})
		if err := r.createOwned(ctx, s.job, bj, &batchv1.Job{}); err != nil {
			return reconcile.Result{}, fmt.Errorf("creating batch Job %s: %w", bj.Name, err)
		}
		log.FromContext(ctx).V(1).Info("Created a batch Job of the run", "batchJob", klog.KObj(bj), "tasks", l.size(k), "parallelism", parallelism)
		bs.Created++
		free -= parallelism
		if bs.Queue != "" {
			*suspended++
		}
	}
	return reconcile.Result{}, nil
}

// createOwned creates obj, owned by job; one that exists already must be the Job's
// (a restart between the create and the status write that counts it), else the
// create waits for the garbage collector to remove an older Job's.
func (r *JobReconciler) createOwned(ctx context.Context, job *costv1.Job, obj, cur client.Object) error {
	err := r.client.Create(ctx, obj)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	if err := r.apiReader.Get(ctx, client.ObjectKeyFromObject(obj), cur); err != nil {
		return err
	}
	if !metav1.IsControlledBy(cur, job) {
		return fmt.Errorf("%s exists and belongs to another object; waiting for it to be deleted", obj.GetName())
	}
	return nil
}

// batchJobs are the run's batch Jobs in the cache, by name.
func (r *JobReconciler) batchJobs(ctx context.Context, job *costv1.Job) (map[string]*batchv1.Job, error) {
	var list batchv1.JobList
	if err := r.client.List(ctx, &list, client.InNamespace(job.Namespace),
		client.MatchingFields{indexes.BatchJobJob: job.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	out := make(map[string]*batchv1.Job, len(list.Items))
	for i := range list.Items {
		if metav1.IsControlledBy(&list.Items[i], job) {
			out[list.Items[i].Name] = &list.Items[i]
		}
	}
	return out, nil
}

// stopBatchJobs stops a run that ended early: its unfinished batch Jobs are
// suspended (the Job controller stops their pods, and starts no other), then every
// pod of the run still pending or running is deleted at once (grace period 0) rather
// than left to the Job controller's graceful stop. The batch Jobs stay, with what
// they record and the pods of the tasks that ended, until the Job is deleted. It does
// nothing once nothing runs.
func (r *JobReconciler) stopBatchJobs(ctx context.Context, job *costv1.Job) error {
	existing, err := r.batchJobs(ctx, job)
	if err != nil {
		return err
	}
	stopped := 0
	for _, bj := range existing {
		if _, done := batchJobFinished(bj); done || !bj.DeletionTimestamp.IsZero() || ptr.Deref(bj.Spec.Suspend, false) {
			continue
		}
		patch := client.MergeFrom(bj.DeepCopy())
		bj.Spec.Suspend = ptr.To(true)
		if err := r.client.Patch(ctx, bj, patch); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("suspending batch Job %s: %w", bj.Name, err)
		}
		stopped++
	}
	if stopped == 0 && !r.runHasLivePods(ctx, job) {
		return nil
	}
	err = r.client.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(job.Namespace),
		client.MatchingLabels{costv1.LabelJob: job.Name},
		client.MatchingFieldsSelector{Selector: fields.AndSelectors(
			fields.OneTermNotEqualSelector("status.phase", string(corev1.PodSucceeded)),
			fields.OneTermNotEqualSelector("status.phase", string(corev1.PodFailed)))},
		client.GracePeriodSeconds(0))
	if client.IgnoreNotFound(err) != nil {
		return err
	}
	log.FromContext(ctx).Info("Stopped the run's batch Jobs and pods", "batchJobs", stopped)
	return nil
}

// runHasLivePods reports whether the cache holds a pod of the run that is not done.
func (r *JobReconciler) runHasLivePods(ctx context.Context, job *costv1.Job) bool {
	var list corev1.PodList
	if err := r.client.List(ctx, &list, client.InNamespace(job.Namespace), client.MatchingLabels{costv1.LabelJob: job.Name},
		client.UnsafeDisableDeepCopy); err != nil {
		return true
	}
	for i := range list.Items {
		if p := &list.Items[i]; p.DeletionTimestamp.IsZero() && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			return true
		}
	}
	return false
}
