package store

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/costops/cost-analysis-operator/internal/store/pgtest"
)

func TestMain(m *testing.M) {
	if dsn := os.Getenv(killedWriterEnv); dsn != "" {
		// The test binary re-run as a task pod that TestAWriterKilledMidCOPY kills.
		os.Exit(writeUntilKilled(dsn))
	}
	os.Exit(pgtest.Main(m))
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newStore gives the test a migrated store on a database of its own.
func newStore(t testing.TB) *Store {
	t.Helper()
	s, _ := newStoreDSN(t)
	return s
}

// newStoreDSN is newStore, with the database's DSN.
func newStoreDSN(t testing.TB) (*Store, string) {
	t.Helper()
	dsn := pgtest.Start(t)
	ctx := testCtx(t)
	if err := Migrate(ctx, dsn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(s.Close)
	return s, dsn
}

func runRef(domain, ds, job string) RunRef {
	return RunRef{Domain: domain, DataSource: ds, Job: job, JobUID: job + "-uid"}
}

func taskRef(run RunRef, task string) TaskRef {
	return TaskRef{
		Domain: run.Domain, DataSource: run.DataSource, DataSourceUID: run.DataSource + "-uid",
		Job: run.Job, JobUID: run.JobUID, JobTask: task, JobTaskUID: run.JobUID + "/" + task, Attempt: "pod-1",
	}
}

// batches streams recs in batches of size, then io.EOF.
func batches(recs []Record, size int) func(context.Context) ([]Record, error) {
	i := 0
	return func(context.Context) ([]Record, error) {
		if i >= len(recs) {
			return nil, io.EOF
		}
		j := min(i+size, len(recs))
		b := recs[i:j]
		i = j
		return b, nil
	}
}

func write(t testing.TB, s *Store, ref TaskRef, recs []Record) WriteResult {
	t.Helper()
	res, err := s.WriteTask(testCtx(t), ref, batches(recs, 100))
	if err != nil {
		t.Fatalf("write task %s: %v", ref.JobTask, err)
	}
	if res.Rows != int64(len(recs)) {
		t.Fatalf("write task %s: %d rows written, want %d", ref.JobTask, res.Rows, len(recs))
	}
	return res
}

func commit(t testing.TB, s *Store, run RunRef, windows ...Window) {
	t.Helper()
	if err := s.Commit(testCtx(t), run, windows); err != nil {
		t.Fatalf("commit %s: %v", run.Job, err)
	}
}

// rec is a record identified by its resource.
func rec(resource, date string, cost float64) Record {
	return Record{
		Cost: cost, UsageQuantity: cost * 2, UsageUnit: "Hrs", Provider: "aws", RegionCode: "us-east-1",
		Product: "AmazonEC2", UsageType: "BoxUsage", Resource: resource, AccountID: "111",
		Tags: obj(map[string]any{"team": "a"}), AdditionalInfo: obj(map[string]any{"Account Name": "dev"}),
		Data: obj(map[string]any{"list_cost": cost * 4}), BilledDate: date,
	}
}

// genRecords makes n varied records of a month whose sums are exact.
func genRecords(prefix, month string, n int) []Record {
	out := make([]Record, n)
	for i := range out {
		r := rec(fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("%s-%02d", month, i%28+1), float64(i%40)*0.25+0.5)
		r.AccountID = []string{"111", "222", "333"}[i%3]
		r.Product = []string{"AmazonEC2", "AmazonS3"}[i%2]
		r.RegionCode = []string{"us-east-1", "eu-west-1", ""}[i%3]
		r.Tags = obj(map[string]any{"team": []string{"a", "b"}[i%2], "env": "prod"})
		r.Data = obj(map[string]any{"list_cost": float64(i % 8), "hours": 1.5, "note": "x"})
		out[i] = r
	}
	return out
}

// visible lists the resources of the committed records of a domain, sorted.
func visible(t testing.TB, s *Store, domain, ds string) []string {
	t.Helper()
	rows, err := s.pool.Query(testCtx(t), `SELECT coalesce(resource, '') FROM cost WHERE domain = $1 AND data_source = $2 ORDER BY 1`, domain, ds)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func count(t testing.TB, s *Store, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := s.pool.QueryRow(testCtx(t), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

type rollupRow struct {
	cost, usage float64
	rows        int64
	data        map[string]any
}

// checkRollup compares cost_monthly with a GROUP BY over the committed view.
func checkRollup(t testing.TB, s *Store) {
	t.Helper()
	dims := `domain, data_source, billed_month, coalesce(account_id, '∅'), coalesce(provider, '∅'),
		coalesce(region_code, '∅'), coalesce(region_key, '∅'), coalesce(product, '∅'), coalesce(usage_type, '∅'), coalesce(usage_unit, '∅')`
	load := func(sql string) map[string]rollupRow {
		rows, err := s.pool.Query(testCtx(t), sql)
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		defer rows.Close()
		out := map[string]rollupRow{}
		for rows.Next() {
			var k [10]string
			var r rollupRow
			if err := rows.Scan(&k[0], &k[1], &k[2], &k[3], &k[4], &k[5], &k[6], &k[7], &k[8], &k[9],
				&r.cost, &r.usage, &r.rows, &r.data); err != nil {
				t.Fatal(err)
			}
			out[strings.Join(k[:], "|")] = r
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	got := load(`SELECT ` + dims + `, cost, usage_quantity, rows, data FROM cost_monthly`)
	want := load(`SELECT ` + dims + `, sum(cost), coalesce(sum(usage_quantity), 0), count(*), cost_jsonb_sum(data)
		FROM cost GROUP BY ` + dims)
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		g, gok := got[k]
		w, wok := want[k]
		switch {
		case !gok:
			t.Errorf("rollup misses %s (want %+v)", k, w)
		case !wok:
			t.Errorf("rollup has %s that the records do not (%+v)", k, g)
		case !near(g.cost, w.cost) || !near(g.usage, w.usage) || g.rows != w.rows || !nearMaps(g.data, w.data):
			t.Errorf("rollup of %s = %+v, records sum to %+v", k, g, w)
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func nearMaps(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, av := range a {
		af, aok := av.(float64)
		bf, bok := b[k].(float64)
		if !aok || !bok || !near(af, bf) {
			return false
		}
	}
	return true
}

// obj is m as a record's JSON object, in encoding/json's form (as RunRecords
// returns objects).
func obj(m map[string]any) json.RawMessage {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}
