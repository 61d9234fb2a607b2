package manifests_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
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
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/operator"
	"github.com/costops/cost-analysis-operator/internal/store/pgtest"
)

// managerLog collects what every manager of these tests logs (controller-runtime's
// logger and klog's, where client-go reports refused event writes).
var managerLog = &syncBuffer{}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func init() {
	logger := zap.New(zap.WriteTo(managerLog))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
}

// The manager runs on the RBAC an install gives it and nothing more: it is started
// in-process impersonating the install's ServiceAccount, with the install's flags,
// and takes a DataSource and two Jobs through every write it makes (verify, the
// store Secret copy, claims, a plan of tasks, their batch Jobs and task ConfigMaps,
// a cancel that suspends them and deletes their pods, a commit). A refused call shows in the log as "forbidden" and fails
// the test.
func TestManagerRunsOnItsOwnRBAC(t *testing.T) {
	dsn := pgtest.Start(t) // skips, or under CI=true fails, without PostgreSQL
	mark := logMark()
	defer noRefusals(t, mark)
	ensureNamespace(t, releaseNamespace)
	ensureNamespace(t, "other")
	store := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNamespace, Name: "cost-analysis-store"},
		StringData: map[string]string{costv1.StoreDSNKey: dsn}}
	if err := k8s.Create(context.Background(), store); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	t.Run("cluster-wide (config/default)", func(t *testing.T) {
		ns := "run-cluster-wide"
		ensureNamespace(t, ns)
		_, stop := runManagerAs(t, "config/default", nil)
		defer stop()
		exerciseManager(t, ns)
	})

	t.Run("namespaced (config/namespaced)", func(t *testing.T) {
		_, stop := runManagerAs(t, "config/namespaced", []string{namespacedWatch})
		defer stop()
		// A DataSource and Job outside the watched namespace are not the manager's.
		createDataSource(t, "other", "ignored", `{"tasks": 0}`)
		createJob(t, "other", "ignored-run", "ignored")
		exerciseManager(t, namespacedWatch)
		j := &costv1.Job{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: "other", Name: "ignored-run"}, j); err != nil {
			t.Fatal(err)
		}
		if j.Status.Status != "" {
			t.Errorf("a Job outside the watched namespaces was run: %s", j.Status.Status)
		}
	})
}

// runManagerAs applies the RBAC of the install in dir and starts the manager as its
// ServiceAccount, with leader election in the release namespace; mutate changes its
// options.
func runManagerAs(t *testing.T, dir string, watch []string, mutate ...func(*operator.Options)) (mgr manager.Manager, stop func()) {
	t.Helper()
	rbac := rbacOnly(t, kustomize(t, dir))
	if out, err := kubectlOn(t, rbac, "apply", "--server-side", "-f", "-"); err != nil {
		t.Fatalf("applying the RBAC: %v\n%s", err, out)
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: managerUser,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + releaseNamespace, "system:authenticated"}}
	o := operator.DefaultOptions()
	o.MetricsAddr, o.ProbeAddr, o.API.BindAddress = "0", "0", "0"
	o.LeaderElect, o.LeaderElectionNamespace = true, releaseNamespace
	o.LeaderElectionID = "manifests-test-" + strings.ReplaceAll(dir, "/", "-")
	o.WatchNamespaces = watch
	o.DefaultStoreSecret = types.NamespacedName{Namespace: releaseNamespace, Name: "cost-analysis-store"}
	o.CollectorImage = "collector:from-flag"
	o.SecretCheckInterval = time.Second
	o.PluginCallTimeout, o.PlanRetryWindow = 5*time.Second, 5*time.Second
	o.SkipNameValidation = true
	// One task per batch Job: a run of two tasks makes two batch Jobs and two task
	// ConfigMaps, and shares its parallelism between them.
	o.IndexesPerBatchJob = 1
	for _, m := range mutate {
		m(&o)
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
	// The RBAC goes when the test ends, after every manager of the test stopped.
	t.Cleanup(func() {
		if out, err := kubectlOn(t, rbac, "delete", "--ignore-not-found", "--wait", "-f", "-"); err != nil {
			t.Errorf("deleting the RBAC: %v\n%s", err, out)
		}
	})
	var once sync.Once
	return mgr, func() { once.Do(func() { cancel(); <-done }) }
}

// logMark is where the managers' log stands now; noRefusals fails the test if any
// call was refused since.
func logMark() int { return len(managerLog.String()) }

func noRefusals(t *testing.T, mark int) {
	t.Helper()
	if since := managerLog.String()[mark:]; strings.Contains(strings.ToLower(since), "forbidden") {
		t.Errorf("the manager was refused a call:\n%s", forbiddenLines(since))
	}
}

