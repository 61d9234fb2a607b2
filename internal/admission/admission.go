// Package admission bounds how many tasks of one Job run at once (the Job's
// parallelism). The JobTask controller asks the Ledger before it creates a task's
// batch Job and tells it when a task stops holding a slot; the Ledger hands a freed
// slot to the waiting task with the lowest index and wakes it. The Ledger lives in the
// leader's memory and is rebuilt from the cache (the batch Jobs still running) the
// first time a Job is seen after a start, so no admission state is ever written to
// the API server.
package admission

import (
	"container/heap"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// Ledger tracks, per Job, the tasks holding a slot and the tasks waiting for one.
// It is safe for concurrent use.
type Ledger struct {
	mu   sync.Mutex
	jobs map[types.NamespacedName]*jobState
	wake func(task types.NamespacedName)
}

type jobState struct {
	uid     types.UID
	limit   int
	running map[string]struct{}
	waiting waitHeap
	queued  map[string]int32 // task name -> index, mirrors waiting
	// open is set once the Job's plan is complete (Offer, or a Job already Planned):
	// until then tasks only queue, so the plan's creates have the API server to
	// themselves and the first slots go to the lowest indexes of the whole plan.
	open bool
}

// New returns a Ledger that calls wake (outside its lock) for each waiting task that
// was handed a slot.
func New(wake func(task types.NamespacedName)) *Ledger {
	return &Ledger{jobs: map[types.NamespacedName]*jobState{}, wake: wake}
}

// Job identifies a Job for the Ledger. A Job deleted and created again under the same
// name has another UID and starts with a clean slate.
type Job struct {
	types.NamespacedName
	UID types.UID
	// Limit is the Job's parallelism.
	Limit int
	// Running lists the tasks already holding a slot; it is called once, the first
	// time the Ledger sees the Job, to rebuild its state from the cluster.
	Running func() []string
	// Planned says the Job's plan is complete (its Planned condition), as after a
	// restart of the manager; a plan made by this process opens the Job with Offer.
	Planned bool
}

func (l *Ledger) state(job Job) *jobState {
	s := l.jobs[job.NamespacedName]
	if s == nil || s.uid != job.UID {
		s = &jobState{uid: job.UID, running: map[string]struct{}{}, queued: map[string]int32{}}
		if job.Running != nil {
			for _, name := range job.Running() {
				s.running[name] = struct{}{}
			}
		}
		l.jobs[job.NamespacedName] = s
	}
	if job.Limit > 0 {
		s.limit = job.Limit
	}
	s.open = s.open || job.Planned
	return s
}

// Admit reports whether the task may run now. No task runs before its Job's plan is
// complete; then free slots go to the waiting tasks with the lowest index, so tasks
// run in plan order. A task that may not run yet is remembered and woken when a slot
// is handed to it, and the caller need not poll.
func (l *Ledger) Admit(job Job, task string, index int32) bool {
	l.mu.Lock()
	s := l.state(job)
	if _, ok := s.running[task]; ok {
		l.mu.Unlock()
		return true
	}
	s.enqueue(task, index)
	woken := l.fill(s)
	l.mu.Unlock()
	admitted := false
	for i, n := range woken {
		if n == task { // handed a slot in this very call: no need to wake it
			admitted = true
			woken = append(woken[:i:i], woken[i+1:]...)
			break
		}
	}
	l.notify(job.Namespace, woken)
	return admitted
}

// Offer queues a Job's tasks at once and opens the Job (the planner does, right after
// creating them all), so the first slots go to the lowest indexes rather than to
// whichever task's event arrives first.
func (l *Ledger) Offer(job Job, tasks map[string]int32) {
	l.mu.Lock()
	s := l.state(job)
	s.open = true
	for name, index := range tasks {
		if _, ok := s.running[name]; !ok {
			s.enqueue(name, index)
		}
	}
	woken := l.fill(s)
	l.mu.Unlock()
	l.notify(job.Namespace, woken)
}

func (s *jobState) enqueue(task string, index int32) {
	if _, ok := s.queued[task]; !ok {
		s.queued[task] = index
		heap.Push(&s.waiting, waitItem{name: task, index: index})
	}
}

// Release frees the task's slot (or its place in the queue) and hands free slots to
// waiting tasks.
func (l *Ledger) Release(job types.NamespacedName, task string) {
	l.mu.Lock()
	s := l.jobs[job]
	if s == nil {
		l.mu.Unlock()
		return
	}
	delete(s.running, task)
	delete(s.queued, task) // a stale heap entry is skipped by fill
	woken := l.fill(s)
	l.mu.Unlock()
	l.notify(job.Namespace, woken)
}

// Resize applies a changed parallelism, waking waiting tasks when it grew.
func (l *Ledger) Resize(job types.NamespacedName, uid types.UID, limit int) {
	l.mu.Lock()
	s := l.jobs[job]
	if s == nil || s.uid != uid || limit <= 0 {
		l.mu.Unlock()
		return
	}
	s.limit = limit
	woken := l.fill(s)
	l.mu.Unlock()
	l.notify(job.Namespace, woken)
}

// Forget drops a Job that finished or was deleted.
func (l *Ledger) Forget(job types.NamespacedName) {
	l.mu.Lock()
	delete(l.jobs, job)
	l.mu.Unlock()
}

// Running returns how many tasks of the Job hold a slot.
func (l *Ledger) Running(job types.NamespacedName) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.jobs[job]; s != nil {
		return len(s.running)
	}
	return 0
}

// fill hands free slots to the waiting tasks with the lowest index.
func (l *Ledger) fill(s *jobState) []string {
	var woken []string
	for s.open && len(s.running) < s.limit && len(s.waiting) > 0 {
		it := heap.Pop(&s.waiting).(waitItem)
		if idx, ok := s.queued[it.name]; !ok || idx != it.index {
			continue // released while waiting
		}
		delete(s.queued, it.name)
		s.running[it.name] = struct{}{}
		woken = append(woken, it.name)
	}
	return woken
}

func (l *Ledger) notify(namespace string, names []string) {
	if l.wake == nil {
		return
	}
	for _, n := range names {
		l.wake(types.NamespacedName{Namespace: namespace, Name: n})
	}
}

type waitItem struct {
	name  string
	index int32
}

type waitHeap []waitItem

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(i, j int) bool { return h[i].index < h[j].index }
func (h waitHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *waitHeap) Push(x any)        { *h = append(*h, x.(waitItem)) }
func (h *waitHeap) Pop() any          { old := *h; it := old[len(old)-1]; *h = old[:len(old)-1]; return it }
