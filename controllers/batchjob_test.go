package controllers

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

func TestPodSecurityContext(t *testing.T) {
	cases := map[string]struct {
		in      *corev1.PodSecurityContext
		fsGroup int64
		user    *int64
	}{
		"no context gets the collector image's group": {in: nil, fsGroup: taskpod.SecretGroup},
		"a context without fsGroup keeps its fields and gets the group": {
			in: &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000)}, fsGroup: taskpod.SecretGroup, user: ptr.To[int64](1000)},
		"the template's own fsGroup wins": {in: &corev1.PodSecurityContext{FSGroup: ptr.To[int64](2000)}, fsGroup: 2000},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var before *corev1.PodSecurityContext
			if tc.in != nil {
				before = tc.in.DeepCopy()
			}
			got := podSecurityContext(tc.in)
			if got.FSGroup == nil || *got.FSGroup != tc.fsGroup {
				t.Errorf("fsGroup %v, want %d", got.FSGroup, tc.fsGroup)
			}
			if tc.user != nil && (got.RunAsUser == nil || *got.RunAsUser != *tc.user) {
				t.Errorf("runAsUser %v, want %d", got.RunAsUser, *tc.user)
			}
			if tc.in != nil && (tc.in.FSGroup == nil) != (before.FSGroup == nil) {
				t.Errorf("the template's context was changed: %+v", tc.in)
			}
		})
	}
}

func TestBatchJobName(t *testing.T) {
	if got := BatchJobName("run", 3); got != "run-b3" {
		t.Fatalf("got %s", got)
	}
	long := strings.Repeat("a", 60)
	a, b := BatchJobName(long, 1), BatchJobName(long+"x", 1)
	if len(a) > 63 || len(BatchJobName(long, 12345)) > 63 || a == b || a == BatchJobName(long, 2) {
		t.Fatalf("got %q and %q", a, b)
	}
}

func TestLayout(t *testing.T) {
	l := layout{per: 4, tasks: 10}
	if l.count() != 3 || l.size(0) != 4 || l.size(2) != 2 || l.first(2) != 8 {
		t.Fatalf("count %d sizes %d %d first %d", l.count(), l.size(0), l.size(2), l.first(2))
	}
	if k, ci := l.place(9); k != 2 || ci != 1 {
		t.Fatalf("task 9 at %d/%d", k, ci)
	}
	if (layout{per: 4, tasks: 0}).count() != 0 {
		t.Fatal("a plan of no tasks needs no batch Job")
	}
	cases := map[string]struct {
		sizes  []int
		perJob int
		want   int32
	}{
		"small tasks fill a batch Job up to the flag":          {sizes: []int{200, 300}, perJob: 1000, want: 1000},
		"large tasks make smaller batch Jobs":                  {sizes: []int{100, 64 << 10}, perJob: 1000, want: 8},
		"a task larger than the budget gets a batch Job alone": {sizes: []int{600 << 10}, perJob: 1000, want: 1},
		"the API's limit on completions holds":                 {sizes: []int{1}, perJob: 1 << 20, want: maxIndexesPerBatchJob},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := planLayout(tc.sizes, tc.perJob).per; got != tc.want {
				t.Fatalf("per %d, want %d", got, tc.want)
			}
		})
	}
}

func TestIndexSet(t *testing.T) {
	s := parseIndexSet("0,3-5,9")
	if s.len() != 5 || !s.has(4) || s.has(2) || !s.has(9) || s.has(10) {
		t.Fatalf("%v: len %d", s, s.len())
	}
	if parseIndexSet("").len() != 0 {
		t.Fatal("an empty list has indexes")
	}
}

func TestShareParallelism(t *testing.T) {
	cases := map[string]struct {
		limit int32
		jobs  []batchJobShare
		want  []int32
		next  int32
	}{
		"one batch Job gets the whole parallelism": {limit: 10, jobs: []batchJobShare{{Remaining: 100}}, want: []int32{10}, next: 0},
		"a batch Job's tail frees slots for the next": {limit: 10,
			jobs: []batchJobShare{{Remaining: 3, Active: 3}, {Remaining: 100}}, want: []int32{3, 7}, next: 0},
		"slots left over go to a batch Job not created yet": {limit: 10,
			jobs: []batchJobShare{{Remaining: 2, Active: 2}}, want: []int32{2}, next: 8},
		"a smaller parallelism drains instead of killing running pods": {limit: 2,
			jobs: []batchJobShare{{Remaining: 5, Active: 4}, {Remaining: 5, Active: 1}}, want: []int32{4, 1}, next: 0},
		"an admitted batch Job keeps its parallelism": {limit: 10,
			jobs: []batchJobShare{{Remaining: 50, Fixed: true, Parallelism: 6}, {Remaining: 50}}, want: []int32{6, 4}, next: 0},
		"finished batch Jobs take nothing": {limit: 5,
			jobs: []batchJobShare{{}, {Remaining: 9}}, want: []int32{0, 5}, next: 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, next := shareParallelism(tc.limit, tc.jobs)
			if !slices.Equal(got, tc.want) || next != tc.next {
				t.Fatalf("shares %v next %d, want %v %d", got, next, tc.want, tc.next)
			}
			var sum, active int32
			for i, g := range got {
				sum += g
				active += tc.jobs[i].Active
				if g < min(tc.jobs[i].Active, tc.jobs[i].Remaining) && !tc.jobs[i].Fixed {
					t.Fatalf("batch Job %d gets %d, fewer than the %d pods it runs", i, g, tc.jobs[i].Active)
				}
			}
			if sum > max(tc.limit, active) {
				t.Fatalf("shares %v pass the parallelism %d", got, tc.limit)
			}
		})
	}
}

