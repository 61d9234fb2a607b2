package kubectlplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	corev1 "k8s.io/api/core/v1"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/metering"
	"github.com/costops/cost-analysis-operator/internal/testenv"
)

// The envtest control plane (a real kube-apiserver and etcd with the CRDs) starts
// on the first test that needs it, so that the pure tests run without it.
var (
	clusterOnce sync.Once
	clusterEnv  *testenv.Env
	clusterErr  error
	kubeconfig  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if clusterEnv != nil {
		_ = clusterEnv.Stop()
	}
	if kubeconfig != "" {
		_ = os.RemoveAll(filepath.Dir(kubeconfig))
	}
	os.Exit(code)
}

// cluster is the envtest control plane and a direct client of it.
func cluster(t *testing.T) client.Client {
	t.Helper()
	clusterOnce.Do(func() {
		if clusterEnv, clusterErr = testenv.Start(); clusterErr != nil {
			return
		}
		kubeconfig, clusterErr = writeKubeconfig(clusterEnv)
	})
	if clusterErr != nil {
		t.Fatalf("starting envtest: %v", clusterErr)
	}
	return clusterEnv.Client
}

// writeKubeconfig writes a kubeconfig for envtest's admin user, whose context has
// no namespace: the tests say --namespace, as a user would.
func writeKubeconfig(e *testenv.Env) (string, error) {
	dir, err := os.MkdirTemp("", "kubectlplugin-")
	if err != nil {
		return "", err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: e.Config.Host, CertificateAuthorityData: e.Config.CAData}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: e.Config.CertData, ClientKeyData: e.Config.KeyData, Token: e.Config.BearerToken}
	cfg.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	// A second context that points at the same cluster, to check that --context is honored.
	cfg.Contexts["other"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin", Namespace: "ctx-namespace"}
	cfg.CurrentContext = "envtest"
	path := filepath.Join(dir, "kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}

// result is what one run of the plugin did.
type result struct {
	stdout, stderr string
	code           int
}

// syncBuffer is a buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// invocation runs the plugin's root command as kubectl would, with the envtest
// kubeconfig, in-process.
type invocation struct {
	clock        clock.WithTicker
	watchTimeout time.Duration
	terminal     func(io.Writer) (bool, int)
	stdout       *syncBuffer
	stderr       *syncBuffer
}

func (in invocation) run(ctx context.Context, args ...string) result {
	if in.stdout == nil {
		in.stdout = &syncBuffer{}
	}
	if in.stderr == nil {
		in.stderr = &syncBuffer{}
	}
	if in.terminal == nil {
		in.terminal = func(io.Writer) (bool, int) { return false, 0 }
	}
	cmd := NewCommand(Options{
		Streams:      genericiooptions.IOStreams{In: strings.NewReader(""), Out: in.stdout, ErrOut: in.stderr},
		Clock:        in.clock,
		Terminal:     in.terminal,
		WatchTimeout: in.watchTimeout,
	})
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	err := cmd.ExecuteContext(ctx)
	if err != nil && err.Error() != "" {
		fmt.Fprintf(in.stderr, "error: %v\n", err)
	}
	return result{stdout: in.stdout.String(), stderr: in.stderr.String(), code: exitCode(err)}
}

// plugin runs the plugin and returns what it printed.
func runPlugin(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return invocation{}.run(ctx, args...)
}

// namespace creates a namespace of the test's own.
func namespace(t *testing.T, c client.Client) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "kplugin-"}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func createDataSource(t *testing.T, c client.Client, ns, name string) {
	t.Helper()
	ds := &costv1.DataSource{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       costv1.DataSourceSpec{Plugin: costv1.PluginSpec{Endpoint: "127.0.0.1:50051"}},
	}
	if err := c.Create(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
}

func createJob(t *testing.T, c client.Client, ns, name, ds string) *costv1.Job {
	t.Helper()
	j := &costv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       costv1.JobSpec{DataSourceRef: costv1.LocalObjectReference{Name: ds}},
	}
	if err := c.Create(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	return j
}

// setStatus writes a Job's status through the status subresource, as the operator does.
func setStatus(t *testing.T, c client.Client, ns, name string, mutate func(*costv1.JobStatus)) {
	t.Helper()
	var j costv1.Job
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &j); err != nil {
		t.Fatal(err)
	}
	mutate(&j.Status)
	if err := c.Status().Update(context.Background(), &j); err != nil {
		t.Fatal(err)
	}
}

func getJobT(t *testing.T, c client.Client, ns, name string) *costv1.Job {
	t.Helper()
	var j costv1.Job
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &j); err != nil {
		t.Fatal(err)
	}
	return &j
}

