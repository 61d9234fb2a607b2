package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/operator"
	"github.com/costops/cost-analysis-operator/internal/sampleplugin"
	"github.com/costops/cost-analysis-operator/internal/store"
	"github.com/costops/cost-analysis-operator/internal/store/pgtest"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
	"github.com/costops/cost-analysis-operator/internal/testenv"
)

var (
	env        *testenv.Env
	k8s        client.Client // direct client: assertions never read the manager's cache
	pluginAddr string
	plugin     *sampleplugin.Server
)

func TestMain(m *testing.M) {
	if os.Getenv("TEST_VERBOSE_MANAGER") != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(zap.New(zap.WriteTo(discard{})))
	}
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8s = env.Client
	// The upstream Job controller runs the operator's batch Jobs, and the garbage
	// collector removes what a deleted Job owned (TEST_KCM_LOG_DIR keeps its log).
	if err := env.StartControllerManager([]string{"job", "garbagecollector", "ttl-after-finished"}, os.Getenv("TEST_KCM_LOG_DIR")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = env.Stop()
		os.Exit(1)
	}
	var stopPlugin func()
	pluginAddr, plugin, stopPlugin, err = sampleplugin.StartOnLoopback()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = env.Stop()
		os.Exit(1)
	}
	code := pgtest.Main(m)
	stopPlugin()
	_ = env.Stop()
	os.Exit(code)
}

var (
	storeMu  sync.Mutex
	storeDSN string
)

// defaultStoreNamespace holds the default store's Secret in the tests.
const defaultStoreNamespace = "cost-analysis-system"

// noDefaultStore, as Options.DefaultStoreSecret, starts a manager without a
// default store.
var noDefaultStore = types.NamespacedName{Name: "-"}

// defaultStore is the Secret of the tests' default store: a database on the
// package's PostgreSQL (pgtest), shared by every test (their runs never meet:
// each Job is a run of its own, in a namespace of its own).
func defaultStore(t *testing.T) types.NamespacedName {
	t.Helper()
	storeMu.Lock()
	defer storeMu.Unlock()
	if storeDSN == "" {
		dsn := pgtest.Start(t) // skips, or under CI=true fails, without PostgreSQL
		ctx := context.Background()
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: defaultStoreNamespace}}
		if err := k8s.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "default-store", Namespace: defaultStoreNamespace},
			StringData: map[string]string{costv1.StoreDSNKey: dsn}}
		if err := k8s.Create(ctx, sec); err != nil {
			t.Fatal(err)
		}
		storeDSN = dsn
	}
	return types.NamespacedName{Namespace: defaultStoreNamespace, Name: "default-store"}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// testOptions are the manager's options for tests: no listeners, quick retries.
func testOptions() operator.Options {
	o := operator.DefaultOptions()
	o.MetricsAddr, o.ProbeAddr, o.API.BindAddress = "0", "0", "0"
	o.PluginCallTimeout = 5 * time.Second
	o.PlanRetryWindow = 3 * time.Second
	o.SecretCheckInterval = time.Second // a changed Secret is noticed within the tests' waits
	o.SkipNameValidation = true
	return o
}

// startManager runs the operator against envtest until the test ends or stop is called.
func startManager(t *testing.T, o operator.Options) (stop func()) {
	t.Helper()
	return startManagerWithConfig(t, env.Config, o)
}

