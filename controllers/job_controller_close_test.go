package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/controllers"
	"github.com/costops/cost-analysis-operator/internal/store"
	"github.com/costops/cost-analysis-operator/internal/store/pgtest"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

// committedRows is what readers see of a data source: the committed records.
func committedRows(t *testing.T, dsn, ns, ds string) int64 {
	t.Helper()
	db, err := testStores.Get(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	tot, err := db.CommittedTotals(context.Background(), ns, ds, "")
	if err != nil {
		t.Fatal(err)
	}
	return tot.Rows
}

func storedCondition(j *costv1.Job) *metav1.Condition {
	return meta.FindStatusCondition(j.Status.Conditions, costv1.ConditionStored)
}

// A second run of the same months replaces the first one's records at its
// commit; a run of another DataSource keeps its own.
func TestRunReplacesTheOlderRunOfItsWindows(t *testing.T) {
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 3}`)
	createDataSource(t, ns, "other", pluginAddr, `{"tasks": 2}`)
	rows := 10
	startKubelet(t, ns, func(task podTask) taskOutcome { return success(rows) })
	startManager(t, testOptions())

	createJob(t, ns, "other-1", "other")
	waitJob(t, ns, "other-1", costv1.JobSuccess, 30*time.Second)
	first := createJob(t, ns, "first", "billing")
	j := waitJob(t, ns, "first", costv1.JobSuccess, 30*time.Second)
	if j.Status.CreatedCount != 30 || committedRows(t, storeDSN, ns, "billing") != 30 {
		t.Fatalf("first run: createdCount %d, %d committed rows; want 30", j.Status.CreatedCount, committedRows(t, storeDSN, ns, "billing"))
	}
	rows = 7
	createJob(t, ns, "second", "billing")
	j = waitJob(t, ns, "second", costv1.JobSuccess, 30*time.Second)
	if got := committedRows(t, storeDSN, ns, "billing"); j.Status.CreatedCount != 21 || got != 21 {
		t.Fatalf("second run: createdCount %d, %d committed rows; want 21 (the first run's 30 replaced)", j.Status.CreatedCount, got)
	}
	if n := storedRows(t, first); n != 0 {
		t.Fatalf("%d rows of the replaced run are left", n)
	}
	if got := committedRows(t, storeDSN, ns, "other"); got != 20 {
		t.Fatalf("the other DataSource has %d committed rows, want its 20", got)
	}
}

// A run that times out is rolled back: the rows its tasks wrote are gone, the
// older committed data is as it was.
func TestTimeoutRollsBack(t *testing.T) {
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 2}`)
	hang := false
	startKubelet(t, ns, func(task podTask) taskOutcome {
		if hang {
			return taskOutcome{rows: 5, hang: true}
		}
		return success(4)
	})
	startManager(t, testOptions())
	createJob(t, ns, "before", "billing")
	waitJob(t, ns, "before", costv1.JobSuccess, 30*time.Second)

	hang = true
	createJob(t, ns, "run", "billing", func(j *costv1.Job) { j.Spec.Timeout = &metav1.Duration{Duration: 4 * time.Second} })
	// Its tasks wrote their rows (invisible to readers) before the timeout.
	eventually(t, 20*time.Second, func() error {
		j := &costv1.Job{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "run"}, j); err != nil {
			return err
		}
		if n := storedRows(t, j); n != 10 && j.Status.Status == costv1.JobInProgress {
			return fmt.Errorf("%d rows written", n)
		}
		if got := committedRows(t, storeDSN, ns, "billing"); got != 8 {
			t.Fatalf("readers see %d rows while the run is open, want the 8 committed before", got)
		}
		return nil
	})
	j := waitJob(t, ns, "run", costv1.JobTimeout, 20*time.Second)
	assertRolledBack(t, j)
	if got := committedRows(t, storeDSN, ns, "billing"); got != 8 {
		t.Fatalf("%d committed rows after the rollback, want the 8 of the run before", got)
	}
}

