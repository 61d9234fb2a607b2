package bench

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// rounds is BENCH_ROUNDS (default 3): how many times the end-to-end runs and the
// fan-out pairs are repeated. This machine's spread from one run to the next is
// larger than the differences measured, so figures are medians over the rounds.
func rounds() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 3
}

// operatorRun is what one run of the operator's Job cost.
type operatorRun struct {
	seconds    float64
	pods       Timeline
	cpu        map[string]float64
	writes     map[string]int // the manager's, by method
	reads      int            // the manager's GETs (gets and lists) from the API server
	byResource map[string]int // the API server's, of the kinds only the manager writes
	reconciles map[string]int // by controller
	kcmWrites  int
	managerCPU float64
	ran        *batchv1.Job // its (first) batch Job
}

// endToEnd runs rounds of four runs: a Job of n tasks from creation to SUCCESS
// (the operator); the run's own batch Job without the operator; the floor (that
// batch Job while a plain client keeps a JobTask per task); the upstream Indexed Job
// of n completions at the same parallelism, its pods completing at once (kwok's
// default stages). With BENCH_BASELINE_MANAGER, a fifth: the operator's run with
// that build of the manager. Each round runs them in another order, so that none always comes
// first after a cleanup. The seconds are medians over the rounds, each ratio the
// median of the rounds' ratios (the runs of one round are minutes apart), the costs
// (writes, reconciles, CPU) means over the rounds; the picture is the round of the
// median ratio.
func (b *bench) endToEnd(n int, parallelism int32, rounds int, cost *Cost) EndToEnd {
	b.t.Helper()
	res := EndToEnd{Tasks: n, Parallelism: int(parallelism), Rounds: rounds, CPU: map[string]map[string]float64{}, CPUWall: map[string]float64{}}
	order := []string{runOperator, runSame, runFloor, runIndexed}
	if only := os.Getenv("BENCH_E2E_RUNS"); only != "" {
		// A subset (the operator's run and the Indexed Job always run: the goal's
		// ratio is theirs).
		order = []string{runOperator, runIndexed}
		for _, run := range []string{runSame, runFloor} {
			if slices.Contains(strings.Split(only, ","), run) {
				order = append(order, run)
			}
		}
	}
	// An A/B of the manager itself: the same run with another build of it.
	baseline := os.Getenv("BENCH_BASELINE_MANAGER")
	if baseline != "" {
		order = append(order, runBaseline)
		res.Baseline = &BaselineRun{Manager: baseline}
	}
	secs := map[string][]float64{}
	var ops, baseOps []operatorRun
	var indexedPods []Timeline
	kcmPerPod := 0.0
	var ran *batchv1.Job
	for r := range rounds {
		for i := range order {
			run := order[(i+r)%len(order)]
			var took float64
			var cpu map[string]float64
			switch run {
			case runBaseline:
				main := b.useManager(baseline)
				op := b.operatorRun(n, parallelism, r, "base")
				b.useManager(main)
				baseOps = append(baseOps, op)
				took, cpu = op.seconds, op.cpu
			case runOperator:
				op := b.operatorRun(n, parallelism, r, "e2e")
				ops = append(ops, op)
				if ran == nil {
					ran = op.ran
				}
				took, cpu = op.seconds, op.cpu
			case runSame, runFloor:
				took, cpu = b.sameBatchJob(ran, n, run == runFloor, r)
			case runIndexed:
				var pods Timeline
				var kcm int
				took, pods, kcm, cpu = b.indexedRun(n, parallelism, r)
				indexedPods = append(indexedPods, pods)
				kcmPerPod += float64(kcm) / float64(n*rounds)
			}
			secs[run] = append(secs[run], took)
			addCPU(res.CPU, run, cpu, rounds)
			res.CPUWall[run] += took / float64(rounds)
		}
		b.logf("end to end, round %d of %d: operator %.1fs, Indexed Job %.1fs: %.2f times the Indexed Job",
			r+1, rounds, secs[runOperator][r], secs[runIndexed][r], secs[runOperator][r]/secs[runIndexed][r])
	}

	res.OperatorSeconds, res.IndexedSeconds = median(secs[runOperator]), median(secs[runIndexed])
	res.SameBatchJobSeconds, res.FloorSeconds = median(secs[runSame]), median(secs[runFloor])
	ratios := make([]float64, rounds)
	var same, floor []float64
	for r := range rounds {
		ratios[r] = secs[runOperator][r] / secs[runIndexed][r]
		if len(secs[runSame]) > r {
			same = append(same, secs[runOperator][r]/secs[runSame][r])
		}
		if len(secs[runFloor]) > r {
			floor = append(floor, secs[runFloor][r]/secs[runIndexed][r])
		}
	}
	res.RoundRatios = ratios
	res.Ratio, res.SameBatchJobRatio, res.FloorRatio = median(ratios), median(same), median(floor)
	if res.Baseline != nil {
		bl := res.Baseline
		bl.Seconds = median(secs[runBaseline])
		for r := range rounds {
			bl.RoundRatios = append(bl.RoundRatios, secs[runOperator][r]/secs[runBaseline][r])
		}
		bl.Ratio = median(bl.RoundRatios)
		bl.Cost = runCost(baseOps, n)
		b.logf("end to end, the baseline manager %s: %.1fs (median); this build took %.2f times as long (median of %s)",
			baseline, bl.Seconds, bl.Ratio, floats(bl.RoundRatios))
	}
	mid := medianIndex(ratios)
	res.OperatorPods, res.IndexedPods = ops[mid].pods, indexedPods[mid]
	res.ControllerManagerWritesPerPod = kcmPerPod

	// The operator's costs, per task, over all its runs.
	cost.Tasks, cost.RunCost = n, runCost(ops, n)
	res.ControllerManagerWritesPerTask = cost.ControllerManagerWritesPerTask
	res.AllWritesPerTask = cost.WritesPerTask + res.ControllerManagerWritesPerTask
	b.logf("end to end over %d rounds: the operator %.1fs, the Indexed Job %.1fs (medians); %.2f times as long (median of %s); the floor %.2f times",
		rounds, res.OperatorSeconds, res.IndexedSeconds, res.Ratio, floats(ratios), res.FloorRatio)
	return res
}

