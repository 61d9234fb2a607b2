package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

func TestJobRunsManyTasksToSuccessWithinParallelism(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 30}`)
	kl := startKubelet(t, ns, func(task podTask) taskOutcome {
		o := success(task.Index + 1)
		o.runFor = 300 * time.Millisecond
		return o
	})
	startManager(t, testOptions())
	createJob(t, ns, "run", "billing", func(j *costv1.Job) { j.Spec.Parallelism = ptr.To[int32](4) })

	j := waitJob(t, ns, "run", costv1.JobSuccess, 60*time.Second)
	// 1 + 2 + ... + 30
	if j.Status.TotalTasks != 30 || j.Status.RemainedTasks != 0 || j.Status.CreatedCount != 465 || j.Status.Tasks.Success != 30 {
		t.Fatalf("status %+v", j.Status)
	}
	// What was committed: the store's rows and bytes, which the Job reports.
	if st := j.Status.Store; st == nil || st.CommittedRows == nil || *st.CommittedRows != 465 || st.CommittedBytes == nil || *st.CommittedBytes <= 0 || !st.Default {
		t.Fatalf("store status %+v, want 465 rows committed to the default store", st)
	}
	if n := storedRows(t, j); n != 465 {
		t.Fatalf("%d records in the store, want 465", n)
	}
	if c := meta.FindStatusCondition(j.Status.Conditions, costv1.ConditionStored); c == nil || c.Status != metav1.ConditionTrue || c.Reason != costv1.ReasonCommitted {
		t.Fatalf("Stored condition %+v", c)
	}
	if m := j.Status.Metering; m == nil || m.CollectedBytes != *j.Status.Store.CommittedBytes || m.ResourceSpecCode != "default" || m.TaskPodSeconds < 0 {
		t.Fatalf("metering %+v, want the %d bytes committed, on the default spec", m, *j.Status.Store.CommittedBytes)
	}
	if j.Status.StartedAt == nil || j.Status.FinishedAt == nil || j.Status.UpdatedAt == nil || j.Status.CreatedAt == nil {
		t.Fatalf("timestamps missing: %+v", j.Status)
	}
	if c := meta.FindStatusCondition(j.Status.Conditions, costv1.ConditionSucceeded); c == nil || c.Status != metav1.ConditionTrue || c.Reason != costv1.ReasonAllTasksSucceeded {
		t.Fatalf("Succeeded condition %+v", c)
	}
	if j.Status.ObservedGeneration != j.Generation {
		t.Fatalf("observedGeneration %d, generation %d", j.Status.ObservedGeneration, j.Generation)
	}
	if peak := kl.peakRunning(); peak > 4 || peak < 2 {
		t.Fatalf("peak of %d tasks running at once, parallelism 4", peak)
	}
	tasks := listTasks(t, ns, "run")
	if len(tasks) != 30 {
		t.Fatalf("%d JobTasks, want 30", len(tasks))
	}
	for _, task := range tasks {
		if task.Status.Status != costv1.TaskSuccess || task.Status.StartedAt == nil || task.Status.FinishedAt == nil || task.Status.BatchJobName != "run-b0" || task.Status.Attempts != 1 {
			t.Fatalf("task %s: %+v", task.Name, task.Status)
		}
		if want := fmt.Sprintf("run-%d", task.Spec.Index); task.Name != want {
			t.Fatalf("task name %s, want %s", task.Name, want)
		}
		if !metav1.IsControlledBy(&task, j) {
			t.Fatalf("task %s not controlled by the Job", task.Name)
		}
	}
	// The 30 tasks ran as the completion indexes of one Indexed batch Job, owned by
	// the Job, so deleting the Job deletes it (the garbage collector; see the e2e suite).
	var bjs []batchv1.Job
	eventually(t, 10*time.Second, func() error { // the run ends on its pods, before the batch Job records them
		bjs = listBatchJobs(t, ns, "run")
		if len(bjs) != 1 {
			return fmt.Errorf("%d batch Jobs, want 1 for 30 tasks", len(bjs))
		}
		if ok, done := finished(&bjs[0]); !ok || !done {
			return fmt.Errorf("batch Job not complete: %v", bjs[0].Status.Conditions)
		}
		return nil
	})
	for _, bj := range bjs {
		owner := metav1.GetControllerOf(&bj)
		if owner == nil || owner.Kind != "Job" || owner.UID != j.UID || !ptr.Deref(owner.BlockOwnerDeletion, false) {
			t.Fatalf("batch Job %s owner %+v", bj.Name, owner)
		}
		if ok, done := finished(&bj); bj.Status.CompletedIndexes != "0-29" || !ok || !done {
			t.Fatalf("batch Job %s: completedIndexes %q conditions %v", bj.Name, bj.Status.CompletedIndexes, bj.Status.Conditions)
		}
	}
	if j.Status.BatchJobs == nil || j.Status.BatchJobs.Count != 1 || j.Status.BatchJobs.Created != 1 || j.Status.BatchJobs.IndexesPerBatchJob != 1000 {
		t.Fatalf("status.batchJobs %+v", j.Status.BatchJobs)
	}
	ds := &costv1.DataSource{}
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "billing"}, ds); err != nil {
		t.Fatal(err)
	}
	if ds.Status.LastSynchronizedAt == nil || !ds.Status.LastSynchronizedAt.Equal(&j.CreationTimestamp) {
		t.Fatalf("lastSynchronizedAt %v, want the Job's creation time %v", ds.Status.LastSynchronizedAt, j.CreationTimestamp)
	}
	if ds.Status.LastJob == nil || ds.Status.LastJob.Name != "run" || ds.Status.LastJob.Status != costv1.JobSuccess {
		t.Fatalf("lastJob %+v", ds.Status.LastJob)
	}
}

func TestBatchJobFollowsTheTaskPodContract(t *testing.T) {
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 1}`, func(ds *costv1.DataSource) {
		ds.Spec.JobDefaults.TaskRetryLimit = ptr.To[int32](3)
		ds.Spec.Collector.ServiceAccountName = "collector"
		ds.Spec.Collector.NodeSelector = map[string]string{"pool": "batch"}
	})
	startKubelet(t, ns, func(podTask) taskOutcome { return taskOutcome{hang: true} })
	startManager(t, testOptions())
	createJob(t, ns, "run", "billing", func(j *costv1.Job) { j.Spec.Timeout = &metav1.Duration{Duration: 10 * time.Minute} })

	var bj batchv1.Job
	eventually(t, 30*time.Second, func() error {
		list := listBatchJobs(t, ns, "run")
		if len(list) != 1 {
			return fmt.Errorf("%d batch Jobs", len(list))
		}
		bj = list[0]
		return nil
	})
	if ptr.Deref(bj.Spec.BackoffLimitPerIndex, -1) != 3 || ptr.Deref(bj.Spec.CompletionMode, "") != batchv1.IndexedCompletion {
		t.Errorf("backoffLimitPerIndex %v mode %v, want 3 retries per index of an Indexed Job", bj.Spec.BackoffLimitPerIndex, bj.Spec.CompletionMode)
	}
	if d := ptr.Deref(bj.Spec.ActiveDeadlineSeconds, 0); d <= 0 || d > 601 {
		t.Errorf("activeDeadlineSeconds %d, want within the Job's 10m", d)
	}
	pod := bj.Spec.Template.Spec
	c := pod.Containers[0]
	if c.Name != taskpod.ContainerName || c.TerminationMessagePolicy != "File" || pod.RestartPolicy != "Never" {
		t.Errorf("container %s policy %s restart %s", c.Name, c.TerminationMessagePolicy, pod.RestartPolicy)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	for k, want := range map[string]string{
		taskpod.EnvJobID: "run", taskpod.EnvDataSourceID: "billing", taskpod.EnvDomainID: ns, taskpod.EnvTasksDir: taskpod.TasksMountPath,
		taskpod.EnvPluginEndpoint: pluginAddr, taskpod.EnvPluginOptions: `{"tasks":1}`, taskpod.EnvSecretDir: taskpod.SecretMountPath,
	} {
		if env[k] != want {
			t.Errorf("env %s=%q, want %q", k, env[k], want)
		}
	}
	if _, ok := env[taskpod.EnvJobTaskID]; ok {
		t.Errorf("the pod spec names a task (%s): it must be the same for every task of the batch Job", taskpod.EnvJobTaskID)
	}
	if len(pod.Volumes) != 2 || pod.Volumes[0].ConfigMap == nil || pod.Volumes[0].ConfigMap.Name != "run-b0" ||
		pod.Volumes[1].Secret == nil || pod.Volumes[1].Secret.SecretName != "creds" ||
		len(c.VolumeMounts) != 2 || c.VolumeMounts[0].MountPath != taskpod.TasksMountPath || c.VolumeMounts[1].MountPath != taskpod.SecretMountPath {
		t.Errorf("volumes %+v mounts %+v", pod.Volumes, c.VolumeMounts)
	}
	// The pod's task file: the batch Job's ConfigMap, key = completion index.
	cm := &corev1.ConfigMap{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "run-b0"}, cm); err != nil {
		t.Fatal(err)
	}
	task0 := &costv1.JobTask{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "run-0"}, task0); err != nil {
		t.Fatal(err)
	}
	if f, err := taskpod.ParseTask([]byte(cm.Data["0"])); err != nil || f.JobTaskID != "run-0" || f.JobTaskUID != string(task0.UID) ||
		!strings.Contains(string(f.Options), `"index"`) || !ptr.Deref(cm.Immutable, false) || !metav1.IsControlledBy(cm, &bj) && metav1.GetControllerOf(cm).Kind != "Job" {
		t.Errorf("task file %q (%v), ConfigMap %+v", cm.Data["0"], err, cm.ObjectMeta)
	}
	if pod.ServiceAccountName != "collector" || pod.NodeSelector["pool"] != "batch" {
		t.Errorf("pod template does not follow the collector spec: %+v", pod)
	}
	for _, l := range []string{costv1.LabelJob, costv1.LabelDataSource} {
		if bj.Labels[l] == "" || bj.Spec.Template.Labels[l] == "" {
			t.Errorf("label %s missing", l)
		}
	}
	// The task shows IN_PROGRESS with startedAt once its pod runs.
	eventually(t, 10*time.Second, func() error {
		task := &costv1.JobTask{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "run-0"}, task); err != nil {
			return err
		}
		if task.Status.Status != costv1.TaskInProgress || task.Status.StartedAt == nil {
			return fmt.Errorf("task status %+v", task.Status)
		}
		return nil
	})
}

