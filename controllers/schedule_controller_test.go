package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/operator"
	"github.com/costops/cost-analysis-operator/internal/schedule"
)

var pokes atomic.Int64

// poke changes an annotation of the DataSource, so the schedule looks at it again
// after the test moved its clock.
func poke(t *testing.T, ns, name string) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"test.costops.dev/poke":"%d"}}}`, pokes.Add(1))
	ds := &costv1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := k8s.Patch(context.Background(), ds, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

func getDataSource(t *testing.T, ns, name string) *costv1.DataSource {
	t.Helper()
	ds := &costv1.DataSource{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, ds); err != nil {
		t.Fatal(err)
	}
	return ds
}

// jobNames lists the Jobs of a DataSource, sorted.
func jobNames(t *testing.T, ns, ds string) []string {
	t.Helper()
	var list costv1.JobList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, j := range list.Items {
		if j.Spec.DataSourceRef.Name == ds && j.DeletionTimestamp.IsZero() {
			names = append(names, j.Name)
		}
	}
	slices.Sort(names)
	return names
}

func sortedNames(names ...string) []string { slices.Sort(names); return names }

// waitJobNames waits until the DataSource's Jobs are exactly want.
func waitJobNames(t *testing.T, ns, ds string, timeout time.Duration, want ...string) {
	t.Helper()
	want = sortedNames(want...)
	eventually(t, timeout, func() error {
		if got := jobNames(t, ns, ds); !slices.Equal(got, want) {
			return fmt.Errorf("Jobs %v, want %v", got, want)
		}
		return nil
	})
}

// scheduleBase is the first whole minute after the DataSource was created: the
// first time a per-minute schedule of it is due.
func scheduleBase(ds *costv1.DataSource) time.Time {
	return ds.CreationTimestamp.Time.UTC().Truncate(time.Minute).Add(time.Minute)
}

func everyMinute(mutate ...func(*costv1.ScheduleSpec)) func(*costv1.DataSource) {
	return func(ds *costv1.DataSource) {
		ds.Spec.Schedule = &costv1.ScheduleSpec{Cron: "* * * * *"}
		for _, m := range mutate {
			m(ds.Spec.Schedule)
		}
	}
}

// scheduleClock is a fake clock at t and the manager options that read
// schedules with it.
func scheduleClock(t time.Time) (*testingclock.FakePassiveClock, operator.Options) {
	clk := testingclock.NewFakePassiveClock(t)
	o := testOptions()
	o.ScheduleClock = clk
	return clk, o
}

func TestScheduleStartsOneRunPerDueTimeAcrossRestarts(t *testing.T) {
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	ds := createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 1}`, everyMinute(func(s *costv1.ScheduleSpec) {
		s.StartPolicy = &costv1.StartPolicy{LookbackMonths: ptr.To[int32](1)}
	}))
	startKubelet(t, ns, func(podTask) taskOutcome { return success(3) })
	base := scheduleBase(ds)
	clk, o := scheduleClock(base.Add(10 * time.Second))
	stop := startManager(t, o)

	first := schedule.JobName("billing", base)
	j := waitJob(t, ns, first, costv1.JobSuccess, 30*time.Second)
	if j.Labels[costv1.LabelCreatedBy] != costv1.CreatedBySchedule || j.Annotations[costv1.AnnotationScheduledAt] != base.Format(time.RFC3339) {
		t.Fatalf("labels %v annotations %v", j.Labels, j.Annotations)
	}
	if !metav1.IsControlledBy(j, ds) {
		t.Fatalf("owner references %+v", j.OwnerReferences)
	}
	if want := base.AddDate(0, -1, 0).Format("2006-01"); j.Spec.Start != want {
		t.Fatalf("spec.start %q, want %q (lookbackMonths 1)", j.Spec.Start, want)
	}
	eventually(t, 10*time.Second, func() error {
		st := getDataSource(t, ns, "billing").Status
		switch {
		case st.LastScheduleTime == nil || !st.LastScheduleTime.Time.Equal(base):
			return fmt.Errorf("lastScheduleTime %v, want %v", st.LastScheduleTime, base)
		case st.NextScheduleTime == nil || !st.NextScheduleTime.Time.Equal(base.Add(time.Minute)):
			return fmt.Errorf("nextScheduleTime %v", st.NextScheduleTime)
		case st.LastSuccessfulJob == nil || st.LastSuccessfulJob.Name != first:
			return fmt.Errorf("lastSuccessfulJob %+v", st.LastSuccessfulJob)
		case len(st.Active) != 0:
			return fmt.Errorf("active %+v after the run ended", st.Active)
		}
		if c := meta.FindStatusCondition(st.Conditions, costv1.ConditionScheduled); c == nil || c.Reason != costv1.ReasonRunStarted {
			return fmt.Errorf("Scheduled %+v", c)
		}
		return nil
	})

	// A restarted manager at the same time creates nothing more.
	stop()
	stop = startManager(t, o)
	poke(t, ns, "billing")
	time.Sleep(2 * time.Second)
	waitJobNames(t, ns, "billing", time.Second, first)

	// After three minutes down, only the latest missed run starts.
	stop()
	clk.SetTime(base.Add(3*time.Minute + 5*time.Second))
	startManager(t, o)
	latest := schedule.JobName("billing", base.Add(3*time.Minute))
	waitJob(t, ns, latest, costv1.JobSuccess, 30*time.Second)
	poke(t, ns, "billing")
	time.Sleep(2 * time.Second)
	waitJobNames(t, ns, "billing", time.Second, first, latest)
}