func TestSync(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c)
	createDataSource(t, c, ns, "billing")

	r := runPlugin(t, "-n", ns, "sync", "billing", "--start", "2026-09")
	if r.code != 0 {
		t.Fatalf("sync: exit %d, stderr %q", r.code, r.stderr)
	}
	name := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(name, "billing-") || len(name) != len("billing-")+generatedSuffix || strings.Contains(name, "\n") {
		t.Fatalf("sync printed %q, want the generated name billing-xxxxx alone", r.stdout)
	}
	j := getJobT(t, c, ns, name)
	if j.Spec.DataSourceRef.Name != "billing" || j.Spec.Start != "2026-09" || j.Spec.Cancel {
		t.Errorf("created Job spec %+v, want dataSourceRef billing, start 2026-09", j.Spec)
	}

	// -o yaml/json print the created object, typed.
	r = runPlugin(t, "-n", ns, "sync", "billing", "-o", "json")
	var printed costv1.Job
	if err := json.Unmarshal([]byte(r.stdout), &printed); err != nil || r.code != 0 {
		t.Fatalf("sync -o json: exit %d, %v:\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if printed.Kind != "Job" || printed.APIVersion != costv1.GroupVersion.String() || printed.UID == "" || printed.Spec.Start != "" {
		t.Errorf("sync -o json printed %s %s uid %q start %q, want the created Job", printed.APIVersion, printed.Kind, printed.UID, printed.Spec.Start)
	}
	r = runPlugin(t, "-n", ns, "sync", "billing", "-o", "name")
	if !strings.HasPrefix(r.stdout, "job.cost-analysis.costops.dev/billing-") {
		t.Errorf("sync -o name printed %q", r.stdout)
	}
	// The name -o name prints is a JOB argument the other commands take.
	if r := runPlugin(t, "-n", ns, "cancel", strings.TrimSpace(r.stdout)); r.code != 0 {
		t.Errorf("cancel of sync -o name's output: exit %d: %s", r.code, r.stderr)
	}

	// --context picks the kubeconfig's context, and with it its namespace.
	r = runPlugin(t, "--context", "other", "sync", "billing")
	if r.code != 1 || !strings.Contains(r.stderr, `datasource "billing" not found in namespace "ctx-namespace"`) {
		t.Errorf("sync in the other context: exit %d, stderr %q; want not found in ctx-namespace", r.code, r.stderr)
	}

	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"a DataSource that does not exist": {[]string{"sync", "nope"}, `datasource "nope" not found in namespace "` + ns + `"`},
		"a start that is not a month":      {[]string{"sync", "billing", "--start", "2026-13"}, `--start "2026-13" is not a month (YYYY-MM) or a day (YYYY-MM-DD)`},
		"no DataSource":                    {[]string{"sync"}, "sync wants one DATASOURCE argument, got 0"},
		"an output kubectl does not know":  {[]string{"sync", "billing", "-o", "xml"}, `unable to match a printer suitable for the output format "xml"`},
	} {
		t.Run(name, func(t *testing.T) {
			r := runPlugin(t, append([]string{"-n", ns}, tc.args...)...)
			if r.code != ExitError || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q", r.code, r.stderr, tc.want)
			}
		})
	}
	var jobs costv1.JobList
	if err := c.List(context.Background(), &jobs, client.InNamespace(ns)); err != nil || len(jobs.Items) != 3 {
		t.Errorf("%d Jobs in the namespace (%v), want the 3 good syncs' only", len(jobs.Items), err)
	}
}