// runCost is what runs of the operator cost per task, over all of them.
func runCost(ops []operatorRun, n int) RunCost {
	c := RunCost{WritesByMethod: map[string]int{}, ReconcilesPerTask: map[string]float64{}, WritesByResource: map[string]float64{}}
	if len(ops) == 0 {
		return c
	}
	tasks := float64(n * len(ops))
	managerCPU, kcm := 0.0, 0
	for _, op := range ops {
		for m, v := range op.writes {
			c.WritesByMethod[m] += v
			c.Writes += v
		}
		for k, v := range op.reconciles {
			c.ReconcilesPerTask[k] += float64(v) / tasks
		}
		for k, v := range op.byResource {
			c.WritesByResource[k] += float64(v) / tasks
		}
		managerCPU += op.managerCPU
		kcm += op.kcmWrites
		c.ReadsPerTask += float64(op.reads) / tasks
	}
	for m, v := range c.WritesByMethod {
		c.WritesByMethod[m] = v / len(ops) // per run
	}
	c.Writes /= len(ops)
	c.WritesPerTask = float64(c.Writes) / float64(n)
	c.CPUSecondsPer1000 = managerCPU * 1000 / tasks
	c.ControllerManagerWritesPerTask = float64(kcm) / tasks
	return c
}

// useManager restarts the manager from the binary at path and returns the path it
// ran from before.
func (b *bench) useManager(path string) string {
	b.t.Helper()
	b.notePeak()
	prev := b.env.Manager.Path
	if err := b.env.Manager.Stop(10 * time.Second); err != nil {
		b.t.Fatal(err)
	}
	b.env.Manager.Path = path
	if err := b.env.StartManager(b.ctx); err != nil {
		b.t.Fatalf("starting the manager %s: %v", path, err)
	}
	time.Sleep(2 * time.Second) // its caches fill
	return prev
}