// Without a store of its own and without a default store a DataSource is not
// ready, and its Jobs fail with ERROR_STORE_NOT_CONFIGURED.
func TestNoStore(t *testing.T) {
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 2}`)
	o := testOptions()
	o.DefaultStoreSecret = noDefaultStore
	startManager(t, o)
	eventually(t, 20*time.Second, func() error {
		ds := &costv1.DataSource{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "billing"}, ds); err != nil {
			return err
		}
		c := meta.FindStatusCondition(ds.Status.Conditions, costv1.ConditionStoreReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != costv1.ReasonStoreNotConfigured {
			return fmt.Errorf("StoreReady %+v", c)
		}
		return nil
	})
	createJob(t, ns, "run", "billing")
	j := waitJob(t, ns, "run", costv1.JobFailure, 20*time.Second)
	if j.Status.ErrorCode != costv1.ErrorStoreNotConfigured || !strings.Contains(j.Status.ErrorMessage, "default store") {
		t.Fatalf("error %s %q", j.Status.ErrorCode, j.Status.ErrorMessage)
	}
	if len(listTasks(t, ns, "run")) != 0 {
		t.Fatal("a run without a store planned tasks")
	}
}

// A DataSource with spec.store.secretRef writes to its own database: its task
// pods get the DSN from that Secret (never in clear), the commit goes there, and
// the default store holds nothing of it.
func TestDataSourceOwnStore(t *testing.T) {
	ns := newNamespace(t)
	own := pgtest.Start(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	createSecret(t, ns, "my-store", map[string]string{costv1.StoreDSNKey: own})
	createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 2}`, func(ds *costv1.DataSource) {
		ds.Spec.Store = &costv1.StoreSpec{SecretRef: &costv1.LocalObjectReference{Name: "my-store"}, Retention: ptr.To[int32](24)}
	})
	startKubelet(t, ns, func(task podTask) taskOutcome { return success(6) })
	startManager(t, testOptions())
	eventually(t, 20*time.Second, func() error {
		ds := &costv1.DataSource{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "billing"}, ds); err != nil {
			return err
		}
		c := meta.FindStatusCondition(ds.Status.Conditions, costv1.ConditionStoreReady)
		if c == nil || c.Status != metav1.ConditionTrue || strings.Contains(c.Message, "pgtest") && strings.Contains(c.Message, "password") {
			return fmt.Errorf("StoreReady %+v", c)
		}
		return nil
	})
	createJob(t, ns, "run", "billing")
	j := waitJob(t, ns, "run", costv1.JobSuccess, 30*time.Second)
	if st := j.Status.Store; st == nil || st.SecretName != "my-store" || st.Default || j.Status.CreatedCount != 12 {
		t.Fatalf("store status %+v, createdCount %d", st, j.Status.CreatedCount)
	}
	if got := committedRows(t, own, ns, "billing"); got != 12 {
		t.Fatalf("%d rows committed in the DataSource's store, want 12", got)
	}
	if got := committedRows(t, storeDSN, ns, "billing"); got != 0 {
		t.Fatalf("%d rows in the default store", got)
	}
	for _, bj := range listBatchJobs(t, ns, "run") {
		for _, e := range bj.Spec.Template.Spec.Containers[0].Env {
			if strings.Contains(e.Value, "postgres") || e.Value == own {
				t.Fatalf("env %s holds the DSN in clear", e.Name)
			}
			if e.Name == taskpod.EnvStoreDSN && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "my-store") {
				t.Fatalf("env %s: %+v", e.Name, e.ValueFrom)
			}
		}
	}
}

