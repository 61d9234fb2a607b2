package store

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costops/cost-analysis-operator/internal/store/pgtest"
)

func TestRunLifecycle(t *testing.T) {
	tests := []struct {
		name string
		do   func(t *testing.T, s *Store, run RunRef)
	}{
		{"a second commit of a committed run changes nothing", func(t *testing.T, s *Store, run RunRef) {
			commit(t, s, run, Window{Start: "2024-01"})
			var at1 time.Time
			_ = s.pool.QueryRow(testCtx(t), `SELECT committed_at FROM run WHERE job_uid = $1`, run.JobUID).Scan(&at1)
			before := visible(t, s, "ns", "ds")
			// A newer run commits in between: the repeated commit must not delete its rows.
			newer := runRef("ns", "ds", "newer")
			write(t, s, taskRef(newer, "t1"), []Record{rec("newer-1", "2024-01-20", 5)})
			commit(t, s, newer)
			commit(t, s, run, Window{Start: "2024-01"})
			want := append(before, "newer-1")
			sort.Strings(want)
			if got := visible(t, s, "ns", "ds"); !reflect.DeepEqual(got, want) {
				t.Fatalf("after the repeated commit readers see %v, want %v", got, want)
			}
			var at2 time.Time
			_ = s.pool.QueryRow(testCtx(t), `SELECT committed_at FROM run WHERE job_uid = $1`, run.JobUID).Scan(&at2)
			if !at1.Equal(at2) {
				t.Errorf("committed_at moved from %v to %v", at1, at2)
			}
			checkRollup(t, s)
		}},
		{"a second rollback of a rolled-back run changes nothing", func(t *testing.T, s *Store, run RunRef) {
			for range 2 {
				if err := s.Rollback(testCtx(t), run); err != nil {
					t.Fatal(err)
				}
			}
			if st, _ := s.RunState(testCtx(t), run.JobUID); st != StateRolledBack {
				t.Fatalf("state %q, want rolled_back", st)
			}
		}},
		{"a rollback deletes the run's rows and their sums, and keeps the other runs'", func(t *testing.T, s *Store, run RunRef) {
			keep := runRef("ns", "ds", "keep")
			write(t, s, taskRef(keep, "t1"), []Record{rec("keep-1", "2024-01-20", 5)})
			if err := s.Rollback(testCtx(t), run); err != nil {
				t.Fatal(err)
			}
			if n := count(t, s, `SELECT count(*) FROM cost_record WHERE job_uid = $1`, run.JobUID); n != 0 {
				t.Fatalf("%d rows of the rolled-back run left", n)
			}
			if n := count(t, s, `SELECT count(*) FROM task_rollup WHERE job_uid = $1`, run.JobUID); n != 0 {
				t.Fatalf("%d task sums of the rolled-back run left", n)
			}
			if n := count(t, s, `SELECT count(*) FROM cost_record WHERE job_uid = $1`, keep.JobUID); n != 1 {
				t.Fatalf("%d rows of the other open run left, want 1", n)
			}
			commit(t, s, keep)
			checkRollup(t, s)
		}},
		{"a commit after a rollback is refused", func(t *testing.T, s *Store, run RunRef) {
			if err := s.Rollback(testCtx(t), run); err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(testCtx(t), run, nil); !errors.Is(err, ErrRolledBack) {
				t.Fatalf("Commit after Rollback: %v, want ErrRolledBack", err)
			}
		}},
		{"a rollback after a commit is refused and deletes nothing", func(t *testing.T, s *Store, run RunRef) {
			commit(t, s, run)
			if err := s.Rollback(testCtx(t), run); !errors.Is(err, ErrCommitted) {
				t.Fatalf("Rollback after Commit: %v, want ErrCommitted", err)
			}
			if got := visible(t, s, "ns", "ds"); len(got) != 3 {
				t.Fatalf("readers see %v after the refused rollback", got)
			}
		}},
		{"a commit naming the run's uid with another data source is refused", func(t *testing.T, s *Store, run RunRef) {
			other := run
			other.DataSource = "elsewhere"
			if err := s.Commit(testCtx(t), other, nil); !errors.Is(err, ErrRunConflict) {
				t.Fatalf("Commit: %v, want ErrRunConflict", err)
			}
		}},
		{"the run's state goes open, then committed, and CommittedRows counts the last attempts", func(t *testing.T, s *Store, run RunRef) {
			if st, _ := s.RunState(testCtx(t), "never-heard-of"); st != StateNone {
				t.Fatalf("state of an unknown run %q, want none", st)
			}
			if st, _ := s.RunState(testCtx(t), run.JobUID); st != StateOpen {
				t.Fatalf("state %q, want open", st)
			}
			if _, err := s.CommittedRows(testCtx(t), run.JobUID); !errors.Is(err, ErrNotCommitted) {
				t.Fatalf("CommittedRows of an open run: %v, want ErrNotCommitted", err)
			}
			// A retry of t1 with fewer rows: its figures replace the first attempt's.
			retry := taskRef(run, "t1")
			retry.Attempt = "pod-2"
			r1 := write(t, s, retry, []Record{rec("a-1", "2024-01-02", 1)})
			r2 := write(t, s, taskRef(run, "t2"), []Record{rec("b-1", "2024-01-02", 1), rec("b-2", "2024-01-02", 1)})
			commit(t, s, run)
			if st, _ := s.RunState(testCtx(t), run.JobUID); st != StateCommitted {
				t.Fatalf("state %q, want committed", st)
			}
			got, err := s.CommittedRows(testCtx(t), run.JobUID)
			want := WriteResult{Rows: r1.Rows + r2.Rows, Bytes: r1.Bytes + r2.Bytes}
			if err != nil || got != want {
				t.Fatalf("CommittedRows = %+v, %v; want %+v", got, err, want)
			}
		}},
		{"a commit of a run that wrote nothing still replaces its windows", func(t *testing.T, s *Store, run RunRef) {
			commit(t, s, run)
			empty := runRef("ns", "ds", "empty")
			commit(t, s, empty, Window{Start: "2024-01", End: "2024-01"})
			if got := visible(t, s, "ns", "ds"); len(got) != 0 {
				t.Fatalf("readers see %v, want the January rows replaced by nothing", got)
			}
			checkRollup(t, s)
		}},
		{"a rollback of a run that wrote nothing refuses its late writes", func(t *testing.T, s *Store, _ RunRef) {
			late := runRef("ns", "ds", "late")
			if err := s.Rollback(testCtx(t), late); err != nil {
				t.Fatal(err)
			}
			if _, err := s.WriteTask(testCtx(t), taskRef(late, "t1"), batches(genRecords("l", "2024-01", 3), 3)); !errors.Is(err, ErrRunClosed) {
				t.Fatalf("a late write: %v, want ErrRunClosed", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			run := runRef("ns", "ds", "job")
			write(t, s, taskRef(run, "t1"), []Record{rec("r-1", "2024-01-02", 1), rec("r-2", "2024-01-03", 2), rec("r-3", "2024-01-04", 3)})
			tt.do(t, s, run)
		})
	}
}

func TestRollbackWaitsForATaskWriteInProgress(t *testing.T) {
	s := newStore(t)
	run := runRef("ns", "ds", "job")
	release := make(chan struct{})
	started := make(chan struct{})
	inner := batches(genRecords("w", "2024-01", 50), 10)
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
	wg.Go(func() { _, werr = s.WriteTask(testCtx(t), taskRef(run, "t1"), next) })
	<-started
	var rolledBack atomic.Bool
	wg.Go(func() {
		if err := s.Rollback(testCtx(t), run); err != nil {
			t.Error(err)
		}
		rolledBack.Store(true)
	})
	time.Sleep(200 * time.Millisecond)
	if rolledBack.Load() {
		t.Fatal("the rollback ended while a task of the run was still writing")
	}
	close(release)
	wg.Wait()
	if werr != nil {
		t.Fatalf("the write: %v", werr)
	}
	if n := count(t, s, `SELECT count(*) FROM cost_record`); n != 0 {
		t.Fatalf("%d rows left after the rollback, want 0: the write finished first, the rollback deleted it", n)
	}
}

func TestACommitKilledMidwayChangesNothingAndItsRetryCommits(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	old := runRef("ns", "ds", "old")
	write(t, s, taskRef(old, "t1"), genRecords("old", "2024-09", 500))
	commit(t, s, old)
	run := runRef("ns", "ds", "new")
	write(t, s, taskRef(run, "t1"), genRecords("new", "2024-09", 300))
	before, _ := s.CommittedTotals(ctx, "ns", "ds", "")

	// Hold a lock on one old row so the commit stops in its DELETE, then kill
	// the commit's session, as a manager killed mid-commit would be.
	blocker, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.Exec(ctx, `SELECT 1 FROM cost_record WHERE job_uid = $1 LIMIT 1 FOR UPDATE`, old.JobUID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Commit(ctx, run, []Window{{Start: "2024-09", End: "2024-09"}}) }()
	deadline := time.Now().Add(10 * time.Second)
	for count(t, s, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE 'delete from cost_record%'`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the commit never reached its DELETE")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := count(t, s, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE 'delete from cost_record%'`); n != 1 {
		t.Fatalf("terminated %d sessions, want the commit's", n)
	}
	if err := <-done; err == nil {
		t.Fatal("the killed commit reported success")
	}
	_ = blocker.Rollback(ctx)

	if st, _ := s.RunState(ctx, run.JobUID); st != StateOpen {
		t.Fatalf("after the killed commit the run is %q, want open", st)
	}
	if got, _ := s.CommittedTotals(ctx, "ns", "ds", ""); got != before {
		t.Fatalf("after the killed commit readers see %+v, want the old %+v", got, before)
	}
	checkRollup(t, s)
	commit(t, s, run, Window{Start: "2024-09", End: "2024-09"}) // the restarted manager's retry
	if got, _ := s.CommittedTotals(ctx, "ns", "ds", ""); got.Rows != 300 {
		t.Fatalf("after the retried commit %d rows, want the new run's 300", got.Rows)
	}
	checkRollup(t, s)
}

func TestACommitCutByAPostgreSQLCrashChangesNothingAndItsRetryCommits(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	old := runRef("ns", "ds", "old")
	write(t, s, taskRef(old, "t1"), genRecords("old", "2024-09", 500))
	commit(t, s, old)
	run := runRef("ns", "ds", "new")
	write(t, s, taskRef(run, "t1"), genRecords("new", "2024-09", 300))
	before, _ := s.CommittedTotals(ctx, "ns", "ds", "")

	// Stop the commit in its DELETE (a lock on one old row), then crash the
	// server under it.
	blocker, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.Exec(ctx, `SELECT 1 FROM cost_record WHERE job_uid = $1 LIMIT 1 FOR UPDATE`, old.JobUID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Commit(ctx, run, []Window{{Start: "2024-09", End: "2024-09"}}) }()
	deadline := time.Now().Add(10 * time.Second)
	for count(t, s, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE 'delete from cost_record%'`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the commit never reached its DELETE")
		}
		time.Sleep(10 * time.Millisecond)
	}
	pgtest.Restart(t)
	if err := <-done; err == nil {
		t.Fatal("the commit cut by the crash reported success")
	}
	_ = blocker.Rollback(ctx)

	// The pool's idle connections broke with the server: the first calls fail, as
	// the manager's first retry may, until the pool has reconnected. The crash
	// recovery left the state before the commit.
	var st State
	for range 10 {
		if st, err = s.RunState(ctx, run.JobUID); err == nil {
			break
		}
	}
	if err != nil || st != StateOpen {
		t.Fatalf("after the crash the run is %q (%v), want open", st, err)
	}
	if got, _ := s.CommittedTotals(ctx, "ns", "ds", ""); got != before {
		t.Fatalf("after the crash readers see %+v, want the old %+v", got, before)
	}
	checkRollup(t, s)
	commit(t, s, run, Window{Start: "2024-09", End: "2024-09"}) // the manager's retry
	if got, _ := s.CommittedTotals(ctx, "ns", "ds", ""); got.Rows != 300 {
		t.Fatalf("after the retried commit %d rows, want the new run's 300", got.Rows)
	}
	checkRollup(t, s)
}
