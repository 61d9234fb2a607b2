package spaceone

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/query"
)

// The list and stat calls read Jobs and JobTasks as query tables. These tests check
// them against what the calls did before: sort every object, build every record, run
// the query over the records.

// recordsRunList is the former runList: the query over every record, in order.
func recordsRunList[I any](infos []I, record func(*I) map[string]any, q *query.Query, opts query.RunOptions) (*ListResult, error) {
	const index = "\x00index"
	records := make([]map[string]any, len(infos))
	for i := range infos {
		r := record(&infos[i])
		r[index] = i
		records[i] = r
	}
	page, total, err := q.Run(records, opts)
	if err != nil {
		return nil, err
	}
	results := make([]any, len(page))
	for i, r := range page {
		if idx, ok := r[index].(int); ok {
			results[i] = &infos[idx]
		} else {
			results[i] = r
		}
	}
	return &ListResult{Results: results, TotalCount: total}, nil
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}

// tableTasks are JobTasks with what a record must get right: creation ties, times
// with nanoseconds, in other zones, unset or past year 9999, options that are not an
// object or not JSON, unset status.
func tableTasks(n int) []*costv1.JobTask {
	rng := rand.New(rand.NewSource(5))
	base := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	states := []costv1.JobTaskState{"", costv1.TaskPending, costv1.TaskInProgress, costv1.TaskSuccess,
		costv1.TaskFailure, costv1.TaskCanceled, costv1.TaskTimeout}
	options := []string{`{"account_id":"a-1","region":"us"}`, `{"account_id":"a-2","tags":["x","y"]}`, ``, `{}`,
		`null`, `[1,2]`, `{"bad"`, `{"n":1e400}`, `{"account_id":"a-1","n":-0}`}
	times := []func() *metav1.Time{
		func() *metav1.Time { return nil },
		func() *metav1.Time { t := metav1.NewTime(base.Add(time.Duration(rng.Intn(5)) * time.Hour)); return &t },
		func() *metav1.Time { t := metav1.NewTime(base.Add(time.Duration(rng.Int63n(1e12)))); return &t },
		func() *metav1.Time {
			t := metav1.NewTime(base.In(time.FixedZone("KST", 9*3600)).Add(time.Duration(rng.Intn(3)) * time.Second))
			return &t
		},
		func() *metav1.Time { t := metav1.NewTime(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)); return &t },
		func() *metav1.Time { return &metav1.Time{} },
	}
	tasks := make([]*costv1.JobTask, n)
	for i := range tasks {
		job := fmt.Sprintf("job-%d", rng.Intn(5))
		created := times[1+rng.Intn(len(times)-1)]()
		t := &costv1.JobTask{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", job, i), Namespace: "ns", CreationTimestamp: *created},
			Spec: costv1.JobTaskSpec{JobRef: costv1.LocalObjectReference{Name: job},
				DataSourceRef: costv1.LocalObjectReference{Name: fmt.Sprintf("ds-%d", rng.Intn(3))}, Index: int32(rng.Intn(4)),
				TaskOptions: runtime.RawExtension{Raw: []byte(options[rng.Intn(len(options))])}},
			Status: costv1.JobTaskStatus{Status: states[rng.Intn(len(states))],
				CreatedCount: []int64{0, 1, 7, 1 << 62, -5}[rng.Intn(5)],
				ErrorCode:    []string{"", "ERROR_PLUGIN"}[rng.Intn(2)], ErrorMessage: []string{"", "Rate limited"}[rng.Intn(2)],
				StartedAt: times[rng.Intn(len(times))](), UpdatedAt: times[rng.Intn(len(times))](),
				FinishedAt: times[rng.Intn(len(times))]()},
		}
		tasks[i] = t
	}
	return tasks
}

