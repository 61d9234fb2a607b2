package bench

import (
	"math"
	"strings"
	"testing"
	"time"
)

// results are figures of a run that meets every goal of issue 14, each just inside
// its bound.
func results() Results {
	return Results{
		Date:                  time.Date(2026, 12, 3, 13, 0, 0, 0, time.UTC),
		Machine:               "2 CPUs",
		ManagerArgs:           []string{"--kube-api-qps=1000"},
		ControllerManagerArgs: []string{"--kube-api-qps=100", "--kube-api-burst=200"},
		FanOut: []FanOut{
			{Tasks: 1000, Parallelism: 200, OperatorSeconds: 2, PlainClientSecond: 1, PlainClientWorker: 32, Ratio: 0.5},
			{Tasks: 10000, Parallelism: 200, OperatorSeconds: 20, PlainClientSecond: 19, PlainClientWorker: 32, Ratio: 0.95},
		},
		EndToEnd: EndToEnd{Tasks: 1000, Parallelism: 100, OperatorSeconds: 24, IndexedSeconds: 20, Ratio: 1.2,
			ControllerManagerWritesPerTask: 2, ControllerManagerWritesPerPod: 2.05, AllWritesPerTask: 5,
			OperatorPods: timeline(0.25, [][3]int{{0, 0, 0}, {0, 100, 0}, {10, 50, 500}, {0, 0, 1000}}),
			IndexedPods:  timeline(0.25, [][3]int{{0, 0, 0}, {0, 100, 400}, {0, 0, 1000}}),
			Picture:      "bench/endtoend.svg"},
		Latency: Latency{Jobs: 20, OperatorP50: -5, OperatorP99: 40, OperatorFromPodP50: 300, OperatorFromPodP99: 600,
			UpstreamP50: 250, UpstreamP99: 500, UpstreamSamples: 20},
		Cost: Cost{Tasks: 1000, RunCost: RunCost{Writes: 3000, WritesPerTask: 3, WritesByMethod: map[string]int{"POST": 1000, "PATCH": 2000}},
			LiveTasks: 10000, HeapPerLiveTaskKiB: 4, RSSPerLiveTaskKiB: 7},
	}
}

// timeline is a Timeline of samples every period seconds, each {pending, running,
// finished}.
func timeline(period float64, counts [][3]int) Timeline {
	tl := Timeline{EverySeconds: period}
	for i, c := range counts {
		tl.Samples = append(tl.Samples, Sample{Seconds: float64(i) * period, Pending: c[0], Running: c[1], Finished: c[2]})
	}
	return tl
}

