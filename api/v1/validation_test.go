package v1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/scheme"
	"github.com/costops/cost-analysis-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = apiextensionsv1.AddToScheme(scheme.Scheme)
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

var nsCounter int

func newNamespace(t *testing.T) string {
	t.Helper()
	nsCounter++
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "validation-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func goodDataSource(ns string) *costv1.DataSource {
	return &costv1.DataSource{
		ObjectMeta: metav1.ObjectMeta{Name: "billing", Namespace: ns},
		Spec: costv1.DataSourceSpec{
			Plugin:    costv1.PluginSpec{Endpoint: "plugin.cost-system.svc:50051", Options: &runtime.RawExtension{Raw: []byte(`{"accounts":["a"]}`)}},
			Collector: costv1.CollectorSpec{Image: "collector:1"},
		},
	}
}

func goodJob(ns string) *costv1.Job {
	return &costv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "run", Namespace: ns},
		Spec:       costv1.JobSpec{DataSourceRef: costv1.LocalObjectReference{Name: "billing"}, Start: "2026-09"},
	}
}

func goodJobTask(ns string) *costv1.JobTask {
	return &costv1.JobTask{
		ObjectMeta: metav1.ObjectMeta{Name: "run-0", Namespace: ns},
		Spec: costv1.JobTaskSpec{
			JobRef: costv1.LocalObjectReference{Name: "run"}, DataSourceRef: costv1.LocalObjectReference{Name: "billing"},
			Index: 0, TaskOptions: runtime.RawExtension{Raw: []byte(`{"account_id":"a","month":"2026-09"}`)},
		},
	}
}

