package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/test/e2e/framework"
)

// The kwok stages' pod annotations (hack/kwok/stages.yaml) that decide what a task's
// fake collector reports.
const (
	fakeResult      = "cost-analysis.costops.dev/fake-result"
	fakeFailIndexes = "cost-analysis.costops.dev/fake-fail-indexes"
	fakeDuration    = "cost-analysis.costops.dev/fake-duration"
	fakeCreated     = "cost-analysis.costops.dev/fake-created-count"
)

// kube is one test's namespace on the suite's cluster, driven with kubectl.
type kube struct {
	t  *testing.T
	ns string
}

// setup skips the test when the suite cannot run here, else creates the test's own
// namespace (removed when the test passes; kept for a look when it fails, with what
// is in it and the manager's log about it printed).
func setup(t *testing.T) *kube {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	sourcesNoted.Do(func() {
		if err := framework.NoteSources(env.Root); err != nil {
			t.Fatal(err)
		}
	})
	k := &kube{t: t, ns: namespaceFor(t.Name())}
	k.kubectl("create", "namespace", k.ns)
	// Pods need the namespace's default ServiceAccount, which the controller-manager makes.
	k.eventually(30*time.Second, func() error {
		_, _, err := k.try("get", "serviceaccount", "default")
		return err
	})
	t.Cleanup(func() {
		if t.Failed() {
			k.dump()
			return
		}
		_, _, _ = env.Kubectl.Run(context.Background(), "", "delete", "namespace", k.ns, "--wait=false")
	})
	return k
}

// sourcesNoted makes the first test look at the sources the suite's binaries are
// built from, so that go test reruns a cached suite when they change.
var sourcesNoted sync.Once

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

func namespaceFor(test string) string {
	n := "e2e-" + strings.Trim(nonName.ReplaceAllString(strings.ToLower(test), "-"), "-")
	if len(n) > 63 {
		n = strings.TrimRight(n[:63], "-")
	}
	return n
}

// try runs kubectl in the test's namespace.
func (k *kube) try(args ...string) (stdout, stderr string, err error) {
	return k.tryIn("", args...)
}

func (k *kube) tryIn(stdin string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return env.Kubectl.Run(ctx, stdin, append([]string{"--namespace", k.ns}, args...)...)
}

// kubectl runs kubectl in the test's namespace and fails the test when it fails.
func (k *kube) kubectl(args ...string) string {
	k.t.Helper()
	out, _, err := k.try(args...)
	if err != nil {
		k.t.Fatal(err)
	}
	return out
}

// apply applies manifests (YAML or JSON) given on stdin.
func (k *kube) apply(manifests string, args ...string) string {
	k.t.Helper()
	out, _, err := k.tryIn(manifests, append([]string{"apply", "-f", "-"}, args...)...)
	if err != nil {
		k.t.Fatalf("%v\n%s", err, manifests)
	}
	return out
}

// wait runs `kubectl wait --for=jsonpath=<path>=<value>` on object.
func (k *kube) wait(object, path, value string, timeout time.Duration) {
	k.t.Helper()
	start := time.Now()
	if _, _, err := k.try("wait", object, "--for=jsonpath="+path+"="+value, "--timeout="+timeout.String()); err != nil {
		var now string
		if out, _, err := k.try("get", object, "-o", "jsonpath="+path); err == nil {
			now = out
		}
		k.t.Fatalf("%s: %s did not become %s within %s (it is %q): %v", object, path, value, timeout, now, err)
	}
	k.t.Logf("%s: %s=%s after %s", object, path, value, time.Since(start).Round(100*time.Millisecond))
}

// get decodes `kubectl get -o json` of args into out.
func (k *kube) get(out any, args ...string) {
	k.t.Helper()
	if err := json.Unmarshal([]byte(k.kubectl(append([]string{"get", "-o", "json"}, args...)...)), out); err != nil {
		k.t.Fatal(err)
	}
}

func (k *kube) job(name string) *costv1.Job {
	k.t.Helper()
	j := &costv1.Job{}
	k.get(j, "cajob", name)
	return j
}

func (k *kube) dataSource(name string) *costv1.DataSource {
	k.t.Helper()
	ds := &costv1.DataSource{}
	k.get(ds, "cads", name)
	return ds
}

func (k *kube) jobTasks(job string) []costv1.JobTask {
	k.t.Helper()
	var l costv1.JobTaskList
	k.get(&l, "catask", "-l", costv1.LabelJob+"="+job)
	return l.Items
}

func (k *kube) batchJobs(job string) []batchv1.Job {
	k.t.Helper()
	var l batchv1.JobList
	k.get(&l, "jobs.batch", "-l", costv1.LabelJob+"="+job)
	return l.Items
}

