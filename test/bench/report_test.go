package bench

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// The goals.
const (
	goalFanOut    = 0.8  // at least this share of the plain client's rate
	goalEndToEnd  = 1.5  // at most this many times the Indexed Job's time
	goalWrites    = 4.0  // fewer API writes per task
	goalMemoryKiB = 10.0 // less manager memory per live task
)

// judge says for each goal whether it was met, and by how much it was missed.
func judge(r *Results) (map[string]string, []string) {
	goals := map[string]string{}
	var notes []string
	verdict := func(key string, met bool, missed string) {
		if met {
			goals[key] = "met"
			return
		}
		goals[key] = "missed"
		notes = append(notes, missed)
	}
	qps := flagValue(r.ManagerArgs, "--kube-api-qps", "1000") // main.go's default
	kcmQPS := flagValue(r.ControllerManagerArgs, "--kube-api-qps", "20")
	kcmBurst := flagValue(r.ControllerManagerArgs, "--kube-api-burst", "30")
	for _, f := range r.FanOut {
		bound := fmt.Sprintf("The manager wrote %.0f requests/s meanwhile, below its client-side limit (--kube-api-qps=%s), "+
			"with the same %d concurrent creates as the plain client and no task started before the plan is complete: "+
			"what remains is the manager's own share of the 2 CPUs the API server runs on (decoding the watch events of its "+
			"JobTasks, reconciling each new one) and the run-to-run spread of this machine.", f.ManagerWritesPerSecond, qps, f.PlainClientWorker)
		if f.ManagerWritesPerSecond >= 0.8*atof(qps) {
			bound = fmt.Sprintf("The manager wrote %.0f requests/s meanwhile, at its client-side limit --kube-api-qps=%s; "+
				"the plain client has no client-side limit.", f.ManagerWritesPerSecond, qps)
		}
		verdict(fmt.Sprintf("fanOut%d", f.Tasks), f.Ratio >= goalFanOut,
			fmt.Sprintf("Fan-out of %d tasks: %.2f of the plain client's rate, %.0f%% short of the %.1f goal. %s",
				f.Tasks, f.Ratio, (goalFanOut-f.Ratio)/goalFanOut*100, goalFanOut, bound))
	}
	e := r.EndToEnd
	verdict("endToEnd", e.Ratio <= goalEndToEnd,
		fmt.Sprintf("End to end: %.2f times the Indexed Job's time, %.0f%% over the %.1f goal (%.0fs instead of at most %.0fs). "+
			"Each task is a batch Job of its own, which costs the kube-controller-manager %.1f writes per task (pod create, pod finalizer removal, "+
			"status updates, events) against %.1f per pod of the Indexed Job; at its client-side limit (--kube-api-qps=%s, burst %s) "+
			"that alone is %.0fs against %.0fs.",
			e.Ratio, (e.Ratio-goalEndToEnd)/goalEndToEnd*100, goalEndToEnd, e.OperatorSeconds, goalEndToEnd*e.IndexedSeconds,
			e.ControllerManagerWritesPerTask, e.ControllerManagerWritesPerPod, kcmQPS, kcmBurst,
			e.ControllerManagerWritesPerTask*float64(e.Tasks)/atof(kcmQPS), e.ControllerManagerWritesPerPod*float64(e.Tasks)/atof(kcmQPS)))
	l := r.Latency
	verdict("completionLatency", l.UpstreamSamples > 0 && l.OperatorP50 <= l.UpstreamP50 && l.OperatorP99 <= l.UpstreamP99,
		fmt.Sprintf("Completion latency: p50 %.0fms / p99 %.0fms against the Job controller's %.0fms / %.0fms.",
			l.OperatorP50, l.OperatorP99, l.UpstreamP50, l.UpstreamP99))
	c := r.Cost
	verdict("writesPerTask", c.WritesPerTask < goalWrites,
		fmt.Sprintf("API writes: %.2f per task, %.2f over the goal of fewer than %.0f (by method: %s; per task, from the API server's "+
			"counts of the kinds only the manager writes: %s). Four writes per task are the design's floor: the JobTask, its batch Job, "+
			"and the task's two transitions (IN_PROGRESS when its pod starts, then its end); the rest are the Job's status, written at most once a second.",
			c.WritesPerTask, c.WritesPerTask-goalWrites, goalWrites, byMethod(c.WritesByMethod), perKind(c.WritesByResource)))
	verdict("memoryPerLiveTask", c.RSSPerLiveTaskKiB < goalMemoryKiB,
		fmt.Sprintf("Memory: %.1f KiB of RSS per live task, %.1f KiB over the goal of %.0f KiB (live heap after a GC: %.1f KiB per task; "+
			"the rest is heap the Go runtime has freed and not yet returned, and its GC headroom).",
			c.RSSPerLiveTaskKiB, c.RSSPerLiveTaskKiB-goalMemoryKiB, goalMemoryKiB, c.HeapPerLiveTaskKiB))
	return goals, notes
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

func mark(goals map[string]string, key string) string {
	if goals[key] == "met" {
		return "yes"
	}
	return "**no**"
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
		p("| fan-out: %d tasks (parallelism %d), Job created → all JobTasks exist | %.2f s (%.0f/s) | plain client, %d workers: %.2f s (%.0f/s) | %.2f | ≥ %.1f | %s |",
			f.Tasks, f.Parallelism, f.OperatorSeconds, float64(f.Tasks)/f.OperatorSeconds, f.PlainClientWorker, f.PlainClientSecond,
			float64(f.Tasks)/f.PlainClientSecond, f.Ratio, goalFanOut, mark(r.Goals, fmt.Sprintf("fanOut%d", f.Tasks)))
	}
	e := r.EndToEnd
	p("| end to end: %d tasks, parallelism %d, created → SUCCESS | %.1f s | Indexed Job, %d completions: %.1f s | %.2f | ≤ %.1f | %s |",
		e.Tasks, e.Parallelism, e.OperatorSeconds, e.Tasks, e.IndexedSeconds, e.Ratio, goalEndToEnd, mark(r.Goals, "endToEnd"))
	p("| kube-controller-manager API writes per task / per pod (same end-to-end runs) | %.2f per task | Indexed Job: %.2f per pod | %.2f | | |",
		e.ControllerManagerWritesPerTask, e.ControllerManagerWritesPerPod, safeDiv(e.ControllerManagerWritesPerTask, e.ControllerManagerWritesPerPod))
	l := r.Latency
	p("| completion latency, p50 / p99 (%d Jobs): last batch Job Complete → Job SUCCESS | %.0f / %.0f ms | Job controller, pod Succeeded → batch Job Complete (%d pods): %.0f / %.0f ms | %s / %s | ≤ 1 | %s |",
		l.Jobs, l.OperatorP50, l.OperatorP99, l.UpstreamSamples, l.UpstreamP50, l.UpstreamP99,
		ratioOrEarlier(l.OperatorP50, l.UpstreamP50), ratioOrEarlier(l.OperatorP99, l.UpstreamP99), mark(r.Goals, "completionLatency"))
	p("| completion latency, p50 / p99 (same Jobs): last task pod Succeeded → Job SUCCESS | %.0f / %.0f ms | the same upstream figure | %.2f / %.2f | | |",
		l.OperatorFromPodP50, l.OperatorFromPodP99, safeDiv(l.OperatorFromPodP50, l.UpstreamP50), safeDiv(l.OperatorFromPodP99, l.UpstreamP99))
	c := r.Cost
	p("| API writes per task (%d-task run, `rest_client_requests_total`) | %.2f (%s) | | | < %.0f | %s |",
		c.Tasks, c.WritesPerTask, byMethod(c.WritesByMethod), goalWrites, mark(r.Goals, "writesPerTask"))
	p("| manager memory per live task (%d live tasks) | %.2f KiB RSS (%.2f KiB live heap after a GC) | | | < %.0f KiB | %s |",
		c.LiveTasks, c.RSSPerLiveTaskKiB, c.HeapPerLiveTaskKiB, goalMemoryKiB, mark(r.Goals, "memoryPerLiveTask"))
	p("| manager peak RSS (VmHWM, whole benchmark) | %.0f MiB | | | | |", c.PeakRSSMiB)
	p("| manager CPU per 1,000 tasks (user + system, %d-task run) | %.2f s | | | | |", c.Tasks, c.CPUSecondsPer1000)
	p("")
	if len(r.Profiles) > 0 {
		p("Manager profiles: %s (`go tool pprof -top bin/manager <file>`).", strings.Join(r.Profiles, ", "))
		p("")
	}
	if len(r.Notes) == 0 {
		p("Every goal met.")
	} else {
		p("Goals missed:")
		for _, n := range r.Notes {
			p("- %s", n)
		}
	}
	return b.String()
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
