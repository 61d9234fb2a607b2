// Package metrics defines the operator's Prometheus metrics, registered in
// controller-runtime's registry and served on the manager's metrics endpoint. Labels
// are bounded: namespace, data source and state, never a Job, task or pod name.
package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

var (
	jobsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cost_analysis_jobs_finished_total",
		Help: "Jobs that ended, by namespace, data source and final status.",
	}, []string{"namespace", "data_source", "status"})

	tasksFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cost_analysis_job_tasks_finished_total",
		Help: "JobTasks that ended, by namespace, data source and final status.",
	}, []string{"namespace", "data_source", "status"})

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
)

// JobFinished counts a Job that ended.
func JobFinished(namespace, dataSource, status string) {
	jobsFinished.WithLabelValues(namespace, dataSource, status).Inc()
}

// TaskFinished counts a JobTask that ended, its run time and the records it created.
func TaskFinished(namespace, dataSource, status string, runTime time.Duration, created int64) {
	tasksFinished.WithLabelValues(namespace, dataSource, status).Inc()
	if runTime > 0 {
		taskDuration.WithLabelValues(namespace, dataSource, status).Observe(runTime.Seconds())
	}
	if created > 0 {
		recordsCreated.WithLabelValues(namespace, dataSource).Add(float64(created))
	}
}

// StoreOperation counts a run's commit or rollback (operation "commit" or
// "rollback") and its duration; err is its outcome.
func StoreOperation(namespace, dataSource, operation string, d time.Duration, err error) {
	result := "success"
	if err != nil {
		result = "error"
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

// stateCollector reports the Jobs and JobTasks by state from the manager's cache at
// each scrape, so the gauges are always exactly what the cluster holds.
type stateCollector struct {
	reader client.Reader
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- tasksDesc
}

type key struct{ ns, ds, state string }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var jobs costv1.JobList
	if err := c.reader.List(ctx, &jobs, client.UnsafeDisableDeepCopy); err == nil {
		counts := map[key]int{}
		for i := range jobs.Items {
			j := &jobs.Items[i]
			st := string(j.Status.Status)
			if st == "" {
				st = "PENDING"
			}
			counts[key{j.Namespace, j.Spec.DataSourceRef.Name, st}]++
		}
		for k, n := range counts {
			ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n), k.ns, k.ds, k.state)
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
// manager's cache.
// Only the first call registers (a test process may start several managers).
func Register(reader client.Reader) {
	registerOnce.Do(func() {
		crmetrics.Registry.MustRegister(jobsFinished, tasksFinished, taskDuration, recordsCreated,
			recordsCommitted, storeOps, storeOpDuration, &stateCollector{reader: reader})
	})
}

var registerOnce sync.Once
