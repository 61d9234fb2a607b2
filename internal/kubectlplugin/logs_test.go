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

// createTaskPod creates a pod of a run's batch Job as the JobTask controller's
// template labels it; index < 0 leaves out the task-index annotation.
func createTaskPod(t *testing.T, c client.Client, ns, node, job, task, name string, index int) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{costv1.LabelJob: job, costv1.LabelJobTask: task, costv1.LabelDataSource: "billing"}},
		Spec: corev1.PodSpec{
			NodeName:                     node,
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: taskpod.ContainerName, Image: "collector"}},
		},
	}
	if index >= 0 {
		pod.Annotations = map[string]string{costv1.AnnotationTaskIndex: strconv.Itoa(index)}
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
		"run-0-x1":     "collecting account 1\ncreated 24 records\n",
		"run-1-a":      "collecting account 2\nplugin unavailable\n",
		"run-1-b":      "collecting account 2\ncreated 24 records\n",
		"run-2-z":      "collecting account 3\ncreated 12 records\n",
		"other-0-oops": "not this run's\n",
	})
	createTaskPod(t, c, ns, node, "run", "run-0", "run-0-x1", 0)
	createTaskPod(t, c, ns, node, "run", "run-1", "run-1-a", 1)
	createTaskPod(t, c, ns, node, "run", "run-1", "run-1-b", 1)
	// A pod without the task-index annotation: its index comes from its JobTask.
	task := &costv1.JobTask{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "run-2", Labels: map[string]string{costv1.LabelJob: "run"}},
		Spec: costv1.JobTaskSpec{JobRef: costv1.LocalObjectReference{Name: "run"}, DataSourceRef: costv1.LocalObjectReference{Name: "billing"},
			Index: 2, TaskOptions: runtime.RawExtension{Raw: []byte(`{"account":"3"}`)}},
	}
	if err := c.Create(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	createTaskPod(t, c, ns, node, "run", "run-2", "run-2-z", -1)
	createTaskPod(t, c, ns, node, "other", "other-0", "other-0-oops", 0)

	tests := map[string]struct {
		args []string
		want string
	}{
		"every task, prefixed": {
			args: []string{"logs", "run"},
			want: "[task 0] collecting account 1\n[task 0] created 24 records\n" +
				"[task 1 attempt 1] collecting account 2\n[task 1 attempt 1] plugin unavailable\n" +
				"[task 1 attempt 2] collecting account 2\n[task 1 attempt 2] created 24 records\n" +
				"[task 2] collecting account 3\n[task 2] created 12 records\n",
		},
		"one task with one pod is not prefixed": {
			args: []string{"logs", "run", "--task", "0"},
			want: "collecting account 1\ncreated 24 records\n",
		},
		"one retried task tells its attempts apart": {
			args: []string{"logs", "run", "--task", "1", "--tail", "1"},
			want: "[task 1 attempt 1] plugin unavailable\n[task 1 attempt 2] created 24 records\n",
		},
		"a task found through its JobTask": {
			args: []string{"logs", "cajob/run", "--task", "2"},
			want: "collecting account 3\ncreated 12 records\n",
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
		"a batch Job's name": {[]string{"logs", "jobs.batch/run-0"}, `"jobs.batch/run-0" is not a cost-analysis Job`},
	} {
		t.Run(name, func(t *testing.T) {
			r := runPlugin(t, append([]string{"-n", ns}, tc.args...)...)
			if r.code != ExitError || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q", r.code, r.stderr, tc.want)
			}
		})
	}
}
