// Package metrics defines the operator's Prometheus metrics, registered in
// controller-runtime's registry and served on the manager's metrics endpoint. Labels
// are bounded: namespace, data source, state, error code, operation and result, never
// a Job, task or pod name. The dashboard (config/grafana) and the alerts
// (config/prometheus) read them; the README's "Metrics" section lists them.
package metrics

import (
	"context"
	"regexp"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

var (
	jobsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cost_analysis_jobs_finished_total",
		Help: "Jobs that ended, by namespace, data source and final status.",
	}, []string{"namespace", "data_source", "status"})

	jobErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cost_analysis_job_errors_total",
		Help: "Jobs that ended with an error code (FAILURE, TIMEOUT, CANCELED), by namespace, data source and error code.",
	}, []string{"namespace", "data_source", "error_code"})

	jobDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cost_analysis_job_duration_seconds",
		Help:    "Run time of Jobs from their start to their end, by namespace, data source and final status.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 16), // 1s .. ~9h
	}, []string{"namespace", "data_source", "status"})

	tasksFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cost_analysis_job_tasks_finished_total",
		Help: "JobTasks that ended, by namespace, data source and final status.",
	}, []string{"namespace", "data_source", "status"})

	taskErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cost_analysis_job_task_errors_total",
		Help: "JobTasks that ended with an error code, by namespace, data source and error code.",
	}, []string{"namespace", "data_source", "error_code"})

	taskDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cost_analysis_job_task_duration_seconds",
		Help:    "Run time of JobTasks from their pod's start to their end, by namespace, data source and final status.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 14), // 1s .. ~4.5h
	}, []string{"namespace", "data_source", "status"})

	recordsCreated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cost_analysis_records_created_total",
		Help: "Cost records the collectors reported as created, by namespace and data source.",
	}, []string{"namespace", "data_source"})

	recordsCommitted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cost_analysis_records_committed_total",
		Help: "Cost records made visible by run commits in the store, by namespace and data source.",
	}, []string{"namespace", "data_source"})

	storeOps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cost_analysis_store_operations_total",
		Help: "Run commits and rollbacks in the store, by namespace, data source, operation (commit, rollback) and result (success, error).",
	}, []string{"namespace", "data_source", "operation", "result"})

	storeOpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cost_analysis_store_operation_duration_seconds",
		Help:    "Duration of run commits and rollbacks in the store, by operation and result.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14), // 5ms .. ~40s
	}, []string{"operation", "result"})

	jobsDesc = prometheus.NewDesc("cost_analysis_jobs",
		"Jobs currently in the cluster, by namespace, data source and status (PENDING = not picked up yet).",
		[]string{"namespace", "data_source", "status"}, nil)
	tasksDesc = prometheus.NewDesc("cost_analysis_job_tasks",
		"JobTasks currently in the cluster, by namespace, data source and status.",
		[]string{"namespace", "data_source", "status"}, nil)
	pastDeadlineDesc = prometheus.NewDesc("cost_analysis_jobs_past_deadline",
		"IN_PROGRESS Jobs whose timeout has passed (the operator ends a run at its deadline, so anything above 0 for long is a stuck run), by namespace and data source; 0 for every data source that has Jobs.",
		[]string{"namespace", "data_source"}, nil)
	conditionDesc = prometheus.NewDesc("cost_analysis_data_source_condition",
		"DataSource conditions (PluginReady, StoreReady): 1 for the condition's current status (True, False or Unknown; Unknown when not set yet), 0 for the other two.",
		[]string{"namespace", "data_source", "type", "status"}, nil)
)

// Final states, whose finished-counter series are created at 0 for every DataSource
// (startSeries) and beside the first one observed, so that rates and ratios over
// them (and alerts on them) see the first failure rather than a series that appears
// already at 1.
var (
	jobEnds  = []costv1.JobState{costv1.JobSuccess, costv1.JobFailure, costv1.JobTimeout, costv1.JobCanceled}
	taskEnds = []costv1.JobTaskState{costv1.TaskSuccess, costv1.TaskFailure, costv1.TaskTimeout, costv1.TaskCanceled}
)

