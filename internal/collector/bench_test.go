package collector

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/costops/cost-analysis-operator/internal/plugin"
	"github.com/costops/cost-analysis-operator/internal/sampleplugin"
	"github.com/costops/cost-analysis-operator/internal/store"
)

// benchRecords is the size of a benchmark task: COLLECTOR_BENCH_RECORDS, 100,000
// by default.
func benchRecords(b *testing.B) int {
	if v := os.Getenv("COLLECTOR_BENCH_RECORDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("COLLECTOR_BENCH_RECORDS=%q", v)
		}
		return n
	}
	return 100_000
}

// benchColumns are the columns of cost_record a task write fills, as the store
// COPYs them.
var benchColumns = []string{
	"cost", "usage_quantity", "usage_unit", "provider", "region_code", "product", "usage_type",
	"resource", "tags", "additional_info", "data", "billed_date", "account_id",
	"domain", "data_source", "data_source_uid", "job", "job_uid", "job_task", "job_task_uid",
}

// plainCopy COPYs rows into cost_record as a bare client would, in one
// transaction: the floor the collector is measured against.
func plainCopy(ctx context.Context, conn *pgx.Conn, ref store.TaskRef, recs []store.Record) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"cost_record"}, benchColumns, pgx.CopyFromSlice(len(recs), func(i int) ([]any, error) {
		r := &recs[i]
		d, err := time.Parse(time.DateOnly, r.BilledDate)
		if err != nil {
			return nil, err
		}
		return []any{r.Cost, r.UsageQuantity, r.UsageUnit, r.Provider, r.RegionCode, r.Product, r.UsageType,
			r.Resource, r.Tags, r.AdditionalInfo, r.Data, d, r.AccountID,
			ref.Domain, ref.DataSource, ref.DataSourceUID, ref.Job, ref.JobUID, ref.JobTask, ref.JobTaskUID}, nil
	}))
	if err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// BenchmarkCollectorIngest compares the collector's ingest (Run: the sample
// plugin's get_data over gRPC on loopback, into store.WriteTask) with a plain
// pgx COPY of the same rows, already in memory, into the same table, in pairs
// that alternate which goes first, in the same run. ingest/copy is the median over
// the pairs of the ratio of their records/s (the log line has the spread).
//
//	go test ./internal/collector -run '^$' -bench CollectorIngest -benchtime 5x
func BenchmarkCollectorIngest(b *testing.B) {
	_, dsn := newStore(b)
	ctx := context.Background()
	n := benchRecords(b)
	addr, _, stopPlugin, err := sampleplugin.StartOnLoopback()
	if err != nil {
		b.Fatal(err)
	}
	defer stopPlugin()
	pool := plugin.NewPool()
	defer pool.Close()
	cfg := func(task string) Config {
		return Config{
			Plugin: plugin.Options{Endpoint: addr, CallTimeout: time.Minute},
			Request: plugin.GetDataRequest{
				Options:     map[string]any{"records_per_task": n, "batch_size": 1000},
				TaskOptions: map[string]any{"account_id": "a", "month": "2024-03"},
				DomainID:    "tenant-a",
			},
			StoreDSN: dsn,
			Task: store.TaskRef{Domain: "tenant-a", DataSource: "billing", DataSourceUID: "billing-uid",
				Job: "bench", JobUID: "bench-uid", JobTask: task, JobTaskUID: "bench/" + task, Attempt: "pod"},
			Pool: pool,
		}
	}
	// The same rows, in memory, for the plain COPY (and the month's partition
	// made outside the measurements).
	warm := cfg("warm")
	cl, err := pool.Client(warm.Plugin)
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]store.Record, 0, n)
	if err := cl.GetData(ctx, warm.Request, func(r plugin.CostRecord) error {
		recs = append(recs, storeRecord(r, accountID(warm.Request.TaskOptions)))
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	warm.Request.Options = map[string]any{"records_per_task": 10}
	if _, err := Run(ctx, warm); err != nil {
		b.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)

	var runDur, copyDur time.Duration
	ratios := make([]float64, 0, b.N) // of each pair: collector records/s over COPY records/s
	b.ResetTimer()
	for i := range b.N {
		var run, cp time.Duration
		collect := func() {
			t0 := time.Now()
			res, err := Run(ctx, cfg(fmt.Sprintf("collector-%d", i)))
			run = time.Since(t0)
			if err != nil || *res.CreatedCount != int64(n) {
				b.Fatalf("Run: %+v, %v", res, err)
			}
		}
		plain := func() {
			c := cfg(fmt.Sprintf("copy-%d", i))
			t0 := time.Now()
			err := plainCopy(ctx, conn, c.Task, recs)
			cp = time.Since(t0)
			if err != nil {
				b.Fatalf("plain COPY: %v", err)
			}
		}
		// Alternating which goes first evens out what a warm cache or a busy
		// moment of the machine gives the second.
		if i%2 == 0 {
			collect()
			plain()
		} else {
			plain()
			collect()
		}
		runDur += run
		copyDur += cp
		ratios = append(ratios, cp.Seconds()/run.Seconds())
	}
	b.StopTimer()
	total := float64(n) * float64(b.N)
	runRate, copyRate := total/runDur.Seconds(), total/copyDur.Seconds()
	slices.Sort(ratios)
	median := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 {
		median = (ratios[len(ratios)/2-1] + ratios[len(ratios)/2]) / 2
	}
	b.ReportMetric(runRate, "ingest-records/s")
	b.ReportMetric(copyRate, "copy-records/s")
	b.ReportMetric(median, "ingest/copy")
	b.Logf("%d records x %d: collector %.0f records/s, plain COPY %.0f records/s; ingest/copy per pair: median %.3f, min %.3f, max %.3f, of all %.3f",
		n, b.N, runRate, copyRate, median, ratios[0], ratios[len(ratios)-1], runRate/copyRate)
}