// A run on the default store gets a Secret of its own in its namespace, owned by
// the Job, that its task pods read the DSN from.
func TestDefaultStoreSecretOfTheRun(t *testing.T) {
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 1}`)
	startKubelet(t, ns, func(task podTask) taskOutcome { return success(1) })
	startManager(t, testOptions())
	createJob(t, ns, "run", "billing")
	j := waitJob(t, ns, "run", costv1.JobSuccess, 30*time.Second)
	sec := &corev1.Secret{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: controllers.StoreSecretName("run")}, sec); err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(sec, j) || string(sec.Data[costv1.StoreDSNKey]) != storeDSN {
		t.Fatalf("the run's store secret: owners %+v", sec.OwnerReferences)
	}
	if st := j.Status.Store; st == nil || !st.Default || st.SecretName != sec.Name {
		t.Fatalf("store status %+v", st)
	}
}

// A commit the store keeps refusing is retried, then the run fails with
// ERROR_COMMIT_FAILED and is rolled back once the store answers again; the
// terminal status waits for that rollback.
func TestCommitThatKeepsFailing(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	own := pgtest.Start(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	createSecret(t, ns, "my-store", map[string]string{costv1.StoreDSNKey: own})
	createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 2}`, func(ds *costv1.DataSource) {
		ds.Spec.Store = &costv1.StoreSpec{SecretRef: &costv1.LocalObjectReference{Name: "my-store"}}
	})
	startKubelet(t, ns, func(task podTask) taskOutcome {
		o := success(3)
		o.runFor = 3 * time.Second
		return o
	})
	o := testOptions()
	o.CommitRetryWindow = 3 * time.Second
	startManager(t, o)
	createJob(t, ns, "run", "billing")
	eventually(t, 20*time.Second, func() error {
		running := 0
		for _, p := range listPods(t, ns, "run") {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		if running != 2 {
			return fmt.Errorf("%d pods running", running)
		}
		return nil
	})
	// The pods have their DSN; the manager's commit will read a broken one.
	broken := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "my-store"}}
	if err := k8s.Patch(ctx, broken, client.RawPatch(types.MergePatchType,
		[]byte(`{"stringData":{"dsn":"postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1"}}`))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		j := &costv1.Job{}
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "run"}, j); err != nil {
			return err
		}
		if e := j.Status.Ending; e == nil || e.ErrorCode != costv1.ErrorCommitFailed || j.Status.Status != costv1.JobInProgress {
			return fmt.Errorf("status %s ending %+v stored %+v", j.Status.Status, e, storedCondition(j))
		}
		if c := storedCondition(j); c == nil || c.Reason != costv1.ReasonRollingBack || c.Status != metav1.ConditionUnknown {
			return fmt.Errorf("Stored %+v", c)
		}
		return nil
	})
	// Failed attempts wait their backoff: the status write of each one does not
	// bring the next at once.
	attempts := func() int32 {
		j := &costv1.Job{}
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "run"}, j); err != nil {
			t.Fatal(err)
		}
		return j.Status.Store.Attempts
	}
	before := attempts()
	time.Sleep(3 * time.Second)
	if after := attempts(); after-before > 2 || after > 8 {
		t.Fatalf("%d failed attempts, %d of them in 3 s: the backoff is not kept", after, after-before)
	}
	// The rows written by the tasks are there, uncommitted.
	if got := committedRows(t, own, ns, "billing"); got != 0 {
		t.Fatalf("%d rows visible before any commit", got)
	}
	if err := k8s.Patch(ctx, broken, client.RawPatch(types.MergePatchType,
		[]byte(`{"stringData":{"dsn":"`+own+`"}}`))); err != nil {
		t.Fatal(err)
	}
	j := waitJob(t, ns, "run", costv1.JobFailure, 90*time.Second)
	if j.Status.ErrorCode != costv1.ErrorCommitFailed {
		t.Fatalf("error %s %q", j.Status.ErrorCode, j.Status.ErrorMessage)
	}
	if c := storedCondition(j); c == nil || c.Status != metav1.ConditionFalse || c.Reason != costv1.ReasonCommitFailed {
		t.Fatalf("Stored %+v", c)
	}
	db, err := testStores.Get(ctx, own)
	if err != nil {
		t.Fatal(err)
	}
	if recs, err := db.RunRecords(ctx, string(j.UID), ""); err != nil || len(recs) != 0 {
		t.Fatalf("%d rows left (%v)", len(recs), err)
	}
	if j.Status.CreatedCount != 0 || j.Status.Store.Attempts == 0 {
		t.Fatalf("createdCount %d attempts %d", j.Status.CreatedCount, j.Status.Store.Attempts)
	}
}

// A manager stopped in the middle of a commit leaves the run committing; the
// next manager commits it, and its rows are there exactly once.
func TestManagerStoppedMidCommit(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 3}`)
	startKubelet(t, ns, func(task podTask) taskOutcome { return success(5) })

	// Hold the data source's commit lock (the store serializes the commits of a
	// data source on it), so the manager's commit waits inside its transaction.
	defaultStore(t) // sets storeDSN
	conn, err := pgx.Connect(ctx, storeDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1::int4, hashtext($2))", store.CommitLockClass, ns+"/billing"); err != nil {
		t.Fatal(err)
	}
	stop := startManager(t, testOptions())
	createJob(t, ns, "run", "billing")
	eventually(t, 30*time.Second, func() error {
		j := &costv1.Job{}
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "run"}, j); err != nil {
			return err
		}
		if c := storedCondition(j); c == nil || c.Reason != costv1.ReasonCommitting {
			return fmt.Errorf("Stored %+v, status %s", c, j.Status.Status)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // the commit is waiting on the lock
	stop()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1::int4, hashtext($2))", store.CommitLockClass, ns+"/billing"); err != nil {
		t.Fatal(err)
	}
	j := &costv1.Job{}
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "run"}, j); err != nil {
		t.Fatal(err)
	}
	if j.Status.Status != costv1.JobInProgress || j.Status.Ending == nil {
		t.Fatalf("after the stop: status %s ending %+v", j.Status.Status, j.Status.Ending)
	}
	if got := committedRows(t, storeDSN, ns, "billing"); got != 0 {
		t.Fatalf("%d rows visible before the commit finished", got)
	}
	startManager(t, testOptions())
	j = waitJob(t, ns, "run", costv1.JobSuccess, 30*time.Second)
	if got := committedRows(t, storeDSN, ns, "billing"); j.Status.CreatedCount != 15 || got != 15 {
		t.Fatalf("createdCount %d, %d rows committed; want 15", j.Status.CreatedCount, got)
	}
}