func TestZeroTasksSucceedAtOnce(t *testing.T) {
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 0}`)
	startManager(t, testOptions())
	createJob(t, ns, "run", "billing")
	j := waitJob(t, ns, "run", costv1.JobSuccess, 20*time.Second)
	if j.Status.TotalTasks != 0 || j.Status.RemainedTasks != 0 || j.Status.FinishedAt == nil {
		t.Fatalf("status %+v", j.Status)
	}
}

func TestPlanFailures(t *testing.T) {
	tests := map[string]struct {
		endpoint  func() string
		options   string
		noSecret  bool
		noDS      bool
		wantCode  string
		wantInMsg string
	}{
		"a plugin error fails the Job with ERROR_GET_JOB_TASKS": {
			options: `{"fail_get_tasks": "billing API said no"}`, wantCode: costv1.ErrorGetJobTasks, wantInMsg: "billing API said no",
		},
		"malformed tasks fail the Job": {
			options: `{"malformed_tasks": true}`, wantCode: costv1.ErrorGetJobTasks, wantInMsg: "malformed",
		},
		"an unreachable plugin fails the Job after the retry window": {
			endpoint: func() string { return "127.0.0.1:1" }, options: `{}`, wantCode: costv1.ErrorPluginUnavailable,
		},
		"a missing Secret fails the Job": {
			options: `{}`, noSecret: true, wantCode: costv1.ErrorSecretNotFound, wantInMsg: "creds",
		},
		"a missing DataSource fails the Job": {
			noDS: true, wantCode: costv1.ErrorDataSourceNotFound, wantInMsg: "billing",
		},
	}
	startManager(t, testOptions())
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ns := newNamespace(t)
			if !tc.noSecret {
				createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
			}
			if !tc.noDS {
				ep := pluginAddr
				if tc.endpoint != nil {
					ep = tc.endpoint()
				}
				createDataSource(t, ns, "billing", ep, tc.options)
			}
			createJob(t, ns, "run", "billing")
			j := waitJob(t, ns, "run", costv1.JobFailure, 30*time.Second)
			if j.Status.ErrorCode != tc.wantCode || !strings.Contains(j.Status.ErrorMessage, tc.wantInMsg) {
				t.Fatalf("error %s %q, want %s containing %q", j.Status.ErrorCode, j.Status.ErrorMessage, tc.wantCode, tc.wantInMsg)
			}
			if c := meta.FindStatusCondition(j.Status.Conditions, costv1.ConditionSucceeded); c == nil || c.Status != metav1.ConditionFalse || c.Reason != costv1.ReasonPlanFailed {
				t.Fatalf("Succeeded condition %+v", c)
			}
			if n := len(listTasks(t, ns, "run")); n != 0 {
				t.Fatalf("%d JobTasks created by a failed plan", n)
			}
		})
	}
}

func TestTaskFailureUnderEachPolicy(t *testing.T) {
	startManager(t, testOptions())
	t.Run("the Fail policy ends the run and cancels the other tasks", func(t *testing.T) {
		ns := newNamespace(t)
		createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
		createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 6}`)
		startKubelet(t, ns, func(task podTask) taskOutcome {
			if task.Index == 0 {
				o := failure("ERROR_GET_DATA", "quota exceeded")
				o.runFor = time.Second
				return o
			}
			return taskOutcome{hang: true}
		})
		createJob(t, ns, "run", "billing", func(j *costv1.Job) { j.Spec.Parallelism = ptr.To[int32](3) })
		j := waitJob(t, ns, "run", costv1.JobFailure, 30*time.Second)
		if j.Status.ErrorCode != costv1.ErrorJobTask || !strings.Contains(j.Status.ErrorMessage, "quota exceeded") {
			t.Fatalf("error %s %q", j.Status.ErrorCode, j.Status.ErrorMessage)
		}
		assertStopped(t, ns, "run", 6, costv1.TaskCanceled)
		j = waitJob(t, ns, "run", costv1.JobFailure, time.Second)
		if j.Status.Tasks.Failure != 1 || j.Status.Tasks.Canceled != 5 || j.Status.RemainedTasks != 0 {
			t.Fatalf("counts %+v remained %d", j.Status.Tasks, j.Status.RemainedTasks)
		}
	})
	t.Run("the Continue policy lets the other tasks finish", func(t *testing.T) {
		ns := newNamespace(t)
		createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
		createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 5}`)
		startKubelet(t, ns, func(task podTask) taskOutcome {
			if task.Index == 1 {
				return failure("ERROR_GET_DATA", "bad month")
			}
			return success(10)
		})
		createJob(t, ns, "run", "billing", func(j *costv1.Job) {
			j.Spec.Parallelism = ptr.To[int32](2)
			j.Spec.FailurePolicy = costv1.FailurePolicyContinue
		})
		j := waitJob(t, ns, "run", costv1.JobFailure, 30*time.Second)
		if j.Status.Tasks.Success != 4 || j.Status.Tasks.Failure != 1 || j.Status.RemainedTasks != 0 {
			t.Fatalf("status %+v", j.Status)
		}
		// The 4 tasks that succeeded wrote 40 records; the failed run keeps none.
		assertRolledBack(t, j)
		if !strings.Contains(j.Status.ErrorMessage, "run-1") {
			t.Fatalf("error message %q does not name the failed task", j.Status.ErrorMessage)
		}
	})
}

// assertStopped waits until every task is finished, the open ones in state want, and
// no batch Job or pod of the Job is left running.
func assertStopped(t *testing.T, ns, job string, total int, want costv1.JobTaskState) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		tasks := listTasks(t, ns, job)
		if len(tasks) != total {
			return fmt.Errorf("%d tasks", len(tasks))
		}
		n := 0
		for _, task := range tasks {
			if !task.Status.Status.Finished() {
				return fmt.Errorf("task %s is %q", task.Name, task.Status.Status)
			}
			if task.Status.Status == want {
				n++
			}
		}
		if n == 0 {
			return fmt.Errorf("no task ended %s", want)
		}
		for _, bj := range listBatchJobs(t, ns, job) {
			if bj.DeletionTimestamp.IsZero() && !ptr.Deref(bj.Spec.Suspend, false) {
				if _, done := finished(&bj); !done {
					return fmt.Errorf("batch Job %s still runs", bj.Name)
				}
			}
		}
		for _, p := range listPods(t, ns, job) {
			if p.Status.Phase == "Running" {
				return fmt.Errorf("pod %s still running", p.Name)
			}
		}
		return nil
	})
}

func finished(bj *batchv1.Job) (bool, bool) {
	for _, c := range bj.Status.Conditions {
		if c.Status == "True" && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
			return c.Type == batchv1.JobComplete, true
		}
	}
	return false, false
}

func TestCancelWhileRunning(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 8}`)
	startKubelet(t, ns, func(task podTask) taskOutcome {
		if task.Index < 2 {
			return success(5)
		}
		return taskOutcome{hang: true}
	})
	startManager(t, testOptions())
	createJob(t, ns, "run", "billing", func(j *costv1.Job) { j.Spec.Parallelism = ptr.To[int32](4) })
	eventually(t, 30*time.Second, func() error {
		j := &costv1.Job{}
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "run"}, j); err != nil {
			return err
		}
		if j.Status.Tasks.Success != 2 || j.Status.Tasks.InProgress != 4 {
			return fmt.Errorf("counts %+v", j.Status.Tasks)
		}
		return nil
	})
	j := &costv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "run"}}
	if err := k8s.Patch(ctx, j, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"cancel":true}}`))); err != nil {
		t.Fatal(err)
	}
	waitJob(t, ns, "run", costv1.JobCanceled, 20*time.Second)
	assertStopped(t, ns, "run", 8, costv1.TaskCanceled)
	if n := len(listPods(t, ns, "run")); n != 2 {
		// the 4 running pods were deleted; the 2 that completed stay with their batch Job
		t.Fatalf("%d pods left, want only the 2 that completed", n)
	}
	j = waitJob(t, ns, "run", costv1.JobCanceled, time.Second)
	if j.Status.Tasks.Success != 2 || j.Status.Tasks.Canceled != 6 || j.Status.RemainedTasks != 0 {
		t.Fatalf("counts %+v remained %d", j.Status.Tasks, j.Status.RemainedTasks)
	}
	assertRolledBack(t, j) // the 2 tasks that completed had written 10 records
	if c := meta.FindStatusCondition(j.Status.Conditions, costv1.ConditionSucceeded); c == nil || c.Reason != costv1.ReasonCanceled {
		t.Fatalf("condition %+v", c)
	}
	finishedAt := j.Status.FinishedAt.DeepCopy()
	time.Sleep(1500 * time.Millisecond)
	j = waitJob(t, ns, "run", costv1.JobCanceled, time.Second)
	if !j.Status.FinishedAt.Equal(finishedAt) {
		t.Fatalf("finishedAt moved from %v to %v", finishedAt, j.Status.FinishedAt)
	}
}

func TestTimeoutIsEnforced(t *testing.T) {
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 3}`)
	startKubelet(t, ns, func(podTask) taskOutcome { return taskOutcome{hang: true} })
	startManager(t, testOptions())
	start := time.Now()
	createJob(t, ns, "run", "billing", func(j *costv1.Job) { j.Spec.Timeout = &metav1.Duration{Duration: 4 * time.Second} })
	eventually(t, 10*time.Second, func() error {
		if n := len(listBatchJobs(t, ns, "run")); n != 1 {
			return fmt.Errorf("%d batch Jobs", n)
		}
		return nil
	})
	job := &costv1.Job{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "run"}, job); err != nil {
		t.Fatal(err)
	}
	jobDeadline := job.Status.StartedAt.Add(4 * time.Second)
	for _, bj := range listBatchJobs(t, ns, "run") {
		d := time.Duration(ptr.Deref(bj.Spec.ActiveDeadlineSeconds, 0)) * time.Second
		// the batch Job's deadline, counted from its creation (a second's rounding each way)
		if d < time.Second || bj.CreationTimestamp.Add(d).After(jobDeadline.Add(time.Second)) {
			t.Fatalf("batch Job deadline %s from %s passes the Job's deadline %s", d, bj.CreationTimestamp, jobDeadline)
		}
	}
	j := waitJob(t, ns, "run", costv1.JobTimeout, 15*time.Second)
	if took := time.Since(start); took < 4*time.Second || took > 9*time.Second {
		t.Fatalf("timed out after %s, want ~4s", took)
	}
	if j.Status.ErrorCode != costv1.ErrorJobTimeout || j.Status.Tasks.Timeout != 3 {
		t.Fatalf("status %+v", j.Status)
	}
	assertStopped(t, ns, "run", 3, costv1.TaskTimeout)
}