// operatorRun times a Job of n tasks from its creation to SUCCESS and counts what it
// cost: the manager's writes and reconciles, the controller-manager's writes, each
// process's CPU. It samples the run's task pods meanwhile.
func (b *bench) operatorRun(n int, parallelism int32, round int, prefix string) operatorRun {
	b.t.Helper()
	ns := b.namespace(fmt.Sprintf("%s-%d-%d", prefix, n, round))
	b.dataSource(ns, n, "0s")
	time.Sleep(2 * time.Second)
	// The manager's writes of the run only: not the DataSource's verify.
	b.settle()
	pid := b.env.Manager.Pid()
	cpu0, err := procCPUSeconds(pid)
	if err != nil {
		b.t.Fatal(err)
	}
	// Every task pod of the operator's run carries its Job's label, whatever batch
	// Jobs run them.
	pods := b.samplePods(ns, map[string]string{costv1.LabelJob: "run"})
	w0, k0, a0, r0, g0 := b.writes(), b.controllerManagerWrites(), b.apiserverWrites(), b.reconciles(), b.reads()
	if round == 0 && prefix == "e2e" {
		b.profile(fmt.Sprintf("manager-run-%d.cpu.pprof", n), 60*time.Second)
		b.apiserverProfile(fmt.Sprintf("apiserver-run-%d.cpu.pprof", n), 30*time.Second)
	}
	meter := cpuMeter{b}
	c0 := meter.now()
	start := time.Now()
	b.createJob(ns, "run", parallelism)
	var j costv1.Job
	b.poll(30*time.Minute, "the Job's SUCCESS", func() bool {
		if err := b.c.Get(b.ctx, client.ObjectKey{Namespace: ns, Name: "run"}, &j); err != nil {
			return false
		}
		if j.Status.Status.Finished() && j.Status.Status != costv1.JobSuccess {
			b.t.Fatalf("the Job ended %s: %s", j.Status.Status, j.Status.ErrorMessage)
		}
		return j.Status.Status == costv1.JobSuccess
	})
	end := time.Now()
	op := operatorRun{seconds: end.Sub(start).Seconds(), cpu: meter.since(c0), pods: pods.stop(start, end)}
	time.Sleep(3 * time.Second) // the DataSource's status, the last events
	cpu1, err := procCPUSeconds(pid)
	if err != nil {
		b.t.Fatal(err)
	}
	op.managerCPU = cpu1 - cpu0
	op.writes = deltas(w0, b.writes())
	op.reads = b.reads() - g0
	op.reconciles = deltas(r0, b.reconciles())
	op.kcmWrites = sum(deltas(k0, b.controllerManagerWrites()))
	op.byResource = map[string]int{}
	for k, v := range deltas(a0, b.apiserverWrites()) {
		if strings.Contains(k, "cost-analysis.costops.dev") {
			op.byResource[k] = v
		}
	}
	b.logf("end to end %d tasks, parallelism %d: the operator took %.1fs; API writes %v, reads %d, reconciles %v; kube-controller-manager: %.2f writes per task; it used %s",
		n, parallelism, op.seconds, op.writes, op.reads, op.reconciles, float64(op.kcmWrites)/float64(n), cpuText(op.cpu, op.seconds))
	op.ran = &batchv1.Job{}
	if err := b.c.Get(b.ctx, client.ObjectKey{Namespace: ns, Name: "run-b0"}, op.ran); err != nil {
		b.t.Fatalf("the run's batch Job: %v", err)
	}
	b.cleanUp(ns)
	return op
}

// indexedRun runs the upstream Indexed Job of n completions: its time, its pods over
// time, the controller-manager's writes and each process's CPU.
func (b *bench) indexedRun(n int, parallelism int32, round int) (float64, Timeline, int, map[string]float64) {
	b.t.Helper()
	ns := b.namespace(fmt.Sprintf("indexed-%d-%d", n, round))
	mode := batchv1.IndexedCompletion
	completions := int32(n)
	bj := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "indexed", Namespace: ns},
		Spec: batchv1.JobSpec{
			CompletionMode: &mode, Completions: &completions, Parallelism: &parallelism,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "work", Image: "ghcr.io/costops/cost-analysis-collector:bench"}},
			}},
		},
	}
	k0 := b.controllerManagerWrites()
	if round == 0 {
		b.apiserverProfile(fmt.Sprintf("apiserver-indexed-%d.cpu.pprof", n), 15*time.Second)
	}
	meter := cpuMeter{b}
	c0 := meter.now()
	took, pods := b.runBatchJob(bj, "the Indexed Job", map[string]string{batchv1.JobNameLabel: bj.Name})
	cpu := meter.since(c0)
	time.Sleep(2 * time.Second)
	kcm := sum(deltas(k0, b.controllerManagerWrites()))
	b.logf("end to end: the Indexed Job of %d completions took %.1fs (kube-controller-manager: %.2f writes per pod) and used %s",
		n, took, float64(kcm)/float64(n), cpuText(cpu, took))
	b.cleanUp(ns)
	return took, pods, kcm, cpu
}

// addCPU adds a run's CPU seconds, divided by rounds, to the run's mean.
func addCPU(into map[string]map[string]float64, run string, cpu map[string]float64, rounds int) {
	if into[run] == nil {
		into[run] = map[string]float64{}
	}
	for k, v := range cpu {
		into[run][k] += v / float64(rounds)
	}
}

// deltas are after's counts minus before's, the positive ones.
func deltas(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// median is the middle value (the mean of the two middle ones for an even count).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// medianIndex is the index in v of its median value (the lower middle one for an
// even count).
func medianIndex(v []float64) int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case v[a] < v[b]:
			return -1
		case v[a] > v[b]:
			return 1
		}
		return a - b
	})
	return idx[(len(idx)-1)/2]
}
