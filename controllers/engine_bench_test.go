package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// writeCounter counts the API write requests (anything but GET) that go through it.
type writeCounter struct {
	next   http.RoundTripper
	writes atomic.Int64
	mu     sync.Mutex
	by     map[string]int // "POST jobtasks", "PATCH jobtasks/status", ...
}

func (w *writeCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet {
		w.writes.Add(1)
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		key := r.Method + " " + r.URL.Path
		for i, p := range parts {
			if p == "namespaces" && i+2 < len(parts) {
				key = r.Method + " " + parts[i+2]
				if i+4 < len(parts) {
					key += "/" + parts[i+4]
				}
				break
			}
		}
		w.mu.Lock()
		w.by[key]++
		w.mu.Unlock()
	}
	return w.next.RoundTrip(r)
}

// TestEngineBenchmark runs a Job of BENCH_ENGINE_TASKS tasks (default 5,000) against
// envtest and prints what it cost. It runs only under `make bench-engine`
// (BENCH_ENGINE=1); figures are printed, never asserted, so it cannot flake.
func TestEngineBenchmark(t *testing.T) {
	if os.Getenv("BENCH_ENGINE") == "" {
		t.Skip("run with `make bench-engine`")
	}
	n := 5000
	if v, err := strconv.Atoi(os.Getenv("BENCH_ENGINE_TASKS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()

	// Baseline: the same number of JobTasks of the same size, created by a plain
	// client with the same concurrency as the manager's planner, in this process.
	baseNS := newNamespace(t)
	const workers = 32
	start := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range work {
				jt := &costv1.JobTask{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("base-%d", i), Namespace: baseNS,
						Labels:      map[string]string{costv1.LabelJob: "base", costv1.LabelDataSource: "billing"},
						Annotations: map[string]string{costv1.AnnotationTaskHash: "0123456789abcdef"}},
					Spec: costv1.JobTaskSpec{JobRef: costv1.LocalObjectReference{Name: "base"}, DataSourceRef: costv1.LocalObjectReference{Name: "billing"},
						Index: int32(i), TaskOptions: kruntime.RawExtension{Raw: []byte(fmt.Sprintf(`{"account_id":"account-a","index":%d,"month":"2026-09"}`, i))}},
				}
				if err := k8s.Create(ctx, jt); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	baseline := time.Since(start)

	ns := newNamespace(t)
	createSecret(t, ns, "creds", map[string]string{"api_key": "k"})
	createDataSource(t, ns, "billing", pluginAddr, fmt.Sprintf(`{"tasks": %d}`, n))
	startKubelet(t, ns, func(podTask) taskOutcome { return success(24) })

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	counter := &writeCounter{by: map[string]int{}}
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 500, 1000
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { counter.next = rt; return counter }
	o := testOptions()
	o.JobWorkers, o.TaskWorkers = 4, 32
	startManagerWithConfig(t, cfg, o)

	start = time.Now()
	createJob(t, ns, "run", "billing", func(j *costv1.Job) {
		j.Spec.Parallelism = ptr.To[int32](200)
		j.Spec.Timeout = &metav1.Duration{Duration: 30 * time.Minute}
	})
	var planned time.Duration
	eventually(t, 10*time.Minute, func() error {
		j := &costv1.Job{}
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "run"}, j); err != nil {
			return err
		}
		if planned == 0 {
			for _, c := range j.Status.Conditions {
				if c.Type == costv1.ConditionPlanned && c.Status == metav1.ConditionTrue {
					planned = time.Since(start)
				}
			}
		}
		if j.Status.Status != costv1.JobSuccess {
			return fmt.Errorf("status %s, %d remained", j.Status.Status, j.Status.RemainedTasks)
		}
		return nil
	})
	total := time.Since(start)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	j := &costv1.Job{}
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "run"}, j); err != nil {
		t.Fatal(err)
	}
	status, _ := json.Marshal(j.Status)
	writes := counter.writes.Load()
	fmt.Printf("\n## Engine benchmark (envtest, %d tasks, parallelism 200)\n\n", n)
	fmt.Printf("| figure | value |\n| --- | --- |\n")
	fmt.Printf("| plan: creation to all %d JobTasks created (Planned) | %s |\n", n, planned.Round(time.Millisecond))
	fmt.Printf("| baseline: plain client, %d workers, same %d objects | %s |\n", workers, n, baseline.Round(time.Millisecond))
	fmt.Printf("| plan rate / baseline rate | %.2f |\n", baseline.Seconds()/planned.Seconds())
	fmt.Printf("| creation to SUCCESS | %s |\n", total.Round(time.Millisecond))
	fmt.Printf("| manager API writes | %d (%.2f per task; goal <= 3: its creation, IN_PROGRESS, its end) |\n", writes, float64(writes)/float64(n))
	fmt.Printf("| process heap growth, manager running, after GC | %.1f MiB (%.0f B per task) |\n",
		float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(n))
	fmt.Printf("| Job status size (JSON) | %d B (counts only: the same for 100,000 tasks; goal < 10 KiB) |\n\n", len(status))
	keys := make([]string, 0, len(counter.by))
	for k := range counter.by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Printf("| manager write | count |\n| --- | --- |\n")
	for _, k := range keys {
		fmt.Printf("| %s | %d |\n", k, counter.by[k])
	}
	fmt.Println()
}