func TestBuildBatchJob(t *testing.T) {
	job := &costv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "run", Namespace: "ns", UID: "u1"},
		Spec: costv1.JobSpec{DataSourceRef: costv1.LocalObjectReference{Name: "billing"}}}
	job.Status.Store = &costv1.JobStoreStatus{SecretName: "run-store"}
	ds := &costv1.DataSource{ObjectMeta: metav1.ObjectMeta{Name: "billing"}}
	ds.Spec.Collector.Env = []corev1.EnvVar{{Name: "JOB_COMPLETION_INDEX", Value: "7"}, {Name: "MINE", Value: "x"}}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	in := batchJobInput{Job: job, DS: ds, Settings: runSettings{Retries: 2, Policy: costv1.FailurePolicyFail},
		Layout: layout{per: 100, tasks: 250}, K: 2, Parallelism: 7, Deadline: now.Add(90 * time.Second), Now: now, DefaultImage: "img"}
	bj := buildBatchJob(in)
	s := bj.Spec
	if *s.CompletionMode != batchv1.IndexedCompletion || *s.Completions != 50 || *s.Parallelism != 7 || *s.BackoffLimitPerIndex != 2 ||
		s.MaxFailedIndexes == nil || *s.MaxFailedIndexes != 0 || *s.ActiveDeadlineSeconds != 90 || s.Suspend != nil {
		t.Fatalf("spec %+v", s)
	}
	if bj.Name != "run-b2" || bj.Annotations[costv1.AnnotationFirstTaskIndex] != "200" || s.Template.Annotations[costv1.AnnotationFirstTaskIndex] != "200" {
		t.Fatalf("name %s annotations %v / %v", bj.Name, bj.Annotations, s.Template.Annotations)
	}
	env := map[string]string{}
	for _, e := range s.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if _, ok := env["JOB_COMPLETION_INDEX"]; ok || env["MINE"] != "x" || env[taskpod.EnvTasksDir] != taskpod.TasksMountPath || env[taskpod.EnvJobTaskID] != "" {
		t.Fatalf("env %v: the template may not set the completion index, and no task is in the env", env)
	}
	if v := s.Template.Spec.Volumes[0]; v.ConfigMap == nil || v.ConfigMap.Name != "run-b2" {
		t.Fatalf("volumes %+v", s.Template.Spec.Volumes)
	}

	in.Settings.Policy, in.Queue = costv1.FailurePolicyContinue, "team-a"
	bj = buildBatchJob(in)
	if bj.Spec.MaxFailedIndexes != nil || bj.Spec.Suspend == nil || !*bj.Spec.Suspend || bj.Labels[costv1.LabelQueueName] != "team-a" {
		t.Fatalf("Continue with a queue: %+v labels %v", bj.Spec, bj.Labels)
	}
}

func TestTaskConfigMapOfAHundredThousandTaskRunStaysSmall(t *testing.T) {
	job := &costv1.Job{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("j", 40), Namespace: "ns", UID: "u"}}
	tasks := make([]*costv1.JobTask, 100000)
	for i := range tasks {
		tasks[i] = &costv1.JobTask{ObjectMeta: metav1.ObjectMeta{Name: JobTaskName(job.Name, i)},
			Spec: costv1.JobTaskSpec{Index: int32(i), TaskOptions: runtime.RawExtension{Raw: []byte(`{"account_id":"123456789012","month":"2026-11","region":"ap-northeast-2"}`)}}}
	}
	l := planLayout(taskFileSizes(tasks), DefaultIndexesPerBatchJob)
	if l.count() != 100 {
		t.Fatalf("%d batch Jobs for 100,000 tasks, want 100", l.count())
	}
	for k := range l.count() {
		for i := l.first(k); i < l.first(k)+l.size(k); i++ {
			tasks[i].UID = "00000000-0000-0000-0000-000000000000"
		}
		cm := buildTaskConfigMap(job, k, tasks[l.first(k):l.first(k)+l.size(k)])
		b, _ := json.Marshal(cm)
		if len(b) > 256<<10 {
			t.Fatalf("task ConfigMap %d is %d bytes", k, len(b))
		}
		if k == 0 {
			t.Logf("task ConfigMap of %d tasks: %d bytes (the limit is 1 MiB)", l.size(k), len(b))
			got, err := taskpod.ParseTask([]byte(cm.Data["5"]))
			if err != nil || got.JobTaskID != JobTaskName(job.Name, 5) {
				t.Fatalf("key 5: %+v %v", got, err)
			}
		}
	}
	bj := buildBatchJob(batchJobInput{Job: job, DS: &costv1.DataSource{}, Layout: l, K: 99, Parallelism: 10})
	b, _ := json.Marshal(bj)
	if len(b) > 8<<10 {
		t.Fatalf("batch Job of a 100,000-task run is %d bytes", len(b))
	}
}