func TestManagerRestartMidPlanAndMidRun(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	const total = 400
	createDataSource(t, ns, "billing", pluginAddr, fmt.Sprintf(`{"tasks": %d}`, total))
	kl := startKubelet(t, ns, func(podTask) taskOutcome {
		o := success(1)
		o.runFor = 300 * time.Millisecond
		return o
	})

	// A slow planner, stopped once part of the plan exists. The 400 tasks run on 8
	// batch Jobs of 50, which share the parallelism of 5 across the restarts.
	slow := testOptions()
	slow.PlanWorkers = 1
	slow.IndexesPerBatchJob = 50
	stop := startManager(t, slow)
	createJob(t, ns, "run", "billing", func(j *costv1.Job) { j.Spec.Parallelism = ptr.To[int32](5) })
	eventually(t, 30*time.Second, func() error {
		if n := len(listTasks(t, ns, "run")); n < 20 {
			return fmt.Errorf("%d tasks so far", n)
		}
		return nil
	})
	stop()
	mid := len(listTasks(t, ns, "run"))
	if mid >= total {
		t.Fatalf("the plan finished before the restart (%d tasks); make it slower", mid)
	}
	calls := plugin.Calls("get_tasks")

	// A new manager resumes the plan.
	o := testOptions()
	o.IndexesPerBatchJob = 20 // the layout was fixed by the plan: this changes nothing
	stop = startManager(t, o)
	eventually(t, 30*time.Second, func() error {
		j := &costv1.Job{}
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "run"}, j); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(j.Status.Conditions, costv1.ConditionPlanned) || j.Status.Tasks.Success < 10 {
			return fmt.Errorf("not planned or too few done: %+v", j.Status.Tasks)
		}
		return nil
	})
	if plugin.Calls("get_tasks") <= calls {
		t.Fatalf("the resumed plan did not call get_tasks again")
	}
	// And a third one takes over mid-run.
	stop()
	startManager(t, o)
	j := waitJob(t, ns, "run", costv1.JobSuccess, 120*time.Second)
	if j.Status.TotalTasks != total || j.Status.Tasks.Success != total || j.Status.CreatedCount != total {
		t.Fatalf("status %+v", j.Status)
	}
	if n := len(listTasks(t, ns, "run")); n != total {
		t.Fatalf("%d JobTasks, want %d", n, total)
	}
	if n := len(listBatchJobs(t, ns, "run")); n != total/50 || j.Status.BatchJobs.Count != total/50 {
		t.Fatalf("%d batch Jobs (status %+v), want %d", n, j.Status.BatchJobs, total/50)
	}
	if n := len(listPods(t, ns, "run")); n != total {
		t.Fatalf("%d pods, want one per task", n)
	}
	if peak := kl.peakRunning(); peak > 5 {
		t.Fatalf("peak of %d tasks running at once across restarts, parallelism 5", peak)
	}
}

