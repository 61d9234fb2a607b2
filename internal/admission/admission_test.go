package admission

import (
	"fmt"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func job(limit int, running ...string) Job {
	return Job{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "job"}, UID: "u1", Limit: limit,
		Running: func() []string { return running }, Planned: true}
}

func TestLedger(t *testing.T) {
	tests := map[string]struct {
		run       func(l *Ledger) []bool
		want      []bool
		wantWoken []string
	}{
		"tasks are admitted up to the limit and the rest wait": {
			run: func(l *Ledger) []bool {
				j := job(2)
				return []bool{l.Admit(j, "t0", 0), l.Admit(j, "t1", 1), l.Admit(j, "t2", 2)}
			},
			want: []bool{true, true, false},
		},
		"a released slot goes to the waiting task with the lowest index": {
			run: func(l *Ledger) []bool {
				j := job(1)
				a := l.Admit(j, "t0", 0)
				b := l.Admit(j, "t5", 5)
				c := l.Admit(j, "t3", 3)
				l.Release(j.NamespacedName, "t0")
				return []bool{a, b, c}
			},
			want: []bool{true, false, false}, wantWoken: []string{"t3"},
		},
		"a task asking twice keeps its one slot": {
			run: func(l *Ledger) []bool {
				j := job(1)
				return []bool{l.Admit(j, "t0", 0), l.Admit(j, "t0", 0), l.Admit(j, "t1", 1)}
			},
			want: []bool{true, true, false},
		},
		"after a restart the running batch Jobs hold their slots": {
			run: func(l *Ledger) []bool {
				j := job(2, "t0", "t1")
				return []bool{l.Admit(j, "t2", 2), l.Admit(j, "t0", 0)}
			},
			want: []bool{false, true},
		},
		"a grown parallelism wakes waiting tasks": {
			run: func(l *Ledger) []bool {
				j := job(1)
				a, b, c := l.Admit(j, "t0", 0), l.Admit(j, "t1", 1), l.Admit(j, "t2", 2)
				l.Resize(j.NamespacedName, "u1", 3)
				return []bool{a, b, c}
			},
			want: []bool{true, false, false}, wantWoken: []string{"t1", "t2"},
		},
		"a waiting task that is released never gets a slot": {
			run: func(l *Ledger) []bool {
				j := job(1)
				a, b, c := l.Admit(j, "t0", 0), l.Admit(j, "t1", 1), l.Admit(j, "t2", 2)
				l.Release(j.NamespacedName, "t1")
				l.Release(j.NamespacedName, "t0")
				return []bool{a, b, c}
			},
			want: []bool{true, false, false}, wantWoken: []string{"t2"},
		},
		"offered tasks run lowest index first, whatever order they arrive in": {
			run: func(l *Ledger) []bool {
				j := job(2)
				l.Offer(j, map[string]int32{"t5": 5, "t3": 3, "t0": 0, "t1": 1})
				return []bool{l.Admit(j, "t5", 5), l.Admit(j, "t1", 1), l.Admit(j, "t0", 0)}
			},
			want: []bool{false, true, true}, wantWoken: []string{"t0", "t1"},
		},
		"no task runs before the plan is complete; Offer opens the Job in plan order": {
			run: func(l *Ledger) []bool {
				j := job(2)
				j.Planned = false
				a, b := l.Admit(j, "t3", 3), l.Admit(j, "t2", 2)
				l.Offer(j, map[string]int32{"t0": 0, "t1": 1, "t2": 2, "t3": 3})
				return []bool{a, b, l.Admit(j, "t0", 0), l.Admit(j, "t3", 3)}
			},
			want: []bool{false, false, true, false}, wantWoken: []string{"t0", "t1"},
		},
		"a Job already planned (a restart) admits without an Offer": {
			run: func(l *Ledger) []bool {
				j := job(1)
				j.Planned = false
				a := l.Admit(j, "t0", 0)
				j.Planned = true
				return []bool{a, l.Admit(j, "t0", 0)}
			},
			want: []bool{false, true},
		},
		"a Job recreated under the same name starts clean": {
			run: func(l *Ledger) []bool {
				j := job(1)
				a := l.Admit(j, "t0", 0)
				j2 := job(1)
				j2.UID = "u2"
				return []bool{a, l.Admit(j2, "t0", 0)}
			},
			want: []bool{true, true},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var woken []string
			l := New(func(task types.NamespacedName) { woken = append(woken, task.Name) })
			got := tc.run(l)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("admitted %v, want %v", got, tc.want)
			}
			if fmt.Sprint(woken) != fmt.Sprint(tc.wantWoken) && (len(woken) != 0 || len(tc.wantWoken) != 0) {
				t.Errorf("woken %v, want %v", woken, tc.wantWoken)
			}
		})
	}
}

// TestLedgerNeverExceedsTheLimit admits and releases from many goroutines and checks
// the number of slots held never passes the limit.
func TestLedgerNeverExceedsTheLimit(t *testing.T) {
	const limit, tasks = 7, 500
	var mu sync.Mutex
	held, peak := 0, 0 // peak: most slots the ledger reported held at once
	var l *Ledger
	var wg sync.WaitGroup
	run := func(name string) {
		defer wg.Done()
		mu.Lock()
		held++
		if n := l.Running(types.NamespacedName{Namespace: "ns", Name: "job"}); n > peak {
			peak = n
		}
		mu.Unlock()
		mu.Lock()
		held--
		mu.Unlock()
		l.Release(types.NamespacedName{Namespace: "ns", Name: "job"}, name)
	}
	l = New(func(task types.NamespacedName) { wg.Add(1); go run(task.Name) })
	j := job(limit)
	for i := range tasks {
		name := fmt.Sprintf("t%d", i)
		if l.Admit(j, name, int32(i)) {
			wg.Add(1)
			go run(name)
		}
	}
	wg.Wait()
	if peak > limit {
		t.Fatalf("peak %d tasks held slots, limit %d", peak, limit)
	}
	if n := l.Running(j.NamespacedName); n != 0 {
		t.Fatalf("%d slots still held after every task ended", n)
	}
}