func TestCancel(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c)
	createDataSource(t, c, ns, "billing")

	createJob(t, c, ns, "running", "billing")
	setStatus(t, c, ns, "running", func(s *costv1.JobStatus) { s.Status = costv1.JobInProgress; s.TotalTasks, s.RemainedTasks = 4, 4 })
	r := runPlugin(t, "-n", ns, "cancel", "running")
	if r.code != 0 || r.stdout != "job.cost-analysis.costops.dev/running cancel requested\n" {
		t.Fatalf("cancel: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if j := getJobT(t, c, ns, "running"); !j.Spec.Cancel {
		t.Error("spec.cancel is not set after cancel")
	}
	// Twice is harmless, and -o prints the object.
	r = runPlugin(t, "-n", ns, "cancel", "cajob/running", "-o", "yaml")
	if r.code != 0 || !strings.Contains(r.stdout, "cancel: true") || !strings.Contains(r.stdout, "kind: Job") {
		t.Errorf("second cancel -o yaml: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	createJob(t, c, ns, "not-picked-up", "billing")
	if r := runPlugin(t, "-n", ns, "cancel", "not-picked-up"); r.code != 0 || !getJobT(t, c, ns, "not-picked-up").Spec.Cancel {
		t.Errorf("cancel of a Job not picked up yet: exit %d, %s", r.code, r.stderr)
	}

	for name, tc := range map[string]struct {
		status func(*costv1.JobStatus)
		want   string
	}{
		"finished": {
			func(s *costv1.JobStatus) { s.Status = costv1.JobSuccess },
			`job "finished" already finished (SUCCESS): there is nothing to cancel`,
		},
		"failed": {
			func(s *costv1.JobStatus) { s.Status = costv1.JobFailure },
			`job "failed" already finished (FAILURE): there is nothing to cancel`,
		},
		"committing": {
			func(s *costv1.JobStatus) {
				s.Status = costv1.JobInProgress
				s.Ending = &costv1.JobEnding{Status: costv1.JobSuccess}
			},
			`job "committing" already reached its outcome (SUCCESS) and is committing its records`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			createJob(t, c, ns, name, "billing")
			setStatus(t, c, ns, name, tc.status)
			r := runPlugin(t, "-n", ns, "cancel", name)
			if r.code != ExitError || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 and %q", r.code, r.stderr, tc.want)
			}
			if getJobT(t, c, ns, name).Spec.Cancel {
				t.Error("spec.cancel was set on a Job that could not be canceled")
			}
		})
	}
	if r := runPlugin(t, "-n", ns, "cancel", "nope"); r.code != ExitError || !strings.Contains(r.stderr, `job "nope" not found in namespace "`+ns+`"`) {
		t.Errorf("cancel of a missing Job: exit %d, stderr %q", r.code, r.stderr)
	}
}

// watchRun starts `watch JOB` in the background; wait returns its result.
func watchRun(t *testing.T, in invocation, args ...string) (out *syncBuffer, wait func() result) {
	t.Helper()
	in.stdout, in.stderr = &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	done := make(chan result, 1)
	go func() { done <- in.run(ctx, args...) }()
	return in.stdout, func() result {
		defer cancel()
		select {
		case r := <-done:
			return r
		case <-time.After(60 * time.Second):
			t.Fatalf("watch did not end; it printed:\n%s", in.stdout.String())
			return result{}
		}
	}
}

