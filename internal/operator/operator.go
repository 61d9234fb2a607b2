// Package operator wires the manager: its cache, indexes, metrics, health checks and
// the three controllers. main.go parses flags into Options and calls New; the test
// suites call New too, so they run exactly what users run.
package operator

import (
	"context"
	"errors"
	"net/http"
	"time"

	"k8s.io/utils/clock"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/controllers"
	"github.com/costops/cost-analysis-operator/internal/indexes"
	"github.com/costops/cost-analysis-operator/internal/kubeauth"
	"github.com/costops/cost-analysis-operator/internal/metrics"
	"github.com/costops/cost-analysis-operator/internal/plugin"
	"github.com/costops/cost-analysis-operator/internal/scheme"
	"github.com/costops/cost-analysis-operator/internal/spaceone"
	"github.com/costops/cost-analysis-operator/internal/store"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

// Options are the manager's settings (main.go's flags).
type Options struct {
	MetricsAddr string
	// MetricsSecure serves the metrics over HTTPS (a self-signed certificate, or
	// MetricsCertDir's), to callers the cluster authenticates and RBAC lets get
	// /metrics; false serves plain HTTP to anyone who reaches the address.
	MetricsSecure bool
	// MetricsCertDir holds tls.crt and tls.key of the metrics endpoint.
	MetricsCertDir string
	// Auth are the caches of the callers' checks (the HTTP API's and the metrics').
	Auth                    kubeauth.Options
	ProbeAddr               string
	PprofAddr               string
	LeaderElect             bool
	LeaderElectionID        string
	LeaderElectionNamespace string
	// WatchNamespaces limits the manager to these namespaces (its cache, and so
	// every controller and the HTTP API); empty: the whole cluster. The leader
	// election Lease and the default store's Secret are outside the cache and
	// stay where they are (by default the manager's own namespace).
	WatchNamespaces []string

	PluginCallTimeout time.Duration
	PlanRetryWindow   time.Duration
	RecheckInterval   time.Duration
	// SecretCheckInterval is how often the versions of the Secrets DataSources
	// name are compared with those their last check read (one metadata GET per
	// Secret); 0: a changed Secret waits for RecheckInterval.
	SecretCheckInterval time.Duration
	// CollectorImage is the task pods' image when a DataSource's spec.collector
	// names none; empty: such a DataSource's tasks fail with ERROR_TASK_POD.
	CollectorImage string
	PlanWorkers    int
	// IndexesPerBatchJob is the most tasks one batch Job runs.
	IndexesPerBatchJob int
	// TaskProgressDelay is how long a task's pod runs before its IN_PROGRESS is written.
	TaskProgressDelay time.Duration
	JobWorkers        int
	TaskWorkers       int

	// DefaultStoreSecret is the Secret (key "dsn") of the store used by DataSources
	// that name none; empty: none (such DataSources are not ready).
	DefaultStoreSecret types.NamespacedName
	// StoreMaxConns bounds each store's connection pool.
	StoreMaxConns int32
	// CommitRetryWindow is how long a failing commit is retried before the run fails.
	CommitRetryWindow time.Duration

	// API configures the HTTP API (internal/spaceone); API.BindAddress "0" disables it.
	API spaceone.Options

	// SkipNameValidation lets a process start several managers (tests).
	SkipNameValidation bool
	// ScheduleClock is the clock DataSource schedules are read with; nil is the
	// real clock (tests inject a fake one).
	ScheduleClock clock.PassiveClock
}

// DefaultOptions are the flags' defaults.
func DefaultOptions() Options {
	return Options{
		MetricsAddr:         ":8080",
		MetricsSecure:       true,
		Auth:                kubeauth.DefaultOptions(),
		ProbeAddr:           ":8081",
		LeaderElectionID:    "cost-analysis-operator.costops.dev",
		PluginCallTimeout:   30 * time.Second,
		PlanRetryWindow:     2 * time.Minute,
		RecheckInterval:     10 * time.Minute,
		SecretCheckInterval: 10 * time.Second,
		PlanWorkers:         32,
		IndexesPerBatchJob:  controllers.DefaultIndexesPerBatchJob,
		TaskProgressDelay:   controllers.DefaultTaskProgressDelay,
		JobWorkers:          4,
		TaskWorkers:         16,
		StoreMaxConns:       8,
		CommitRetryWindow:   10 * time.Minute,
		API:                 spaceone.DefaultOptions(),
	}
}

// New builds a manager running the DataSource, Job and JobTask controllers.
func New(cfg *rest.Config, o Options) (manager.Manager, error) {
	// Only the operator's own batch Jobs and pods are cached, not every one in the cluster.
	req, err := labels.NewRequirement(costv1.LabelJob, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	taskSelector := labels.NewSelector().Add(*req)

	// One check of callers for the HTTP API and the metrics endpoint.
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	auth, err := kubeauth.New(cfg, httpClient, o.Auth)
	if err != nil {
		return nil, err
	}
	metricsOpts := metricsserver.Options{BindAddress: o.MetricsAddr}
	if o.MetricsSecure {
		metricsOpts.SecureServing = true
		metricsOpts.CertDir = o.MetricsCertDir
		metricsOpts.FilterProvider = func(*rest.Config, *http.Client) (metricsserver.Filter, error) {
			return auth.MetricsFilter(), nil
		}
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme.Scheme,
		Metrics:                 metricsOpts,
		HealthProbeBindAddress:  o.ProbeAddr,
		PprofBindAddress:        o.PprofAddr,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        o.LeaderElectionID,
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		// A replica that stops gives the Lease up, so another takes over at once
		// rather than after the Lease expires; safe because the process exits
		// when the manager returns.
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{
			DefaultNamespaces: watchedNamespaces(o.WatchNamespaces),
			DefaultTransform:  cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				&batchv1.Job{}: {Label: taskSelector, Transform: slimBatchJob},
				&corev1.Pod{}:  {Label: taskSelector, Transform: slimPod},
			},
		},
		// Secrets are read live when needed and never cached.
		Client:     client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Controller: config.Controller{SkipNameValidation: &o.SkipNameValidation},
	})
	if err != nil {
		return nil, err
	}
	if err := indexes.Setup(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return nil, err
	}
	metrics.Register(mgr.GetCache(), controllers.RunTimeout, mgr.Elected())

	// What runs where with leader election: the cache, the HTTP API
	// (spaceone.Server, which says it needs no election), the metrics and the
	// probes run on every replica; the controllers and the DataSources' Secret
	// poller on the leader only. So do the closers below: only the controllers
	// open plugin connections and stores, and a closer must stop after them (the
	// manager stops the runnables that need no election first, and closing a
	// store waits for its connections in use).
	plugins := plugin.NewPool()
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		plugins.Close()
		return nil
	})); err != nil {
		return nil, err
	}

	stores := &controllers.Stores{Registry: store.NewRegistry(o.StoreMaxConns), Default: o.DefaultStoreSecret}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		stores.Registry.Close()
		return nil
	})); err != nil {
		return nil, err
	}

	if err := controllers.NewJobTaskReconciler(mgr, controllers.WithMaxConcurrentTasks(o.TaskWorkers),
		controllers.WithTaskProgressDelay(o.TaskProgressDelay)).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := controllers.NewJobReconciler(mgr, plugins,
		controllers.WithCollectorImage(o.CollectorImage),
		controllers.WithIndexesPerBatchJob(o.IndexesPerBatchJob),
		controllers.WithPlanWorkers(o.PlanWorkers),
		controllers.WithPluginCallTimeout(o.PluginCallTimeout),
		controllers.WithPlanRetryWindow(o.PlanRetryWindow),
		controllers.WithMaxConcurrentJobs(o.JobWorkers),
		controllers.WithStores(stores),
		controllers.WithCommitRetryWindow(o.CommitRetryWindow),
	).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := controllers.NewDataSourceReconciler(mgr, plugins,
		controllers.WithRecheckInterval(o.RecheckInterval),
		controllers.WithSecretCheckInterval(o.SecretCheckInterval),
		controllers.WithVerifyTimeout(o.PluginCallTimeout),
		controllers.WithDataSourceStores(stores),
	).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	var schedOpts []controllers.ScheduleOption
	if o.ScheduleClock != nil {
		schedOpts = append(schedOpts, controllers.WithScheduleClock(o.ScheduleClock))
	}
	if err := controllers.NewScheduleReconciler(mgr, schedOpts...).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := spaceone.Setup(mgr, auth, o.API); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	// Ready once the informer cache has synced: every replica's HTTP API answers
	// from it, so the API Service sends no call to a replica still filling it.
	if err := mgr.AddReadyzCheck("cache", func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("the informer cache has not synced yet")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return mgr, nil
}

