package store

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"
)

func monthsOf(t *testing.T, s *Store, sql string, args ...any) []string {
	t.Helper()
	rows, err := s.pool.Query(testCtx(t), sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestRetention(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	now := time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC)
	ds := runRef("ns", "ds", "ds-run")
	for _, m := range []string{"2022-01", "2024-04", "2024-05", "2024-06", "2024-07", "2025-06"} {
		write(t, s, taskRef(ds, m), genRecords("ds-"+m, m, 10))
	}
	commit(t, s, ds)
	other := runRef("ns", "other", "other-run")
	write(t, s, taskRef(other, "t1"), genRecords("other", "2024-05", 5))
	commit(t, s, other)

	res, err := s.ApplyRetention(ctx, "ns", "ds", 12, now)
	if err != nil {
		t.Fatal(err)
	}
	if res.KeptFrom != "2024-07" || res.DeletedRows != 40 {
		t.Errorf("retention kept from %s and deleted %d rows, want 2024-07 and 40", res.KeptFrom, res.DeletedRows)
	}
	if want := []string{"cost_record_y2022m01", "cost_record_y2024m04"}; !reflect.DeepEqual(res.DroppedPartitions, want) {
		t.Errorf("dropped %v, want %v (2024-05 still holds the other data source's rows)", res.DroppedPartitions, want)
	}
	if got := monthsOf(t, s, `SELECT DISTINCT billed_month FROM cost WHERE data_source = 'ds' ORDER BY 1`); !reflect.DeepEqual(got, []string{"2024-07", "2025-06"}) {
		t.Errorf("ds keeps records of %v, want 2024-07 and 2025-06", got)
	}
	if got := monthsOf(t, s, `SELECT DISTINCT billed_month FROM cost_monthly WHERE data_source = 'ds' ORDER BY 1`); !reflect.DeepEqual(got,
		[]string{"2024-04", "2024-05", "2024-06", "2024-07", "2025-06"}) {
		t.Errorf("ds keeps rollup rows of %v: want every month of the last 36, the rollup outlives the records", got)
	}
	if n := count(t, s, `SELECT count(*) FROM cost WHERE data_source = 'other'`); n != 5 {
		t.Errorf("the other data source has %d rows left, want its 5", n)
	}

	res, err = s.ApplyRetention(ctx, "ns", "other", 0, now) // 0: the default, 12 months
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"cost_record_y2024m05", "cost_record_y2024m06"}; res.DeletedRows != 5 || !reflect.DeepEqual(res.DroppedPartitions, want) {
		t.Errorf("second retention: %+v, want 5 rows deleted and %v dropped", res, want)
	}
	if got := monthsOf(t, s, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'cost_record'::regclass ORDER BY 1`); !reflect.DeepEqual(got, []string{"cost_record_y2024m07", "cost_record_y2025m06"}) {
		t.Errorf("partitions left: %v", got)
	}

	// A new backfill into a dropped month makes its partition again.
	late := runRef("ns", "ds", "late")
	write(t, s, taskRef(late, "t1"), genRecords("late", "2024-04", 3))
	commit(t, s, late)
	if n := count(t, s, `SELECT count(*) FROM cost WHERE billed_month = '2024-04'`); n != 3 {
		t.Errorf("%d rows in the re-made 2024-04 partition, want 3", n)
	}
}

func TestRetentionLeavesAPartitionATaskIsWritingInto(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	now := time.Date(2025, 6, 15, 0, 0, 0, 0, time.UTC)
	run := runRef("ns", "ds", "slow")
	release := make(chan struct{})
	started := make(chan struct{})
	inner := batches(genRecords("slow", "2023-01", 30), 10)
	n := 0
	next := func(ctx context.Context) ([]Record, error) {
		if n++; n == 2 {
			close(started)
			<-release
		}
		return inner(ctx)
	}
	var wg sync.WaitGroup
	var werr error
	wg.Go(func() { _, werr = s.WriteTask(ctx, taskRef(run, "t1"), next) })
	<-started
	t0 := time.Now()
	res, err := s.ApplyRetention(ctx, "ns", "other", 12, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.DroppedPartitions) != 0 {
		t.Fatalf("dropped %v under a task writing into it", res.DroppedPartitions)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("retention waited %v for the busy partition", d)
	}
	close(release)
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	commit(t, s, run)
	if n := count(t, s, `SELECT count(*) FROM cost`); n != 30 {
		t.Fatalf("%d rows after the write, want 30", n)
	}
}