func (k *kube) pods(job string) []corev1.Pod {
	k.t.Helper()
	var l corev1.PodList
	k.get(&l, "pods", "-l", costv1.LabelJob+"="+job)
	return l.Items
}

// eventually retries fn every 250ms until it returns nil or timeout passes.
func (k *kube) eventually(timeout time.Duration, fn func() error) {
	k.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("still not so after %s: %v", timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// dump prints what is in the namespace and the manager's log lines about it.
func (k *kube) dump() {
	for _, args := range [][]string{
		{"get", "cads,cajob,catask,jobs.batch,pods", "-o", "wide"},
		{"get", "cajob", "-o", "jsonpath={range .items[*]}{.metadata.name}: {.status}{\"\\n\"}{end}"},
		{"get", "events", "--sort-by=.lastTimestamp"},
	} {
		out, errOut, _ := k.try(args...)
		k.t.Logf("kubectl %s:\n%s%s", strings.Join(args, " "), out, errOut)
	}
	if b, err := os.ReadFile(env.Manager.LogPath); err == nil {
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, `"`+k.ns+`"`) || strings.HasPrefix(l, "====") {
				lines = append(lines, l)
			}
		}
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		k.t.Logf("manager log (%s), lines about %s:\n%s", env.Manager.LogPath, k.ns, strings.Join(lines, "\n"))
	}
}

// manifest is an object as a user writes it: no status.
type manifest struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       any               `json:"spec,omitempty"`
	StringData map[string]string `json:"stringData,omitempty"`
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func raw(t *testing.T, v any) *runtime.RawExtension {
	t.Helper()
	return &runtime.RawExtension{Raw: []byte(toJSON(t, v))}
}

// source describes a DataSource of the sample plugin for a test.
type source struct {
	// endpoint defaults to the suite's plugin.
	endpoint string
	// options are the plugin options: tasks (how many), stall_get_tasks_seconds, ...
	options map[string]any
	// pods are the task pods' annotations: what the fake collectors report.
	pods     map[string]string
	defaults costv1.JobDefaults
	// real runs the task pods on the real node, with the collector image of
	// hack/image calling the plugin for real; otherwise they run on kwok's nodes,
	// where hack/kwok/stages.yaml makes up their results from pods.
	real bool
	// secret is added to the Secret's keys (api_key: e2e).
	secret map[string]string
	// schedule is the DataSource's spec.schedule.
	schedule *costv1.ScheduleSpec
}

// The images hack/image builds and hack/node.sh imports into the real node.
const collectorImage = "localhost/costops/cost-analysis-collector:dev"

// kwokPlacement puts a task pod on kwok's fake nodes (tainted while the real node runs).
func kwokPlacement(c *costv1.CollectorSpec) {
	c.NodeSelector = map[string]string{"type": "kwok"}
	c.Tolerations = []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
}

// requireRealNode skips a test that needs the real node where the machine cannot run
// one; under CI=true the suite never skips it (hack/cluster.sh has failed already).
func requireRealNode(t *testing.T) {
	t.Helper()
	if env != nil && env.RealNode {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the cluster has no real node, and CI=true requires it")
	}
	t.Skip("the local cluster has no real node here (hack/node.sh check says why)")
}

