package query

import (
	"fmt"
	"math/rand"
	"testing"
	"time"
)

// syntheticJobs builds n job records shaped like the operator's cost-analysis
// jobs, as encoding/json would decode them.
func syntheticJobs(n int) []map[string]any {
	rng := rand.New(rand.NewSource(42))
	statuses := []any{"SUCCESS", "FAILURE", "IN_PROGRESS", "CANCELED", "TIMEOUT"}
	base := fixedNow.Add(-90 * 24 * time.Hour)
	recs := make([]map[string]any, n)
	for i := range recs {
		created := base.Add(time.Duration(rng.Int63n(int64(90 * 24 * time.Hour))))
		recs[i] = map[string]any{
			"job_id":      fmt.Sprintf("job-%08x", i),
			"status":      statuses[rng.Intn(len(statuses))],
			"created_at":  created.Format(time.RFC3339),
			"total_tasks": float64(rng.Intn(100)),
			"options": map[string]any{
				"account_id": fmt.Sprintf("account-%d", rng.Intn(50)),
				"region":     []any{"us-east-1", "eu-west-1", "ap-northeast-2"}[rng.Intn(3)],
			},
			"tags": []any{fmt.Sprintf("team-%d", rng.Intn(10))},
		}
	}
	return recs
}

// benchQuery runs a list query over 100,000 synthetic jobs; wantResults
// (when >= 0) is the page size every run must return.
func benchQuery(b *testing.B, query string, wantResults int) {
	recs := syntheticJobs(100000)
	q, err := ParseQuery([]byte(query))
	if err != nil {
		b.Fatal(err)
	}
	opts := testOpts()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, total, err := q.Run(recs, opts)
		if err != nil || total == 0 || (wantResults >= 0 && len(res) != wantResults) {
			b.Fatalf("unexpected result: %d results, total %d, %v", len(res), total, err)
		}
	}
}

// BenchmarkQueryList100k measures a typical list call (filter + sort +
// page) over 100,000 job records.
func BenchmarkQueryList100k(b *testing.B) {
	benchQuery(b, `{
		"filter": [{"k": "status", "v": ["SUCCESS", "FAILURE", "IN_PROGRESS"], "o": "in"},
		           {"k": "created_at", "v": "now-60d", "o": "datetime_gte"}],
		"filter_or": [{"k": "options.region", "v": "us-east-1", "o": "eq"},
		              {"k": "options.account_id", "v": "account-1", "o": "contain"}],
		"sort": [{"key": "created_at", "desc": true}, {"key": "job_id"}],
		"page": {"start": 11, "limit": 10}}`, 10)
}

// BenchmarkQueryListFullSort100k sorts every matching record (no limit).
func BenchmarkQueryListFullSort100k(b *testing.B) {
	benchQuery(b, `{"filter": [{"k": "status", "v": "CANCELED", "o": "not"}],
		"sort": [{"key": "options.account_id"}, {"key": "created_at", "desc": true}]}`, -1)
}

// BenchmarkStatGroup100k measures a daily group-by over 100,000 records.
func BenchmarkStatGroup100k(b *testing.B) {
	recs := syntheticJobs(100000)
	q, err := ParseStatisticsQuery([]byte(`{
		"filter": [{"k": "created_at", "v": "now-90d", "o": "datetime_gte"}],
		"aggregate": [
		  {"group": {"keys": [{"key": "created_at", "name": "date", "date_format": "%Y-%m-%d"},
		                      {"key": "status", "name": "status"}],
		             "fields": [{"name": "count", "operator": "count"},
		                        {"key": "total_tasks", "name": "tasks", "operator": "sum"}]}},
		  {"sort": [{"key": "date", "desc": true}, {"key": "status"}]}],
		"page": {"limit": 20}}`))
	if err != nil {
		b.Fatal(err)
	}
	opts := testOpts()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := q.Run(recs, opts); err != nil {
			b.Fatal(err)
		}
	}
}
