package bench

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Results is what bench/results.json holds.
type Results struct {
	Date        time.Time `json:"date"`
	Machine     string    `json:"machine"`
	ManagerArgs []string  `json:"managerArgs"`
	// ControllerManagerArgs are the local control plane's kube-controller-manager flags.
	ControllerManagerArgs []string          `json:"controllerManagerArgs"`
	FanOut                []FanOut          `json:"fanOut"`
	EndToEnd              EndToEnd          `json:"endToEnd"`
	Latency               Latency           `json:"completionLatency"`
	Cost                  Cost              `json:"cost"`
	Notes                 []string          `json:"notes"`
	Profiles              []string          `json:"profiles"`
	Goals                 map[string]string `json:"goals"`
}

// The end-to-end runs of a round, the keys of EndToEnd.CPU.
const (
	runOperator = "operator"
	runSame     = "sameBatchJob"
	runFloor    = "floor"
	runIndexed  = "indexedJob"
	runBaseline = "baseline"
)

type FanOut struct {
	Tasks int `json:"tasks"`
	// ManagerWritesPerSecond is the manager's API write rate during the fan-out (its
	// client-side limit is --kube-api-qps).
	ManagerWritesPerSecond float64 `json:"managerWritesPerSecond"`
	Parallelism            int     `json:"parallelism"`
	OperatorSeconds        float64 `json:"operatorSeconds"`
	PlainClientSecond      float64 `json:"plainClientSeconds"`
	PlainClientWorker      int     `json:"plainClientWorkers"`
	// Ratio is the operator's rate over the plain client's (goal >= goalFanOut at
	// goalFanOutTasks): the median of the rounds' ratios, RoundRatios. The seconds
	// are medians.
	Ratio       float64   `json:"ratio"`
	Rounds      int       `json:"rounds"`
	RoundRatios []float64 `json:"roundRatios"`
}

type EndToEnd struct {
	Tasks       int `json:"tasks"`
	Parallelism int `json:"parallelism"`
	// Rounds is how many times each run was repeated: seconds are medians, ratios
	// medians of the rounds' ratios, RoundRatios the operator's ratio in each round.
	Rounds          int       `json:"rounds"`
	RoundRatios     []float64 `json:"roundRatios"`
	OperatorSeconds float64   `json:"operatorSeconds"`
	IndexedSeconds  float64   `json:"indexedJobSeconds"`
	// ControllerManagerWritesPerTask and ...PerPod are the kube-controller-manager's
	// API writes per task of the operator's run and per pod of the Indexed Job.
	ControllerManagerWritesPerTask float64 `json:"controllerManagerWritesPerTask"`
	ControllerManagerWritesPerPod  float64 `json:"controllerManagerWritesPerPod"`
	// AllWritesPerTask is what the operator's run cost both writers per task: the
	// operator's writes (Cost.WritesPerTask) plus ControllerManagerWritesPerTask.
	AllWritesPerTask float64 `json:"allWritesPerTask"`
	// Ratio is the operator's time over the Indexed Job's (goal <= goalEndToEnd).
	Ratio float64 `json:"ratio"`
	// SameBatchJobSeconds is the run's own batch Job (its spec and simulated task
	// pods) run again alone, without the operator; SameBatchJobRatio is the
	// operator's time over it: the operator's own share of the run.
	SameBatchJobSeconds float64 `json:"sameBatchJobSeconds,omitempty"`
	SameBatchJobRatio   float64 `json:"sameBatchJobRatio,omitempty"`
	// FloorSeconds is the same batch Job with a plain client meanwhile creating a
	// JobTask per task and writing its end status (two writes per task, no reads):
	// the floor of any engine that keeps a JobTask per task. FloorRatio is it over
	// the Indexed Job's time.
	FloorSeconds float64 `json:"floorSeconds,omitempty"`
	FloorRatio   float64 `json:"floorRatio,omitempty"`
	// Baseline is the same run with another build of the manager
	// (BENCH_BASELINE_MANAGER), in the same rounds: an A/B of the manager itself.
	Baseline *BaselineRun `json:"baseline,omitempty"`
	// CPU is the CPU seconds each process used during each run ("operator",
	// "sameBatchJob", "floor", "indexedJob"), by component: the control plane's
	// processes, the manager and the benchmark itself; the mean over the rounds.
	CPU map[string]map[string]float64 `json:"cpuSeconds,omitempty"`
	// CPUWall is each run's mean time over the rounds, the span of its mean CPU.
	CPUWall map[string]float64 `json:"cpuWallSeconds,omitempty"`
	// OperatorPods and IndexedPods are the runs' task pods over time; Picture is
	// their plot, relative to the repository.
	OperatorPods Timeline `json:"operatorPods"`
	IndexedPods  Timeline `json:"indexedJobPods"`
	Picture      string   `json:"picture"`
}