// waitFor waits until the output contains want.
func waitFor(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the output never showed %q:\n%s", want, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWatchExitsWithTheOutcome(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c)
	createDataSource(t, c, ns, "billing")

	tests := map[string]struct {
		end      func(*costv1.JobStatus)
		code     int
		summary  string
		lastLine string
	}{
		"success": {
			end: func(s *costv1.JobStatus) {
				s.Status, s.RemainedTasks, s.Tasks = costv1.JobSuccess, 0, costv1.TaskCounts{Success: 4}
				s.CreatedCount = 96
			},
			code: ExitSuccess, summary: "SUCCESS: 4/4 tasks finished, 0 failed, 96 records",
		},
		"failure": {
			end: func(s *costv1.JobStatus) {
				s.Status, s.RemainedTasks, s.Tasks = costv1.JobFailure, 0, costv1.TaskCounts{Success: 2, Failure: 1, Canceled: 1}
				s.ErrorCode, s.ErrorMessage = costv1.ErrorJobTask, "task 2 failed"
			},
			code: ExitFailure, summary: "FAILURE: 4/4 tasks finished, 1 failed, 0 records",
		},
		"timeout": {
			end: func(s *costv1.JobStatus) {
				s.Status, s.RemainedTasks, s.Tasks = costv1.JobTimeout, 0, costv1.TaskCounts{Success: 2, Timeout: 2}
				s.ErrorCode = costv1.ErrorJobTimeout
			},
			code: ExitTimeout, summary: "TIMEOUT: 4/4 tasks finished, 2 failed, 0 records",
		},
		"canceled": {
			end: func(s *costv1.JobStatus) {
				s.Status, s.RemainedTasks, s.Tasks = costv1.JobCanceled, 0, costv1.TaskCounts{Success: 2, Canceled: 2}
				s.ErrorCode = costv1.ErrorJobCanceled
			},
			code: ExitCanceled, summary: "CANCELED: 4/4 tasks finished, 0 failed, 0 records",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			createJob(t, c, ns, name, "billing")
			out, wait := watchRun(t, invocation{clock: clock.RealClock{}}, "-n", ns, "watch", name)
			waitFor(t, out, "waiting for the operator")
			setStatus(t, c, ns, name, func(s *costv1.JobStatus) { s.Status = costv1.JobInProgress })
			waitFor(t, out, "planning")
			setStatus(t, c, ns, name, func(s *costv1.JobStatus) {
				s.TotalTasks, s.RemainedTasks = 4, 4
				s.Tasks = costv1.TaskCounts{Pending: 2, InProgress: 2}
				s.Conditions = []metav1.Condition{{Type: costv1.ConditionPlanned, Status: metav1.ConditionTrue, Reason: costv1.ReasonTasksCreated, LastTransitionTime: metav1.Now()}}
			})
			waitFor(t, out, "IN_PROGRESS  0/4 tasks")
			setStatus(t, c, ns, name, func(s *costv1.JobStatus) {
				s.RemainedTasks = 2
				s.Tasks = costv1.TaskCounts{Success: 2, InProgress: 2}
			})
			waitFor(t, out, "IN_PROGRESS  2/4 tasks")
			setStatus(t, c, ns, name, tc.end)
			r := wait()
			if r.code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", r.code, tc.code, r.stderr)
			}
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, tc.summary) {
				t.Errorf("last line %q, want the summary %q", last, tc.summary)
			}
			// One plain line per change: waiting, planning, 0/4, 2/4, the end, the summary.
			if len(lines) != 6 {
				t.Errorf("%d lines, want 6 (one per change of the run, then the summary):\n%s", len(lines), r.stdout)
			}
			if strings.Contains(r.stdout, "\r") || strings.Contains(r.stdout, "\x1b") {
				t.Errorf("terminal control characters in output that is not a terminal: %q", r.stdout)
			}
			// A finished run: watch says so at once, with the same code.
			if r := runPlugin(t, "-n", ns, "watch", name); r.code != tc.code || !strings.HasPrefix(r.stdout, tc.summary) || strings.Count(r.stdout, "\n") != 1 {
				t.Errorf("watch of the finished Job: exit %d, stdout %q; want %d and the summary line alone", r.code, r.stdout, tc.code)
			}
		})
	}
}

