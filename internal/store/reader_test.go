package store

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAReaderSeesTheOldMonthUntilTheCommitThenTheNewNeverTheSum(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	const month = "2024-07"
	old := runRef("ns", "ds", "old")
	write(t, s, taskRef(old, "t1"), genRecords("old", month, 2000))
	commit(t, s, old, Window{Start: month, End: month})
	oldTotal, err := s.CommittedTotals(ctx, "ns", "ds", month)
	if err != nil || oldTotal.Rows != 2000 {
		t.Fatalf("old total %+v, %v", oldTotal, err)
	}

	type seen struct {
		phase int32 // 0 writing, 1 committing (or changed during the query), 2 committed
		tot   Totals
	}
	var phase atomic.Int32
	var mu sync.Mutex
	var seenAll []seen
	polls := func() int { mu.Lock(); defer mu.Unlock(); return len(seenAll) }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			before := phase.Load()
			tot, err := s.CommittedTotals(ctx, "ns", "ds", month)
			if err != nil {
				t.Error(err)
				return
			}
			// A query that was under way when the phase changed (this goroutine
			// may wait for the CPU between the phase and the query) counts as
			// during the commit: either total may be right for it.
			p := phase.Load()
			if p != before {
				p = 1
			}
			mu.Lock()
			seenAll = append(seenAll, seen{p, tot})
			mu.Unlock()
		}
	})
	waitPolls := func(n int) {
		start := polls()
		for polls() < start+n {
			time.Sleep(time.Millisecond)
		}
	}

	run := runRef("ns", "ds", "new")
	var newRows []Record
	for i, task := range []string{"t1", "t2", "t3"} {
		recs := genRecords("new-"+task, month, 1000+i)
		newRows = append(newRows, recs...)
		inner := batches(recs, 100)
		n := 0
		// Each task pauses mid-COPY while the reader polls.
		next := func(ctx context.Context) ([]Record, error) {
			if n++; n == 5 {
				waitPolls(3)
			}
			return inner(ctx)
		}
		if _, err := s.WriteTask(ctx, taskRef(run, task), next); err != nil {
			t.Fatal(err)
		}
		waitPolls(3) // and between tasks, with their rows committed to the table
	}
	phase.Store(1)
	commit(t, s, run, Window{Start: month, End: month})
	phase.Store(2)
	waitPolls(5)
	close(stop)
	wg.Wait()

	var newTotal Totals
	for _, r := range newRows {
		newTotal.Rows++
		newTotal.Cost += r.Cost
		newTotal.UsageQuantity += r.UsageQuantity
	}
	sawNew := false
	counts := map[int32]int{}
	for i, o := range seenAll {
		counts[o.phase]++
		isOld := o.tot.Rows == oldTotal.Rows && near(o.tot.Cost, oldTotal.Cost)
		isNew := o.tot.Rows == newTotal.Rows && near(o.tot.Cost, newTotal.Cost)
		switch {
		case !isOld && !isNew:
			t.Fatalf("poll %d (phase %d) saw %+v: neither the old total %+v nor the new %+v", i, o.phase, o.tot, oldTotal, newTotal)
		case o.phase == 0 && !isOld:
			t.Fatalf("poll %d saw the new total before the commit", i)
		case o.phase == 2 && !isNew:
			t.Fatalf("poll %d saw the old total after the commit", i)
		case isOld && sawNew:
			t.Fatalf("poll %d saw the old total again after the new one", i)
		}
		sawNew = sawNew || isNew
	}
	if counts[0] < 15 || counts[2] < 5 {
		t.Fatalf("too few polls to tell: %v", counts)
	}
	t.Logf("%d polls: %d while writing, %d while committing, %d after", len(seenAll), counts[0], counts[1], counts[2])
}
