package kubectlplugin

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

// fakeKubelet serves /containerLogs/{namespace}/{pod}/{container} the way a kubelet
// does, so that the kube-apiserver's pods/log proxy reaches it; a Node of its own
// points the apiserver at it.
func fakeKubelet(t *testing.T, c client.Client, logs map[string]string) (node string) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/containerLogs/"), "/")
		if len(parts) != 3 || parts[2] != taskpod.ContainerName {
			http.Error(w, "unexpected path "+r.URL.Path, http.StatusNotFound)
			return
		}
		text, ok := logs[parts[1]]
		if !ok {
			http.Error(w, "container not started", http.StatusBadRequest)
			return
		}
		lines := strings.SplitAfter(text, "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		if n, err := strconv.Atoi(r.URL.Query().Get("tailLines")); err == nil && n < len(lines) {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprint(w, strings.Join(lines, ""))
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)

	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{GenerateName: "fake-kubelet-"}}
	if err := c.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	n.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(p)
	if err := c.Status().Update(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), n) })
	return n.Name
}

// indexedPod is a pod of a run's Indexed batch Job as Kubernetes makes it from the
// operator's template: the job label and first task index from the template, the
// completion index from the Job controller.
func indexedPod(job string, first, completion int) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Labels: map[string]string{costv1.LabelJob: job, costv1.LabelDataSource: "billing"},
		Annotations: map[string]string{
			costv1.AnnotationFirstTaskIndex:   strconv.Itoa(first),
			taskpod.AnnotationCompletionIndex: strconv.Itoa(completion),
		},
	}}
}

// perTaskPod is a pod of the per-task engine (one batch Job per JobTask): the
// job-task label, and the task-index annotation unless index < 0.
func perTaskPod(job, task string, index int) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Labels: map[string]string{costv1.LabelJob: job, costv1.LabelJobTask: task, costv1.LabelDataSource: "billing"},
	}}
	if index >= 0 {
		pod.Annotations = map[string]string{costv1.AnnotationTaskIndex: strconv.Itoa(index)}
	}
	return pod
}

// createTaskPod creates pod, named name, on node with a collector container.
func createTaskPod(t *testing.T, c client.Client, ns, node, name string, pod *corev1.Pod) {
	t.Helper()
	pod.Namespace, pod.Name = ns, name
	pod.Spec = corev1.PodSpec{
		NodeName:                     node,
		RestartPolicy:                corev1.RestartPolicyNever,
		AutomountServiceAccountToken: ptr.To(false),
		Containers:                   []corev1.Container{{Name: taskpod.ContainerName, Image: "collector"}},
	}
	if err := c.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
}