// startSeries creates a DataSource's series of the finished-counters (every final
// state), of the store operations (both results) and of the records at 0, so that
// its first failed run, task, commit or rollback shows up in rates and alerts
// (increase() cannot see a series that is born at 1).
func startSeries(ns, ds string) {
	for _, s := range jobEnds {
		jobsFinished.WithLabelValues(ns, ds, string(s))
	}
	for _, s := range taskEnds {
		tasksFinished.WithLabelValues(ns, ds, string(s))
	}
	for _, op := range []string{"commit", "rollback"} {
		for _, r := range []string{"success", "error"} {
			storeOps.WithLabelValues(ns, ds, op, r)
		}
	}
	recordsCreated.WithLabelValues(ns, ds)
	recordsCommitted.WithLabelValues(ns, ds)
}

// JobFinished counts a Job that ended (its status holds the outcome), its run time
// and its error code.
func JobFinished(job *costv1.Job) {
	ns, ds, st := job.Namespace, job.Spec.DataSourceRef.Name, &job.Status
	for _, s := range jobEnds {
		jobsFinished.WithLabelValues(ns, ds, string(s))
	}
	jobsFinished.WithLabelValues(ns, ds, string(st.Status)).Inc()
	if d := runTime(st.StartedAt, st.FinishedAt); d > 0 {
		jobDuration.WithLabelValues(ns, ds, string(st.Status)).Observe(d.Seconds())
	}
	if st.ErrorCode != "" {
		jobErrors.WithLabelValues(ns, ds, errorCodes.label(st.ErrorCode)).Inc()
	}
}

// TaskFinished counts a JobTask that ended (its status holds the outcome), its run
// time, error code and the records it created.
func TaskFinished(task *costv1.JobTask) {
	ns, ds, st := task.Namespace, task.Spec.DataSourceRef.Name, &task.Status
	for _, s := range taskEnds {
		tasksFinished.WithLabelValues(ns, ds, string(s))
	}
	tasksFinished.WithLabelValues(ns, ds, string(st.Status)).Inc()
	if d := runTime(st.StartedAt, st.FinishedAt); d > 0 {
		taskDuration.WithLabelValues(ns, ds, string(st.Status)).Observe(d.Seconds())
	}
	if st.ErrorCode != "" {
		taskErrors.WithLabelValues(ns, ds, errorCodes.label(st.ErrorCode)).Inc()
	}
	if st.CreatedCount > 0 {
		recordsCreated.WithLabelValues(ns, ds).Add(float64(st.CreatedCount))
	}
}

func runTime(start, end *metav1.Time) time.Duration {
	if start == nil || end == nil {
		return 0
	}
	return end.Sub(start.Time)
}

// StoreOperation counts a run's commit or rollback (operation "commit" or
// "rollback") and its duration; err is its outcome.
func StoreOperation(namespace, dataSource, operation string, d time.Duration, err error) {
	result := "success"
	if err != nil {
		result = "error"
	}
	for _, r := range []string{"success", "error"} {
		storeOps.WithLabelValues(namespace, dataSource, operation, r)
	}
	storeOps.WithLabelValues(namespace, dataSource, operation, result).Inc()
	storeOpDuration.WithLabelValues(operation, result).Observe(d.Seconds())
}

// RecordsCommitted counts the records a run's commit made visible.
func RecordsCommitted(namespace, dataSource string, n int64) {
	if n > 0 {
		recordsCommitted.WithLabelValues(namespace, dataSource).Add(float64(n))
	}
}

// maxErrorCodes bounds the error_code label: the operator's own codes and a
// collector's are a few dozen, but a custom collector image writes what it likes
// into its termination message.
const maxErrorCodes = 64

// otherErrorCode stands for a code that is not an upper-case identifier, or one
// beyond the first maxErrorCodes seen.
const otherErrorCode = "OTHER"

var errorCodeShape = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)

// codeSet keeps the error codes used as label values so far.
type codeSet struct {
	mu   sync.Mutex
	seen map[string]bool
}

var errorCodes = &codeSet{seen: map[string]bool{}}