// Timeline is a run's task pods (the pods with the run's label), sampled while it
// ran.
type Timeline struct {
	// EverySeconds is the sampling period.
	EverySeconds float64  `json:"everySeconds"`
	Samples      []Sample `json:"samples"`
}

// Sample counts a run's task pods at one time. A pod counts once it is created;
// finished counts the pods that reached Succeeded or Failed, also after they are
// deleted.
type Sample struct {
	// Seconds since the run was created.
	Seconds  float64 `json:"t"`
	Pending  int     `json:"pending"`
	Running  int     `json:"running"`
	Finished int     `json:"finished"`
}

// firstRunning is the time of the first sample with a running pod, or -1.
func (tl Timeline) firstRunning() float64 {
	for _, s := range tl.Samples {
		if s.Running > 0 {
			return s.Seconds
		}
	}
	return -1
}

// slotUse is the mean number of pods holding a slot of the run's parallelism
// (created, not finished: pending or running), and of those running, over the
// samples from the first with such a pod to the last: how full the run kept its
// slots.
func (tl Timeline) slotUse() (active, running float64) {
	first, last := -1, -1
	for i, s := range tl.Samples {
		if s.Pending+s.Running > 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return 0, 0
	}
	var a, r int
	for _, s := range tl.Samples[first : last+1] {
		a, r = a+s.Pending+s.Running, r+s.Running
	}
	n := float64(last - first + 1)
	return float64(a) / n, float64(r) / n
}

// BaselineRun is the operator's run with another build of the manager.
type BaselineRun struct {
	// Manager is the binary's path.
	Manager string  `json:"manager"`
	Seconds float64 `json:"seconds"`
	// Ratio is this build's time over the baseline's: the median of RoundRatios.
	Ratio       float64   `json:"ratio"`
	RoundRatios []float64 `json:"roundRatios"`
	Cost        RunCost   `json:"cost"`
}

// RunCost is what the operator's runs cost, over all of them: its API writes per
// run (Writes, WritesByMethod) and per task, the API server's write counts per task
// of the kinds only the manager writes (JobTasks, their status, the Jobs' status),
// the manager's reconciles per task by controller, its CPU, its reads (GETs and
// lists) and the kube-controller-manager's writes per task.
type RunCost struct {
	Writes                         int                `json:"writes"`
	WritesByMethod                 map[string]int     `json:"writesByMethod"`
	WritesPerTask                  float64            `json:"writesPerTask"`
	WritesByResource               map[string]float64 `json:"writesPerTaskByResource"`
	ReconcilesPerTask              map[string]float64 `json:"reconcilesPerTask,omitempty"`
	CPUSecondsPer1000              float64            `json:"cpuSecondsPer1000Tasks"`
	ControllerManagerWritesPerTask float64            `json:"controllerManagerWritesPerTask"`
	ReadsPerTask                   float64            `json:"readsPerTask"`
}

type Latency struct {
	Jobs int `json:"jobs"`
	// Operator: last batch Job Complete -> Job SUCCESS, as seen by a watch, in ms
	// (negative when the Job succeeded first: tasks end on their pod's success).
	OperatorP50, OperatorP99 float64
	// OperatorFromPod: last task pod Succeeded -> Job SUCCESS, in ms: the same start
	// as the upstream figure's.
	OperatorFromPodP50, OperatorFromPodP99 float64
	// Upstream: the last pod of a batch Job Succeeded -> that batch Job Complete
	// (the Job controller), in ms.
	UpstreamP50, UpstreamP99 float64
	UpstreamSamples          int
}

