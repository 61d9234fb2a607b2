package bench

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// sampleEvery is the period of a run's pod samples.
const sampleEvery = 250 * time.Millisecond

// podSampler counts the pods of a label selector in one namespace by state, from a
// watch, and samples the counts every sampleEvery. The watch is the cheap way (a list
// of a thousand pods four times a second would weigh on the API server it measures),
// and it costs both end-to-end runs the same: one event per change of a task pod.
type podSampler struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu sync.Mutex
	// state is each pod's: pending, running or finished. A finished pod stays
	// counted after it is deleted.
	state   map[string]podState
	count   [3]int
	samples []timedSample
}

type podState int

const (
	podPending podState = iota
	podRunning
	podFinished
)

type timedSample struct {
	at    time.Time
	count [3]int
}

func stateOf(p *corev1.Pod) podState {
	switch p.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		return podFinished
	case corev1.PodRunning:
		return podRunning
	default:
		return podPending
	}
}

// samplePods starts sampling the pods of ns with the labels sel. The API server drops
// a watcher that falls behind, so a closed watch resumes from the last
// resourceVersion seen, or from a list when that is too old.
func (b *bench) samplePods(ns string, sel map[string]string) *podSampler {
	b.t.Helper()
	ctx, cancel := context.WithCancel(b.ctx)
	s := &podSampler{cancel: cancel, done: make(chan struct{}), state: map[string]podState{}}
	rv := ""
	open := func() (watch.Interface, error) {
		opts := &client.ListOptions{Namespace: ns, Raw: &metav1.ListOptions{ResourceVersion: rv}}
		client.MatchingLabels(sel).ApplyToList(opts)
		return b.c.Watch(ctx, &corev1.PodList{}, opts)
	}
	w, err := open()
	if err != nil {
		b.t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			for ev := range w.ResultChan() {
				switch ev.Type {
				case watch.Added, watch.Modified, watch.Deleted:
					if p, ok := ev.Object.(*corev1.Pod); ok {
						rv = p.ResourceVersion
						s.observe(p.Name, stateOf(p), ev.Type == watch.Deleted)
					}
				case watch.Bookmark:
					if o, ok := ev.Object.(client.Object); ok {
						rv = o.GetResourceVersion()
					}
				case watch.Error:
					if st, ok := ev.Object.(*metav1.Status); ok && st.Code == http.StatusGone {
						rv = "" // too old: start again from a list below
					}
				}
			}
			if ctx.Err() != nil {
				return
			}
			if rv == "" {
				var l corev1.PodList
				if err := b.c.List(ctx, &l, client.InNamespace(ns), client.MatchingLabels(sel)); err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				s.resync(l.Items)
				rv = l.ResourceVersion
			}
			for w, err = open(); err != nil; w, err = open() {
				if ctx.Err() != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	})
	wg.Go(func() {
		tick := time.NewTicker(sampleEvery)
		defer tick.Stop()
		for {
			select {
			case at := <-tick.C:
				s.sample(at)
			case <-ctx.Done():
				return
			}
		}
	})
	go func() { wg.Wait(); close(s.done) }()
	return s
}

func (s *podSampler) observe(name string, st podState, deleted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, seen := s.state[name]
	switch {
	case seen && old == podFinished:
		return
	case seen:
		s.count[old]--
	}
	if deleted && st != podFinished {
		delete(s.state, name)
		return
	}
	s.state[name] = st
	s.count[st]++
}

// resync replaces what the watch missed with a list's pods.
func (s *podSampler) resync(pods []corev1.Pod) {
	listed := map[string]bool{}
	for i := range pods {
		listed[pods[i].Name] = true
		s.observe(pods[i].Name, stateOf(&pods[i]), false)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, st := range s.state {
		if !listed[name] && st != podFinished {
			s.count[st]--
			delete(s.state, name)
		}
	}
}

func (s *podSampler) sample(at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, timedSample{at: at, count: s.count})
}

// stop ends the sampling and returns the samples from start to end, in seconds
// since start: the counts at start first, the counts at end last.
func (s *podSampler) stop(start, end time.Time) Timeline {
	s.sample(end)
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		// A watch that ignores its context's end: its counts are no longer sampled.
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// A tick taken just before end may have been appended after it.
	slices.SortFunc(s.samples, func(a, b timedSample) int { return a.at.Compare(b.at) })
	tl := Timeline{EverySeconds: sampleEvery.Seconds()}
	var first [3]int
	for _, ts := range s.samples {
		if ts.at.Before(start) {
			first = ts.count
		}
	}
	tl.Samples = append(tl.Samples, Sample{Seconds: 0, Pending: first[podPending], Running: first[podRunning], Finished: first[podFinished]})
	for _, ts := range s.samples {
		if ts.at.After(start) && !ts.at.After(end) {
			tl.Samples = append(tl.Samples, Sample{Seconds: ts.at.Sub(start).Seconds(),
				Pending: ts.count[podPending], Running: ts.count[podRunning], Finished: ts.count[podFinished]})
		}
	}
	return tl
}

func TestPodSampler(t *testing.T) {
	start := time.Date(2026, 12, 3, 13, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	pod := func(name string, phase corev1.PodPhase) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{Phase: phase}}
	}
	done := make(chan struct{})
	close(done)
	s := &podSampler{cancel: func() {}, done: done, state: map[string]podState{}}
	observe := func(p *corev1.Pod, deleted bool) { s.observe(p.Name, stateOf(p), deleted) }

	s.sample(at(-100)) // before the run: not a sample of it
	observe(pod("a", corev1.PodPending), false)
	observe(pod("b", corev1.PodPending), false)
	s.sample(at(250))
	observe(pod("a", corev1.PodRunning), false)
	observe(pod("b", corev1.PodRunning), false)
	observe(pod("c", ""), false)
	s.sample(at(750)) // appended before the tick of 500 ms: stop sorts them
	s.sample(at(500))
	observe(pod("a", corev1.PodSucceeded), false)
	observe(pod("a", corev1.PodSucceeded), true) // a finished pod deleted stays finished
	observe(pod("b", corev1.PodFailed), false)
	observe(pod("c", corev1.PodPending), true) // deleted before it ran: gone
	observe(pod("d", corev1.PodRunning), false)
	s.sample(at(1000))
	// A list after the watch fell behind: d went unseen, e is new.
	s.resync([]corev1.Pod{*pod("e", corev1.PodRunning)})
	s.sample(at(1500)) // after the end: dropped
	tl := s.stop(start, at(1200))

	want := []Sample{
		{Seconds: 0},
		{Seconds: 0.25, Pending: 2},
		{Seconds: 0.5, Pending: 1, Running: 2},
		{Seconds: 0.75, Pending: 1, Running: 2},
		{Seconds: 1, Running: 1, Finished: 2},
		{Seconds: 1.2, Running: 1, Finished: 2},
	}
	if !slices.Equal(tl.Samples, want) || tl.EverySeconds != 0.25 {
		t.Errorf("samples every %v s:\n%+v\nwant every 0.25 s:\n%+v", tl.EverySeconds, tl.Samples, want)
	}
}