func TestCreateValidation(t *testing.T) {
	ctx := context.Background()
	tests := map[string]struct {
		obj     func(ns string) client.Object
		wantErr string // empty: accepted
	}{
		"a complete DataSource is accepted": {obj: func(ns string) client.Object { return goodDataSource(ns) }},
		"a DataSource with an IPv6 endpoint is accepted": {obj: func(ns string) client.Object {
			ds := goodDataSource(ns)
			ds.Spec.Plugin.Endpoint = "[::1]:50051"
			return ds
		}},
		"a DataSource endpoint without a port is refused": {obj: func(ns string) client.Object {
			ds := goodDataSource(ns)
			ds.Spec.Plugin.Endpoint = "grpc://plugin"
			return ds
		}, wantErr: "plugin.endpoint must be host:port"},
		"a DataSource without a collector image is accepted: the operator's --collector-image is used": {obj: func(ns string) client.Object {
			ds := goodDataSource(ns)
			ds.Spec.Collector.Image = ""
			return ds
		}},
		"a DataSource with an unknown failure policy is refused": {obj: func(ns string) client.Object {
			ds := goodDataSource(ns)
			ds.Spec.JobDefaults.FailurePolicy = "Retry"
			return ds
		}, wantErr: `supported values: "Fail", "Continue"`},
		"a DataSource with a zero default timeout is refused": {obj: func(ns string) client.Object {
			ds := goodDataSource(ns)
			ds.Spec.JobDefaults.Timeout = &metav1.Duration{}
			return ds
		}, wantErr: "timeout must be a positive duration"},
		"a DataSource with a TTL under 30s is refused": {obj: func(ns string) client.Object {
			ds := goodDataSource(ns)
			ds.Spec.JobDefaults.TTLSecondsAfterFinished = ptr.To[int32](5)
			return ds
		}, wantErr: "ttlSecondsAfterFinished"},
		"a DataSource with a 64-character name is refused": {obj: func(ns string) client.Object {
			ds := goodDataSource(ns)
			ds.Name = strings.Repeat("d", 64)
			return ds
		}, wantErr: "a DataSource name is at most 63 characters"},
		"a DataSource with a full schedule is accepted": {obj: func(ns string) client.Object {
			ds := goodDataSource(ns)
			ds.Spec.Schedule = &costv1.ScheduleSpec{Cron: "0 3 * * 1-5", TimeZone: ptr.To("Asia/Seoul"), Suspend: ptr.To(false),
				ConcurrencyPolicy: costv1.ConcurrencyReplace, StartingDeadlineSeconds: ptr.To[int64](300),
				SuccessfulJobsHistoryLimit: ptr.To[int32](5), FailedJobsHistoryLimit: ptr.To[int32](0),
				StartPolicy: &costv1.StartPolicy{LookbackMonths: ptr.To[int32](1)}}
			return ds
		}},
		"a DataSource with an @daily schedule is accepted": {obj: func(ns string) client.Object {
			ds := goodDataSource(ns)
			ds.Spec.Schedule = &costv1.ScheduleSpec{Cron: "@daily"}
			return ds
		}},
		"a schedule of four fields is refused": {obj: func(ns string) client.Object {
			ds := goodDataSource(ns)
			ds.Spec.Schedule = &costv1.ScheduleSpec{Cron: "0 3 * *"}
			return ds
		}, wantErr: "schedule.cron must have five fields"},
		"a schedule that sets TZ itself is refused": {obj: func(ns string) client.Object {
			ds := goodDataSource(ns)
			ds.Spec.Schedule = &costv1.ScheduleSpec{Cron: "CRON_TZ=UTC 0 3 * * *"}
			return ds
		}, wantErr: "use schedule.timeZone"},
		"a schedule time zone that is not a name is refused": {obj: func(ns string) client.Object {
			ds := goodDataSource(ns)
			ds.Spec.Schedule = &costv1.ScheduleSpec{Cron: "@hourly", TimeZone: ptr.To("UTC+9 hours")}
			return ds
		}, wantErr: "schedule.timeZone must be an IANA time zone name"},
		"an unknown concurrency policy is refused": {obj: func(ns string) client.Object {
			ds := goodDataSource(ns)
			ds.Spec.Schedule = &costv1.ScheduleSpec{Cron: "@hourly", ConcurrencyPolicy: "Queue"}
			return ds
		}, wantErr: `supported values: "Allow", "Forbid", "Replace"`},
		"a start policy with months and days is refused": {obj: func(ns string) client.Object {
			ds := goodDataSource(ns)
			ds.Spec.Schedule = &costv1.ScheduleSpec{Cron: "@hourly",
				StartPolicy: &costv1.StartPolicy{LookbackMonths: ptr.To[int32](1), LookbackDays: ptr.To[int32](3)}}
			return ds
		}, wantErr: "sets lookbackMonths or lookbackDays, not both"},
		"a complete Job is accepted": {obj: func(ns string) client.Object { return goodJob(ns) }},
		"a Job starting on a day is accepted": {obj: func(ns string) client.Object {
			j := goodJob(ns)
			j.Spec.Start = "2026-09-15"
			return j
		}},
		"a Job without start, with every setting, is accepted": {obj: func(ns string) client.Object {
			j := goodJob(ns)
			j.Spec.Start = ""
			j.Spec.Timeout = &metav1.Duration{Duration: 90 * time.Minute}
			j.Spec.Parallelism = ptr.To[int32](5)
			j.Spec.TaskRetryLimit = ptr.To[int32](2)
			j.Spec.FailurePolicy = costv1.FailurePolicyContinue
			return j
		}},
		"a Job with a malformed start is refused": {obj: func(ns string) client.Object {
			j := goodJob(ns)
			j.Spec.Start = "09/2026"
			return j
		}, wantErr: "spec.start must be a month (YYYY-MM) or a day (YYYY-MM-DD)"},
		"a Job starting in month 13 is refused": {obj: func(ns string) client.Object {
			j := goodJob(ns)
			j.Spec.Start = "2026-13"
			return j
		}, wantErr: "spec.start must be a month"},
		"a Job with zero parallelism is refused": {obj: func(ns string) client.Object {
			j := goodJob(ns)
			j.Spec.Parallelism = ptr.To[int32](0)
			return j
		}, wantErr: "spec.parallelism: Invalid value: 0: spec.parallelism in body should be greater than or equal to 1"},
		"a Job with a negative timeout is refused": {obj: func(ns string) client.Object {
			j := goodJob(ns)
			j.Spec.Timeout = &metav1.Duration{Duration: -5 * time.Minute}
			return j
		}, wantErr: "spec.timeout must be a positive duration"},
		"a Job with a negative retry limit is refused": {obj: func(ns string) client.Object {
			j := goodJob(ns)
			j.Spec.TaskRetryLimit = ptr.To[int32](-1)
			return j
		}, wantErr: "spec.taskRetryLimit"},
		"a Job without a DataSource is refused": {obj: func(ns string) client.Object {
			j := goodJob(ns)
			j.Spec.DataSourceRef.Name = ""
			return j
		}, wantErr: "spec.dataSourceRef.name"},
		"a Job with a 53-character name is refused": {obj: func(ns string) client.Object {
			j := goodJob(ns)
			j.Name = strings.Repeat("j", 53)
			return j
		}, wantErr: "a Job name is at most 52 characters"},
		"a complete JobTask is accepted": {obj: func(ns string) client.Object { return goodJobTask(ns) }},
		"a JobTask with a negative index is refused": {obj: func(ns string) client.Object {
			jt := goodJobTask(ns)
			jt.Spec.Index = -1
			return jt
		}, wantErr: "spec.index"},
	}
	ns := newNamespace(t)
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			obj := tc.obj(ns)
			err := env.Client.Create(ctx, obj, client.DryRunAll)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("want accepted, got %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("want refused with %q, got accepted", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("want an error containing %q, got %v", tc.wantErr, err)
			}
		})
	}
}