type Cost struct {
	// Tasks is the end-to-end run's; RunCost is what the operator's end-to-end runs
	// cost (deltas of its metrics around each run).
	Tasks int `json:"tasks"`
	RunCost
	PeakRSSMiB        float64 `json:"peakRSSMiB"`
	LiveTasks         int     `json:"liveTasks"`
	RSSPerLiveTaskKiB float64 `json:"rssPerLiveTaskKiB"`
	// HeapPerLiveTaskKiB is the growth of the manager's live heap (after a GC) per
	// live task.
	HeapPerLiveTaskKiB float64 `json:"heapPerLiveTaskKiB"`
}

// The goals of issue 14 (the engine on Indexed batch Jobs).
const (
	goalFanOut         = 0.95 // fan-out of goalFanOutTasks: at least this share of the plain client's rate
	goalFanOutTasks    = 10000
	goalEndToEnd       = 1.2 // at most this many times the Indexed Job's time
	goalAllWrites      = 5.0 // at most this many API writes per task, operator plus kube-controller-manager
	goalOperatorWrites = 3.0 // at most this many of the operator's own API writes per task
	goalHeapKiB        = 4.0 // at most this much live heap per live task, at goalHeapTasks
	goalHeapTasks      = 10000
)

// Verdicts of Results.Goals.
const (
	goalMet         = "met"
	goalMissed      = "missed"
	goalNotMeasured = "not measured"
)

// judge says for each goal whether it was met, and by how much it was missed.
func judge(r *Results) (map[string]string, []string) {
	goals := map[string]string{}
	var notes []string
	verdict := func(key string, met bool, missed string) {
		if met {
			goals[key] = goalMet
			return
		}
		goals[key] = goalMissed
		notes = append(notes, missed)
	}
	notMeasured := func(key, why string) {
		goals[key] = goalNotMeasured
		notes = append(notes, why)
	}
	qps := flagValue(r.ManagerArgs, "--kube-api-qps", "1000") // main.go's default
	kcmQPS := flagValue(r.ControllerManagerArgs, "--kube-api-qps", "20")
	kcmBurst := flagValue(r.ControllerManagerArgs, "--kube-api-burst", "30")

	fanOutKey := fmt.Sprintf("fanOut%d", goalFanOutTasks)
	if i := slices.IndexFunc(r.FanOut, func(f FanOut) bool { return f.Tasks == goalFanOutTasks }); i < 0 {
		notMeasured(fanOutKey, fmt.Sprintf("Fan-out of %d tasks: not measured.", goalFanOutTasks))
	} else {
		f := r.FanOut[i]
		bound := fmt.Sprintf("The manager wrote %.0f requests/s meanwhile, below its client-side limit (--kube-api-qps=%s), "+
			"with the same %d concurrent creates as the plain client: what remains is the manager's own share of the 2 CPUs "+
			"the API server runs on (decoding the watch events of its JobTasks, reconciling each new one) and the run-to-run "+
			"spread of this machine.", f.ManagerWritesPerSecond, qps, f.PlainClientWorker)
		if f.ManagerWritesPerSecond >= 0.8*atof(qps) {
			bound = fmt.Sprintf("The manager wrote %.0f requests/s meanwhile, at its client-side limit --kube-api-qps=%s; "+
				"the plain client has no client-side limit.", f.ManagerWritesPerSecond, qps)
		}
		verdict(fanOutKey, f.Ratio >= goalFanOut,
			fmt.Sprintf("Fan-out of %d tasks: %.2f of the plain client's rate, %.0f%% short of the %.2f goal. %s",
				f.Tasks, f.Ratio, (goalFanOut-f.Ratio)/goalFanOut*100, goalFanOut, bound))
	}

	e := r.EndToEnd
	c := r.Cost
	if e.Tasks == 0 || e.IndexedSeconds == 0 {
		notMeasured("endToEnd", "End to end: not measured.")
		notMeasured("allWritesPerTask", "API writes per task, operator plus kube-controller-manager: not measured.")
	} else {
		verdict("endToEnd", e.Ratio <= goalEndToEnd,
			fmt.Sprintf("End to end: %.2f times the Indexed Job's time, %.0f%% over the %.1f goal (%.1fs instead of at most %.1fs). "+
				"%s The kube-controller-manager made %.2f API writes per task against %.2f per pod of the Indexed Job; at its "+
				"client-side limit (--kube-api-qps=%s, burst %s) that alone takes %.0fs against %.0fs.%s",
				e.Ratio, (e.Ratio-goalEndToEnd)/goalEndToEnd*100, goalEndToEnd, e.OperatorSeconds, goalEndToEnd*e.IndexedSeconds,
				slots(e), e.ControllerManagerWritesPerTask, e.ControllerManagerWritesPerPod, kcmQPS, kcmBurst,
				e.ControllerManagerWritesPerTask*float64(e.Tasks)/atof(kcmQPS), e.ControllerManagerWritesPerPod*float64(e.Tasks)/atof(kcmQPS),
				seePicture(e))+floorNote(e))
		verdict("allWritesPerTask", e.AllWritesPerTask <= goalAllWrites,
			fmt.Sprintf("API writes per task, operator plus kube-controller-manager: %.2f (%.2f + %.2f), %.2f over the goal of at most %.0f; "+
				"the Indexed Job cost the kube-controller-manager %.2f per pod.",
				e.AllWritesPerTask, c.WritesPerTask, e.ControllerManagerWritesPerTask, e.AllWritesPerTask-goalAllWrites, goalAllWrites,
				e.ControllerManagerWritesPerPod))
	}
	if c.Tasks == 0 {
		notMeasured("operatorWritesPerTask", "The operator's API writes per task: not measured.")
	} else {
		verdict("operatorWritesPerTask", c.WritesPerTask <= goalOperatorWrites,
			fmt.Sprintf("The operator's API writes: %.2f per task, %.2f over the goal of at most %.0f (by method: %s; per task, from "+
				"the API server's counts of the kinds only the manager writes: %s). The budget is the JobTask's creation, IN_PROGRESS "+
				"and its end; a batch Job and its task ConfigMap are one per chunk of the plan, the Job's status is written at most "+
				"once a second.",
				c.WritesPerTask, c.WritesPerTask-goalOperatorWrites, goalOperatorWrites, byMethod(c.WritesByMethod), perKind(c.WritesByResource)))
	}
	if c.LiveTasks != goalHeapTasks {
		notMeasured("heapPerLiveTask", fmt.Sprintf("Memory per live task: measured at %d live tasks, not %d.", c.LiveTasks, goalHeapTasks))
	} else {
		verdict("heapPerLiveTask", c.HeapPerLiveTaskKiB <= goalHeapKiB,
			fmt.Sprintf("Memory: %.2f KiB of live heap (after a GC) per live task at %d tasks, %.2f KiB over the goal of %.0f KiB "+
				"(RSS: %.2f KiB per task, which adds heap the Go runtime has freed and not yet returned, and its GC headroom).",
				c.HeapPerLiveTaskKiB, c.LiveTasks, c.HeapPerLiveTaskKiB-goalHeapKiB, goalHeapKiB, c.RSSPerLiveTaskKiB))
	}
	return goals, notes
}

