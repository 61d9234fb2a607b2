package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/api"
)

// sliceReader is a cache stand-in: it lists the Jobs it holds as the informer cache
// does under UnsafeDisableDeepCopy (shallow copies of the cached objects).
type sliceReader struct{ jobs []costv1.Job }

func (r *sliceReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return fmt.Errorf("not used")
}

func (r *sliceReader) List(_ context.Context, list client.ObjectList, _ ...client.ListOption) error {
	l, ok := list.(*costv1.JobList)
	if !ok {
		return fmt.Errorf("unexpected list %T", list)
	}
	l.Items = append(l.Items[:0], r.jobs...)
	return nil
}

// allowAll lets every caller do everything.
type allowAll struct{}

func (allowAll) Authenticate(context.Context, string) (api.User, error) {
	return api.User{Name: "bench"}, nil
}
func (allowAll) Authorize(context.Context, api.User, api.Access) (bool, error) {
	return true, nil
}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	header http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

func benchJobs(n int) []costv1.Job {
	base := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	states := []costv1.JobState{costv1.JobSuccess, costv1.JobFailure, costv1.JobInProgress, costv1.JobCanceled, costv1.JobTimeout}
	jobs := make([]costv1.Job, n)
	for i := range jobs {
		created := metav1.NewTime(base.Add(time.Duration(i) * time.Minute))
		finished := metav1.NewTime(created.Add(20 * time.Minute))
		jobs[i] = costv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("job-%05d", i), Namespace: "bench", CreationTimestamp: created},
			Spec:       costv1.JobSpec{DataSourceRef: costv1.LocalObjectReference{Name: fmt.Sprintf("source-%d", i%20)}},
			Status: costv1.JobStatus{Status: states[i%len(states)], TotalTasks: int32(i % 100), RemainedTasks: int32(i % 7),
				CreatedAt: &created, UpdatedAt: &finished, FinishedAt: &finished, LastChangedAt: &created},
		}
	}
	return jobs
}

// BenchmarkJobList lists 10,000 cached Jobs through the API (authentication stubbed,
// everything else as served) beside its baseline: JSON-encoding the same JobInfo
// records alone.
func BenchmarkJobList(b *testing.B) {
	jobs := benchJobs(10000)
	srv := api.New(&sliceReader{jobs: jobs}, nil, allowAll{}, api.DefaultOptions())
	h := srv.Handler()
	call := func(b *testing.B, body string, wantBytes int) {
		b.Helper()
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequest("POST", "/cost-analysis/v1/job/list", bytes.NewReader([]byte(body)))
			req.Header.Set("X-Auth-Token", "t")
			w := &discardWriter{header: http.Header{}}
			h.ServeHTTP(w, req)
			if w.status != http.StatusOK || w.n < wantBytes {
				b.Fatalf("status %d, %d bytes", w.status, w.n)
			}
		}
	}
	b.Run("baseline: json-encode 10000 JobInfo", func(b *testing.B) {
		infos := make([]api.JobInfo, len(jobs))
		for i := range jobs {
			infos[i] = api.NewJobInfo(&jobs[i])
		}
		b.ReportAllocs()
		for b.Loop() {
			w := &discardWriter{header: http.Header{}}
			enc := json.NewEncoder(w)
			if err := enc.Encode(api.ListResult{Results: infos, TotalCount: len(infos)}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("list all 10000", func(b *testing.B) {
		call(b, `{"domain_id": "bench"}`, 10000*200)
	})
	b.Run("list all 10000 through an empty query", func(b *testing.B) {
		call(b, `{"domain_id": "bench", "query": {}}`, 10000*200)
	})
	b.Run("list filtered sorted page of 100", func(b *testing.B) {
		call(b, `{"domain_id": "bench", "query": {
			"filter": [{"k": "status", "v": ["SUCCESS", "FAILURE"], "o": "in"}, {"k": "total_tasks", "v": 10, "o": "gte"}],
			"sort": [{"key": "created_at", "desc": true}], "page": {"start": 1, "limit": 100}}}`, 100*200)
	})
	b.Run("stat grouped by status and data source", func(b *testing.B) {
		b.ReportAllocs()
		body := `{"domain_id": "bench", "query": {"aggregate": [{"group": {
			"keys": [{"key": "status", "name": "status"}, {"key": "data_source_id", "name": "data_source_id"}],
			"fields": [{"name": "count", "operator": "count"}]}}]}}`
		for b.Loop() {
			req, _ := http.NewRequest("POST", "/cost-analysis/v1/job/stat", bytes.NewReader([]byte(body)))
			req.Header.Set("X-Auth-Token", "t")
			w := &discardWriter{header: http.Header{}}
			h.ServeHTTP(w, req)
			if w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		}
	})
}
