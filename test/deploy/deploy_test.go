// Package deploy installs the operator into a local control plane the way a
// platform team does (`make deploy`, `make undeploy`), runs the sample Job with the
// in-cluster manager and the sample plugin behind a Service, and takes the leader
// away in the middle of the run.
package deploy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/test/e2e/framework"
)

const (
	clusterName = "deploy"
	// What config/default installs.
	systemNS   = "cost-analysis-system"
	deployment = "cost-analysis-controller-manager"
	lease      = "cost-analysis-operator.costops.dev"
	// The namespace of the sample, its plugin Service and its run.
	ns = "deploy-e2e"
)

var (
	env        *framework.Env
	skipReason string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	name := clusterName
	if v := os.Getenv("DEPLOY_CLUSTER_NAME"); v != "" {
		name = v
	}
	start := time.Now()
	e, skip, err := framework.Start(context.Background(), framework.Options{
		ClusterName: name, InCluster: true, KeepLogs: os.Getenv("E2E_KEEP_LOGS") != "",
	})
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "deploy: setting up: %v\n", err)
		return 1
	case skip != "":
		skipReason = skip
		return m.Run()
	}
	env = e
	fmt.Fprintf(os.Stderr, "deploy: cluster up in %s\n", time.Since(start).Round(time.Millisecond))
	code := m.Run()
	if code != 0 {
		env.Fail()
	}
	env.Stop()
	if err := env.CheckClean(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "deploy: FAIL: %v\n", err)
		return 1
	}
	return code
}

func kubectl(t *testing.T, ctx context.Context, stdin string, args ...string) string {
	t.Helper()
	out, _, err := env.Kubectl.Run(ctx, stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// make runs a target of the project's Makefile against the cluster, as a user
// with KUBECONFIG set does.
func makeTarget(t *testing.T, ctx context.Context, target string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", target)
	cmd.Dir = env.Root
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Cluster.Kubeconfig())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", target, err, out)
	}
	return string(out)
}

