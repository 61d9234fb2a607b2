package spaceone_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/spaceone"
)

// listOnly hides the cache's informers: a server over it reads through List.
type listOnly struct{ client.Reader }

// The API reads a controller-runtime cache's Job and JobTask informers in place, and
// answers exactly what it answers through the cache's List.
func TestServerReadsTheCacheInPlace(t *testing.T) {
	inPlace := spaceone.New(reader, k8s, allowAll{}, spaceone.DefaultOptions())
	listed := spaceone.New(listOnly{reader}, k8s, allowAll{}, spaceone.DefaultOptions())
	if !inPlace.ReadsInPlace() || listed.ReadsInPlace() {
		t.Fatalf("reads in place: over the cache %v (want true), over a plain reader %v (want false)",
			inPlace.ReadsInPlace(), listed.ReadsInPlace())
	}

	ns := newDomain(t)
	ctx := context.Background()
	for j, source := range []string{"aws", "gcp", "aws"} {
		job := &costv1.Job{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("run-%d", j), Namespace: ns},
			Spec: costv1.JobSpec{DataSourceRef: costv1.LocalObjectReference{Name: source}}}
		if err := k8s.Create(ctx, job); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			task := &costv1.JobTask{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", job.Name, i), Namespace: ns,
				Labels: map[string]string{costv1.LabelJob: job.Name, costv1.LabelDataSource: source}},
				Spec: costv1.JobTaskSpec{JobRef: costv1.LocalObjectReference{Name: job.Name},
					DataSourceRef: costv1.LocalObjectReference{Name: source}, Index: int32(i),
					TaskOptions: runtime.RawExtension{Raw: fmt.Appendf(nil, `{"month": "2026-0%d"}`, i+1)}}}
			if err := k8s.Create(ctx, task); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Wait for the cache to hold them all.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var l costv1.JobTaskList
		if err := reader.List(ctx, &l, client.InNamespace(ns)); err == nil && len(l.Items) == 9 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cache never held the 9 JobTasks")
		}
		time.Sleep(50 * time.Millisecond)
	}

	calls := []struct{ path, body string }{
		{"/cost-analysis/v1/job/list", `{"domain_id": %q}`},
		{"/cost-analysis/v1/job/list", `{"domain_id": %q, "data_source_id": "aws"}`},
		{"/cost-analysis/v1/job/stat", `{"domain_id": %q, "query": {"aggregate": [{"group": {"keys": [{"key": "data_source_id", "name": "ds"}], "fields": [{"name": "n", "operator": "count"}]}}, {"sort": {"key": "ds"}}]}}`},
		{"/cost-analysis/v1/job-task/list", `{"domain_id": %q}`},
		{"/cost-analysis/v1/job-task/list", `{"domain_id": %q, "job_id": "run-1"}`},
		{"/cost-analysis/v1/job-task/list", `{"domain_id": %q, "data_source_id": "aws", "query": {"sort": [{"key": "job_task_id", "desc": true}], "page": {"start": 2, "limit": 2}}}`},
		{"/cost-analysis/v1/job-task/stat", `{"domain_id": %q, "query": {"aggregate": [{"group": {"keys": [{"key": "job_id", "name": "job"}], "fields": [{"name": "n", "operator": "count"}]}}, {"sort": {"key": "job"}}]}}`},
	}
	serve := func(srv *spaceone.Server, path, body string) (int, string) {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader([]byte(body)))
		req.Header.Set("X-Auth-Token", "t")
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	for _, c := range calls {
		body := fmt.Sprintf(c.body, ns)
		gotStatus, got := serve(inPlace, c.path, body)
		wantStatus, want := serve(listed, c.path, body)
		if gotStatus != http.StatusOK || gotStatus != wantStatus || got != want {
			t.Errorf("%s %s:\nin place: %d %s\nthrough List: %d %s", c.path, body, gotStatus, got, wantStatus, want)
		}
	}
	if _, out := serve(inPlace, "/cost-analysis/v1/job-task/list", fmt.Sprintf(`{"domain_id": %q, "job_id": "run-1"}`, ns)); !bytes.Contains([]byte(out), []byte(`"total_count":3`)) {
		t.Errorf("JobTasks of run-1 in place: %s, want 3", out)
	}
}