func TestJudge(t *testing.T) {
	tests := map[string]struct {
		change func(r *Results)
		want   map[string]string
		// notes are words the notes must hold, one entry per note, in order.
		notes []string
	}{
		"figures exactly at the goals meet them": {
			change: func(*Results) {},
			want: map[string]string{"fanOut10000": goalMet, "endToEnd": goalMet, "allWritesPerTask": goalMet,
				"operatorWritesPerTask": goalMet, "heapPerLiveTask": goalMet},
		},
		"figures just past the goals miss them, each with a note": {
			change: func(r *Results) {
				r.FanOut[1].Ratio = 0.94
				r.EndToEnd.Ratio = 1.21
				r.EndToEnd.AllWritesPerTask = 5.01
				r.Cost.WritesPerTask = 3.01
				r.Cost.HeapPerLiveTaskKiB = 4.01
			},
			want: map[string]string{"fanOut10000": goalMissed, "endToEnd": goalMissed, "allWritesPerTask": goalMissed,
				"operatorWritesPerTask": goalMissed, "heapPerLiveTask": goalMissed},
			notes: []string{"Fan-out of 10000 tasks: 0.94", "End to end: 1.21 times", "operator plus kube-controller-manager: 5.01 (3.01 + 2.00)",
				"The operator's API writes: 3.01 per task", "4.01 KiB of live heap"},
		},
		"the fan-out of 1,000 tasks is reported, not judged": {
			change: func(r *Results) { r.FanOut[0].Ratio = 0.1 },
			want:   map[string]string{"fanOut10000": goalMet},
		},
		"a slow end to end says where the slots went, from the timelines": {
			change: func(r *Results) { r.EndToEnd.Ratio = 3 },
			want:   map[string]string{"endToEnd": goalMissed},
			notes: []string{"The first task pod ran 0.2s after the Job's creation (Indexed Job: 0.2s); from the first pod to the " +
				"last, 80 of the 100 slots held a pod on average, 75 of them running (Indexed Job: 100, 100 running). The kube-controller-manager made 2.00 API writes " +
				"per task against 2.05 per pod of the Indexed Job; at its client-side limit (--kube-api-qps=100, burst 200) that alone " +
				"takes 20s against 20s. bench/endtoend.svg shows both runs' pods over time."},
		},
		"memory measured at fewer tasks than the goal's is not judged": {
			change: func(r *Results) { r.Cost.LiveTasks = 1000; r.Cost.HeapPerLiveTaskKiB = 1 },
			want:   map[string]string{"heapPerLiveTask": goalNotMeasured},
			notes:  []string{"measured at 1000 live tasks, not 10000"},
		},
		"a run that measured nothing says so for every goal": {
			change: func(r *Results) { *r = Results{} },
			want: map[string]string{"fanOut10000": goalNotMeasured, "endToEnd": goalNotMeasured, "allWritesPerTask": goalNotMeasured,
				"operatorWritesPerTask": goalNotMeasured, "heapPerLiveTask": goalNotMeasured},
			notes: []string{"not measured", "not measured", "not measured", "not measured", "not 10000"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := results()
			tc.change(&r)
			goals, notes := judge(&r)
			for key, want := range tc.want {
				if goals[key] != want {
					t.Errorf("goal %s: %q, want %q (notes: %q)", key, goals[key], want, notes)
				}
			}
			if len(goals) != 5 {
				t.Errorf("%d goals judged, want the issue's 5: %v", len(goals), goals)
			}
			if len(notes) != len(tc.notes) {
				t.Fatalf("%d notes, want %d: %q", len(notes), len(tc.notes), notes)
			}
			for i, words := range tc.notes {
				if !strings.Contains(notes[i], words) {
					t.Errorf("note %d is %q, want it to hold %q", i, notes[i], words)
				}
			}
		})
	}
}