func TestForbidSkipsAndRefusesASecondRun(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	ds := createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 2}`, everyMinute())
	startKubelet(t, ns, func(task podTask) taskOutcome {
		if task.Job == "by-hand" {
			return taskOutcome{hang: true}
		}
		return success(2)
	})
	base := scheduleBase(ds)
	clk, o := scheduleClock(ds.CreationTimestamp.Time)
	startManager(t, o)

	createJob(t, ns, "by-hand", "billing")
	eventually(t, 20*time.Second, func() error {
		if st := getDataSource(t, ns, "billing").Status; len(st.Active) != 1 || st.Active[0].Name != "by-hand" {
			return fmt.Errorf("active %+v", st.Active)
		}
		return nil
	})
	// A second Job by hand (or from Git) is refused before it plans anything.
	createJob(t, ns, "second", "billing")
	j := waitJob(t, ns, "second", costv1.JobFailure, 20*time.Second)
	if j.Status.ErrorCode != costv1.ErrorDuplicateJob || j.Status.TotalTasks != 0 || j.Status.Store != nil {
		t.Fatalf("duplicate run: %s %q, %d tasks, store %+v", j.Status.ErrorCode, j.Status.ErrorMessage, j.Status.TotalTasks, j.Status.Store)
	}
	if c := meta.FindStatusCondition(j.Status.Conditions, costv1.ConditionSucceeded); c == nil || c.Reason != costv1.ReasonDuplicateJob {
		t.Fatalf("Succeeded %+v", c)
	}
	if n := len(listTasks(t, ns, "second")); n != 0 {
		t.Fatalf("the refused run has %d JobTasks", n)
	}
	// A run that holds the source without being listed in status.active (one that
	// started before the operator had the check) blocks a new one all the same.
	ds = getDataSource(t, ns, "billing")
	if err := k8s.Status().Patch(ctx, ds, client.RawPatch(types.MergePatchType, []byte(`{"status":{"active":null}}`))); err != nil {
		t.Fatal(err)
	}
	createJob(t, ns, "third", "billing")
	if j := waitJob(t, ns, "third", costv1.JobFailure, 20*time.Second); j.Status.ErrorCode != costv1.ErrorDuplicateJob {
		t.Fatalf("third run: %s %q", j.Status.ErrorCode, j.Status.ErrorMessage)
	}
	// The schedule skips its due run while by-hand runs.
	clk.SetTime(base.Add(5 * time.Second))
	poke(t, ns, "billing")
	eventually(t, 10*time.Second, func() error {
		st := getDataSource(t, ns, "billing").Status
		c := meta.FindStatusCondition(st.Conditions, costv1.ConditionScheduled)
		if c == nil || c.Reason != costv1.ReasonSkippedActiveRun || st.LastScheduleTime == nil || !st.LastScheduleTime.Time.Equal(base) {
			return fmt.Errorf("Scheduled %+v, lastScheduleTime %v", c, st.LastScheduleTime)
		}
		return nil
	})
	waitJobNames(t, ns, "billing", time.Second, "by-hand", "second", "third")

	// Once by-hand ends, the next due time starts a run.
	hand := &costv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "by-hand"}}
	if err := k8s.Patch(ctx, hand, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"cancel":true}}`))); err != nil {
		t.Fatal(err)
	}
	waitJob(t, ns, "by-hand", costv1.JobCanceled, 20*time.Second)
	eventually(t, 10*time.Second, func() error {
		if st := getDataSource(t, ns, "billing").Status; len(st.Active) != 0 {
			return fmt.Errorf("active %+v after by-hand ended", st.Active)
		}
		return nil
	})
	clk.SetTime(base.Add(time.Minute + 5*time.Second))
	poke(t, ns, "billing")
	waitJob(t, ns, schedule.JobName("billing", base.Add(time.Minute)), costv1.JobSuccess, 30*time.Second)
}