// waitFor polls cond every 500 ms until it is true or the timeout passes.
func waitFor(t *testing.T, ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("waiting %s for %s: last error %v", timeout, what, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// leader is the holder of the leader election Lease: the pod name and the
// identity (pod name and process) of the manager that holds it.
func leader(ctx context.Context) (pod, identity string, err error) {
	out, _, err := env.Kubectl.Run(ctx, "", "-n", systemNS, "get", "lease", lease, "-o", "jsonpath={.spec.holderIdentity}")
	if err != nil {
		return "", "", err
	}
	identity = strings.TrimSpace(out)
	pod, _, _ = strings.Cut(identity, "_")
	return pod, identity, nil
}

func getJob(t *testing.T, ctx context.Context, name string) costv1.Job {
	t.Helper()
	var j costv1.Job
	if err := json.Unmarshal([]byte(kubectl(t, ctx, "", "-n", ns, "get", "jobs.cost-analysis.costops.dev", name, "-o", "json")), &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// signal sends sig to the manager container of pod through the real node's
// containerd: what a crash or a hang does to it, with no help from Kubernetes.
func signal(t *testing.T, ctx context.Context, pod, sig string) {
	t.Helper()
	id := strings.TrimSpace(kubectl(t, ctx, "", "-n", systemNS, "get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].containerID}"))
	id = strings.TrimPrefix(id, "containerd://")
	if id == "" {
		t.Fatalf("pod %s has no running container", pod)
	}
	cmd := exec.CommandContext(ctx, "ctr", "--address", env.Cluster.ContainerdSocket(), "--namespace", "k8s.io", "tasks", "kill", "--signal", sig, id)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ctr tasks kill --signal %s %s: %v\n%s", sig, id, err, out)
	}
}

const sample = `apiVersion: v1
kind: Secret
metadata:
  name: sample-billing-credentials
stringData:
  api_key: deploy-e2e
---
apiVersion: cost-analysis.costops.dev/v1
kind: DataSource
metadata:
  name: sample-billing
spec:
  plugin:
    # The sample plugin's Service: the manager and the task pods resolve it with
    # the cluster's DNS and reach it through kube-proxy.
    endpoint: sample-plugin.deploy-e2e.svc:50051
    secretRef:
      name: sample-billing-credentials
    options:
      accounts: ["111111111111", "222222222222"]
      required_secret_keys: ["api_key"]
      # Each task takes a few seconds, so the run is still going when its leader goes.
      stall_get_data_seconds: 3
  collector:
    image: localhost/costops/cost-analysis-collector:dev
    imagePullPolicy: IfNotPresent
    podSecurityContext:
      runAsNonRoot: true
      seccompProfile:
        type: RuntimeDefault
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities:
        drop: ["ALL"]
  jobDefaults:
    timeout: 15m
    parallelism: 2
    taskRetryLimit: 1
`

const job = `apiVersion: cost-analysis.costops.dev/v1
kind: Job
metadata:
  name: sample-billing-2026-09
spec:
  dataSourceRef:
    name: sample-billing
  start: "2026-09"
`

// The whole install: make deploy, both replicas Ready, the sample run by the
// in-cluster manager while its leader is frozen and then killed (the other
// replica takes the Lease and finishes the run: every task once, every record
// committed once), the HTTP API answered by both replicas, and make undeploy
// leaving nothing of the operator in the cluster.
func TestDeployRunsTheSampleAndSurvivesTheLossOfTheLeader(t *testing.T) {
	if env == nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true requires the deploy suite to run: %s", skipReason)
		}
		t.Skip(skipReason)
	}
	if !env.RealNode {
		if os.Getenv("CI") == "true" {
			t.Fatal("the cluster has no real node: the deploy test needs one under CI=true")
		}
		t.Skip("the cluster has no real node (it needs root and cgroups): the manager cannot run in it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	// make deploy, then wait for both replicas to be Ready.
	start := time.Now()
	t.Logf("make deploy:\n%s", makeTarget(t, ctx, "deploy"))
	kubectl(t, ctx, "", "-n", systemNS, "rollout", "status", "deployment/"+deployment, "--timeout=5m")
	deployToReady := time.Since(start)
	var first string
	waitFor(t, ctx, 2*time.Minute, "a leader", func() (bool, error) {
		p, _, err := leader(ctx)
		first = p
		return p != "", err
	})
	t.Logf("deploy to Ready (2 replicas): %s; leader %s after %s", deployToReady.Round(100*time.Millisecond), first,
		time.Since(start).Round(100*time.Millisecond))

	// The sample plugin behind a Service, and the sample's Secret and DataSource.
	kubectl(t, ctx, "", "create", "namespace", ns)
	kubectl(t, ctx, "", "-n", ns, "apply", "-k", filepath.Join(env.Root, "config", "sample-plugin"))
	kubectl(t, ctx, "", "-n", ns, "rollout", "status", "deployment/sample-plugin", "--timeout=3m")
	kubectl(t, ctx, sample, "-n", ns, "apply", "-f", "-")
	waitFor(t, ctx, 2*time.Minute, "the DataSource to be ready", func() (bool, error) {
		out, _, err := env.Kubectl.Run(ctx, "", "-n", ns, "get", "datasources.cost-analysis.costops.dev", "sample-billing",
			"-o", `jsonpath={.status.conditions[?(@.type=="PluginReady")].status}/{.status.conditions[?(@.type=="StoreReady")].status}`)
		return strings.TrimSpace(out) == "True/True", err
	})

	// The run, and its leader taken away once some tasks are done.
	kubectl(t, ctx, job, "-n", ns, "apply", "-f", "-")
	waitFor(t, ctx, 3*time.Minute, "the run's first finished task", func() (bool, error) {
		j := getJob(t, ctx, "sample-billing-2026-09")
		return j.Status.Tasks.Success > 0, nil
	})
	doomed, identity, err := leader(ctx)
	if err != nil || doomed == "" {
		t.Fatalf("leader: %q, %v", doomed, err)
	}
	mid := getJob(t, ctx, "sample-billing-2026-09")
	if mid.Status.Status != costv1.JobInProgress || mid.Status.Tasks.Success == mid.Status.TotalTasks {
		t.Fatalf("the run is not mid-way when its leader goes: %+v", mid.Status)
	}
	// Frozen first (it stops renewing, as a hung or cut-off replica does), so that
	// the other replica, not the same pod restarted, takes over; then killed.
	lost := time.Now()
	signal(t, ctx, doomed, "SIGSTOP")
	var successor, successorIdentity string
	waitFor(t, ctx, 2*time.Minute, "another replica to take the Lease", func() (bool, error) {
		p, id, err := leader(ctx)
		successor, successorIdentity = p, id
		return id != "" && id != identity, err
	})
	failOver := time.Since(lost)
	signal(t, ctx, doomed, "SIGKILL")
	if successor == doomed {
		t.Fatalf("the Lease went from %s to %s, the same pod", identity, successorIdentity)
	}
	t.Logf("fail-over: %s took the Lease %s after %s stopped (%d of %d tasks done then)", successor,
		failOver.Round(100*time.Millisecond), doomed, mid.Status.Tasks.Success, mid.Status.TotalTasks)

	waitFor(t, ctx, 5*time.Minute, "the run to end", func() (bool, error) {
		return getJob(t, ctx, "sample-billing-2026-09").Status.Status != costv1.JobInProgress, nil
	})
	end := getJob(t, ctx, "sample-billing-2026-09")
	const tasks, perTask = 8, 24 // 2 accounts x 2026-09..12, the sample's 24 records per task
	if end.Status.Status != costv1.JobSuccess || end.Status.TotalTasks != tasks || end.Status.Tasks.Success != tasks {
		t.Fatalf("the run ended %s: %+v", end.Status.Status, end.Status)
	}
	if end.Status.CreatedCount != tasks*perTask {
		t.Errorf("createdCount %d, want %d", end.Status.CreatedCount, tasks*perTask)
	}
	// Every task ran once: one JobTask and one pod each, on the run's one Indexed
	// batch Job, nothing made twice by the new leader.
	for kind, want := range map[string]int{"jobtasks.cost-analysis.costops.dev": tasks, "jobs.batch": 1, "pods": tasks} {
		out := kubectl(t, ctx, "", "-n", ns, "get", kind, "-l", "cost-analysis.costops.dev/job=sample-billing-2026-09", "-o", "name")
		if n := len(strings.Fields(out)); n != want {
			t.Errorf("%d %s of the run, want %d:\n%s", n, kind, want, out)
		}
	}
	// The records are in the store once, committed.
	conn, err := pgx.Connect(ctx, env.StoreDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var rows int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM cost WHERE domain = $1 AND job = $2`, ns, "sample-billing-2026-09").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != tasks*perTask {
		t.Errorf("%d committed rows in the store, want %d", rows, tasks*perTask)
	}

	// Both replicas serve the HTTP API (the frozen-then-killed one once it is back).
	kubectl(t, ctx, "", "-n", systemNS, "rollout", "status", "deployment/"+deployment, "--timeout=3m")
	kubectl(t, ctx, "", "-n", ns, "create", "serviceaccount", "finops")
	kubectl(t, ctx, "", "-n", ns, "create", "role", "finops", "--verb=get,list", "--resource=jobs.cost-analysis.costops.dev")
	kubectl(t, ctx, "", "-n", ns, "create", "rolebinding", "finops", "--role=finops", "--serviceaccount="+ns+":finops")
	token := strings.TrimSpace(kubectl(t, ctx, "", "-n", ns, "create", "token", "finops"))
	ips := strings.Fields(kubectl(t, ctx, "", "-n", systemNS, "get", "pods", "-l", "control-plane=controller-manager",
		"-o", "jsonpath={.items[*].status.podIP}"))
	if len(ips) != 2 {
		t.Fatalf("manager pod IPs %v, want 2", ips)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the API's self-signed certificate
	}}
	for _, ip := range ips {
		waitFor(t, ctx, time.Minute, "the HTTP API of "+ip, func() (bool, error) {
			body := strings.NewReader(`{"domain_id": "` + ns + `", "job_id": "sample-billing-2026-09"}`)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+ip+":8443/cost-analysis/v1/job/get", body)
			if err != nil {
				return false, err
			}
			req.Header.Set("X-Auth-Token", token)
			res, err := client.Do(req)
			if err != nil {
				return false, err
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusOK || !strings.Contains(string(b), `"status":"SUCCESS"`) {
				return false, fmt.Errorf("%s: %s", res.Status, b)
			}
			return true, nil
		})
	}

	// make undeploy leaves nothing of the operator.
	start = time.Now()
	makeTarget(t, ctx, "undeploy")
	t.Logf("make undeploy: %s", time.Since(start).Round(100*time.Millisecond))
	for _, q := range [][]string{
		{"get", "namespace", systemNS, "--ignore-not-found", "-o", "name"},
		{"get", "crd", "-o", "name"},
		{"get", "clusterroles,clusterrolebindings", "-o", "name", "-l", "app.kubernetes.io/part-of=cost-analysis-operator"},
		{"-n", ns, "get", "jobs.batch,pods", "-l", "cost-analysis.costops.dev/job", "-o", "name"},
	} {
		waitFor(t, ctx, 2*time.Minute, "nothing left: kubectl "+strings.Join(q, " "), func() (bool, error) {
			out, _, err := env.Kubectl.Run(ctx, "", q...)
			if err != nil {
				return false, err
			}
			var left []string
			for _, name := range strings.Fields(out) {
				if !strings.Contains(name, "cost-analysis") && q[1] == "crd" {
					continue
				}
				left = append(left, name)
			}
			if len(left) > 0 {
				return false, fmt.Errorf("left: %v", left)
			}
			return true, nil
		})
	}
	out := kubectl(t, ctx, "", "get", "clusterroles,clusterrolebindings", "-o", "name")
	for _, name := range strings.Fields(out) {
		if strings.Contains(name, "cost-analysis") {
			t.Errorf("%s is left after make undeploy", name)
		}
	}
}
