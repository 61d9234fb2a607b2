package store

import (
	"context"
	"errors"
	"io"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func sortRecords(rs []Record) {
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].BilledDate != rs[j].BilledDate {
			return rs[i].BilledDate < rs[j].BilledDate
		}
		return rs[i].Resource < rs[j].Resource
	})
}

func TestWriteTaskStoresEveryFieldAsWritten(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	run := runRef("ns", "ds", "job1")
	full := Record{
		Cost: 12.345678901234, UsageQuantity: 3.5, UsageUnit: "GB-Mo", Provider: "aws", RegionCode: "ap-northeast-2",
		Product: "AmazonS3", UsageType: "TimedStorage-ByteHrs", Resource: "arn:aws:s3:::bucket", AccountID: "123456789012",
		Tags:           obj(map[string]any{"app.kubernetes.io/name": "web", "n": 3.0, "nested": map[string]any{"a": []any{"x", 1.0, true}}}),
		AdditionalInfo: obj(map[string]any{"Account Name": "prod", "Ünïcode": "✓"}),
		Data:           obj(map[string]any{"list_cost": 20.5, "currency": "KRW"}),
		BilledDate:     "2024-02-29",
	}
	empty := Record{Cost: -0.25, BilledDate: "2024-03-01"}                                                           // nil maps, empty strings
	emptyMaps := Record{Cost: 0, Tags: obj(map[string]any{}), Data: obj(map[string]any{}), BilledDate: "2023-12-31"} // {} is kept, not NULL
	// Months change between batches, so the write makes partitions between COPYs.
	recs := []Record{full, empty, emptyMaps}
	recs = append(recs, genRecords("g", "2024-01", 250)...)
	recs = append(recs, genRecords("h", "2024-04", 10)...)
	res, err := s.WriteTask(ctx, taskRef(run, "t1"), batches(recs, 7))
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != int64(len(recs)) || res.Bytes <= res.Rows*20 {
		t.Fatalf("WriteTask = %+v, want %d rows and their bytes", res, len(recs))
	}
	got, err := s.RunRecords(ctx, run.JobUID, "")
	if err != nil {
		t.Fatal(err)
	}
	want := append([]Record(nil), recs...)
	sortRecords(want)
	sortRecords(got)
	if len(got) != len(want) {
		t.Fatalf("%d rows stored, want %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("row %d:\n got %#v\nwant %#v", i, got[i], want[i])
		}
	}
	var regionKey, month, year *string
	if err := s.pool.QueryRow(ctx, `SELECT region_key, billed_month, billed_year FROM cost_record WHERE resource = 'arn:aws:s3:::bucket'`).
		Scan(&regionKey, &month, &year); err != nil {
		t.Fatal(err)
	}
	if *regionKey != "aws.ap-northeast-2" || *month != "2024-02" || *year != "2024" {
		t.Errorf("generated columns = %v %v %v, want aws.ap-northeast-2 2024-02 2024", *regionKey, *month, *year)
	}
	if n := count(t, s, `SELECT count(*) FROM cost_record WHERE billed_date = '2024-03-01' AND region_key IS NULL AND provider IS NULL`); n != 1 {
		t.Errorf("a record without provider and region should have NULL region_key, provider: %d such rows", n)
	}
	if n := count(t, s, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'cost_record'::regclass`); n != 5 {
		t.Errorf("%d partitions, want 5 (2023-12, 2024-01..04)", n)
	}
	if n := count(t, s, `SELECT count(*) FROM cost`); n != 0 {
		t.Errorf("%d rows visible before the run's commit, want 0", n)
	}
	commit(t, s, run)
	if n := count(t, s, `SELECT count(*) FROM cost`); n != int64(len(recs)) {
		t.Errorf("%d rows visible after the commit, want %d", n, len(recs))
	}
	cr, err := s.CommittedRows(ctx, run.JobUID)
	if err != nil || cr != res {
		t.Errorf("CommittedRows = %+v, %v; want %+v", cr, err, res)
	}
	checkRollup(t, s)
}

func TestWriteTaskAttempts(t *testing.T) {
	first := genRecords("first", "2024-05", 50)
	second := genRecords("second", "2024-05", 30)
	boom := errors.New("plugin stream broke")

	tests := []struct {
		name string
		// earlier attempt (nil: none), committed in its transaction
		earlier []Record
		// the attempt under test
		next     func(ctx context.Context, cancel context.CancelFunc) func(context.Context) ([]Record, error)
		wantErr  func(error) bool
		wantRows []Record // the task's rows afterwards
	}{
		{
			name:    "a second attempt replaces the rows of a first that committed but never reported",
			earlier: first,
			next: func(context.Context, context.CancelFunc) func(context.Context) ([]Record, error) {
				return batches(second, 8)
			},
			wantRows: second,
		},
		{
			name: "an attempt whose stream fails midway leaves no rows",
			next: func(context.Context, context.CancelFunc) func(context.Context) ([]Record, error) {
				return failAfter(first, 3, boom)
			},
			wantErr: func(err error) bool { return errors.Is(err, boom) },
		},
		{
			name:    "an attempt whose stream fails midway leaves the earlier attempt's rows as they were",
			earlier: first,
			next: func(context.Context, context.CancelFunc) func(context.Context) ([]Record, error) {
				return failAfter(second, 2, boom)
			},
			wantErr:  func(err error) bool { return errors.Is(err, boom) },
			wantRows: first,
		},
		{
			name: "an attempt whose context is canceled mid-COPY leaves no rows",
			next: func(_ context.Context, cancel context.CancelFunc) func(context.Context) ([]Record, error) {
				inner := batches(genRecords("big", "2024-05", 5000), 100)
				n := 0
				return func(ctx context.Context) ([]Record, error) {
					if n++; n == 20 {
						cancel()
					}
					return inner(ctx)
				}
			},
			wantErr: func(err error) bool { return errors.Is(err, context.Canceled) },
		},
		{
			name: "an attempt with an invalid record fails naming it and leaves no rows",
			next: func(context.Context, context.CancelFunc) func(context.Context) ([]Record, error) {
				bad := append([]Record(nil), first...)
				bad[17].BilledDate = "2024-13-01"
				return batches(bad, 5)
			},
			wantErr: func(err error) bool {
				return errors.Is(err, ErrInvalidRecord) && strings.Contains(err.Error(), "#17") && strings.Contains(err.Error(), "billed_date")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			run := runRef("ns", "ds", "job")
			ref := taskRef(run, "t1")
			if tt.earlier != nil {
				ref.Attempt = "pod-1"
				write(t, s, ref, tt.earlier)
			}
			ref.Attempt = "pod-2"
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			res, err := s.WriteTask(ctx, ref, tt.next(ctx, cancel))
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("WriteTask: %v", err)
			case tt.wantErr != nil && (err == nil || !tt.wantErr(err)):
				t.Fatalf("WriteTask = %+v, %v; want the error", res, err)
			}
			got, err := s.RunRecords(testCtx(t), run.JobUID, ref.JobTaskUID)
			if err != nil {
				t.Fatal(err)
			}
			want := append([]Record(nil), tt.wantRows...)
			sortRecords(got)
			sortRecords(want)
			if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
				t.Fatalf("the task has %d rows, want %d (exactly the last good attempt's)", len(got), len(want))
			}
			var rows int64
			var attempt string
			if err := s.pool.QueryRow(testCtx(t), `SELECT coalesce(sum(rows), 0), coalesce(max(attempt), '') FROM task_load`).Scan(&rows, &attempt); err != nil {
				t.Fatal(err)
			}
			if rows != int64(len(want)) {
				t.Errorf("task_load says %d rows, want %d", rows, len(want))
			}
			commit(t, s, run)
			checkRollup(t, s)
		})
	}
}

// failAfter streams n batches of 5 then fails.
func failAfter(recs []Record, n int, err error) func(context.Context) ([]Record, error) {
	inner := batches(recs, 5)
	i := 0
	return func(ctx context.Context) ([]Record, error) {
		if i++; i > n {
			return nil, err
		}
		return inner(ctx)
	}
}

func TestTwoAttemptsOfOneTaskAtOnceEndWithOneAttemptsRows(t *testing.T) {
	s := newStore(t)
	run := runRef("ns", "ds", "job")
	a := taskRef(run, "t1")
	a.Attempt = "pod-a"
	b := a
	b.Attempt = "pod-b"
	recsA := genRecords("a", "2024-06", 40)
	recsB := genRecords("b", "2024-06", 60)

	release := make(chan struct{})
	started := make(chan struct{})
	innerA := batches(recsA, 10)
	n := 0
	nextA := func(ctx context.Context) ([]Record, error) {
		if n++; n == 2 {
			close(started)
			<-release // the first attempt hangs with rows COPYed
		}
		return innerA(ctx)
	}
	var wg sync.WaitGroup
	var errA, errB error
	wg.Go(func() { _, errA = s.WriteTask(testCtx(t), a, nextA) })
	<-started
	doneB := make(chan struct{})
	wg.Go(func() { _, errB = s.WriteTask(testCtx(t), b, batches(recsB, 10)); close(doneB) })
	select {
	case <-doneB:
		t.Fatal("the second attempt finished while the first was still writing")
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("attempts: %v, %v", errA, errB)
	}
	got, err := s.RunRecords(testCtx(t), run.JobUID, a.JobTaskUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recsB) || !strings.HasPrefix(got[0].Resource, "b-") {
		t.Fatalf("the task has %d rows, want exactly the later attempt's %d", len(got), len(recsB))
	}
}

func TestWriteTaskRefusals(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, s *Store, run RunRef)
		ref     func(run RunRef) TaskRef
		want    error
	}{
		{"a write to a committed run is refused", func(t *testing.T, s *Store, run RunRef) { commit(t, s, run) },
			func(run RunRef) TaskRef { return taskRef(run, "late") }, ErrRunClosed},
		{"a write to a rolled-back run is refused", func(t *testing.T, s *Store, run RunRef) {
			if err := s.Rollback(testCtx(t), run); err != nil {
				t.Fatal(err)
			}
		}, func(run RunRef) TaskRef { return taskRef(run, "late") }, ErrRunClosed},
		{"a task uid already used by another run is refused", func(t *testing.T, s *Store, run RunRef) {
			write(t, s, taskRef(runRef("ns", "ds", "other"), "t1"), genRecords("x", "2024-01", 1))
		}, func(run RunRef) TaskRef {
			ref := taskRef(run, "t1")
			ref.JobTaskUID = "other-uid/t1"
			return ref
		}, ErrRunConflict},
		{"a write naming the run's uid with another data source is refused", func(t *testing.T, s *Store, run RunRef) {
			write(t, s, taskRef(run, "t1"), genRecords("x", "2024-01", 1))
		}, func(run RunRef) TaskRef {
			ref := taskRef(run, "t2")
			ref.DataSource = "elsewhere"
			return ref
		}, ErrRunConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			run := runRef("ns", "ds", "job")
			tt.prepare(t, s, run)
			ref := tt.ref(run)
			before := count(t, s, `SELECT count(*) FROM cost_record`)
			_, err := s.WriteTask(testCtx(t), ref, batches(genRecords("late", "2024-01", 5), 5))
			if !errors.Is(err, tt.want) {
				t.Fatalf("WriteTask: %v, want %v", err, tt.want)
			}
			if after := count(t, s, `SELECT count(*) FROM cost_record`); after != before {
				t.Fatalf("%d rows after the refused write, %d before", after, before)
			}
		})
	}
}

func TestWriteTaskWithAnEmptyStreamLoadsNothing(t *testing.T) {
	s := newStore(t)
	run := runRef("ns", "ds", "job")
	res, err := s.WriteTask(testCtx(t), taskRef(run, "t1"), func(context.Context) ([]Record, error) { return nil, io.EOF })
	if err != nil || res != (WriteResult{}) {
		t.Fatalf("WriteTask = %+v, %v", res, err)
	}
	commit(t, s, run)
	if cr, err := s.CommittedRows(testCtx(t), run.JobUID); err != nil || cr.Rows != 0 {
		t.Fatalf("CommittedRows = %+v, %v", cr, err)
	}
}

func TestTasksWritingTheSameNewMonthsAtOnceAllLoad(t *testing.T) {
	s := newStore(t)
	run := runRef("ns", "ds", "job")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			var recs []Record
			for _, m := range []string{"2021-01", "2021-02", "2021-03"} {
				recs = append(recs, genRecords(m, m, 200)...)
			}
			_, errs[i] = s.WriteTask(testCtx(t), taskRef(run, "t"+string(rune('a'+i))), batches(recs, 50))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("task %d: %v", i, err)
		}
	}
	if n := count(t, s, `SELECT count(*) FROM cost_record`); n != 4*600 {
		t.Fatalf("%d rows, want %d", n, 4*600)
	}
	if n := count(t, s, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'cost_record'::regclass`); n != 3 {
		t.Fatalf("%d partitions, want 3", n)
	}
}