func TestReplaceCancelsAndRollsBackTheRunningOne(t *testing.T) {
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	ds := createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 2}`, everyMinute(func(s *costv1.ScheduleSpec) {
		s.ConcurrencyPolicy = costv1.ConcurrencyReplace
	}))
	startKubelet(t, ns, func(task podTask) taskOutcome {
		if task.Job == "old" && task.Index == 1 {
			return taskOutcome{hang: true}
		}
		return success(4)
	})
	base := scheduleBase(ds)
	clk, o := scheduleClock(ds.CreationTimestamp.Time)
	startManager(t, o)

	createJob(t, ns, "old", "billing")
	eventually(t, 20*time.Second, func() error {
		j := &costv1.Job{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "old"}, j); err != nil {
			return err
		}
		if j.Status.Tasks.Success != 1 || j.Status.Tasks.InProgress != 1 {
			return fmt.Errorf("counts %+v", j.Status.Tasks)
		}
		return nil
	})
	clk.SetTime(base.Add(5 * time.Second))
	poke(t, ns, "billing")
	next := schedule.JobName("billing", base)
	old := waitJob(t, ns, "old", costv1.JobCanceled, 30*time.Second)
	if c := meta.FindStatusCondition(old.Status.Conditions, costv1.ConditionSucceeded); c == nil || c.Reason != costv1.ReasonReplaced {
		t.Fatalf("Succeeded %+v", c)
	}
	if old.Annotations[costv1.AnnotationReplacedBy] != next {
		t.Fatalf("annotations %v", old.Annotations)
	}
	assertRolledBack(t, old) // its first task had written 4 records
	j := waitJob(t, ns, next, costv1.JobSuccess, 30*time.Second)
	if j.Status.CreatedCount != 8 {
		t.Fatalf("the replacing run stored %d records, want 8", j.Status.CreatedCount)
	}
	// It planned only once the replaced run was rolled back (finishedAt is
	// rounded up to the second, creation times down).
	ended := metav1.NewTime(old.Status.FinishedAt.Add(-time.Second))
	for _, task := range listTasks(t, ns, next) {
		if task.CreationTimestamp.Before(&ended) {
			t.Fatalf("JobTask %s created at %v, before the replaced run ended at %v", task.Name, task.CreationTimestamp, old.Status.FinishedAt)
		}
	}
}

func TestSuspendAndHistoryLimits(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	ds := createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 1}`, everyMinute(func(s *costv1.ScheduleSpec) {
		s.SuccessfulJobsHistoryLimit = ptr.To[int32](2)
		s.FailedJobsHistoryLimit = ptr.To[int32](1)
	}))
	base := scheduleBase(ds)
	failing := map[string]bool{schedule.JobName("billing", base.Add(time.Minute)): true, schedule.JobName("billing", base.Add(2*time.Minute)): true}
	startKubelet(t, ns, func(task podTask) taskOutcome {
		if failing[task.Job] {
			return failure("ERROR_TEST", "failed on purpose")
		}
		return success(1)
	})
	clk, o := scheduleClock(ds.CreationTimestamp.Time)
	startManager(t, o)
	createJob(t, ns, "by-hand", "billing")
	waitJob(t, ns, "by-hand", costv1.JobSuccess, 20*time.Second)

	var runs []string
	for m := range 6 {
		at := base.Add(time.Duration(m) * time.Minute)
		name := schedule.JobName("billing", at)
		runs = append(runs, name)
		clk.SetTime(at.Add(5 * time.Second))
		poke(t, ns, "billing")
		want := costv1.JobSuccess
		if failing[name] {
			want = costv1.JobFailure
		}
		waitJob(t, ns, name, want, 30*time.Second)
	}
	// Succeeded: 0, 3, 4, 5 (keep 4, 5); failed: 1, 2 (keep 2); by hand: kept.
	waitJobNames(t, ns, "billing", 10*time.Second, "by-hand", runs[2], runs[4], runs[5])

	// Suspended: no new run, no next time.
	d := &costv1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "billing"}}
	if err := k8s.Patch(ctx, d, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"schedule":{"suspend":true}}}`))); err != nil {
		t.Fatal(err)
	}
	clk.SetTime(base.Add(6*time.Minute + 5*time.Second))
	eventually(t, 10*time.Second, func() error {
		st := getDataSource(t, ns, "billing").Status
		c := meta.FindStatusCondition(st.Conditions, costv1.ConditionScheduled)
		if c == nil || c.Reason != costv1.ReasonSuspended || st.NextScheduleTime != nil {
			return fmt.Errorf("Scheduled %+v, next %v", c, st.NextScheduleTime)
		}
		return nil
	})
	time.Sleep(time.Second)
	waitJobNames(t, ns, "billing", time.Second, "by-hand", runs[2], runs[4], runs[5])
}

func TestSyncNowAnnotation(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	createDataSource(t, ns, "billing", pluginAddr, `{"tasks": 1}`)
	startKubelet(t, ns, func(podTask) taskOutcome { return success(2) })
	startManager(t, testOptions())
	annotate := func(v string) {
		t.Helper()
		ds := &costv1.DataSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "billing"}}
		patch := `{"metadata":{"annotations":{"` + costv1.AnnotationSyncNow + `":` + strconv.Quote(v) + `}}}`
		if err := k8s.Patch(ctx, ds, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
			t.Fatal(err)
		}
	}
	annotate("1")
	first := schedule.SyncNowJobName("billing", "1")
	j := waitJob(t, ns, first, costv1.JobSuccess, 30*time.Second)
	if j.Labels[costv1.LabelCreatedBy] != costv1.CreatedBySyncNow {
		t.Fatalf("labels %v", j.Labels)
	}
	eventually(t, 10*time.Second, func() error {
		st := getDataSource(t, ns, "billing").Status
		if st.SyncNow == nil || st.SyncNow.Value != "1" || st.SyncNow.Job != first || st.NextScheduleTime != nil {
			return fmt.Errorf("syncNow %+v next %v", st.SyncNow, st.NextScheduleTime)
		}
		return nil
	})
	poke(t, ns, "billing") // the same value again: nothing new
	time.Sleep(time.Second)
	waitJobNames(t, ns, "billing", time.Second, first)
	annotate("2")
	second := schedule.SyncNowJobName("billing", "2")
	waitJob(t, ns, second, costv1.JobSuccess, 30*time.Second)
	waitJobNames(t, ns, "billing", time.Second, first, second)
}