// slots says how soon each end-to-end run had a pod running and how full it kept
// its slots, from the timelines.
func slots(e EndToEnd) string {
	if len(e.OperatorPods.Samples) == 0 || len(e.IndexedPods.Samples) == 0 {
		return ""
	}
	opActive, opRunning := e.OperatorPods.slotUse()
	ixActive, ixRunning := e.IndexedPods.slotUse()
	return fmt.Sprintf("The first task pod ran %.1fs after the Job's creation (Indexed Job: %.1fs); from the first pod to the "+
		"last, %.0f of the %d slots held a pod on average, %.0f of them running (Indexed Job: %.0f, %.0f running).",
		e.OperatorPods.firstRunning(), e.IndexedPods.firstRunning(), opActive, e.Parallelism, opRunning, ixActive, ixRunning)
}

// floorNote says what the floor and the run's own batch Job show of the end-to-end
// goal: how much of the gap is the task pods' and the JobTasks', which any engine
// keeping a JobTask per task pays, and how much is the operator's own.
func floorNote(e EndToEnd) string {
	if e.FloorSeconds == 0 || e.SameBatchJobSeconds == 0 {
		return ""
	}
	s := fmt.Sprintf(" The run's own batch Job alone (its pods, no JobTask, no operator) took %.1fs, %.2f times the Indexed Job; "+
		"the floor (that batch Job while a plain client creates a JobTask per task and writes its end status, two writes per "+
		"task, nothing else) took %.1fs, %.2f times the Indexed Job; the operator took %.2f times the floor.",
		e.SameBatchJobSeconds, safeDiv(e.SameBatchJobSeconds, e.IndexedSeconds), e.FloorSeconds, e.FloorRatio,
		safeDiv(e.OperatorSeconds, e.FloorSeconds))
	if e.FloorRatio > goalEndToEnd {
		s += fmt.Sprintf(" The floor is over the %.1f goal itself: on this machine no engine that keeps a JobTask per task "+
			"meets it, however few writes it makes.", goalEndToEnd)
	}
	if cpu := e.CPU[runFloor]; len(cpu) > 0 {
		s += " " + cpuGap(e)
	}
	return s
}