// watchedNamespaces is the cache's DefaultNamespaces: nil (every namespace) when
// none are given.
func watchedNamespaces(names []string) map[string]cache.Config {
	if len(names) == 0 {
		return nil
	}
	out := make(map[string]cache.Config, len(names))
	for _, ns := range names {
		out[ns] = cache.Config{}
	}
	return out
}

// slimPod keeps what the JobTask controller reads of a task pod (its labels, owner and
// status) and drops the rest, so that a large Job costs little memory.
func slimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	pod.ManagedFields = nil
	kept := map[string]string{}
	for _, k := range []string{taskpod.AnnotationCompletionIndex, costv1.AnnotationFirstTaskIndex, taskpod.AnnotationIndexFailureCount} {
		if v, ok := pod.Annotations[k]; ok {
			kept[k] = v
		}
	}
	pod.Annotations = kept
	pod.Spec = corev1.PodSpec{NodeName: pod.Spec.NodeName}
	pod.Status.Conditions = nil
	return pod, nil
}

// slimBatchJob keeps a task batch Job's metadata, its scalar settings and its status,
// and drops its pod template.
func slimBatchJob(obj any) (any, error) {
	bj, ok := obj.(*batchv1.Job)
	if !ok {
		return obj, nil
	}
	bj.ManagedFields = nil
	bj.Spec.Template = corev1.PodTemplateSpec{}
	bj.Spec.Selector = nil
	return bj, nil
}