func TestMarkdown(t *testing.T) {
	tests := map[string]struct {
		change func(r *Results)
		want   []string
		absent []string
	}{
		"every goal met": {
			change: func(*Results) {},
			want: []string{
				"| end to end: 1000 tasks, parallelism 100, created → SUCCESS | 24.0 s | Indexed Job, 1000 completions: 20.0 s | 1.20 | ≤ 1.2 | yes |",
				"| API writes per task, operator + kube-controller-manager (same end-to-end runs) | 5.00 (3.00 + 2.00) | Indexed Job: 2.05 per pod | 2.44 | ≤ 5 | yes |",
				"| the operator's API writes per task (1000-task run, `rest_client_requests_total`) | 3.00 (PATCH 2000, POST 1000) | | | ≤ 3 | yes |",
				"| manager memory per live task (10000 live tasks) | 4.00 KiB live heap after a GC (7.00 KiB RSS) | | | ≤ 4 KiB at 10000 | yes |",
				"| 0.95 | ≥ 0.95 | yes |",
				"| 0.50 |  |  |", // the fan-out of 1,000: no goal
				"| completion latency, p50 / p99 (20 Jobs): last batch Job Complete → Job SUCCESS | -5 / 40 ms | " +
					"Job controller, last pod Succeeded → batch Job Complete (20 batch Jobs): 250 / 500 ms | earlier / 0.08 | | |",
				"| 300 / 600 ms | the same upstream figure | 1.20 / 1.20 | | |",
				"sampled every 0.25 s): bench/endtoend.svg.",
				"Every goal met.",
			},
		},
		"a missed goal is marked and explained": {
			change: func(r *Results) { r.Cost.WritesPerTask = 4 },
			want:   []string{"| ≤ 3 | **no** |", "Goals missed or not measured:\n- The operator's API writes: 4.00 per task"},
			absent: []string{"Every goal met."},
		},
		"a goal not measured is marked so": {
			change: func(r *Results) { r.Cost.LiveTasks = 1000 },
			want:   []string{"| ≤ 4 KiB at 10000 | not measured |"},
		},
		"a latency with no Job measured is not a row of zeros": {
			change: func(r *Results) { r.Latency = Latency{} },
			want:   []string{"| completion latency | not measured | | | | |"},
			absent: []string{"earlier"},
		},
		"the floor over the goal is said, with the runs' CPU": {
			change: func(r *Results) {
				e := &r.EndToEnd
				e.OperatorSeconds, e.Ratio, e.Rounds, e.RoundRatios = 40, 2, 3, []float64{1.9, 2, 2.2}
				e.SameBatchJobSeconds, e.FloorSeconds, e.FloorRatio = 28, 32, 1.6
				e.CPU = map[string]map[string]float64{
					runIndexed: {"kube-apiserver": 20, "etcd": 5}, runSame: {"kube-apiserver": 30, "etcd": 6},
					runFloor: {"kube-apiserver": 36, "etcd": 7, "manager": 1}, runOperator: {"kube-apiserver": 40, "etcd": 8, "manager": 7},
				}
			},
			want: []string{
				"created → SUCCESS (medians of 3 rounds; the ratio in each round: 1.90, 2.00, 2.20) | 40.0 s",
				"| floor: the same batch Job while a plain client creates a JobTask per task and writes its end status (2 writes per task, no reads, no operator) | 32.0 s | Indexed Job: 20.0 s | 1.60 | | |",
				"took 32.0s, 1.60 times the Indexed Job; the operator took 1.25 times the floor.",
				"The floor is over the 1.2 goal itself",
				"the Indexed Job 25.0; the run's task pods add 11.0 (their larger spec and the task stages of kwok), the JobTasks' creation and end 8.0 more (the floor), the operator 11.0 more (its own CPU 6.0,",
				"| CPU used during the floor (all processes on this machine's 2 cores; mean of the rounds) | 44.0 CPU s in 32.0 s (1.38 cores): kube-apiserver 36.0, etcd 7.0, manager 1.0 |",
			},
		},
		"a baseline manager's run is set beside this build's": {
			change: func(r *Results) {
				r.Cost.ReconcilesPerTask = map[string]float64{"job": 0.15, "jobtask": 5.1}
				r.EndToEnd.Baseline = &BaselineRun{Manager: "/tmp/manager-old", Seconds: 30, Ratio: 0.8, RoundRatios: []float64{0.8, 0.7, 0.9},
					Cost: RunCost{WritesPerTask: 3, CPUSecondsPer1000: 8, ReconcilesPerTask: map[string]float64{"job": 1.1, "jobtask": 8.5}}}
			},
			want: []string{
				"| end to end, this build against the manager `/tmp/manager-old` (same rounds; the ratio in each round: 0.80, 0.70, 0.90) | 24.0 s | 30.0 s | 0.80 | | |",
				"| the manager's reconciles per task, this build against `/tmp/manager-old` | job 0.15, jobtask 5.10 | job 1.10, jobtask 8.50 | | | |",
			},
		},
		"no picture, no line about it": {
			change: func(r *Results) { r.EndToEnd.Picture = "" },
			absent: []string{"endtoend.svg"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := results()
			tc.change(&r)
			r.Goals, r.Notes = judge(&r)
			md := markdown(&r)
			for _, w := range tc.want {
				if !strings.Contains(md, w) {
					t.Errorf("the report lacks %q:\n%s", w, md)
				}
			}
			for _, w := range tc.absent {
				if strings.Contains(md, w) {
					t.Errorf("the report holds %q:\n%s", w, md)
				}
			}
		})
	}
}

func TestTimelineFigures(t *testing.T) {
	tests := map[string]struct {
		tl                     Timeline
		first, active, running float64
	}{
		"no sample":  {tl: Timeline{}, first: -1},
		"no pod ran": {tl: timeline(1, [][3]int{{0, 0, 0}, {0, 0, 0}}), first: -1},
		"pending pods hold slots too": {
			tl: timeline(1, [][3]int{{5, 0, 0}, {5, 0, 0}}), first: -1, active: 5,
		},
		"the means count the samples between the first and the last pod holding a slot, not before or after": {
			tl:    timeline(0.5, [][3]int{{0, 0, 0}, {10, 0, 0}, {0, 10, 0}, {0, 0, 10}, {0, 20, 10}, {0, 0, 30}}),
			first: 1, active: 10, running: 7.5,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tc.tl.firstRunning(); got != tc.first {
				t.Errorf("firstRunning: %v, want %v", got, tc.first)
			}
			active, running := tc.tl.slotUse()
			if math.Abs(active-tc.active) > 1e-9 || math.Abs(running-tc.running) > 1e-9 {
				t.Errorf("slotUse: %v active, %v running, want %v, %v", active, running, tc.active, tc.running)
			}
		})
	}
}
