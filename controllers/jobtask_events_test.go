package controllers

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

func TestPodChanged(t *testing.T) {
	base := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{}},
		Status:     corev1.PodStatus{Phase: corev1.PodPending},
	}
	now := metav1.NewTime(time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC))
	for name, c := range map[string]struct {
		edit func(p *corev1.Pod)
		want bool
	}{
		"scheduled":  {func(p *corev1.Pod) { p.Spec.NodeName = "node-1" }, false},
		"condition":  {func(p *corev1.Pod) { p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled}} }, false},
		"finalizer":  {func(p *corev1.Pod) { p.Finalizers = []string{"batch.kubernetes.io/job-tracking"} }, false},
		"phase":      {func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning }, true},
		"start":      {func(p *corev1.Pod) { p.Status.StartTime = &now }, true},
		"deleted":    {func(p *corev1.Pod) { p.DeletionTimestamp = &now }, true},
		"reason":     {func(p *corev1.Pod) { p.Status.Reason = "Evicted" }, true},
		"message":    {func(p *corev1.Pod) { p.Status.Message = "out of memory" }, true},
		"failures":   {func(p *corev1.Pod) { p.Annotations[taskpod.AnnotationIndexFailureCount] = "1" }, true},
		"other note": {func(p *corev1.Pod) { p.Annotations["x"] = "y" }, false},
		"container ended": {func(p *corev1.Pod) {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: taskpod.ContainerName,
				State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Message: `{"created_count":1}`}}}}
		}, true},
	} {
		n := base.DeepCopy()
		c.edit(n)
		if got := podChanged(base, n); got != c.want {
			t.Errorf("%s: podChanged = %v, want %v", name, got, c.want)
		}
	}
	if !podChanged(&corev1.ConfigMap{}, base) {
		t.Error("an object that is not a pod passes")
	}
}

func TestNotOwnWrite(t *testing.T) {
	r := &JobTaskReconciler{}
	task := func(rv string, st costv1.JobTaskState) *costv1.JobTask {
		return &costv1.JobTask{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "run-0", UID: "u1", ResourceVersion: rv},
			Status: costv1.JobTaskStatus{Status: st}}
	}
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	r.written.wrote(task("10", costv1.TaskInProgress), at)
	if r.notOwnWrite(event.UpdateEvent{ObjectOld: task("9", ""), ObjectNew: task("10", costv1.TaskInProgress)}) {
		t.Error("the event of our own write is reconciled")
	}
	if !r.notOwnWrite(event.UpdateEvent{ObjectOld: task("10", costv1.TaskInProgress), ObjectNew: task("11", costv1.TaskInProgress)}) {
		t.Error("a change by someone else is dropped")
	}
	r.written.wrote(task("12", costv1.TaskSuccess), at)
	if r.notOwnWrite(event.UpdateEvent{ObjectOld: task("11", costv1.TaskInProgress), ObjectNew: task("12", costv1.TaskSuccess)}) {
		t.Error("the event of our own end write is reconciled")
	}
	if _, ok := r.written.last(task("12", costv1.TaskSuccess)); ok {
		t.Error("a task whose end we wrote is still remembered")
	}
}

func TestDecidedIndexes(t *testing.T) {
	bj := &batchv1.Job{Status: batchv1.JobStatus{CompletedIndexes: "0-2,5", FailedIndexes: ptr.To("7")}}
	got := decidedIndexes(bj)
	for _, i := range []int32{0, 1, 2, 5, 7} {
		if !got.has(i) {
			t.Errorf("index %d not decided in %v", i, got)
		}
	}
	for _, i := range []int32{3, 4, 6, 8} {
		if got.has(i) {
			t.Errorf("index %d decided in %v", i, got)
		}
	}
}

func TestEnqueueTaskJob(t *testing.T) {
	q := &recordingQueue{}
	job := &costv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "run", UID: "j1"}}
	task := &costv1.JobTask{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "run-0",
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, costv1.GroupVersion.WithKind("Job"))}}}
	enqueueTaskJob(task, q)
	if len(q.after) != 1 || q.after[0].key != (types.NamespacedName{Namespace: "ns", Name: "run"}) || q.after[0].d != taskEventBatch {
		t.Fatalf("queued %+v, want ns/run after %s", q.after, taskEventBatch)
	}
	orphan := task.DeepCopy()
	orphan.OwnerReferences = nil
	enqueueTaskJob(orphan, q)
	other := task.DeepCopy()
	other.OwnerReferences[0].APIVersion = "batch/v1"
	enqueueTaskJob(other, q)
	if len(q.after) != 1 {
		t.Fatalf("queued a Job for a task it does not control: %+v", q.after)
	}
}

// recordingQueue records what is added with a delay; nothing else is called.
type recordingQueue struct {
	workqueue.TypedRateLimitingInterface[reconcile.Request]
	after []queued
}

type queued struct {
	key types.NamespacedName
	d   time.Duration
}

func (q *recordingQueue) AddAfter(r reconcile.Request, d time.Duration) {
	q.after = append(q.after, queued{r.NamespacedName, d})
}