func TestUpdateValidation(t *testing.T) {
	ctx := context.Background()
	tests := map[string]struct {
		before  func(j *costv1.Job)
		change  func(j *costv1.Job)
		wantErr string
	}{
		"setting cancel is allowed":               {change: func(j *costv1.Job) { j.Spec.Cancel = true }},
		"changing the timeout mid-run is allowed": {change: func(j *costv1.Job) { j.Spec.Timeout = &metav1.Duration{Duration: time.Hour} }},
		"changing parallelism mid-run is allowed": {change: func(j *costv1.Job) { j.Spec.Parallelism = ptr.To[int32](3) }},
		"unsetting cancel is refused": {before: func(j *costv1.Job) { j.Spec.Cancel = true }, change: func(j *costv1.Job) { j.Spec.Cancel = false },
			wantErr: "spec.cancel cannot be set back to false"},
		"changing the DataSource is refused": {change: func(j *costv1.Job) { j.Spec.DataSourceRef.Name = "other" },
			wantErr: "spec.dataSourceRef is immutable"},
		"changing start is refused": {change: func(j *costv1.Job) { j.Spec.Start = "2026-10" },
			wantErr: "spec.start is immutable"},
		"removing start is refused": {change: func(j *costv1.Job) { j.Spec.Start = "" },
			wantErr: "spec.start is immutable"},
	}
	ns := newNamespace(t)
	i := 0
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			i++
			j := goodJob(ns)
			j.Name = fmt.Sprintf("update-%d", i)
			if tc.before != nil {
				tc.before(j)
			}
			if err := env.Client.Create(ctx, j); err != nil {
				t.Fatal(err)
			}
			tc.change(j)
			err := env.Client.Update(ctx, j)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("want accepted, got %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("want an error containing %q, got %v", tc.wantErr, err)
			}
		})
	}

	t.Run("a JobTask's spec is immutable", func(t *testing.T) {
		jt := goodJobTask(ns)
		if err := env.Client.Create(ctx, jt); err != nil {
			t.Fatal(err)
		}
		jt.Spec.Index = 7
		err := env.Client.Update(ctx, jt)
		if err == nil || !strings.Contains(err.Error(), "JobTask spec is immutable") {
			t.Fatalf("want 'JobTask spec is immutable', got %v", err)
		}
	})
}