func (c *codeSet) label(code string) string {
	if !errorCodeShape.MatchString(code) {
		return otherErrorCode
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.seen[code] {
		if len(c.seen) >= maxErrorCodes {
			return otherErrorCode
		}
		c.seen[code] = true
	}
	return code
}

// RunTimeout is a run's effective timeout: the Job's, else its DataSource's default,
// else the operator's (ds may be nil when the DataSource is gone).
type RunTimeout func(job *costv1.Job, ds *costv1.DataSource) time.Duration

// stateCollector reports what the cluster holds from the manager's cache at each
// scrape (Jobs and JobTasks by state, runs past their deadline, DataSource
// conditions), so the gauges are always exactly what the cluster holds.
type stateCollector struct {
	reader  client.Reader
	timeout RunTimeout
	now     func() time.Time
	// elected is closed once this replica leads: only the leader reports, so that
	// sums over every replica's series count each object once.
	elected <-chan struct{}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- tasksDesc
	ch <- pastDeadlineDesc
	ch <- conditionDesc
}

type key struct{ ns, ds, state string }

// conditionTypes are the DataSource conditions reported; a DataSource's Scheduled
// condition says nothing about its health.
var conditionTypes = []string{costv1.ConditionPluginReady, costv1.ConditionStoreReady}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	select {
	case <-c.elected:
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sources := map[key]*costv1.DataSource{}
	var dsList costv1.DataSourceList
	if err := c.reader.List(ctx, &dsList, client.UnsafeDisableDeepCopy); err == nil {
		for i := range dsList.Items {
			ds := &dsList.Items[i]
			sources[key{ns: ds.Namespace, ds: ds.Name}] = ds
			startSeries(ds.Namespace, ds.Name)
			for _, typ := range conditionTypes {
				current := metav1.ConditionUnknown
				if cond := meta.FindStatusCondition(ds.Status.Conditions, typ); cond != nil {
					current = cond.Status
				}
				for _, s := range []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown} {
					v := 0.0
					if s == current {
						v = 1
					}
					ch <- prometheus.MustNewConstMetric(conditionDesc, prometheus.GaugeValue, v, ds.Namespace, ds.Name, typ, string(s))
				}
			}
		}
	}
	var jobs costv1.JobList
	if err := c.reader.List(ctx, &jobs, client.UnsafeDisableDeepCopy); err == nil {
		counts := map[key]int{}
		pastDeadline := map[key]int{}
		now := c.now()
		for i := range jobs.Items {
			j := &jobs.Items[i]
			st := string(j.Status.Status)
			if st == "" {
				st = "PENDING"
			}
			source := key{ns: j.Namespace, ds: j.Spec.DataSourceRef.Name}
			counts[key{j.Namespace, j.Spec.DataSourceRef.Name, st}]++
			pastDeadline[source] += 0 // every data source with Jobs has the series
			if j.Status.Status == costv1.JobInProgress && j.Status.StartedAt != nil &&
				now.After(j.Status.StartedAt.Add(c.timeout(j, sources[source]))) {
				pastDeadline[source]++
			}
		}
		for k, n := range counts {
			ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n), k.ns, k.ds, k.state)
		}
		for k, n := range pastDeadline {
			ch <- prometheus.MustNewConstMetric(pastDeadlineDesc, prometheus.GaugeValue, float64(n), k.ns, k.ds)
		}
	}
	var tasks costv1.JobTaskList
	if err := c.reader.List(ctx, &tasks, client.UnsafeDisableDeepCopy); err == nil {
		counts := map[key]int{}
		for i := range tasks.Items {
			t := &tasks.Items[i]
			st := string(t.Status.Status)
			if st == "" {
				st = string(costv1.TaskPending)
			}
			counts[key{t.Namespace, t.Spec.DataSourceRef.Name, st}]++
		}
		for k, n := range counts {
			ch <- prometheus.MustNewConstMetric(tasksDesc, prometheus.GaugeValue, float64(n), k.ns, k.ds, k.state)
		}
	}
}

// Register adds the metrics to controller-runtime's registry; reader is the
// manager's cache, timeout tells a run's deadline, and elected is closed once the
// manager leads (the state gauges come from the leader only, as the counters do).
// Only the first call registers (a test process may start several managers).
func Register(reader client.Reader, timeout RunTimeout, elected <-chan struct{}) {
	registerOnce.Do(func() {
		crmetrics.Registry.MustRegister(jobsFinished, jobErrors, jobDuration, tasksFinished, taskErrors, taskDuration,
			recordsCreated, recordsCommitted, storeOps, storeOpDuration,
			&stateCollector{reader: reader, timeout: timeout, now: time.Now, elected: elected})
		// The durations' few series exist from the start, so the first commit's
		// duration shows in a rate rather than arriving with its series.
		for _, op := range []string{"commit", "rollback"} {
			for _, r := range []string{"success", "error"} {
				storeOpDuration.WithLabelValues(op, r)
			}
		}
	})
}

var registerOnce sync.Once