// cpuGap says where the CPU of the runs went, beyond the Indexed Job's: every run
// kept this machine's 2 cores busy, so its time is its CPU.
func cpuGap(e EndToEnd) string {
	total := func(run string) float64 {
		t := 0.0
		for _, v := range e.CPU[run] {
			t += v
		}
		return t
	}
	ix, same, floor, op := total(runIndexed), total(runSame), total(runFloor), total(runOperator)
	if ix == 0 || same == 0 || floor == 0 || op == 0 {
		return ""
	}
	return fmt.Sprintf("In CPU seconds (all processes, mean of the rounds): the Indexed Job %.1f; the run's task pods add %.1f "+
		"(their larger spec and the task stages of kwok), the JobTasks' creation and end %.1f more (the floor), the operator "+
		"%.1f more (its own CPU %.1f, the rest the API server's and etcd's for its reads, watches and IN_PROGRESS writes).",
		ix, same-ix, floor-same, op-floor, e.CPU[runOperator]["manager"]-e.CPU[runFloor]["manager"])
}

func seePicture(e EndToEnd) string {
	if e.Picture == "" {
		return ""
	}
	return fmt.Sprintf(" %s shows both runs' pods over time.", e.Picture)
}

// ratioOrEarlier is a latency ratio, or "earlier" when the operator's end came first.
func ratioOrEarlier(ours, upstream float64) string {
	if ours <= 0 {
		return "earlier"
	}
	return fmt.Sprintf("%.2f", safeDiv(ours, upstream))
}

func atof(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 {
		return 1
	}
	return f
}

// flagValue is the value of --name=value in args, else def.
func flagValue(args []string, name, def string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return def
}

func perKind(m map[string]float64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %.2f", strings.TrimSuffix(k, " cost-analysis.costops.dev"), m[k]))
	}
	return strings.Join(parts, ", ")
}

