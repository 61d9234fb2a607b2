package store

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// benchRows is the size of the benchmarks: STORE_BENCH_ROWS, 100,000 by default
// (the figure is STORE_BENCH_ROWS=1000000).
func benchRows(b *testing.B) int {
	if v := os.Getenv("STORE_BENCH_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("STORE_BENCH_ROWS=%q", v)
		}
		return n
	}
	return 100_000
}

// plainCopy COPYs the records into cost_record as a bare client would: the
// same rows, the same table, no attempt handling, no sums, one transaction.
func plainCopy(ctx context.Context, s *Store, ref TaskRef, recs []Record) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer rollbackQuietly(tx)
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"cost_record"}, recordColumns, pgx.CopyFromSlice(len(recs), func(i int) ([]any, error) {
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

// BenchmarkWriteTask compares WriteTask with a plain COPY of the same rows into
// the same table, alternating, in the same run.
//
//	go test ./internal/store -run '^$' -bench WriteTask -benchtime 3x
func BenchmarkWriteTask(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	n := benchRows(b)
	recs := genRecords("bench", "2024-01", n)
	run := runRef("ns", "ds", "bench")
	// Make the partition outside the measurements.
	if _, err := s.WriteTask(ctx, taskRef(run, "warm"), batches(recs[:1], 1)); err != nil {
		b.Fatal(err)
	}
	var storeDur, copyDur time.Duration
	b.ResetTimer()
	for i := range b.N {
		measure := func(name string, f func() error) time.Duration {
			t0 := time.Now()
			if err := f(); err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			return time.Since(t0)
		}
		store := func() error {
			_, err := s.WriteTask(ctx, taskRef(run, fmt.Sprintf("store-%d", i)), batches(recs, 1000))
			return err
		}
		plain := func() error { return plainCopy(ctx, s, taskRef(run, fmt.Sprintf("copy-%d", i)), recs) }
		if i%2 == 0 {
			storeDur += measure("WriteTask", store)
			copyDur += measure("plain COPY", plain)
		} else {
			copyDur += measure("plain COPY", plain)
			storeDur += measure("WriteTask", store)
		}
	}
	b.StopTimer()
	total := float64(n) * float64(b.N)
	storeRate, copyRate := total/storeDur.Seconds(), total/copyDur.Seconds()
	b.ReportMetric(storeRate, "store-rows/s")
	b.ReportMetric(copyRate, "copy-rows/s")
	b.ReportMetric(storeRate/copyRate, "store/copy")
	b.Logf("%d rows x %d: WriteTask %.0f rows/s, plain COPY %.0f rows/s, ratio %.3f", n, b.N, storeRate, copyRate, storeRate/copyRate)
}

// BenchmarkCommitReplacingMonth compares the Commit of a run that replaces a
// month holding n rows of an older run with a bare DELETE of those rows, in the
// same run, on the same setup.
//
//	go test ./internal/store -run '^$' -bench CommitReplacingMonth -benchtime 3x
func BenchmarkCommitReplacingMonth(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	n := benchRows(b)
	const month = "2024-03"
	oldRecs := genRecords("old", month, n)
	newRecs := genRecords("new", month, n)
	// setup leaves, in data source ds, a committed run holding the month and a
	// new run that wrote it.
	setup := func(ds string) (old, next RunRef) {
		old, next = runRef("ns", ds, ds+"-old"), runRef("ns", ds, ds+"-new")
		if _, err := s.WriteTask(ctx, taskRef(old, "t"), batches(oldRecs, 1000)); err != nil {
			b.Fatal(err)
		}
		if err := s.Commit(ctx, old, []Window{{Start: month, End: month}}); err != nil {
			b.Fatal(err)
		}
		if _, err := s.WriteTask(ctx, taskRef(next, "t"), batches(newRecs, 1000)); err != nil {
			b.Fatal(err)
		}
		if _, err := s.pool.Exec(ctx, "VACUUM ANALYZE cost_record"); err != nil {
			b.Fatal(err)
		}
		return old, next
	}
	start, _ := parseMonth(month)
	var commitDur, deleteDur, readerIdle, readerBusy time.Duration
	b.ResetTimer()
	for i := range b.N {
		doCommit := func() {
			b.StopTimer()
			_, next := setup(fmt.Sprintf("c%d", i))
			b.StartTimer()
			t0 := time.Now()
			if err := s.Commit(ctx, next, []Window{{Start: month, End: month}}); err != nil {
				b.Fatal(err)
			}
			commitDur += time.Since(t0)
			b.StopTimer()
			if got, _ := s.CommittedTotals(ctx, "ns", next.DataSource, month); got.Rows != int64(n) {
				b.Fatalf("after the commit %d rows, want %d", got.Rows, n)
			}
			b.StartTimer()
		}
		doDelete := func() {
			b.StopTimer()
			old, _ := setup(fmt.Sprintf("d%d", i))
			b.StartTimer()
			t0 := time.Now()
			tag, err := s.pool.Exec(ctx, `DELETE FROM cost_record WHERE domain = $1 AND data_source = $2
				AND billed_date >= $3::date AND billed_date < $4::date AND job_uid = $5`,
				old.Domain, old.DataSource, start, start.AddDate(0, 1, 0), old.JobUID)
			if err != nil {
				b.Fatal(err)
			}
			deleteDur += time.Since(t0)
			if tag.RowsAffected() != int64(n) {
				b.Fatalf("the DELETE removed %d rows, want %d", tag.RowsAffected(), n)
			}
		}
		if i%2 == 0 {
			doCommit()
			doDelete()
		} else {
			doDelete()
			doCommit()
		}
	}
	b.StopTimer()
	// Apart from the timed runs (a reader competing for the CPUs would slow the
	// commit it measures): a reader of the month's total, at rest and then
	// polling through one more commit. MVCC readers see the old total until the
	// commit and are never made to wait for it.
	_, next := setup("reader")
	t0 := time.Now()
	if _, err := s.CommittedTotals(ctx, "ns", next.DataSource, month); err != nil {
		b.Fatal(err)
	}
	readerIdle = time.Since(t0)
	stopReader := make(chan struct{})
	readerDone := make(chan time.Duration)
	go func() {
		var worst time.Duration
		for {
			select {
			case <-stopReader:
				readerDone <- worst
				return
			default:
			}
			t := time.Now()
			if _, err := s.CommittedTotals(ctx, "ns", next.DataSource, month); err != nil {
				b.Error(err)
			}
			worst = max(worst, time.Since(t))
		}
	}()
	t0 = time.Now()
	if err := s.Commit(ctx, next, []Window{{Start: month, End: month}}); err != nil {
		b.Fatal(err)
	}
	readerCommit := time.Since(t0)
	close(stopReader)
	readerBusy = <-readerDone
	c := commitDur.Seconds() * 1000 / float64(b.N)
	d := deleteDur.Seconds() * 1000 / float64(b.N)
	b.ReportMetric(c, "commit-ms")
	b.ReportMetric(d, "delete-ms")
	b.ReportMetric(c/d, "commit/delete")
	b.ReportMetric(readerBusy.Seconds()*1000, "reader-max-ms")
	b.Logf("replacing a month of %d rows: Commit %.1f ms, bare DELETE %.1f ms, ratio %.3f (%d runs); "+
		"a reader of the month's total: %.1f ms at rest, at most %.1f ms while a commit ran (%.1f ms, beside the reader)",
		n, c, d, c/d, b.N, readerIdle.Seconds()*1000, readerBusy.Seconds()*1000, readerCommit.Seconds()*1000)
}