func TestLogs(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c)
	createDataSource(t, c, ns, "billing")
	createJob(t, c, ns, "run", "billing")
	createJob(t, c, ns, "quiet", "billing")
	node := fakeKubelet(t, c, map[string]string{
		"run-b0-0-x1":     "collecting account 1\ncreated 24 records\n",
		"run-b0-1-a":      "collecting account 2\nplugin unavailable\n",
		"run-b0-1-b":      "collecting account 2\ncreated 24 records\n",
		"run-b1-0-q":      "collecting account 3\ncreated 12 records\n",
		"run-3-old":       "collecting account 4\ncreated 5 records\n",
		"run-4-z":         "collecting account 5\ncreated 6 records\n",
		"other-b0-0-oops": "not this run's\n",
	})
	// Two Indexed batch Jobs: run-b0 runs tasks 0 and 1 (task 1 retried: a second
	// pod of the same completion index), run-b1 from task 2 on.
	createTaskPod(t, c, ns, node, "run-b0-0-x1", indexedPod("run", 0, 0))
	createTaskPod(t, c, ns, node, "run-b0-1-a", indexedPod("run", 0, 1))
	createTaskPod(t, c, ns, node, "run-b0-1-b", indexedPod("run", 0, 1))
	createTaskPod(t, c, ns, node, "run-b1-0-q", indexedPod("run", 2, 0))
	// Pods of the per-task engine, left from before an upgrade: one with the
	// task-index annotation, one without, whose index comes from its JobTask.
	createTaskPod(t, c, ns, node, "run-3-old", perTaskPod("run", "run-3", 3))
	task := &costv1.JobTask{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "run-4", Labels: map[string]string{costv1.LabelJob: "run"}},
		Spec: costv1.JobTaskSpec{JobRef: costv1.LocalObjectReference{Name: "run"}, DataSourceRef: costv1.LocalObjectReference{Name: "billing"},
			Index: 4, TaskOptions: runtime.RawExtension{Raw: []byte(`{"account":"5"}`)}},
	}
	if err := c.Create(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	createTaskPod(t, c, ns, node, "run-4-z", perTaskPod("run", "run-4", -1))
	createTaskPod(t, c, ns, node, "other-b0-0-oops", indexedPod("other", 0, 0))

	tests := map[string]struct {
		args []string
		want string
	}{
		"every task, prefixed": {
			args: []string{"logs", "run"},
			want: "[task 0] collecting account 1\n[task 0] created 24 records\n" +
				"[task 1 attempt 1] collecting account 2\n[task 1 attempt 1] plugin unavailable\n" +
				"[task 1 attempt 2] collecting account 2\n[task 1 attempt 2] created 24 records\n" +
				"[task 2] collecting account 3\n[task 2] created 12 records\n" +
				"[task 3] collecting account 4\n[task 3] created 5 records\n" +
				"[task 4] collecting account 5\n[task 4] created 6 records\n",
		},
		"one task with one pod is not prefixed": {
			args: []string{"logs", "run", "--task", "0"},
			want: "collecting account 1\ncreated 24 records\n",
		},
		"one retried task tells its attempts apart": {
			args: []string{"logs", "run", "--task", "1", "--tail", "1"},
			want: "[task 1 attempt 1] plugin unavailable\n[task 1 attempt 2] created 24 records\n",
		},
		"a task of the second batch Job: its first task index plus its completion index": {
			args: []string{"logs", "run", "--task", "2"},
			want: "collecting account 3\ncreated 12 records\n",
		},
		"a per-task engine's pod by its task-index annotation": {
			args: []string{"logs", "run", "--task", "3"},
			want: "collecting account 4\ncreated 5 records\n",
		},
		"a per-task engine's pod found through its JobTask": {
			args: []string{"logs", "cajob/run", "--task", "4"},
			want: "collecting account 5\ncreated 6 records\n",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := runPlugin(t, append([]string{"-n", ns}, tc.args...)...)
			if r.code != 0 || r.stdout != tc.want {
				t.Errorf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, tc.want)
			}
		})
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"a task with no pod": {[]string{"logs", "run", "--task", "9"}, `job "run" has no pod for task 9`},
		"a run with no pods": {[]string{"logs", "quiet"}, `job "quiet" has no task pods`},
		"a negative task":    {[]string{"logs", "run", "--task", "-1"}, "--task -1: a task index is 0 or more"},
		"a Job that is not":  {[]string{"logs", "nope"}, `job "nope" not found`},
		"a batch Job's name": {[]string{"logs", "jobs.batch/run-b0"}, `"jobs.batch/run-b0" is not a cost-analysis Job`},
	} {
		t.Run(name, func(t *testing.T) {
			r := runPlugin(t, append([]string{"-n", ns}, tc.args...)...)
			if r.code != ExitError || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q", r.code, r.stderr, tc.want)
			}
		})
	}
}

func TestPodTaskIndex(t *testing.T) {
	cases := map[string]struct {
		pod  *corev1.Pod
		want int32
		ok   bool
	}{
		"an Indexed batch Job's pod":                     {indexedPod("run", 500, 7), 507, true},
		"a per-task engine's pod":                        {perTaskPod("run", "run-3", 3), 3, true},
		"a per-task engine's pod without its index":      {perTaskPod("run", "run-3", -1), 0, false},
		"a pod with only its completion index":           {&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{taskpod.AnnotationCompletionIndex: "7"}}}, 0, false},
		"the Indexed Job's annotations win over the old": {withAnnotation(indexedPod("run", 500, 7), costv1.AnnotationTaskIndex, "9"), 507, true},
		"a negative task-index annotation":               {withAnnotation(perTaskPod("run", "run-3", 3), costv1.AnnotationTaskIndex, "-2"), 0, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := podTaskIndex(tc.pod.Annotations)
			if got != tc.want || ok != tc.ok {
				t.Errorf("podTaskIndex = %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func withAnnotation(pod *corev1.Pod, key, value string) *corev1.Pod {
	pod.Annotations[key] = value
	return pod
}