func byMethod(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// mark is a goal's cell of the "met" column.
func mark(goals map[string]string, key string) string {
	switch goals[key] {
	case goalMet:
		return "yes"
	case goalMissed:
		return "**no**"
	default:
		return goals[key]
	}
}

// markdown renders the results as the table `make bench` prints.
func markdown(r *Results) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("## Scale benchmark (%s)", r.Date.Format("2006-01-02 15:04 MST"))
	p("")
	p("Local control plane (kwok nodes), %s. Manager flags: `%s`. kube-controller-manager: `--kube-api-qps=%s --kube-api-burst=%s`.",
		r.Machine, strings.Join(r.ManagerArgs, " "),
		flagValue(r.ControllerManagerArgs, "--kube-api-qps", "20"), flagValue(r.ControllerManagerArgs, "--kube-api-burst", "30"))
	p("")
	p("| measure | operator | reference | ratio | goal | met |")
	p("| --- | --- | --- | --- | --- | --- |")
	for _, f := range r.FanOut {
		goal, met := "", ""
		if f.Tasks == goalFanOutTasks {
			goal, met = fmt.Sprintf("≥ %.2f", goalFanOut), mark(r.Goals, fmt.Sprintf("fanOut%d", f.Tasks))
		}
		rounds := ""
		if f.Rounds > 0 {
			rounds = fmt.Sprintf(" (medians of %d rounds; the ratio in each round: %s)", f.Rounds, floats(f.RoundRatios))
		}
		p("| fan-out: %d tasks (parallelism %d), Job created → all JobTasks exist%s | %.2f s (%.0f/s) | plain client, %d workers: %.2f s (%.0f/s) | %.2f | %s | %s |",
			f.Tasks, f.Parallelism, rounds, f.OperatorSeconds, safeDiv(float64(f.Tasks), f.OperatorSeconds), f.PlainClientWorker, f.PlainClientSecond,
			safeDiv(float64(f.Tasks), f.PlainClientSecond), f.Ratio, goal, met)
	}
	e := r.EndToEnd
	c := r.Cost
	rounds := ""
	if e.Rounds > 0 {
		rounds = fmt.Sprintf(" (medians of %d rounds; the ratio in each round: %s)", e.Rounds, floats(e.RoundRatios))
	}
	p("| end to end: %d tasks, parallelism %d, created → SUCCESS%s | %.1f s | Indexed Job, %d completions: %.1f s | %.2f | ≤ %.1f | %s |",
		e.Tasks, e.Parallelism, rounds, e.OperatorSeconds, e.Tasks, e.IndexedSeconds, e.Ratio, goalEndToEnd, mark(r.Goals, "endToEnd"))
	if e.SameBatchJobSeconds > 0 {
		p("| end to end, against the run's own batch Job alone (its spec, the same simulated task pods, no operator) | %.1f s | the same batch Job: %.1f s | %.2f | | |",
			e.OperatorSeconds, e.SameBatchJobSeconds, e.SameBatchJobRatio)
	}
	if e.FloorSeconds > 0 {
		p("| floor: the same batch Job while a plain client creates a JobTask per task and writes its end status (2 writes per task, no reads, no operator) | %.1f s | Indexed Job: %.1f s | %.2f | | |",
			e.FloorSeconds, e.IndexedSeconds, e.FloorRatio)
	}
	p("| API writes per task, operator + kube-controller-manager (same end-to-end runs) | %.2f (%.2f + %.2f) | Indexed Job: %.2f per pod | %.2f | ≤ %.0f | %s |",
		e.AllWritesPerTask, c.WritesPerTask, e.ControllerManagerWritesPerTask, e.ControllerManagerWritesPerPod,
		safeDiv(e.AllWritesPerTask, e.ControllerManagerWritesPerPod), goalAllWrites, mark(r.Goals, "allWritesPerTask"))
	p("| the operator's API writes per task (%d-task run, `rest_client_requests_total`) | %.2f (%s) | | | ≤ %.0f | %s |",
		c.Tasks, c.WritesPerTask, byMethod(c.WritesByMethod), goalOperatorWrites, mark(r.Goals, "operatorWritesPerTask"))
	p("| kube-controller-manager API writes per task / per pod (same end-to-end runs) | %.2f per task | Indexed Job: %.2f per pod | %.2f | | |",
		e.ControllerManagerWritesPerTask, e.ControllerManagerWritesPerPod, safeDiv(e.ControllerManagerWritesPerTask, e.ControllerManagerWritesPerPod))
	p("| manager memory per live task (%d live tasks) | %.2f KiB live heap after a GC (%.2f KiB RSS) | | | ≤ %.0f KiB at %d | %s |",
		c.LiveTasks, c.HeapPerLiveTaskKiB, c.RSSPerLiveTaskKiB, goalHeapKiB, goalHeapTasks, mark(r.Goals, "heapPerLiveTask"))
	l := r.Latency
	if l.Jobs == 0 {
		p("| completion latency | not measured | | | | |")
	} else {
		p("| completion latency, p50 / p99 (%d Jobs): last batch Job Complete → Job SUCCESS | %.0f / %.0f ms | Job controller, last pod Succeeded → batch Job Complete (%d batch Jobs): %.0f / %.0f ms | %s / %s | | |",
			l.Jobs, l.OperatorP50, l.OperatorP99, l.UpstreamSamples, l.UpstreamP50, l.UpstreamP99,
			ratioOrEarlier(l.OperatorP50, l.UpstreamP50), ratioOrEarlier(l.OperatorP99, l.UpstreamP99))
		p("| completion latency, p50 / p99 (same Jobs): last task pod Succeeded → Job SUCCESS | %.0f / %.0f ms | the same upstream figure | %.2f / %.2f | | |",
			l.OperatorFromPodP50, l.OperatorFromPodP99, safeDiv(l.OperatorFromPodP50, l.UpstreamP50), safeDiv(l.OperatorFromPodP99, l.UpstreamP99))
	}
	if bl := e.Baseline; bl != nil {
		p("| end to end, this build against the manager `%s` (same rounds; the ratio in each round: %s) | %.1f s | %.1f s | %.2f | | |",
			bl.Manager, floats(bl.RoundRatios), e.OperatorSeconds, bl.Seconds, bl.Ratio)
		p("| the manager's CPU per 1,000 tasks, this build against `%s` | %.2f s | %.2f s | %.2f | | |",
			bl.Manager, c.CPUSecondsPer1000, bl.Cost.CPUSecondsPer1000, safeDiv(c.CPUSecondsPer1000, bl.Cost.CPUSecondsPer1000))
		p("| the operator's API writes per task, this build against `%s` | %.2f | %.2f | %.2f | | |",
			bl.Manager, c.WritesPerTask, bl.Cost.WritesPerTask, safeDiv(c.WritesPerTask, bl.Cost.WritesPerTask))
		p("| the manager's reconciles per task, this build against `%s` | %s | %s | | | |",
			bl.Manager, perController(c.ReconcilesPerTask), perController(bl.Cost.ReconcilesPerTask))
		p("| the manager's reads from the API server per task (GET, list), this build against `%s` | %.2f | %.2f | | | |",
			bl.Manager, c.ReadsPerTask, bl.Cost.ReadsPerTask)
	}
	for _, run := range []struct {
		key, what string
		secs      float64
	}{
		{runOperator, "the operator's run", e.OperatorSeconds}, {runSame, "the same batch Job alone", e.SameBatchJobSeconds},
		{runFloor, "the floor", e.FloorSeconds}, {runIndexed, "the Indexed Job", e.IndexedSeconds},
		{runBaseline, "the operator's run with the baseline manager", baselineSeconds(e)},
	} {
		if cpu := e.CPU[run.key]; len(cpu) > 0 {
			wall := run.secs
			if w := e.CPUWall[run.key]; w > 0 {
				wall = w
			}
			p("| CPU used during %s (all processes on this machine's 2 cores; mean of the rounds) | %s | | | | |", run.what, cpuText(cpu, wall))
		}
	}
	p("| manager peak RSS (VmHWM, whole benchmark) | %.0f MiB | | | | |", c.PeakRSSMiB)
	p("| manager CPU per 1,000 tasks (user + system, %d-task run) | %.2f s | | | | |", c.Tasks, c.CPUSecondsPer1000)
	if len(c.ReconcilesPerTask) > 0 {
		p("| the manager's reconciles per task (%d-task run), by controller | %s | | | | |", c.Tasks, perController(c.ReconcilesPerTask))
	}
	p("")
	if e.Picture != "" {
		p("The end-to-end runs over time (task pods running and finished, operator vs Indexed Job, sampled every %.2f s): %s.",
			e.OperatorPods.EverySeconds, e.Picture)
		p("")
	}
	if len(r.Profiles) > 0 {
		p("Manager profiles: %s (`go tool pprof -top bin/manager <file>`).", strings.Join(r.Profiles, ", "))
		p("")
	}
	if len(r.Notes) == 0 {
		p("Every goal met.")
	} else {
		p("Goals missed or not measured:")
		for _, n := range r.Notes {
			p("- %s", n)
		}
	}
	return b.String()
}

// cpuText renders a run's CPU seconds by process, largest first.
func cpuText(cpu map[string]float64, wall float64) string {
	keys := slices.Collect(maps.Keys(cpu))
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(cpu[b], cpu[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	var parts []string
	total := 0.0
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.1f", k, cpu[k]))
		total += cpu[k]
	}
	return fmt.Sprintf("%.1f CPU s in %.1f s (%.2f cores): %s", total, wall, safeDiv(total, wall), strings.Join(parts, ", "))
}

func perController(m map[string]float64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func baselineSeconds(e EndToEnd) float64 {
	if e.Baseline == nil {
		return 0
	}
	return e.Baseline.Seconds
}

func floats(v []float64) string {
	parts := make([]string, len(v))
	for i, f := range v {
		parts[i] = fmt.Sprintf("%.2f", f)
	}
	return strings.Join(parts, ", ")
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
