package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

// Task pods of the collector image run on the real node: each reads its task from the
// environment and the DataSource's Secret from the mounted volume (the plugin's
// get_data refuses a call without both of the Secret's keys), streams the records from
// the sample plugin on the host, and reports them in its termination message, which
// the operator turns into the JobTask's counts.
func TestRealTaskPodsCollect(t *testing.T) {
	requireRealNode(t)
	k := setup(t)
	t.Parallel()

	const records = 7
	k.createDataSource("billing", source{real: true,
		options:  map[string]any{"tasks": 3, "records_per_task": records, "required_secret_keys": []any{"api_key", "region_token"}},
		secret:   map[string]string{"region_token": "e2e-token-only-in-the-secret"},
		defaults: costv1.JobDefaults{Parallelism: ptr[int32](3)}})
	k.createJob("run", "billing")
	k.wait("cajob/run", "{.status.status}", "SUCCESS", 2*time.Minute)

	j := k.job("run")
	if j.Status.TotalTasks != 3 || j.Status.Tasks.Success != 3 || j.Status.CreatedCount != 3*records {
		t.Errorf("status: totalTasks %d, tasks %+v, createdCount %d; want 3 tasks, all SUCCESS, %d records",
			j.Status.TotalTasks, j.Status.Tasks, j.Status.CreatedCount, 3*records)
	}
	for _, task := range k.jobTasks("run") {
		if task.Status.CreatedCount != records || task.Status.CollectedBytes <= 0 || task.Status.Attempts != 1 {
			t.Errorf("%s: createdCount %d, collectedBytes %d, attempts %d; want %d records, some bytes, 1 attempt",
				task.Name, task.Status.CreatedCount, task.Status.CollectedBytes, task.Status.Attempts, records)
		}
	}

	pods := k.pods("run")
	if len(pods) != 3 {
		t.Fatalf("%d task pods, want 3", len(pods))
	}
	for _, p := range pods {
		if p.Spec.NodeName != env.Cluster.RealNodeName() {
			t.Errorf("pod %s ran on %q, want the real node %s", p.Name, p.Spec.NodeName, env.Cluster.RealNodeName())
		}
		if len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].State.Terminated == nil {
			t.Errorf("pod %s: container statuses %+v, want one terminated container", p.Name, p.Status.ContainerStatuses)
			continue
		}
		st := p.Status.ContainerStatuses[0]
		res, err := taskpod.ParseResult(st.State.Terminated.Message)
		if err != nil || res.CreatedCount == nil || *res.CreatedCount != records || st.State.Terminated.ExitCode != 0 {
			t.Errorf("pod %s: exit %d, termination message %q (%v); want exit 0 and created_count %d",
				p.Name, st.State.Terminated.ExitCode, st.State.Terminated.Message, err, records)
		}
		if !strings.HasPrefix(st.ImageID, "sha256:") && !strings.Contains(st.ImageID, "@sha256:") {
			t.Errorf("pod %s: imageID %q, want the digest of the image containerd ran", p.Name, st.ImageID)
		}
		// The Secret reaches the pod as a volume, never through its spec.
		for _, c := range p.Spec.Containers {
			for _, e := range c.Env {
				if strings.Contains(e.Value, "e2e-token-only-in-the-secret") {
					t.Errorf("pod %s: env %s carries the secret's value", p.Name, e.Name)
				}
			}
		}
	}
	// The kubelet's API serves the pod's log to kubectl (the API server reaches it at
	// its InternalIP, authenticated): the collector's JSON log line of the task.
	out := k.kubectl("logs", pods[0].Name)
	if !strings.Contains(out, `"job_task_id"`) || !strings.Contains(out, "run-") {
		t.Errorf("kubectl logs %s = %q, want the collector's log of its task", pods[0].Name, out)
	}
}

// A task pod killed mid-run (its collector gets SIGKILL on the node, as when the
// kernel's OOM killer strikes) leaves no termination message; its batch Job starts a
// new pod within the task's retry limit, and the task ends SUCCESS on its second
// attempt with the second pod's count, its rows in the store once.
func TestRealTaskPodKilledMidRun(t *testing.T) {
	requireRealNode(t)
	k := setup(t)
	t.Parallel()

	const records = 5
	k.createDataSource("billing", source{real: true,
		options:  map[string]any{"tasks": 1, "records_per_task": records, "stall_get_data_seconds": 8},
		defaults: costv1.JobDefaults{TaskRetryLimit: ptr[int32](1)}})
	k.createJob("run", "billing")

	// The collector is running (stalled in get_data): find its process on the node.
	var pid int
	k.eventually(90*time.Second, func() error {
		pods := k.pods("run")
		if len(pods) != 1 || len(pods[0].Status.ContainerStatuses) != 1 || pods[0].Status.ContainerStatuses[0].State.Running == nil {
			return fmt.Errorf("no running task pod yet")
		}
		id := strings.TrimPrefix(pods[0].Status.ContainerStatuses[0].ContainerID, "containerd://")
		var err error
		pid, err = containerPid(id)
		return err
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing the collector (pid %d): %v", pid, err)
	}
	t.Logf("killed the collector of the first pod (pid %d)", pid)

	k.wait("cajob/run", "{.status.status}", "SUCCESS", 2*time.Minute)
	tasks := k.jobTasks("run")
	if len(tasks) != 1 || tasks[0].Status.Status != costv1.TaskSuccess || tasks[0].Status.Attempts != 2 || tasks[0].Status.CreatedCount != records {
		t.Fatalf("tasks %+v; want one task, SUCCESS on attempt 2 with %d records", tasks, records)
	}
	var killed, succeeded int
	for _, p := range k.pods("run") {
		switch p.Status.Phase {
		case corev1.PodFailed:
			killed++
			if st := p.Status.ContainerStatuses; len(st) != 1 || st[0].State.Terminated == nil || st[0].State.Terminated.ExitCode != 137 {
				t.Errorf("killed pod %s: %+v, want exit code 137", p.Name, st)
			}
		case corev1.PodSucceeded:
			succeeded++
		}
	}
	if killed != 1 || succeeded != 1 {
		t.Errorf("%d failed and %d succeeded pods, want 1 and 1", killed, succeeded)
	}
	// Two attempts, the task's rows once.
	j := k.job("run")
	if rows, _, runRows := storeTotals(t, k.ns, "billing", string(j.UID)); rows != records || runRows != records || j.Status.CreatedCount != records {
		t.Errorf("store: %d committed rows, %d rows of the run, createdCount %d; want %d", rows, runRows, j.Status.CreatedCount, records)
	}
}

// containerPid is the host pid of a running container of the real node, from its
// containerd.
func containerPid(id string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ctr", "--address", env.Cluster.ContainerdSocket(), "--namespace", "k8s.io",
		"tasks", "ls").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("ctr tasks ls: %w: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == id && f[2] == "RUNNING" {
			return strconv.Atoi(f[1])
		}
	}
	return 0, fmt.Errorf("container %s is not running in containerd:\n%s", id, out)
}