func startManagerWithConfig(t *testing.T, cfg *rest.Config, o operator.Options) (stop func()) {
	t.Helper()
	switch o.DefaultStoreSecret {
	case noDefaultStore:
		o.DefaultStoreSecret = types.NamespacedName{}
	case types.NamespacedName{}:
		o.DefaultStoreSecret = defaultStore(t)
	}
	mgr, err := operator.New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "engine-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func createSecret(t *testing.T, ns, name string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, StringData: data}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// createDataSource creates a DataSource of the sample plugin with the given options.
func createDataSource(t *testing.T, ns, name, endpoint, options string, mutate ...func(*costv1.DataSource)) *costv1.DataSource {
	t.Helper()
	ds := &costv1.DataSource{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: costv1.DataSourceSpec{
			Plugin: costv1.PluginSpec{Endpoint: endpoint, Options: &runtime.RawExtension{Raw: []byte(options)},
				SecretRef: &costv1.LocalObjectReference{Name: "creds"}},
			Collector: costv1.CollectorSpec{Image: "collector:test"},
		},
	}
	for _, m := range mutate {
		m(ds)
	}
	if err := k8s.Create(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	return ds
}

func createJob(t *testing.T, ns, name, ds string, mutate ...func(*costv1.Job)) *costv1.Job {
	t.Helper()
	j := &costv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       costv1.JobSpec{DataSourceRef: costv1.LocalObjectReference{Name: ds}, Start: "2026-09"},
	}
	for _, m := range mutate {
		m(j)
	}
	if err := k8s.Create(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	return j
}

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("condition not met within %s: %v", timeout, err)
}

// waitJob waits until the Job's status is want and returns it.
func waitJob(t *testing.T, ns, name string, want costv1.JobState, timeout time.Duration) *costv1.Job {
	t.Helper()
	j := &costv1.Job{}
	eventually(t, timeout, func() error {
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, j); err != nil {
			return err
		}
		if j.Status.Status != want {
			return fmt.Errorf("status %q (%s: %s), want %s", j.Status.Status, j.Status.ErrorCode, j.Status.ErrorMessage, want)
		}
		return nil
	})
	return j
}

func listTasks(t *testing.T, ns, job string) []costv1.JobTask {
	t.Helper()
	var list costv1.JobTaskList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{costv1.LabelJob: job}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func listBatchJobs(t *testing.T, ns, job string) []batchv1.Job {
	t.Helper()
	var list batchv1.JobList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{costv1.LabelJob: job}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func listPods(t *testing.T, ns, job string) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{costv1.LabelJob: job}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// kubelet plays the kubelet of the batch Jobs' pods: the suite runs the real
// kube-controller-manager's Job controller (testenv.StartControllerManager), which
// creates the pods of the operator's Indexed batch Jobs, and no kubelet. For each
// pod in its namespace, kubelet runs the container the way outcome says for the
// pod's task, reading the task from the batch Job's task ConfigMap as the collector
// does, and writes the pod's status.
type kubelet struct {
	t       *testing.T
	ns      string
	outcome func(task podTask) taskOutcome
	mu      sync.Mutex
	seen    map[types.UID]bool
	running int // pods running
	peak    int
}

// podTask is the task a pod runs: its Job and plan index.
type podTask struct {
	Job   string
	Index int
}

type taskOutcome struct {
	hang bool // the pod runs until deleted
	// rows (> 0) makes the pod write that many records to the run's store, as the
	// collector does, through the DSN of the Secret its env names; a successful
	// outcome then reports what the store took.
	rows    int
	message string // termination message
	exit    int32  // 0 succeeds, else fails
	runFor  time.Duration
}

func success(n int) taskOutcome {
	return taskOutcome{rows: n, message: fmt.Sprintf(`{"created_count": %d, "collected_bytes": %d}`, n, n*100)}
}

var testStores = store.NewRegistry(4)

// storedRows is the number of records of a run in the tests' default store,
// committed or not.
func storedRows(t *testing.T, j *costv1.Job) int {
	t.Helper()
	db, err := testStores.Get(context.Background(), storeDSN)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := db.RunRecords(context.Background(), string(j.UID), "")
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// assertRolledBack checks that a run ended with its records rolled back.
func assertRolledBack(t *testing.T, j *costv1.Job) {
	t.Helper()
	if c := meta.FindStatusCondition(j.Status.Conditions, costv1.ConditionStored); c == nil || c.Status != metav1.ConditionFalse || c.Reason != costv1.ReasonRolledBack {
		t.Fatalf("Stored condition %+v, want False/RolledBack", c)
	}
	if j.Status.CreatedCount != 0 {
		t.Fatalf("createdCount %d after a rollback", j.Status.CreatedCount)
	}
	if n := storedRows(t, j); n != 0 {
		t.Fatalf("%d records of the rolled-back run left in the store", n)
	}
}

// podDSN resolves the store DSN of a pod's env from its Secret, as a kubelet
// does when the container starts.
func podDSN(ctx context.Context, pod *corev1.Pod) string {
	for _, e := range pod.Spec.Containers[0].Env {
		if e.Name == taskpod.EnvStoreDSN && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			sec := &corev1.Secret{}
			if err := k8s.Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: e.ValueFrom.SecretKeyRef.Name}, sec); err != nil {
				return ""
			}
			return string(sec.Data[e.ValueFrom.SecretKeyRef.Key])
		}
	}
	return ""
}