// createDataSource applies a Secret <name>-credentials and a DataSource <name>.
func (k *kube) createDataSource(name string, s source) {
	k.t.Helper()
	if s.endpoint == "" {
		s.endpoint = env.PluginAddr
	}
	secret := manifest{APIVersion: "v1", Kind: "Secret", Metadata: metav1.ObjectMeta{Name: name + "-credentials"},
		StringData: map[string]string{"api_key": "e2e"}}
	maps.Copy(secret.StringData, s.secret)
	spec := costv1.DataSourceSpec{
		Plugin: costv1.PluginSpec{Endpoint: s.endpoint, Options: raw(k.t, s.options),
			SecretRef: &costv1.LocalObjectReference{Name: name + "-credentials"}},
		Collector:   costv1.CollectorSpec{Image: "ghcr.io/costops/cost-analysis-collector:e2e", PodAnnotations: s.pods},
		JobDefaults: s.defaults,
		Schedule:    s.schedule,
	}
	ds := manifest{APIVersion: costv1.GroupVersion.String(), Kind: "DataSource", Metadata: metav1.ObjectMeta{Name: name}, Spec: &spec}
	if s.real {
		spec.Collector.Image = collectorImage
		spec.Collector.ImagePullPolicy = corev1.PullIfNotPresent
		spec.Collector.PodSecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: ptr(true),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
		spec.Collector.SecurityContext = &corev1.SecurityContext{ReadOnlyRootFilesystem: ptr(true), AllowPrivilegeEscalation: ptr(false),
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	} else {
		kwokPlacement(&spec.Collector)
	}
	k.apply(toJSON(k.t, secret) + "\n" + toJSON(k.t, ds))
}

// createJob applies a Job <name> of DataSource ds.
func (k *kube) createJob(name, ds string, mutate ...func(*costv1.JobSpec)) {
	k.t.Helper()
	spec := costv1.JobSpec{DataSourceRef: costv1.LocalObjectReference{Name: ds}}
	for _, m := range mutate {
		m(&spec)
	}
	k.apply(toJSON(k.t, manifest{APIVersion: costv1.GroupVersion.String(), Kind: "Job", Metadata: metav1.ObjectMeta{Name: name}, Spec: spec}))
}

func ptr[T any](v T) *T { return &v }

// table is kubectl's table output, one map per row, keyed by the column headers.
type table struct {
	header []string
	rows   []map[string]string
}

var headerCell = regexp.MustCompile(`\S+( \S+)*`)

// parseTables reads kubectl get's output; a category (kubectl get costanalysis)
// gives a table per kind, separated by blank lines.
func parseTables(out string) []table {
	var tables []table
	for _, block := range strings.Split(strings.TrimRight(out, "\n"), "\n\n") {
		lines := strings.Split(block, "\n")
		if len(lines) == 0 || strings.TrimSpace(lines[0]) == "" {
			continue
		}
		var tb table
		locs := headerCell.FindAllStringIndex(lines[0], -1)
		for _, l := range locs {
			tb.header = append(tb.header, lines[0][l[0]:l[1]])
		}
		for _, line := range lines[1:] {
			row := map[string]string{}
			for i, l := range locs {
				end := len(line)
				if i+1 < len(locs) {
					end = min(locs[i+1][0], len(line))
				}
				if l[0] < end {
					row[tb.header[i]] = strings.TrimSpace(line[l[0]:end])
				} else {
					row[tb.header[i]] = ""
				}
			}
			tb.rows = append(tb.rows, row)
		}
		tables = append(tables, tb)
	}
	return tables
}

// oneTable is the single table of out.
func oneTable(t *testing.T, out string) table {
	t.Helper()
	tables := parseTables(out)
	if len(tables) != 1 {
		t.Fatalf("want one table, got %d:\n%s", len(tables), out)
	}
	return tables[0]
}

// row is the row whose NAME is name.
func (tb table) row(t *testing.T, name string) map[string]string {
	t.Helper()
	for _, r := range tb.rows {
		if r["NAME"] == name {
			return r
		}
	}
	t.Fatalf("no row %s in %v", name, tb.rows)
	return nil
}

func (tb table) names() []string {
	var n []string
	for _, r := range tb.rows {
		n = append(n, r["NAME"])
	}
	slices.Sort(n)
	return n
}

// reportedCount sums what a Job's tasks reported in their termination messages
// (on kwok nodes: what hack/kwok/stages.yaml made up from the pods' annotations).
func (k *kube) reportedCount(job string) int64 {
	k.t.Helper()
	var n int64
	for _, jt := range k.jobTasks(job) {
		n += jt.Status.CreatedCount
	}
	return n
}

// kwokCommitted checks a run whose task pods ran on kwok nodes: they wrote
// nothing to the store, so the run committed (or rolled back) no records and its
// createdCount is 0, whatever the fake termination messages said.
func kwokCommitted(t *testing.T, j *costv1.Job, reason string) {
	t.Helper()
	c := condition(j.Status.Conditions, costv1.ConditionStored)
	if c == nil || c.Reason != reason || j.Status.CreatedCount != 0 {
		t.Errorf("Job %s: Stored %s, createdCount %d; want %s and 0 records (kwok pods store nothing)",
			j.Name, fmtCond(c), j.Status.CreatedCount, reason)
	}
}

// countsAddUp checks that a finished Job's task counts cover its tasks exactly.
func countsAddUp(t *testing.T, j *costv1.Job) {
	t.Helper()
	c := j.Status.Tasks
	sum := c.Pending + c.InProgress + c.Success + c.Failure + c.Canceled + c.Timeout
	if sum != j.Status.TotalTasks || j.Status.RemainedTasks != 0 || c.Pending+c.InProgress != 0 {
		t.Errorf("Job %s: counts %+v (sum %d), remainedTasks %d: want them to add up to totalTasks %d with none open",
			j.Name, c, sum, j.Status.RemainedTasks, j.Status.TotalTasks)
	}
}

func condition(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

func fmtCond(c *metav1.Condition) string {
	if c == nil {
		return "<none>"
	}
	return fmt.Sprintf("%s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message)
}