func TestWatchDrawsABarOnATerminal(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c)
	createDataSource(t, c, ns, "billing")
	createJob(t, c, ns, "run", "billing")
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	setStatus(t, c, ns, "run", func(s *costv1.JobStatus) {
		s.Status, s.TotalTasks, s.RemainedTasks = costv1.JobInProgress, 8, 8
		s.StartedAt = &metav1.Time{Time: start}
		s.Conditions = []metav1.Condition{{Type: costv1.ConditionPlanned, Status: metav1.ConditionTrue, Reason: costv1.ReasonTasksCreated, LastTransitionTime: metav1.Now()}}
	})

	fake := clocktesting.NewFakeClock(start)
	out, wait := watchRun(t, invocation{clock: fake, terminal: func(io.Writer) (bool, int) { return true, 101 }}, "-n", ns, "watch", "run")
	waitFor(t, out, "0/8 tasks  -- tasks/s  ETA --  0 failed  IN_PROGRESS")
	// Four tasks finish in 8 s of the watch's clock: 0.5 tasks/s, 8 s to go.
	fake.Step(8 * time.Second)
	setStatus(t, c, ns, "run", func(s *costv1.JobStatus) {
		s.RemainedTasks, s.Tasks = 4, costv1.TaskCounts{Success: 3, Failure: 1, InProgress: 4}
	})
	waitFor(t, out, "\r\x1b[2K[===============>              ]  50%  4/8 tasks  0.50 tasks/s  ETA 8s  1 failed  IN_PROGRESS")
	// Nothing finishes for 8 s more: the redraw shows the rate falling, the ETA growing.
	for !fake.HasWaiters() {
		time.Sleep(10 * time.Millisecond)
	}
	fake.Step(8 * time.Second)
	waitFor(t, out, "4/8 tasks  0.25 tasks/s  ETA 16s  1 failed  IN_PROGRESS")
	setStatus(t, c, ns, "run", func(s *costv1.JobStatus) {
		s.Status, s.RemainedTasks, s.Tasks = costv1.JobFailure, 0, costv1.TaskCounts{Success: 3, Failure: 1, Canceled: 4}
		s.FinishedAt = &metav1.Time{Time: start.Add(20 * time.Second)}
		s.ErrorCode, s.ErrorMessage = costv1.ErrorJobTask, "task 5 failed"
	})
	r := wait()
	if r.code != ExitFailure {
		t.Errorf("exit %d, want %d (FAILURE)", r.code, ExitFailure)
	}
	frames := strings.Split(r.stdout, "\r\x1b[2K")
	final := frames[len(frames)-1]
	want := "[==============================] 100%  8/8 tasks  0.50 tasks/s  ETA --  1 failed  FAILURE\n" +
		"FAILURE: 8/8 tasks finished, 1 failed, 0 records, in 20s (ERROR_JOB_TASK: task 5 failed)\n"
	if final != want {
		t.Errorf("last frame and summary:\n%q\nwant\n%q", final, want)
	}
	for _, f := range frames[1:] {
		if line, _, _ := strings.Cut(f, "\n"); len(line) > 100 {
			t.Errorf("frame of %d columns on a terminal of 101: %q", len(line), line)
		}
	}
}