// exerciseManager takes a DataSource through verify, a run of no task to SUCCESS
// (commit), a run of two tasks that is canceled (batch Jobs created, then stopped),
// and a Secret change that the poller notices with targeted gets alone.
func exerciseManager(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"},
		StringData: map[string]string{"api_key": "k"}}
	if err := k8s.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	createDataSource(t, ns, "empty", `{"tasks": 0}`)
	createDataSource(t, ns, "two", `{"tasks": 2}`)
	waitCondition(t, ns, "empty", costv1.ConditionPluginReady, metav1.ConditionTrue)
	waitCondition(t, ns, "empty", costv1.ConditionStoreReady, metav1.ConditionTrue)

	createJob(t, ns, "empty-run", "empty")
	done := waitJob(t, ns, "empty-run", func(j *costv1.Job) bool { return j.Status.Status == costv1.JobSuccess })
	if done.Status.Store == nil || !done.Status.Store.Default {
		t.Errorf("the run did not use the default store: %+v", done.Status.Store)
	}
	copyKey := types.NamespacedName{Namespace: ns, Name: done.Status.Store.SecretName}
	if err := k8s.Get(ctx, copyKey, &corev1.Secret{}); err != nil {
		t.Errorf("the run's copy of the default store's Secret: %v", err)
	}
	ds := &costv1.DataSource{}
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "empty"}, ds); err != nil {
		t.Fatal(err)
	}
	if ds.Status.LastSynchronizedAt == nil {
		t.Error("the DataSource's lastSynchronizedAt was not written on SUCCESS")
	}

	createJob(t, ns, "two-run", "two")
	eventually(t, 30*time.Second, func() error {
		var list batchv1.JobList
		if err := k8s.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{costv1.LabelJob: "two-run"}); err != nil {
			return err
		}
		if len(list.Items) != 2 {
			return fmt.Errorf("%d batch Jobs, want 2", len(list.Items))
		}
		for _, bj := range list.Items {
			if img := bj.Spec.Template.Spec.Containers[0].Image; img != "collector:from-flag" {
				return fmt.Errorf("batch Job %s runs %q, want the --collector-image", bj.Name, img)
			}
			if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: bj.Name}, &corev1.ConfigMap{}); err != nil {
				return fmt.Errorf("the task ConfigMap of batch Job %s: %w", bj.Name, err)
			}
		}
		return nil
	})
	patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"cancel":true}}`))
	if err := k8s.Patch(ctx, &costv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "two-run"}}, patch); err != nil {
		t.Fatal(err)
	}
	waitJob(t, ns, "two-run", func(j *costv1.Job) bool { return j.Status.Status == costv1.JobCanceled })
	eventually(t, 30*time.Second, func() error {
		var list batchv1.JobList
		if err := k8s.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{costv1.LabelJob: "two-run"}); err != nil {
			return err
		}
		for _, bj := range list.Items {
			if bj.Spec.Suspend == nil || !*bj.Spec.Suspend {
				return fmt.Errorf("batch Job %s not suspended after the cancel", bj.Name)
			}
		}
		return nil
	})

	// The manager may not list or watch Secrets; it still notices this one changed.
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(sec), sec); err != nil {
		t.Fatal(err)
	}
	sec.Data = map[string][]byte{"wrong_key": []byte("k")}
	if err := k8s.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ns, "empty", costv1.ConditionPluginReady, metav1.ConditionFalse)
}

func createDataSource(t *testing.T, ns, name, options string) {
	t.Helper()
	ds := &costv1.DataSource{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: costv1.DataSourceSpec{Plugin: costv1.PluginSpec{
			Endpoint:  pluginAddr,
			SecretRef: &costv1.LocalObjectReference{Name: "creds"},
			Options:   &runtime.RawExtension{Raw: []byte(options)},
		}},
	}
	if err := k8s.Create(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
}

func createJob(t *testing.T, ns, name, ds string) {
	t.Helper()
	j := &costv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: costv1.JobSpec{DataSourceRef: costv1.LocalObjectReference{Name: ds}}}
	if err := k8s.Create(context.Background(), j); err != nil {
		t.Fatal(err)
	}
}

func waitCondition(t *testing.T, ns, name, condType string, want metav1.ConditionStatus) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		ds := &costv1.DataSource{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, ds); err != nil {
			return err
		}
		c := meta.FindStatusCondition(ds.Status.Conditions, condType)
		if c == nil || c.Status != want {
			return fmt.Errorf("DataSource %s/%s %s is %+v, want %s", ns, name, condType, c, want)
		}
		return nil
	})
}

func waitJob(t *testing.T, ns, name string, done func(*costv1.Job) bool) *costv1.Job {
	t.Helper()
	j := &costv1.Job{}
	eventually(t, 60*time.Second, func() error {
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, j); err != nil {
			return err
		}
		if !done(j) {
			return fmt.Errorf("Job %s/%s: status %q (%s)", ns, name, j.Status.Status, j.Status.ErrorMessage)
		}
		return nil
	})
	return j
}

func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v\nforbidden calls in the manager's log:\n%s", timeout, err, forbiddenLines(managerLog.String()))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// forbiddenLines are the distinct refusals in a manager's log (at most 10).
func forbiddenLines(log string) string {
	var out []string
	seen := map[string]bool{}
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(strings.ToLower(l), "forbidden") {
			continue
		}
		msg := l
		if i := strings.Index(l, `"error":"`); i >= 0 {
			msg = l[i+len(`"error":"`):]
			if j := strings.Index(msg, `","`); j >= 0 {
				msg = msg[:j]
			}
		}
		if !seen[msg] && len(out) < 10 {
			seen[msg] = true
			out = append(out, msg)
		}
	}
	return strings.Join(out, "\n")
}