func TestStatusOnlyThroughSubresource(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	j := goodJob(ns)
	j.Status.Status = costv1.JobSuccess
	if err := env.Client.Create(ctx, j); err != nil {
		t.Fatal(err)
	}
	got := &costv1.Job{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(j), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Status != "" {
		t.Fatalf("status was written on create: %q", got.Status.Status)
	}
	got.Status.Status = costv1.JobFailure
	if err := env.Client.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(j), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Status != "" {
		t.Fatalf("status was written through the main resource: %q", got.Status.Status)
	}
	got.Status.Status = costv1.JobInProgress
	got.Status.TotalTasks = 3
	if err := env.Client.Status().Update(ctx, got); err != nil {
		t.Fatalf("status subresource update: %v", err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(j), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Status != costv1.JobInProgress || got.Status.TotalTasks != 3 {
		t.Fatalf("status subresource update lost: %+v", got.Status)
	}
	got.Status.Status = "RUNNING"
	err := env.Client.Status().Update(ctx, got)
	if err == nil || !strings.Contains(err.Error(), `supported values: "IN_PROGRESS", "SUCCESS", "FAILURE", "TIMEOUT", "CANCELED"`) {
		t.Fatalf("want the status enum enforced, got %v", err)
	}
}

func TestCRDsServePrinterColumnsShortNamesAndSelectableFields(t *testing.T) {
	ctx := context.Background()
	want := map[string]struct {
		shortName  string
		columns    []string
		selectable []string
	}{
		"datasources.cost-analysis.costops.dev": {shortName: "cads", columns: []string{"Endpoint", "Ready", "Store", "Schedule", "Suspended", "Next Sync", "Last Job", "Last Status", "Last Sync", "Age"}},
		"jobs.cost-analysis.costops.dev": {shortName: "cajob",
			columns:    []string{"Status", "Data Source", "Total", "Remained", "Created", "Error", "Started", "Finished", "Age"},
			selectable: []string{".status.status", ".spec.dataSourceRef.name"}},
		"jobtasks.cost-analysis.costops.dev": {shortName: "catask",
			columns:    []string{"Status", "Job", "Index", "Created", "Attempts", "Error", "Finished", "Age"},
			selectable: []string{".status.status", ".spec.jobRef.name", ".spec.dataSourceRef.name"}},
	}
	for name, w := range want {
		t.Run(name, func(t *testing.T) {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
				t.Fatal(err)
			}
			if got := crd.Spec.Names.ShortNames; len(got) != 1 || got[0] != w.shortName {
				t.Errorf("short names %v, want [%s]", got, w.shortName)
			}
			if got := crd.Spec.Names.Categories; len(got) != 1 || got[0] != "costanalysis" {
				t.Errorf("categories %v, want [costanalysis]", got)
			}
			v := crd.Spec.Versions[0]
			if v.Subresources == nil || v.Subresources.Status == nil {
				t.Errorf("no status subresource")
			}
			var cols []string
			for _, c := range v.AdditionalPrinterColumns {
				cols = append(cols, c.Name)
			}
			if strings.Join(cols, ",") != strings.Join(w.columns, ",") {
				t.Errorf("printer columns %v, want %v", cols, w.columns)
			}
			var sel []string
			for _, f := range v.SelectableFields {
				sel = append(sel, f.JSONPath)
			}
			if strings.Join(sel, ",") != strings.Join(w.selectable, ",") {
				t.Errorf("selectable fields %v, want %v", sel, w.selectable)
			}
		})
	}
}

func TestFieldSelectors(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	for i, st := range []costv1.JobState{costv1.JobFailure, costv1.JobSuccess, costv1.JobFailure} {
		j := goodJob(ns)
		j.Name = fmt.Sprintf("sel-%d", i)
		if i == 2 {
			j.Spec.DataSourceRef.Name = "other"
		}
		if err := env.Client.Create(ctx, j); err != nil {
			t.Fatal(err)
		}
		j.Status.Status = st
		if err := env.Client.Status().Update(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	count := func(fields client.MatchingFields) int {
		var list costv1.JobList
		if err := env.Client.List(ctx, &list, client.InNamespace(ns), fields); err != nil {
			t.Fatal(err)
		}
		return len(list.Items)
	}
	if n := count(client.MatchingFields{"status.status": "FAILURE"}); n != 2 {
		t.Errorf("status.status=FAILURE: %d Jobs, want 2", n)
	}
	if n := count(client.MatchingFields{"spec.dataSourceRef.name": "billing"}); n != 2 {
		t.Errorf("spec.dataSourceRef.name=billing: %d Jobs, want 2", n)
	}
	if n := count(client.MatchingFields{"status.status": "FAILURE", "spec.dataSourceRef.name": "other"}); n != 1 {
		t.Errorf("both selectors: %d Jobs, want 1", n)
	}
	jt := goodJobTask(ns)
	if err := env.Client.Create(ctx, jt); err != nil {
		t.Fatal(err)
	}
	var tasks costv1.JobTaskList
	if err := env.Client.List(ctx, &tasks, client.InNamespace(ns), client.MatchingFields{"spec.jobRef.name": "run"}); err != nil || len(tasks.Items) != 1 {
		t.Errorf("spec.jobRef.name=run: %d JobTasks (%v), want 1", len(tasks.Items), err)
	}
}

// TestInvalidSamplesAreRefused applies every sample under config/samples/invalid with
// a server-side dry run, as `kubectl apply --dry-run=server` does, and checks the
// message each one documents in its first comment line ("# Refused: ...").
func TestInvalidSamplesAreRefused(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	expect := map[string]string{
		"job_bad_start.yaml":            "spec.start must be a month (YYYY-MM) or a day (YYYY-MM-DD)",
		"job_zero_parallelism.yaml":     "should be greater than or equal to 1",
		"job_negative_timeout.yaml":     "spec.timeout must be a positive duration",
		"job_no_datasource.yaml":        "spec.dataSourceRef: Required value",
		"datasource_bad_endpoint.yaml":  "plugin.endpoint must be host:port",
		"datasource_bad_policy.yaml":    `supported values: "Fail", "Continue"`,
		"datasource_bad_schedule.yaml":  "schedule.cron must have five fields",
		"datasource_bad_retention.yaml": "spec.store.retention: Invalid value: 0: spec.store.retention in body should be greater than or equal to 1",
	}
	files, err := filepath.Glob(filepath.Join(env.Root, "config", "samples", "invalid", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid samples: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			want, ok := expect[name]
			if !ok {
				t.Fatalf("no expected message for %s: add it to this test", name)
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(b, &u.Object); err != nil {
				t.Fatal(err)
			}
			u.SetNamespace(ns)
			err = env.Client.Create(ctx, u, client.DryRunAll)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("want refused with %q, got %v", want, err)
			}
		})
	}
}

// TestValidSamplesAreAccepted applies config/samples with a server-side dry run.
func TestValidSamplesAreAccepted(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	files, _ := filepath.Glob(filepath.Join(env.Root, "config", "samples", "v1_*.yaml"))
	if len(files) < 3 {
		t.Fatalf("want the Secret, DataSource and Job samples, found %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(b, &u.Object); err != nil {
			t.Fatal(err)
		}
		u.SetNamespace(ns)
		if err := env.Client.Create(ctx, u, client.DryRunAll); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
}
