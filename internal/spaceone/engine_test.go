package spaceone_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/operator"
	"github.com/costops/cost-analysis-operator/internal/sampleplugin"
	"github.com/costops/cost-analysis-operator/internal/store/pgtest"
)

// TestCancelThroughTheAPIEndsTheRun runs the real engine (the operator's manager and
// the sample plugin) and cancels a running Job through the API: the engine ends the
// run, its tasks end CANCELED and their batch Job is suspended.
func TestCancelThroughTheAPIEndsTheRun(t *testing.T) {
	ctx := context.Background()
	addr, _, stopPlugin, err := sampleplugin.StartOnLoopback()
	if err != nil {
		t.Fatal(err)
	}
	defer stopPlugin()
	o := operator.DefaultOptions()
	o.MetricsAddr, o.ProbeAddr, o.API.BindAddress = "0", "0", "0"
	o.SkipNameValidation = true
	mgr, err := operator.New(env.Config, o)
	if err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(mctx) }()
	defer func() { cancel(); <-done }()

	ns := newDomain(t)
	if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns},
		StringData: map[string]string{"api_key": "k"}}); err != nil {
		t.Fatal(err)
	}
	// The run's store: a real PostgreSQL (the cancel rolls the run back there).
	if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "store", Namespace: ns},
		StringData: map[string]string{costv1.StoreDSNKey: pgtest.Start(t)}}); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, &costv1.DataSource{ObjectMeta: metav1.ObjectMeta{Name: "billing", Namespace: ns},
		Spec: costv1.DataSourceSpec{
			Plugin: costv1.PluginSpec{Endpoint: addr, Options: &runtime.RawExtension{Raw: []byte(`{"tasks": 3}`)},
				SecretRef: &costv1.LocalObjectReference{Name: "creds"}},
			Collector: costv1.CollectorSpec{Image: "collector:test"},
			Store:     &costv1.StoreSpec{SecretRef: &costv1.LocalObjectReference{Name: "store"}},
		}}); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, &costv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "run", Namespace: ns},
		Spec: costv1.JobSpec{DataSourceRef: costv1.LocalObjectReference{Name: "billing"}}}); err != nil {
		t.Fatal(err)
	}
	job := &costv1.Job{}
	poll(t, 20*time.Second, func() error {
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "run"}, job); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(job.Status.Conditions, costv1.ConditionPlanned) {
			return fmt.Errorf("not planned: %+v", job.Status)
		}
		var bjs batchv1.JobList
		if err := k8s.List(ctx, &bjs, client.InNamespace(ns)); err != nil || len(bjs.Items) != 1 || ptr.Deref(bjs.Items[0].Spec.Completions, 0) != 3 {
			return fmt.Errorf("%d batch Jobs (%w), want one Indexed Job of 3 completions", len(bjs.Items), err)
		}
		return nil
	})
	// The API answers from its cache: wait until it shows the run in progress.
	poll(t, 10*time.Second, func() error {
		r := do(t, "POST", "/cost-analysis/v1/job/get", readerToken, map[string]any{"domain_id": ns, "job_id": "run"})
		if r.Status != http.StatusOK || r.JSON["status"] != "IN_PROGRESS" {
			return fmt.Errorf("%d %s", r.Status, r.Body)
		}
		return nil
	})
	r := do(t, "POST", "/cost-analysis/v1/job/cancel", cancellerToken, map[string]any{"domain_id": ns, "job_id": "run"})
	if r.Status != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	poll(t, 20*time.Second, func() error {
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "run"}, job); err != nil {
			return err
		}
		if job.Status.Status != costv1.JobCanceled || job.Status.Tasks.Canceled != 3 || job.Status.RemainedTasks != 0 {
			return fmt.Errorf("status %s counts %+v", job.Status.Status, job.Status.Tasks)
		}
		var tasks costv1.JobTaskList
		if err := k8s.List(ctx, &tasks, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, task := range tasks.Items {
			if task.Status.Status != costv1.TaskCanceled {
				return fmt.Errorf("task %s is %q", task.Name, task.Status.Status)
			}
		}
		var bjs batchv1.JobList
		if err := k8s.List(ctx, &bjs, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, bj := range bjs.Items {
			if !ptr.Deref(bj.Spec.Suspend, false) {
				return fmt.Errorf("batch Job %s not suspended", bj.Name)
			}
		}
		return nil
	})
}

func poll(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