// podTaskFile reads a pod's task as the collector does: from its batch Job's task
// ConfigMap (mounted in the pod), by the pod's completion index.
func podTaskFile(ctx context.Context, pod *corev1.Pod) (taskpod.Task, error) {
	for _, v := range pod.Spec.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		cm := &corev1.ConfigMap{}
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: v.ConfigMap.Name}, cm); err != nil {
			return taskpod.Task{}, err
		}
		return taskpod.ParseTask([]byte(cm.Data[pod.Annotations[taskpod.AnnotationCompletionIndex]]))
	}
	return taskpod.Task{}, fmt.Errorf("pod %s mounts no task ConfigMap", pod.Name)
}

// writeRows plays the collector's part against the store: n records for the
// task of pod, with the identities and the DSN the task-pod contract gives it.
func writeRows(ctx context.Context, pod *corev1.Pod, dsn string, n int) (store.WriteResult, error) {
	env := map[string]string{}
	for _, e := range pod.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if dsn == "" {
		return store.WriteResult{}, fmt.Errorf("pod %s has no %s from a Secret", pod.Name, taskpod.EnvStoreDSN)
	}
	task, err := podTaskFile(ctx, pod)
	if err != nil {
		return store.WriteResult{}, err
	}
	db, err := testStores.Get(ctx, dsn)
	if err != nil {
		return store.WriteResult{}, err
	}
	var opts struct {
		Month string `json:"month"`
	}
	_ = json.Unmarshal(task.Options, &opts)
	if len(opts.Month) != 7 {
		opts.Month = "2026-01"
	}
	sent := false
	return db.WriteTask(ctx, store.TaskRef{
		Domain: env[taskpod.EnvDomainID], DataSource: env[taskpod.EnvDataSourceID], DataSourceUID: env[taskpod.EnvDataSourceUID],
		Job: env[taskpod.EnvJobID], JobUID: env[taskpod.EnvJobUID], JobTask: task.JobTaskID, JobTaskUID: task.JobTaskUID,
		Attempt: pod.Name,
	}, func(context.Context) ([]store.Record, error) {
		if sent {
			return nil, io.EOF
		}
		sent = true
		recs := make([]store.Record, n)
		for i := range recs {
			recs[i] = store.Record{Cost: 1.5, UsageQuantity: 1, Provider: "aws", Product: "p", AccountID: "acct",
				BilledDate: opts.Month + "-01", Tags: json.RawMessage(fmt.Sprintf(`{"i": %d}`, i))}
		}
		return recs, nil
	})
}

func failure(code, msg string) taskOutcome {
	return taskOutcome{message: fmt.Sprintf(`{"error_code": %q, "error_message": %q}`, code, msg), exit: 1}
}

