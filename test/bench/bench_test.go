package bench

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/scheme"
	"github.com/costops/cost-analysis-operator/test/e2e/framework"
)

// pictureFile is the plot of the end-to-end runs, beside results.json.
const pictureFile = "endtoend.svg"

// planWorkers is the manager's --plan-workers default: the plain client's concurrency.
const planWorkers = 32

// fakeDuration is the kwok stages' annotation for a task pod's run time.
const fakeDuration = "cost-analysis.costops.dev/fake-duration"

type bench struct {
	t   *testing.T
	env *framework.Env
	c   client.WithWatch
	ctx context.Context
	// dir receives the results and the manager's CPU profiles.
	dir       string
	pprofAddr string
	kcmURL    string
	// peakKiB is the manager's highest VmHWM over its runs (it is restarted between
	// measures).
	peakKiB int64
}

// TestBenchmark runs the whole benchmark. Figures are printed and written, never
// asserted: a missed goal is reported, it does not fail the test.
func TestBenchmark(t *testing.T) {
	if os.Getenv("BENCH") == "" {
		t.Skip("the scale benchmark runs only with BENCH=1 (`make bench`, about 10 minutes)")
	}
	ctx := context.Background()
	pprofPort, err := framework.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// The benchmark reads the manager's metrics on loopback, over plain HTTP.
	args := []string{"--plan-retry-window=1m", "--pprof-bind-address=" + framework.LoopbackAddr(pprofPort), "--metrics-secure=false"}
	if extra := strings.Fields(os.Getenv("BENCH_MANAGER_ARGS")); len(extra) > 0 {
		args = append(args, extra...)
	}
	// Every pod of the benchmark runs on kwok's nodes: no real node (RealNode "0").
	env, skip, err := framework.Start(ctx, framework.Options{ClusterName: "bench", ManagerArgs: args, RealNode: "0"})
	if err != nil {
		t.Fatal(err)
	}
	if skip != "" {
		t.Skip(skip)
	}
	defer func() {
		if t.Failed() {
			env.Fail()
		}
		env.Stop()
	}()
	cfg, err := clientcmd.BuildConfigFromFlags("", env.Cluster.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = -1, 0 // the plain client: no client-side limit, the apiserver's own
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	kcmURL, err := env.Cluster.ControllerManagerMetricsURL()
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{t: t, env: env, c: c, ctx: ctx, dir: filepath.Join(env.Root, "bench"),
		pprofAddr: framework.LoopbackAddr(pprofPort), kcmURL: kcmURL}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	res := Results{Date: time.Now().UTC(), Machine: machine(), ManagerArgs: env.Manager.Args}
	if res.ControllerManagerArgs, err = env.Cluster.ControllerManagerArgs(); err != nil {
		t.Fatal(err)
	}
	b.warmUp()

	only := measures(os.Getenv("BENCH_ONLY"))
	// Fan-out, memory per live task on the largest.
	if only["fanout"] {
		for _, n := range []int{1000, 10000} {
			res.FanOut = append(res.FanOut, b.fanOut(n, rounds(), &res.Cost))
		}
	}
	// End to end, with the cost of a whole run.
	if only["endtoend"] {
		res.EndToEnd = b.endToEnd(1000, 100, rounds(), &res.Cost)
	}
	if only["latency"] {
		res.Latency = b.latency(20)
	}
	b.notePeak()
	res.Cost.PeakRSSMiB = float64(b.peakKiB) / 1024
	res.Profiles = b.profiles()

	res.EndToEnd.Picture = filepath.Join("bench", pictureFile)
	res.Goals, res.Notes = judge(&res)
	md := markdown(&res)
	fmt.Println()
	fmt.Println(md)
	js, _ := json.MarshalIndent(res, "", "  ")
	files := map[string][]byte{"results.json": append(js, '\n'), "results.md": []byte(md), pictureFile: []byte(endToEndSVG(res.EndToEnd))}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := os.WriteFile(filepath.Join(b.dir, name), files[name], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("bench: wrote %s, %s and %s\n", filepath.Join(b.dir, "results.json"), filepath.Join(b.dir, "results.md"), filepath.Join(b.dir, pictureFile))
}

// measures is the set of measures BENCH_ONLY names (comma-separated: fanout,
// endtoend, latency); all of them when it is empty.
func measures(only string) map[string]bool {
	all := map[string]bool{"fanout": true, "endtoend": true, "latency": true}
	if strings.TrimSpace(only) == "" {
		return all
	}
	out := map[string]bool{}
	for _, m := range strings.Split(only, ",") {
		if m = strings.TrimSpace(m); all[m] {
			out[m] = true
		}
	}
	return out
}

func (b *bench) logf(format string, args ...any) {
	fmt.Printf("bench: %s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// namespace creates a namespace and waits for its default ServiceAccount.
func (b *bench) namespace(name string) string {
	b.t.Helper()
	if err := b.c.Create(b.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		b.t.Fatal(err)
	}
	b.poll(time.Minute, "the default ServiceAccount of "+name, func() bool {
		return b.c.Get(b.ctx, client.ObjectKey{Namespace: name, Name: "default"}, &corev1.ServiceAccount{}) == nil
	})
	return name
}

// cleanUp deletes namespaces with the manager stopped, so that it does not react to
// what goes (stopping 10,000 tasks one by one), waits until they are gone and starts
// the manager again: the next measure starts on a quiet cluster and a fresh manager.
func (b *bench) cleanUp(names ...string) {
	b.t.Helper()
	b.notePeak()
	if err := b.env.Manager.Stop(10 * time.Second); err != nil {
		b.t.Fatal(err)
	}
	b.deleteNamespaces(names...)
	if err := b.env.StartManager(b.ctx); err != nil {
		b.t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // its caches fill
}

// notePeak records the manager's VmHWM before it is stopped.
func (b *bench) notePeak() {
	if st, err := procStatus(b.env.Manager.Pid()); err == nil {
		b.peakKiB = max(b.peakKiB, st["VmHWM"])
	}
}

// deleteNamespaces deletes namespaces and waits until they are gone.
func (b *bench) deleteNamespaces(names ...string) {
	b.t.Helper()
	start := time.Now()
	for _, n := range names {
		if err := b.c.Delete(b.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil && !apierrors.IsNotFound(err) {
			b.t.Fatal(err)
		}
	}
	b.poll(10*time.Minute, "namespaces gone", func() bool {
		for _, n := range names {
			if err := b.c.Get(b.ctx, client.ObjectKey{Name: n}, &corev1.Namespace{}); !apierrors.IsNotFound(err) {
				return false
			}
		}
		return true
	})
	b.logf("deleted namespaces %v in %s", names, time.Since(start).Round(100*time.Millisecond))
}

func (b *bench) poll(timeout time.Duration, what string, ok func() bool) {
	b.t.Helper()
	if !b.waitFor(timeout, ok) {
		b.t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// waitFor polls ok every 100 ms until it holds (true) or timeout passes (false).
func (b *bench) waitFor(timeout time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// dataSource creates a Secret and a DataSource of the sample plugin planning n tasks,
// whose task pods run for duration.
func (b *bench) dataSource(ns string, n int, duration string) {
	b.t.Helper()
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns}, StringData: map[string]string{"api_key": "bench"}}
	ds := &costv1.DataSource{
		ObjectMeta: metav1.ObjectMeta{Name: "billing", Namespace: ns},
		Spec: costv1.DataSourceSpec{
			Plugin: costv1.PluginSpec{Endpoint: b.env.PluginAddr, SecretRef: &costv1.LocalObjectReference{Name: "creds"},
				Options: &kruntime.RawExtension{Raw: []byte(fmt.Sprintf(`{"tasks":%d}`, n))}},
			// On kwok's nodes (the only ones of the bench cluster): they play the pods.
			Collector: costv1.CollectorSpec{Image: "ghcr.io/costops/cost-analysis-collector:bench",
				PodAnnotations: map[string]string{fakeDuration: duration},
				NodeSelector:   map[string]string{"type": "kwok"}},
		},
	}
	for _, o := range []client.Object{sec, ds} {
		if err := b.c.Create(b.ctx, o); err != nil {
			b.t.Fatal(err)
		}
	}
}

func (b *bench) createJob(ns, name string, parallelism int32) *costv1.Job {
	b.t.Helper()
	j := &costv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: costv1.JobSpec{DataSourceRef: costv1.LocalObjectReference{Name: "billing"}, Parallelism: &parallelism,
			Timeout: &metav1.Duration{Duration: time.Hour}},
	}
	if err := b.c.Create(b.ctx, j); err != nil {
		b.t.Fatal(err)
	}
	return j
}

// fanOut times, in rounds, a Job of n tasks from its creation until all n JobTasks
// exist, and n JobTasks of the same shape created by a plain client with the
// planner's concurrency and no client-side limit. The two alternate which goes first
// from one round to the next; the ratio is the median of the rounds' ratios. The
// manager's memory per live task is read on the first round of the largest n.
func (b *bench) fanOut(n, rounds int, cost *Cost) FanOut {
	b.t.Helper()
	const parallelism = 200
	res := FanOut{Tasks: n, Parallelism: parallelism, PlainClientWorker: planWorkers, Rounds: rounds}
	var plain, ours, ratios, rates []float64
	for r := range rounds {
		var p, o, rate float64
		if r%2 == 0 {
			p = b.plainFanOut(n, r)
			o, rate = b.operatorFanOut(n, parallelism, r, cost)
		} else {
			o, rate = b.operatorFanOut(n, parallelism, r, cost)
			p = b.plainFanOut(n, r)
		}
		plain, ours, rates = append(plain, p), append(ours, o), append(rates, rate)
		ratios = append(ratios, p/o)
		b.logf("fan-out %d, round %d of %d: plain client %.2fs, operator %.2fs: %.2f of the plain client's rate", n, r+1, rounds, p, o, p/o)
	}
	res.PlainClientSecond, res.OperatorSeconds = median(plain), median(ours)
	res.Ratio, res.RoundRatios, res.ManagerWritesPerSecond = median(ratios), ratios, median(rates)
	b.logf("fan-out %d over %d rounds: %.2f of the plain client's rate (median of %s)", n, rounds, res.Ratio, floats(ratios))
	return res
}

// plainFanOut is the time a plain client (planWorkers concurrent creates) takes to
// create n JobTasks, until a watch has seen them all.
func (b *bench) plainFanOut(n, round int) float64 {
	b.t.Helper()
	base := b.namespace(fmt.Sprintf("baseline-%d-%d", n, round))
	owner := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner", Namespace: base}}
	if err := b.c.Create(b.ctx, owner); err != nil {
		b.t.Fatal(err)
	}
	// Both runs end when the same watch has seen every object: the watch's cost to the
	// API server is in both.
	baseDone := b.countCreated(base, n)
	start := time.Now()
	if err := plainClient(n, func(i int) error { return b.c.Create(b.ctx, baselineTask(base, owner, i)) }); err != nil {
		b.t.Fatal(err)
	}
	var took float64
	select {
	case at := <-baseDone:
		took = at.Sub(start).Seconds()
	case <-time.After(time.Minute):
		b.t.Fatalf("fan-out %d: the watch did not see the plain client's objects", n)
	}
	b.logf("fan-out %d: plain client (%d workers, no client-side limit) created %d JobTasks in %.2fs (%.0f/s)",
		n, planWorkers, n, took, float64(n)/took)
	b.cleanUp(base)
	return took
}

// operatorFanOut is the time from a Job's creation until its n JobTasks exist (its
// task pods keep running, so the plan is measured, not the run), and the manager's
// write rate meanwhile. On the first round of the largest n it also reads the
// manager's memory per live task.
func (b *bench) operatorFanOut(n int, parallelism int32, round int, cost *Cost) (float64, float64) {
	b.t.Helper()
	ns := b.namespace(fmt.Sprintf("fanout-%d-%d", n, round))
	b.dataSource(ns, n, "1h")
	time.Sleep(2 * time.Second) // let the DataSource's verify pass
	measureMemory := round == 0 && n >= cost.LiveTasks
	var before memory
	if measureMemory {
		before = b.memory()
	}
	done := b.countCreated(ns, n)
	w0 := b.writes()
	if n == 10000 && round == 0 {
		b.profile(fmt.Sprintf("manager-fanout-%d.cpu.pprof", n), 30*time.Second)
	}
	start := time.Now()
	b.createJob(ns, "run", parallelism)
	var at time.Time
	select {
	case at = <-done:
	case <-time.After(15 * time.Minute):
		b.t.Fatalf("fan-out %d: the JobTasks are not all there after 15 minutes", n)
	}
	took := at.Sub(start).Seconds()
	rate := float64(sum(b.writes())-sum(w0)) / time.Since(start).Seconds()
	b.logf("fan-out %d: the operator created %d JobTasks in %.2fs (%.0f/s); the manager wrote %.0f/s",
		n, n, took, float64(n)/took, rate)

	if measureMemory {
		time.Sleep(5 * time.Second) // the manager settles: admission, the first batch Jobs
		after := b.memory()
		b.heapProfile(fmt.Sprintf("manager-fanout-%d.heap.pprof", n))
		cost.LiveTasks = n
		cost.RSSPerLiveTaskKiB = float64(after.rssKiB-before.rssKiB) / float64(n)
		cost.HeapPerLiveTaskKiB = (after.liveHeap - before.liveHeap) / 1024 / float64(n)
		b.logf("manager memory with %d live tasks: RSS %d -> %d KiB (%.2f KiB per task), live heap %.1f -> %.1f MiB (%.2f KiB per task)",
			n, before.rssKiB, after.rssKiB, cost.RSSPerLiveTaskKiB, before.liveHeap/(1<<20), after.liveHeap/(1<<20), cost.HeapPerLiveTaskKiB)
	}
	b.cleanUp(ns)
	return took, rate
}

// baselineTask is a JobTask like the planner's (labels, task digest, owner, options)
// that no Job runs: its owner is a ConfigMap and its Job does not exist.
func baselineTask(ns string, owner *corev1.ConfigMap, i int) *costv1.JobTask {
	return &costv1.JobTask{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("run-%d", i), Namespace: ns,
			Labels:          map[string]string{costv1.LabelJob: "run", costv1.LabelDataSource: "billing"},
			Annotations:     map[string]string{costv1.AnnotationTaskHash: "0123456789abcdef"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID}},
		},
		Spec: costv1.JobTaskSpec{
			JobRef: costv1.LocalObjectReference{Name: "run"}, DataSourceRef: costv1.LocalObjectReference{Name: "billing"}, Index: int32(i),
			TaskOptions: kruntime.RawExtension{Raw: []byte(fmt.Sprintf(`{"account_id":"account-a","index":%d,"month":"2026-11"}`, i))},
		},
	}
}

// countCreated watches the JobTasks of ns and sends the time the n-th one appeared.
// The API server drops a watcher that falls behind (this process shares 2 CPUs with
// it while creating thousands of objects), so a closed watch resumes from the last
// resourceVersion seen, or from a list when that is too old.
func (b *bench) countCreated(ns string, n int) <-chan time.Time {
	b.t.Helper()
	seen := map[string]bool{}
	rv := ""
	open := func() (watch.Interface, error) {
		return b.c.Watch(b.ctx, &costv1.JobTaskList{}, &client.ListOptions{Namespace: ns,
			Raw: &metav1.ListOptions{ResourceVersion: rv}})
	}
	w, err := open()
	if err != nil {
		b.t.Fatal(err)
	}
	done := make(chan time.Time, 1)
	go func() {
		for b.ctx.Err() == nil {
			for ev := range w.ResultChan() {
				switch ev.Type {
				case watch.Added:
					jt := ev.Object.(*costv1.JobTask)
					seen[jt.Name], rv = true, jt.ResourceVersion
				case watch.Modified, watch.Deleted, watch.Bookmark:
					if o, ok := ev.Object.(client.Object); ok {
						rv = o.GetResourceVersion()
					}
				case watch.Error:
					if st, ok := ev.Object.(*metav1.Status); ok && st.Code == http.StatusGone {
						rv = "" // too old: count from a list below
					}
				}
				if len(seen) >= n {
					w.Stop()
					done <- time.Now()
					return
				}
			}
			if rv == "" {
				var l costv1.JobTaskList
				if err := b.c.List(b.ctx, &l, client.InNamespace(ns)); err != nil {
					continue
				}
				for i := range l.Items {
					seen[l.Items[i].Name] = true
				}
				rv = l.ResourceVersion
				if len(seen) >= n {
					done <- time.Now()
					return
				}
			}
			for w, err = open(); err != nil && b.ctx.Err() == nil; w, err = open() {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	return done
}

// settle waits until the manager has written nothing for a second (at most 30 s),
// so that a measure's writes are its own.
func (b *bench) settle() {
	b.t.Helper()
	last, quietSince, deadline := sum(b.writes()), time.Now(), time.Now().Add(30*time.Second)
	for time.Since(quietSince) < time.Second {
		if time.Now().After(deadline) {
			b.logf("the manager kept writing for 30s before the measure: its writes are counted in it")
			return
		}
		time.Sleep(200 * time.Millisecond)
		if w := sum(b.writes()); w != last {
			last, quietSince = w, time.Now()
		}
	}
}

func batchFinished(bj *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range bj.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// latency runs jobs small Jobs (2 tasks) one after the other and measures, from the
// arrival of watch events: the last batch Job's Complete to the Job's SUCCESS (the
// operator), and the last pod of each batch Job Succeeded to that batch Job's
// Complete (the upstream Job controller). A Job's batch Jobs are the ones with its
// label, however many of them the engine makes.
func (b *bench) latency(jobs int) Latency {
	b.t.Helper()
	ns := b.namespace("latency")
	b.dataSource(ns, 2, "0s")
	time.Sleep(2 * time.Second)

	var mu sync.Mutex
	podSeen := map[string]bool{}        // pods seen Succeeded
	podDone := map[string]time.Time{}   // batch Job name -> its last pod's Succeeded
	batchOf := map[string]string{}      // batch Job name -> its Job
	batchDone := map[string]time.Time{} // batch Job name -> Complete
	batchGone := map[string]bool{}      // batch Jobs deleted before they were seen Complete
	jobDone := map[string]time.Time{}   // Job name -> SUCCESS
	watchAll := func(list client.ObjectList, on func(ev watch.Event, at time.Time)) {
		w, err := b.c.Watch(b.ctx, list, client.InNamespace(ns))
		if err != nil {
			b.t.Fatal(err)
		}
		b.t.Cleanup(w.Stop)
		go func() {
			for ev := range w.ResultChan() {
				at := time.Now()
				mu.Lock()
				on(ev, at)
				mu.Unlock()
			}
		}()
	}
	watchAll(&corev1.PodList{}, func(ev watch.Event, at time.Time) {
		p, ok := ev.Object.(*corev1.Pod)
		if !ok || p.Status.Phase != corev1.PodSucceeded || podSeen[p.Name] {
			return
		}
		bj := p.Labels[batchv1.JobNameLabel]
		if bj == "" {
			bj = p.Labels["job-name"] // the label's name before Kubernetes 1.27
		}
		if bj != "" {
			podSeen[p.Name] = true
			podDone[bj] = latest(podDone[bj], at)
		}
	})
	watchAll(&batchv1.JobList{}, func(ev watch.Event, at time.Time) {
		bj, ok := ev.Object.(*batchv1.Job)
		if !ok {
			return
		}
		batchOf[bj.Name] = bj.Labels[costv1.LabelJob]
		if ev.Type == watch.Deleted && !batchFinished(bj, batchv1.JobComplete) {
			batchGone[bj.Name] = true
		}
		if batchFinished(bj, batchv1.JobComplete) {
			if _, seen := batchDone[bj.Name]; !seen {
				batchDone[bj.Name] = at
			}
		}
	})
	watchAll(&costv1.JobList{}, func(ev watch.Event, at time.Time) {
		j, ok := ev.Object.(*costv1.Job)
		if ok && j.Status.Status == costv1.JobSuccess {
			if _, seen := jobDone[j.Name]; !seen {
				jobDone[j.Name] = at
			}
		}
	})
	time.Sleep(time.Second) // the watches are open

	// batchJobs are the batch Jobs of the Job name seen so far; call with mu held.
	batchJobs := func(name string) []string {
		var out []string
		for bj, job := range batchOf {
			if job == name {
				out = append(out, bj)
			}
		}
		return out
	}
	var ours, fromPods, upstream []float64
	for i := range jobs {
		name := fmt.Sprintf("run-%d", i)
		b.createJob(ns, name, 2)
		b.poll(5*time.Minute, name+" SUCCESS", func() bool {
			mu.Lock()
			defer mu.Unlock()
			_, ok := jobDone[name]
			return ok
		})
		// The operator ends a task on its pod's success, so the Job's SUCCESS may come
		// before its batch Jobs' Complete condition: wait for those too (not for one
		// deleted before it was Complete).
		var batches []string
		complete := b.waitFor(time.Minute, func() bool {
			mu.Lock()
			defer mu.Unlock()
			batches = nil
			for _, bj := range batchJobs(name) {
				if _, ok := batchDone[bj]; !ok && !batchGone[bj] {
					return false
				}
				if !batchGone[bj] {
					batches = append(batches, bj)
				}
			}
			return len(batches) > 0
		})
		if !complete {
			b.logf("completion latency: %s's batch Jobs were not all seen Complete within a minute (%v); the Job is left out", name, batches)
			continue
		}
		mu.Lock()
		var lastBatch, lastPod time.Time
		for _, bj := range batches {
			c := batchDone[bj]
			lastBatch = latest(lastBatch, c)
			if p, ok := podDone[bj]; ok {
				upstream = append(upstream, ms(c.Sub(p)))
				lastPod = latest(lastPod, p)
			}
		}
		ours = append(ours, ms(jobDone[name].Sub(lastBatch)))
		if !lastPod.IsZero() {
			fromPods = append(fromPods, ms(jobDone[name].Sub(lastPod)))
		}
		mu.Unlock()
	}
	res := Latency{Jobs: len(ours), UpstreamSamples: len(upstream)}
	res.OperatorP50, res.OperatorP99 = percentile(ours, 50), percentile(ours, 99)
	res.OperatorFromPodP50, res.OperatorFromPodP99 = percentile(fromPods, 50), percentile(fromPods, 99)
	res.UpstreamP50, res.UpstreamP99 = percentile(upstream, 50), percentile(upstream, 99)
	b.logf("completion latency over %d Jobs: operator p50 %.0fms p99 %.0fms after the last batch Job's Complete (%.0fms / %.0fms after the last pod's Succeeded); upstream Job controller p50 %.0fms p99 %.0fms (%d batch Jobs)",
		len(ours), res.OperatorP50, res.OperatorP99, res.OperatorFromPodP50, res.OperatorFromPodP99, res.UpstreamP50, res.UpstreamP99, len(upstream))
	b.cleanUp(ns)
	return res
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// percentile is the nearest-rank percentile.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

type memory struct {
	rssKiB int64
	// liveHeap is the manager's heap after a garbage collection: what it holds, not
	// what it has yet to collect.
	liveHeap float64
}

// memory collects the manager's garbage (pprof's heap?gc=1 runs a GC first), gives
// the Go runtime a moment to return freed pages, and reads its live heap and RSS.
func (b *bench) memory() memory {
	var m memory
	_ = b.fetch(fmt.Sprintf("http://%s/debug/pprof/heap?gc=1", b.pprofAddr))
	// The heap at once, before the manager (still reconciling) allocates again:
	// read two seconds later it also counted what was allocated meanwhile (three
	// runs gave 2.34, 3.82 and 4.58 KiB per task at 10,000 tasks).
	m.liveHeap = b.metric("go_memstats_heap_alloc_bytes")["go_memstats_heap_alloc_bytes"]
	time.Sleep(2 * time.Second)
	if st, err := procStatus(b.env.Manager.Pid()); err == nil {
		m.rssKiB = st["VmRSS"]
	}
	return m
}

// writes are the manager's API requests other than GET, by method, so far.
func (b *bench) writes() map[string]int {
	return nonGET(b.metric("rest_client_requests_total"))
}

// reads are the manager's GET requests (gets and lists, not watches' events) so far.
func (b *bench) reads() int {
	n := 0
	for s, v := range b.metric("rest_client_requests_total") {
		if labels(s)["method"] == "GET" {
			n += int(v)
		}
	}
	return n
}

// reconciles are the manager's reconciles so far, by controller.
func (b *bench) reconciles() map[string]int {
	out := map[string]int{}
	for series, v := range b.metric("controller_runtime_reconcile_total") {
		out[labels(series)["controller"]] += int(v)
	}
	return out
}

// controllerManagerWrites are the kube-controller-manager's API requests other than
// GET, by method, so far.
func (b *bench) controllerManagerWrites() map[string]int {
	return nonGET(parseMetric(b.fetch(b.kcmURL), "rest_client_requests_total"))
}

// apiserverWrites are the API server's write requests so far, by
// "resource[/subresource] VERB group".
func (b *bench) apiserverWrites() map[string]int {
	out, _, err := b.env.Kubectl.Run(b.ctx, "", "get", "--raw", "/metrics")
	if err != nil {
		b.t.Fatal(err)
	}
	res := map[string]int{}
	for series, v := range parseMetric(out, "apiserver_request_total") {
		l := labels(series)
		switch l["verb"] {
		case "GET", "LIST", "WATCH", "":
			continue
		}
		key := l["resource"]
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		res[key+" "+l["verb"]+" "+l["group"]] += int(v)
	}
	return res
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func nonGET(series map[string]float64) map[string]int {
	out := map[string]int{}
	for s, v := range series {
		if m := labels(s)["method"]; m != "" && m != "GET" {
			out[m] += int(v)
		}
	}
	return out
}

// labels parses the labels of a series `name{a="x",b="y"}`.
func labels(series string) map[string]string {
	out := map[string]string{}
	i := strings.IndexByte(series, '{')
	if i < 0 {
		return out
	}
	for _, kv := range strings.Split(strings.TrimSuffix(series[i+1:], "}"), ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			out[k] = strings.Trim(v, `"`)
		}
	}
	return out
}

// fetch GETs a metrics endpoint (the controller-manager's serves a self-signed
// certificate on the loopback).
func (b *bench) fetch(url string) string {
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback
	resp, err := c.Get(url)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(body)
}

// metric reads the series of one metric from the manager's metrics endpoint.
func (b *bench) metric(name string) map[string]float64 {
	return parseMetric(b.fetch("http://"+b.env.MetricsAddr+"/metrics"), name)
}

// parseMetric reads the series of one metric from Prometheus' text format.
func parseMetric(body, name string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err == nil {
			out[line[:sp]] = v
		}
	}
	return out
}

// procStatus reads the kB figures of /proc/<pid>/status (VmRSS, VmHWM, ...).
func procStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				out[k] = n
			}
		}
	}
	return out, nil
}

// procCPUSeconds is the process's user + system CPU time (/proc/<pid>/stat).
func procCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// After the command: state is field 3 of stat, utime 14, stime 15.
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	const userHZ = 100 // USER_HZ, fixed on Linux
	return (ut + st) / userHZ, nil
}

func machine() string {
	s := fmt.Sprintf("%d CPUs, %s/%s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if line, _, ok := strings.Cut(string(b), "\n"); ok {
			s += ", " + strings.Join(strings.Fields(line), " ")
		}
	}
	return s
}

// warmUp creates and deletes a few hundred JobTasks, so that the first measure does
// not pay for the API server's first writes of the kind.
func (b *bench) warmUp() {
	b.t.Helper()
	ns := b.namespace("warm-up")
	owner := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner", Namespace: ns}}
	if err := b.c.Create(b.ctx, owner); err != nil {
		b.t.Fatal(err)
	}
	for i := range 300 {
		if err := b.c.Create(b.ctx, baselineTask(ns, owner, i)); err != nil {
			b.t.Fatal(err)
		}
	}
	b.deleteNamespaces(ns)
}

// profile saves a CPU profile of the manager over the next d, in the background.
func (b *bench) profile(name string, d time.Duration) {
	path := filepath.Join(b.dir, name)
	go func() {
		c := &http.Client{Timeout: d + 30*time.Second}
		resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", b.pprofAddr, int(d.Seconds())))
		if err != nil {
			b.logf("profiling: %v", err)
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode == http.StatusOK {
			err = os.WriteFile(path, data, 0o644)
		}
		if err != nil {
			b.logf("profiling: %v (%s)", err, resp.Status)
		}
	}()
}

// heapProfile saves the manager's heap profile now.
func (b *bench) heapProfile(name string) {
	data := b.fetch(fmt.Sprintf("http://%s/debug/pprof/heap", b.pprofAddr))
	if err := os.WriteFile(filepath.Join(b.dir, name), []byte(data), 0o644); err != nil {
		b.logf("heap profile: %v", err)
	}
}

// profiles lists the profiles written, for `go tool pprof bin/manager <file>`.
func (b *bench) profiles() []string {
	files, _ := filepath.Glob(filepath.Join(b.dir, "*.pprof"))
	for i, f := range files {
		files[i] = filepath.Join("bench", filepath.Base(f))
	}
	return files
}

// sameBatchJob runs the operator's own batch Job of the end-to-end run again,
// without the operator: the same spec (Indexed, per-index retries, podFailurePolicy)
// and the same simulated task pods (the kwok stages of task pods, fake-duration 0s).
// What the operator's run takes beyond it is the operator's own part: the plan, the
// JobTasks' statuses, the commit, and the load they put on the API server.
//
// With withTasks, a plain client meanwhile keeps one JobTask per task the cheapest
// way there is: it creates n JobTasks (32 workers, no client-side limit) and writes
// each one's end status once, two writes per task and no reads: the floor of any
// engine that keeps a JobTask per task, on the same API server. It returns the time
// until both are done, and the CPU each process used meanwhile.
func (b *bench) sameBatchJob(ran *batchv1.Job, n int, withTasks bool, round int) (float64, map[string]float64) {
	b.t.Helper()
	name := "same"
	if withTasks {
		name = "floor"
	}
	ns := b.namespace(fmt.Sprintf("%s-%d-%d", name, n, round))
	bj := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: *ran.Spec.DeepCopy()}
	bj.Spec.Selector, bj.Spec.ManualSelector = nil, nil
	bj.Spec.Suspend = nil
	bj.Spec.ActiveDeadlineSeconds = nil
	// Task pods for kwok's stages (the per-task engine's label, which the stages
	// still match), but not the run's: the manager's cache does not see them.
	bj.Spec.Template.Labels = map[string]string{costv1.LabelJobTask: name}
	var owner *corev1.ConfigMap
	if withTasks {
		owner = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner", Namespace: ns}}
		if err := b.c.Create(b.ctx, owner); err != nil {
			b.t.Fatal(err)
		}
	}
	meter := cpuMeter{b}
	c0 := meter.now()
	start := time.Now()
	var tasksDone time.Time
	var wg sync.WaitGroup
	if withTasks {
		wg.Go(func() {
			b.plainTasks(ns, owner, n)
			tasksDone = time.Now()
		})
	}
	took, _ := b.runBatchJob(bj, "the same batch Job", bj.Spec.Template.Labels)
	wg.Wait()
	if withTasks {
		took = max(took, tasksDone.Sub(start).Seconds())
	}
	cpu := meter.since(c0)
	what := "alone"
	if withTasks {
		what = "with a plain client writing a JobTask per task (creation, end)"
	}
	b.logf("end to end: the run's own batch Job of %d completions, %s, took %.1fs and used %s", n, what, took, cpuText(cpu, took))
	b.cleanUp(ns)
	return took, cpu
}

// plainTasks creates n JobTasks with the planner's concurrency and then writes each
// one's end status once (a merge patch of the status subresource, as the operator's
// end of a task), with no client-side limit.
func (b *bench) plainTasks(ns string, owner *corev1.ConfigMap, n int) {
	b.t.Helper()
	if err := plainClient(n, func(i int) error { return b.c.Create(b.ctx, baselineTask(ns, owner, i)) }); err != nil {
		b.t.Fatal(err)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	err := plainClient(n, func(i int) error {
		jt := &costv1.JobTask{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("run-%d", i), Namespace: ns}}
		patch := fmt.Sprintf(`{"status":{"status":"SUCCESS","createdCount":24,"collectedBytes":4096,"attempts":1,`+
			`"batchJobName":"floor","startedAt":%q,"updatedAt":%q,"finishedAt":%q}}`, now, now, now)
		return b.c.Status().Patch(b.ctx, jt, client.RawPatch(types.MergePatchType, []byte(patch)))
	})
	if err != nil {
		b.t.Fatal(err)
	}
}

// plainClient calls do for each index below n from planWorkers goroutines (the
// planner's concurrency, with no client-side limit) and returns the error of the
// lowest index that failed.
func plainClient(n int, do func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first = -1
		ferr  error
	)
	work := make(chan int)
	for range planWorkers {
		wg.Go(func() {
			for i := range work {
				if err := do(i); err != nil {
					mu.Lock()
					if first < 0 || i < first {
						first, ferr = i, err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if ferr != nil {
		return fmt.Errorf("plain client, object %d: %w", first, ferr)
	}
	return nil
}

// runBatchJob creates a batch Job, samples its pods (selected by podLabels) and
// waits until it is Complete; it fails the benchmark when the batch Job fails. It
// returns the time from its creation to Complete, and its pods over that time.
func (b *bench) runBatchJob(bj *batchv1.Job, what string, podLabels map[string]string) (float64, Timeline) {
	b.t.Helper()
	pods := b.samplePods(bj.Namespace, podLabels)
	start := time.Now()
	if err := b.c.Create(b.ctx, bj); err != nil {
		b.t.Fatal(err)
	}
	b.poll(30*time.Minute, what+"'s Complete", func() bool {
		if err := b.c.Get(b.ctx, client.ObjectKeyFromObject(bj), bj); err != nil {
			return false
		}
		return batchFinished(bj, batchv1.JobComplete) || batchFinished(bj, batchv1.JobFailed)
	})
	end := time.Now()
	timeline := pods.stop(start, end)
	if batchFinished(bj, batchv1.JobFailed) {
		b.t.Fatalf("%s failed: %+v", what, bj.Status.Conditions)
	}
	return end.Sub(start).Seconds(), timeline
}
