package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// A run of more tasks than one batch Job holds runs them on several, which share the
// Job's parallelism: never more pods at once than it, and the slots of one batch
// Job's tail go to the next.
func TestBatchJobsShareTheParallelism(t *testing.T) {
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 23}`)
	kl := startKubelet(t, ns, func(task podTask) taskOutcome {
		o := success(2)
		o.runFor = time.Duration(200+100*(task.Index%3)) * time.Millisecond
		return o
	})
	o := testOptions()
	o.IndexesPerBatchJob = 5
	startManager(t, o)
	createJob(t, ns, "run", "billing", func(j *costv1.Job) { j.Spec.Parallelism = ptr.To[int32](4) })
	j := waitJob(t, ns, "run", costv1.JobSuccess, 90*time.Second)
	if j.Status.Tasks.Success != 23 || j.Status.CreatedCount != 46 {
		t.Fatalf("status %+v", j.Status)
	}
	if b := j.Status.BatchJobs; b == nil || b.IndexesPerBatchJob != 5 || b.Count != 5 || b.Created != 5 {
		t.Fatalf("status.batchJobs %+v, want 5 batch Jobs of 5 tasks", b)
	}
	if peak := kl.peakRunning(); peak > 4 || peak < 3 {
		t.Fatalf("peak of %d pods running at once across the batch Jobs, parallelism 4", peak)
	}
	bjs := listBatchJobs(t, ns, "run")
	if len(bjs) != 5 {
		t.Fatalf("%d batch Jobs, want 5", len(bjs))
	}
	for _, bj := range bjs {
		if c := ptr.Deref(bj.Spec.Completions, 0); bj.Name == "run-b4" && c != 3 || bj.Name != "run-b4" && c != 5 {
			t.Fatalf("batch Job %s has %d completions", bj.Name, c)
		}
	}
	for _, task := range listTasks(t, ns, "run") {
		if want := fmt.Sprintf("run-b%d", task.Spec.Index/5); task.Status.BatchJobName != want || task.Status.Status != costv1.TaskSuccess {
			t.Fatalf("task %s: %+v, want SUCCESS on %s", task.Name, task.Status, want)
		}
	}
}

// With a queue (kueue.x-k8s.io/queue-name on the DataSource), the batch Jobs carry
// it and are created suspended; the run shows that it waits for admission, and runs
// once an admission controller (this test, here) resumes them. The wait counts
// against the Job's timeout only.
func TestAQueuedRunWaitsForAdmission(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 3}`, func(ds *costv1.DataSource) {
		ds.Labels = map[string]string{costv1.LabelQueueName: "team-a"}
	})
	startKubelet(t, ns, func(podTask) taskOutcome { return success(1) })
	startManager(t, testOptions())

	t.Run("admitted", func(t *testing.T) {
		createJob(t, ns, "run", "billing", func(j *costv1.Job) { j.Spec.Timeout = &metav1.Duration{Duration: time.Minute} })
		var bj batchv1.Job
		eventually(t, 20*time.Second, func() error {
			j := &costv1.Job{}
			if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "run"}, j); err != nil {
				return err
			}
			c := meta.FindStatusCondition(j.Status.Conditions, costv1.ConditionAdmitted)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != costv1.ReasonWaitingForAdmission || j.Status.BatchJobs.Suspended != 1 {
				return fmt.Errorf("Admitted %+v, batchJobs %+v", c, j.Status.BatchJobs)
			}
			bjs := listBatchJobs(t, ns, "run")
			if len(bjs) != 1 {
				return fmt.Errorf("%d batch Jobs", len(bjs))
			}
			bj = bjs[0]
			return nil
		})
		if !ptr.Deref(bj.Spec.Suspend, false) || bj.Labels[costv1.LabelQueueName] != "team-a" {
			t.Fatalf("batch Job suspend %v labels %v, want it suspended with the queue's label", bj.Spec.Suspend, bj.Labels)
		}
		time.Sleep(2 * time.Second)
		if pods := listPods(t, ns, "run"); len(pods) != 0 {
			t.Fatalf("%d pods of a batch Job not admitted", len(pods))
		}
		// The admission controller's part.
		if err := k8s.Patch(ctx, &bj, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"suspend":false}}`))); err != nil {
			t.Fatal(err)
		}
		j := waitJob(t, ns, "run", costv1.JobSuccess, 30*time.Second)
		if c := meta.FindStatusCondition(j.Status.Conditions, costv1.ConditionAdmitted); c == nil || c.Status != metav1.ConditionTrue {
			t.Fatalf("Admitted %+v after admission", c)
		}
		for _, task := range listTasks(t, ns, "run") {
			if task.Status.Attempts != 1 {
				t.Fatalf("task %s: %d attempts: the wait must not use up retries", task.Name, task.Status.Attempts)
			}
		}
	})

	t.Run("never admitted: the Job's timeout ends it", func(t *testing.T) {
		start := time.Now()
		createJob(t, ns, "late", "billing", func(j *costv1.Job) { j.Spec.Timeout = &metav1.Duration{Duration: 3 * time.Second} })
		j := waitJob(t, ns, "late", costv1.JobTimeout, 20*time.Second)
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("timed out after %s, want ~3s", took)
		}
		if j.Status.Tasks.Timeout != 3 {
			t.Fatalf("counts %+v, want 3 TIMEOUT", j.Status.Tasks)
		}
	})
}

// A run planned by a release that ran one batch Job per task has no layout: it ends
// at once with a message that says so, instead of waiting for its timeout.
func TestARunPlannedByAnEarlierReleaseEnds(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 2}`)
	j := createJob(t, ns, "old", "billing")
	now := metav1.Now()
	j.Status = costv1.JobStatus{Status: costv1.JobInProgress, StartedAt: &now, CreatedAt: &now, TotalTasks: 2, RemainedTasks: 2,
		Conditions: []metav1.Condition{{Type: costv1.ConditionPlanned, Status: metav1.ConditionTrue, Reason: costv1.ReasonTasksCreated,
			Message: "the plugin planned 2 tasks", LastTransitionTime: now}}}
	if err := k8s.Status().Update(ctx, j); err != nil {
		t.Fatal(err)
	}
	startManager(t, testOptions())
	j = waitJob(t, ns, "old", costv1.JobFailure, 20*time.Second)
	if j.Status.ErrorCode != costv1.ErrorPlanChanged || !strings.Contains(j.Status.ErrorMessage, "earlier release") {
		t.Fatalf("error %s %q", j.Status.ErrorCode, j.Status.ErrorMessage)
	}
}