func startKubelet(t *testing.T, ns string, outcome func(task podTask) taskOutcome) *kubelet {
	k := &kubelet{t: t, ns: ns, outcome: outcome, seen: map[types.UID]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		for ctx.Err() == nil {
			var list corev1.PodList
			if err := k8s.List(ctx, &list, client.InNamespace(ns)); err == nil {
				for i := range list.Items {
					pod := list.Items[i]
					k.mu.Lock()
					isNew := !k.seen[pod.UID]
					k.seen[pod.UID] = true
					k.mu.Unlock()
					if isNew && pod.DeletionTimestamp.IsZero() && (pod.Status.Phase == "" || pod.Status.Phase == corev1.PodPending) {
						wg.Go(func() { k.run(ctx, &pod) })
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	return k
}

func (k *kubelet) logf(format string, args ...any) {
	if os.Getenv("TEST_VERBOSE_MANAGER") != "" {
		fmt.Printf(format+"\n", args...)
	}
}

func (k *kubelet) peakRunning() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.peak
}

// setPodStatus writes a pod's status the way a kubelet does (a patch: the Job
// controller changes the pod's metadata meanwhile).
func setPodStatus(ctx context.Context, pod *corev1.Pod, st corev1.PodStatus) error {
	orig := pod.DeepCopy()
	pod.Status = st
	return k8s.Status().Patch(ctx, pod, client.MergeFrom(orig))
}

func (k *kubelet) run(ctx context.Context, pod *corev1.Pod) {
	index, ok := taskpod.PodTaskIndex(pod.Annotations, costv1.AnnotationFirstTaskIndex)
	if !ok {
		k.t.Errorf("kubelet: pod %s carries no task index (annotations %v)", pod.Name, pod.Annotations)
		return
	}
	out := k.outcome(podTask{Job: pod.Labels[costv1.LabelJob], Index: int(index)})
	k.mu.Lock()
	k.running++
	k.peak = max(k.peak, k.running)
	k.mu.Unlock()
	// The pod stops running when it ends: counted down just before its end is
	// written (the operator may start the next task as soon as it sees it), or on
	// any other way out.
	stopped := false
	stop := func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if !stopped {
			stopped = true
			k.running--
		}
	}
	defer stop()
	now := metav1.Now()
	dsn := podDSN(ctx, pod)
	if err := setPodStatus(ctx, pod, corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &now, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "collector", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}}}); err != nil {
		k.logf("kubelet: starting pod %s: %v", pod.Name, err)
		return
	}
	gone := func() bool {
		cur := &corev1.Pod{}
		err := k8s.Get(ctx, client.ObjectKeyFromObject(pod), cur)
		return apierrors.IsNotFound(err) || err == nil && !cur.DeletionTimestamp.IsZero()
	}
	if out.hang {
		if out.rows > 0 {
			if _, err := writeRows(ctx, pod, dsn, out.rows); err != nil && ctx.Err() == nil {
				k.t.Errorf("kubelet: pod %s writing its rows: %v", pod.Name, err)
			}
		}
		// Run until the pod is deleted (the operator stops it) or the test ends.
		for ctx.Err() == nil && !gone() {
			time.Sleep(100 * time.Millisecond)
		}
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(max(out.runFor, 200*time.Millisecond)):
	}
	if gone() {
		return
	}
	if out.rows > 0 {
		res, err := writeRows(ctx, pod, dsn, out.rows)
		switch {
		case err != nil && ctx.Err() == nil:
			out = failure("ERROR_STORE", err.Error())
		case err == nil && out.exit == 0:
			out.message = fmt.Sprintf(`{"created_count": %d, "collected_bytes": %d}`, res.Rows, res.Bytes)
		}
	}
	end := metav1.Now()
	phase, reason := corev1.PodSucceeded, "Completed"
	if out.exit != 0 {
		phase, reason = corev1.PodFailed, "Error"
	}
	stop()
	st := *pod.Status.DeepCopy()
	st.Phase = phase
	st.ContainerStatuses[0].Ready = false
	st.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: out.exit, Reason: reason, Message: out.message, StartedAt: now, FinishedAt: end}}
	if err := setPodStatus(ctx, pod, st); err != nil {
		k.logf("kubelet: ending pod %s: %v", pod.Name, err)
	}
}