func TestLostBatchJobFailsTheTask(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 1}`)
	startKubelet(t, ns, func(podTask) taskOutcome { return taskOutcome{hang: true} })
	startManager(t, testOptions())
	createJob(t, ns, "run", "billing")
	eventually(t, 20*time.Second, func() error {
		task := &costv1.JobTask{}
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "run-0"}, task); err != nil {
			return err
		}
		if task.Status.Status != costv1.TaskInProgress {
			return fmt.Errorf("task %q", task.Status.Status)
		}
		return nil
	})
	bj := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "run-b0"}}
	if err := k8s.Delete(ctx, bj, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	j := waitJob(t, ns, "run", costv1.JobFailure, 20*time.Second)
	if !strings.Contains(j.Status.ErrorMessage, costv1.ErrorBatchJobLost) {
		t.Fatalf("error %q", j.Status.ErrorMessage)
	}
}

func TestJobWaitsForADataSourceAppliedAfterIt(t *testing.T) {
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	o := testOptions()
	o.PlanRetryWindow = time.Minute
	startManager(t, o)
	createJob(t, ns, "run", "billing")
	eventually(t, 10*time.Second, func() error {
		j := &costv1.Job{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "run"}, j); err != nil {
			return err
		}
		c := meta.FindStatusCondition(j.Status.Conditions, costv1.ConditionPlanned)
		if j.Status.Status != costv1.JobInProgress || c == nil || c.Reason != costv1.ReasonWaitingForDataSource {
			return fmt.Errorf("status %s, Planned %+v", j.Status.Status, c)
		}
		return nil
	})
	createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 0}`)
	waitJob(t, ns, "run", costv1.JobSuccess, 10*time.Second)
}