func tableJobs(tasks []*costv1.JobTask) []*costv1.Job {
	jobs := make([]*costv1.Job, len(tasks))
	for i, t := range tasks {
		jobs[i] = &costv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: t.Name, Namespace: t.Namespace, CreationTimestamp: t.CreationTimestamp},
			Spec:       costv1.JobSpec{DataSourceRef: t.Spec.DataSourceRef},
			Status: costv1.JobStatus{Status: costv1.JobState(t.Status.Status), ErrorCode: t.Status.ErrorCode,
				TotalTasks: t.Spec.Index, RemainedTasks: int32(t.Status.CreatedCount % 3),
				CreatedAt: t.Status.StartedAt, UpdatedAt: t.Status.UpdatedAt, FinishedAt: t.Status.FinishedAt,
				LastChangedAt: t.Status.StartedAt},
		}
	}
	return jobs
}

// tableQueries are list and stat queries over keys of both records.
func tableQueries(rng *rand.Rand, keys []string) (lists, stats []string) {
	conds := []string{}
	for _, k := range keys {
		conds = append(conds,
			fmt.Sprintf(`{"k":%q,"v":"SUCCESS","o":"eq"}`, k), fmt.Sprintf(`{"k":%q,"v":1,"o":"gte"}`, k),
			fmt.Sprintf(`{"k":%q,"v":["ds-1","FAILURE",7,null],"o":"in"}`, k), fmt.Sprintf(`{"k":%q,"v":"-1","o":"contain"}`, k),
			fmt.Sprintf(`{"k":%q,"v":"2026-09-01T02:00:00Z","o":"datetime_gte"}`, k), fmt.Sprintf(`{"k":%q,"v":true,"o":"exists"}`, k),
			fmt.Sprintf(`{"k":%q,"v":"","o":"not"}`, k), fmt.Sprintf(`{"k":%q,"v":"^(job|a)-1","o":"regex"}`, k))
	}
	conds = append(conds, `{"k":"options.account_id","v":"a-1","o":"eq"}`, `{"k":"options.tags","v":"x","o":"eq"}`,
		`{"k":"options.n","v":0,"o":"eq"}`, `{"k":"status.x","v":null,"o":"eq"}`, `{"k":"nothing","v":null,"o":"eq"}`)
	pick := func(n int) string {
		var out []string
		for range rng.Intn(n + 1) {
			out = append(out, conds[rng.Intn(len(conds))])
		}
		return "[" + strings.Join(out, ",") + "]"
	}
	sortKeys := append(slices.Clone(keys), "options.n", "options.account_id", "options")
	for range 300 {
		parts := []string{`"filter":` + pick(2)}
		if rng.Intn(3) == 0 {
			parts = append(parts, `"filter_or":`+pick(2))
		}
		if rng.Intn(4) != 0 {
			parts = append(parts, fmt.Sprintf(`"sort":[{"key":%q,"desc":%v},{"key":%q}]`,
				sortKeys[rng.Intn(len(sortKeys))], rng.Intn(2) == 0, sortKeys[rng.Intn(len(sortKeys))]))
		}
		if rng.Intn(3) != 0 {
			parts = append(parts, fmt.Sprintf(`"page":{"start":%d,"limit":%d}`, 1+rng.Intn(30), rng.Intn(40)))
		}
		switch rng.Intn(6) {
		case 0:
			parts = append(parts, fmt.Sprintf(`"only":[%q,"options.account_id"]`, keys[rng.Intn(len(keys))]))
		case 1:
			parts = append(parts, `"minimal":true`)
		case 2:
			parts = append(parts, `"keyword":"-1"`)
		}
		lists = append(lists, "{"+strings.Join(parts, ",")+"}")

		k1, k2 := sortKeys[rng.Intn(len(sortKeys))], keys[rng.Intn(len(keys))]
		df := []string{"", `,"date_format":"%Y-%m-%d %H"`, `,"date_format":"day"`}[rng.Intn(3)]
		op := []string{"count", "count", "sum", "max", "first", "push", "add_to_set"}[rng.Intn(7)]
		stat := fmt.Sprintf(`{"filter":%s,"aggregate":[{"group":{"keys":[{"key":%q,"name":"a"},{"key":%q,"name":"b"%s}],
			"fields":[{"name":"n","operator":"count"},{"name":"f","operator":%q,"key":%q}]}}]}`,
			pick(1), k1, k2, df, op, sortKeys[rng.Intn(len(sortKeys))])
		if rng.Intn(5) == 0 {
			stat = fmt.Sprintf(`{"distinct":%q,"page":{"limit":5}}`, k1)
		}
		stats = append(stats, stat)
	}
	return lists, stats
}