// The server ends each watch after its timeout; the plugin reads the Job again and
// watches on, missing no change (here: watches of 1 s over a run of several).
func TestWatchOutlivesItsWatches(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c)
	createDataSource(t, c, ns, "billing")
	createJob(t, c, ns, "long", "billing")
	out, wait := watchRun(t, invocation{clock: clock.RealClock{}, watchTimeout: time.Second}, "-n", ns, "watch", "long")
	waitFor(t, out, "waiting for the operator")
	time.Sleep(2500 * time.Millisecond) // two watches have ended by now
	setStatus(t, c, ns, "long", func(s *costv1.JobStatus) { s.Status, s.TotalTasks, s.RemainedTasks = costv1.JobInProgress, 2, 2 })
	waitFor(t, out, "0/2 tasks")
	time.Sleep(1500 * time.Millisecond)
	setStatus(t, c, ns, "long", func(s *costv1.JobStatus) {
		s.Status, s.RemainedTasks, s.Tasks = costv1.JobSuccess, 0, costv1.TaskCounts{Success: 2}
	})
	if r := wait(); r.code != ExitSuccess || !strings.Contains(r.stdout, "SUCCESS: 2/2 tasks finished") {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestWatchOfADeletedJob(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c)
	createDataSource(t, c, ns, "billing")
	j := createJob(t, c, ns, "doomed", "billing")
	out, wait := watchRun(t, invocation{clock: clock.RealClock{}}, "-n", ns, "watch", "doomed")
	waitFor(t, out, "waiting for the operator")
	if err := c.Delete(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	if r := wait(); r.code != ExitError || !strings.Contains(r.stderr, "the job was deleted while it was being watched") {
		t.Errorf("exit %d, stderr %q; want 1 and the reason", r.code, r.stderr)
	}
	if r := runPlugin(t, "-n", ns, "watch", "doomed"); r.code != ExitError || !strings.Contains(r.stderr, `job "doomed" not found`) {
		t.Errorf("watch of a missing Job: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestSyncWait(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c)
	createDataSource(t, c, ns, "billing")
	stdout, wait := watchRun(t, invocation{clock: clock.RealClock{}}, "-n", ns, "sync", "billing", "--wait", "-o", "name")
	// The name comes first, on stdout; the progress follows on stderr (stdout holds only -o's output).
	waitFor(t, stdout, "job.cost-analysis.costops.dev/billing-")
	name := strings.TrimPrefix(strings.TrimSpace(stdout.String()), "job.cost-analysis.costops.dev/")
	setStatus(t, c, ns, name, func(s *costv1.JobStatus) { s.Status = costv1.JobInProgress; s.TotalTasks = 0 })
	setStatus(t, c, ns, name, func(s *costv1.JobStatus) { s.Status = costv1.JobSuccess })
	r := wait()
	if r.code != 0 || strings.TrimSpace(r.stdout) != "job.cost-analysis.costops.dev/"+name || !strings.Contains(r.stderr, "SUCCESS: 0/0 tasks finished") {
		t.Errorf("sync --wait: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestStat(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c)
	createDataSource(t, c, ns, "aws")
	createDataSource(t, c, ns, "gcp")
	createDataSource(t, c, ns, "idle")
	// In creation order: the last of each DataSource is its LAST JOB.
	for _, run := range []struct {
		name  string
		state costv1.JobState
	}{
		{"aws-1", costv1.JobSuccess}, {"aws-2", costv1.JobSuccess}, {"aws-3", costv1.JobFailure}, {"aws-4", costv1.JobInProgress},
		{"gcp-1", costv1.JobTimeout}, {"gcp-2", costv1.JobCanceled}, {"gcp-3", ""},
		{"old-1", costv1.JobSuccess},
	} {
		ds, _, _ := strings.Cut(run.name, "-")
		createJob(t, c, ns, run.name, ds)
		if run.state != "" {
			setStatus(t, c, ns, run.name, func(s *costv1.JobStatus) { s.Status = run.state })
		}
	}

	r := runPlugin(t, "-n", ns, "stat", "-o", "json")
	var st Stat
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
		t.Fatalf("stat -o json: exit %d, %v: %s%s", r.code, err, r.stdout, r.stderr)
	}
	want := map[string]map[string]int{
		"aws":  {"PENDING": 0, "IN_PROGRESS": 1, "SUCCESS": 2, "FAILURE": 1, "TIMEOUT": 0, "CANCELED": 0},
		"gcp":  {"PENDING": 1, "IN_PROGRESS": 0, "SUCCESS": 0, "FAILURE": 0, "TIMEOUT": 1, "CANCELED": 1},
		"idle": {"PENDING": 0, "IN_PROGRESS": 0, "SUCCESS": 0, "FAILURE": 0, "TIMEOUT": 0, "CANCELED": 0},
		"old":  {"PENDING": 0, "IN_PROGRESS": 0, "SUCCESS": 1, "FAILURE": 0, "TIMEOUT": 0, "CANCELED": 0},
	}
	if st.Namespace != ns || len(st.DataSources) != len(want) {
		t.Fatalf("stat: %+v, want the 4 data sources of %s", st, ns)
	}
	for _, e := range st.DataSources {
		w := want[e.DataSource]
		runs := 0
		for s, n := range w {
			runs += n
			if e.ByStatus[s] != n {
				t.Errorf("%s: %s %d, want %d", e.DataSource, s, e.ByStatus[s], n)
			}
		}
		if e.Runs != runs || e.Exists != (e.DataSource != "old") {
			t.Errorf("%s: runs %d exists %v, want %d runs, exists %v", e.DataSource, e.Runs, e.Exists, runs, e.DataSource != "old")
		}
	}

	r = runPlugin(t, "-n", ns, "stat")
	wantTable := "DATA SOURCE     RUNS   PENDING   IN_PROGRESS   SUCCESS   FAILURE   TIMEOUT   CANCELED   LAST JOB   LAST STATUS\n" +
		"aws             4      0         1             2         1         0         0          aws-4      IN_PROGRESS\n" +
		"gcp             3      1         0             0         0         1         1          gcp-3      PENDING\n" +
		"idle            0      0         0             0         0         0         0          <none>     <none>\n" +
		"old (deleted)   1      0         0             1         0         0         0          old-1      SUCCESS\n"
	if r.stdout != wantTable {
		t.Errorf("stat table:\n%s\nwant\n%s", r.stdout, wantTable)
	}

	r = runPlugin(t, "-n", ns, "stat", "--data-source", "gcp", "-o", "yaml")
	if r.code != 0 || !strings.Contains(r.stdout, "dataSource: gcp") || strings.Contains(r.stdout, "dataSource: aws") || !strings.Contains(r.stdout, "    TIMEOUT: 1") {
		t.Errorf("stat --data-source gcp -o yaml: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runPlugin(t, "-n", ns, "stat", "--data-source", "nope"); r.code != ExitError || !strings.Contains(r.stderr, `datasource "nope" not found`) {
		t.Errorf("stat of a missing DataSource: exit %d, %q", r.code, r.stderr)
	}
	if r := runPlugin(t, "-n", ns, "stat", "-o", "wide"); r.code != ExitError || !strings.Contains(r.stderr, `unknown output format "wide"`) {
		t.Errorf("stat -o wide: exit %d, %q", r.code, r.stderr)
	}
	empty := namespace(t, c)
	if r := runPlugin(t, "-n", empty, "stat"); r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "No datasources or jobs found") {
		t.Errorf("stat of an empty namespace: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestMetering(t *testing.T) {
	c := cluster(t)
	ns := namespace(t, c)
	createDataSource(t, c, ns, "billing")
	j := createJob(t, c, ns, "run", "billing")
	if r := runPlugin(t, "-n", ns, "metering", "run"); r.code != 0 || r.stdout != "Job run has no metering yet: the operator has not picked it up.\n" {
		t.Errorf("metering before pick-up: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	setStatus(t, c, ns, "run", func(s *costv1.JobStatus) {
		s.Status = costv1.JobSuccess
		s.Metering = &costv1.MeteringSummary{ResourceSpecCode: "cpu-100m.memory-64Mi", TaskPodSeconds: 45, CollectedBytes: 39592}
	})
	r := runPlugin(t, "-n", ns, "metering", "run")
	want := "RESOURCE            RESOURCE SPEC                  USAGE         UNIT    MEASURED\n" +
		"task pod duration   cpu-100m.memory-64Mi           0.0125        hours   45s of task pods\n" +
		"collected data      cost-analysis.collected-data   3.68729e-05   GB      39592 bytes\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("metering table: exit %d:\n%s%s\nwant\n%s", r.code, r.stdout, r.stderr, want)
	}
	r = runPlugin(t, "-n", ns, "metering", "run", "-o", "json")
	var info metering.Info
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil || len(info.ProductInfoList) != 2 {
		t.Fatalf("metering -o json: %v: %s", err, r.stdout)
	}
	// The API's answer for the same Job, entry for entry (ids from the Job's UID).
	j.Status.Metering = &costv1.MeteringSummary{ResourceSpecCode: "cpu-100m.memory-64Mi", TaskPodSeconds: 45, CollectedBytes: 39592}
	if api := metering.Products(j); !reflect.DeepEqual(info.ProductInfoList, api) || info.ProductInfoList[0].UsageValue != 0.0125 {
		t.Errorf("metering -o json: %+v, want the API's %+v", info.ProductInfoList, api)
	}
	if r := runPlugin(t, "-n", ns, "metering", "nope"); r.code != ExitError || !strings.Contains(r.stderr, `job "nope" not found`) {
		t.Errorf("metering of a missing Job: exit %d, %q", r.code, r.stderr)
	}
}

func TestVersion(t *testing.T) {
	r := invocation{}.run(context.Background(), "version", "-o", "json")
	var v Version
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 0 || v.Version == "" || v.GoVersion == "" || v.Platform == "" {
		t.Errorf("version -o json: exit %d, %v: %s", r.code, err, r.stdout)
	}
	r = invocation{}.run(context.Background(), "version")
	if !strings.HasPrefix(r.stdout, "kubectl-costanalysis ") {
		t.Errorf("version: %q", r.stdout)
	}
}