func checkTable[T, I any](t *testing.T, objs []*T, compare func(a, b *T) int, newInfo func(*T) I,
	record func(*I) map[string]any, table func([]*T) *query.Table, keys []string, opts query.RunOptions) {
	// The records in the calls' order, and the objects in another (the cache's).
	sorted := slices.Clone(objs)
	slices.SortFunc(sorted, compare)
	infos := make([]I, len(sorted))
	for i, o := range sorted {
		infos[i] = newInfo(o)
	}
	shuffled := slices.Clone(objs)
	rand.New(rand.NewSource(1)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	tbl := table(shuffled)
	info := func(i int) any {
		in := newInfo(shuffled[i])
		return &in
	}
	lists, stats := tableQueries(rand.New(rand.NewSource(int64(len(objs)))), keys)
	for _, s := range lists {
		q, err := query.ParseQuery([]byte(s))
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		want, werr := recordsRunList(infos, record, q, opts)
		got, gerr := runList(tbl, info, q, opts)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("%s: error %v, want %v", s, gerr, werr)
		}
		if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
			t.Fatalf("%s:\ngot  %s\nwant %s", s, g, w)
		}
	}
	records := make([]map[string]any, len(infos))
	for i := range infos {
		records[i] = record(&infos[i])
	}
	for _, s := range stats {
		q, err := query.ParseStatisticsQuery([]byte(s))
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		want, werr := q.Run(records, opts)
		got, gerr := runStat(tbl, q, opts)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("%s: error %v, want %v", s, gerr, werr)
		}
		if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
			t.Fatalf("%s:\ngot  %s\nwant %s", s, g, w)
		}
	}
}

func TestTablesAnswerAsRecords(t *testing.T) {
	tasks := tableTasks(500)
	now := func() time.Time { return time.Date(2026, 9, 1, 3, 0, 0, 0, time.UTC) }
	t.Run("JobTasks", func(t *testing.T) {
		opts := jobTaskRunOptions
		opts.Now = now
		checkTable(t, tasks, compareJobTasks, NewJobTaskInfo, (*JobTaskInfo).Record, jobTaskTable,
			[]string{"job_task_id", "status", "options", "created_count", "error_code", "error_message", "job_id",
				"data_source_id", "domain_id", "created_at", "started_at", "updated_at", "finished_at"}, opts)
	})
	t.Run("Jobs", func(t *testing.T) {
		opts := jobRunOptions
		opts.Now = now
		checkTable(t, tableJobs(tasks), compareJobs, NewJobInfo, (*JobInfo).Record, jobTable,
			[]string{"job_id", "status", "error_code", "error_message", "total_tasks", "remained_tasks",
				"data_source_id", "domain_id", "created_at", "updated_at", "finished_at", "last_changed_at"}, opts)
	})
}

func TestISOTimeValueStandsForISOTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 9, 1, 10, 5, 9, 999999999, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 999, time.FixedZone("KST", 9*3600)),
		time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 1, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		{},
	} {
		mt := metav1.NewTime(tm)
		v, ok := isoTimeValue(&mt)
		if !ok {
			if y := tm.UTC().Year(); y >= 1 && y <= 9999 && !tm.IsZero() {
				t.Errorf("%v: no value", tm)
			}
			continue
		}
		parsed, err := time.Parse(time.RFC3339, isoTime(&mt))
		if err != nil || !parsed.Equal(v) {
			t.Errorf("%v: value %v, isoTime %s parses to %v (%v)", tm, v, isoTime(&mt), parsed, err)
		}
	}
	if _, ok := isoTimeValue(nil); ok {
		t.Error("nil has a value")
	}
}
