// Command manager runs cost-analysis-operator: the DataSource, Job and JobTask
// controllers in one controller-runtime manager (wired in internal/operator).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/costops/cost-analysis-operator/internal/operator"
)

func main() {
	o := operator.DefaultOptions()
	var qps float64
	var burst int
	flag.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, "Address the metrics endpoint binds to; \"0\" disables it.")
	flag.BoolVar(&o.MetricsSecure, "metrics-secure", o.MetricsSecure, "Serve the metrics over HTTPS to callers the cluster authenticates (TokenReview) and authorizes to get /metrics (SubjectAccessReview); false serves plain HTTP to anyone.")
	flag.StringVar(&o.MetricsCertDir, "metrics-cert-dir", "", "Directory holding the metrics endpoint's tls.crt and tls.key; empty: a self-signed certificate.")
	flag.DurationVar(&o.Auth.TokenTTL, "auth-token-cache-ttl", o.Auth.TokenTTL, "How long a TokenReview's answer is kept (HTTP API and metrics callers).")
	flag.DurationVar(&o.Auth.AllowTTL, "auth-allow-cache-ttl", o.Auth.AllowTTL, "How long a SubjectAccessReview's yes is kept.")
	flag.DurationVar(&o.Auth.DenyTTL, "auth-deny-cache-ttl", o.Auth.DenyTTL, "How long a SubjectAccessReview's no is kept (0: never, so a new role works at once).")
	flag.StringVar(&o.ProbeAddr, "health-probe-bind-address", o.ProbeAddr, "Address the /healthz and /readyz probes bind to.")
	flag.StringVar(&o.PprofAddr, "pprof-bind-address", "", "Address a pprof endpoint binds to; empty disables it.")
	flag.BoolVar(&o.LeaderElect, "leader-elect", false, "Elect a leader, so that only one replica runs the controllers.")
	flag.StringVar(&o.LeaderElectionID, "leader-election-id", o.LeaderElectionID, "Name of the leader election Lease.")
	flag.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the manager's own).")
	var watchNamespaces string
	flag.StringVar(&watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces the manager watches (DataSources, Jobs, JobTasks, their batch Jobs and pods; the HTTP API answers for these only); empty: every namespace. Give it Roles in these namespaces instead of the cluster-wide manager ClusterRole (config/namespaced, or the chart's watchNamespaces).")
	// The API server's Priority and Fairness is what shares it among clients; the
	// client-side limit is a safety net against a runaway loop, set high enough not to
	// slow a plan of thousands of JobTasks (200 QPS made a 10,000-task fan-out take 3
	// times as long as the API server allowed).
	flag.Float64Var(&qps, "kube-api-qps", 1000, "Client-side QPS limit towards the API server; negative disables it.")
	flag.IntVar(&burst, "kube-api-burst", 2000, "Client-side burst limit towards the API server.")
	flag.DurationVar(&o.PluginCallTimeout, "plugin-call-timeout", o.PluginCallTimeout, "Deadline of each plugin call.")
	flag.DurationVar(&o.PlanRetryWindow, "plan-retry-window", o.PlanRetryWindow, "How long an unreachable plugin is retried for a Job's plan before the Job fails.")
	flag.DurationVar(&o.RecheckInterval, "datasource-recheck-interval", o.RecheckInterval, "How often a DataSource's plugin is verified again.")
	flag.DurationVar(&o.SecretCheckInterval, "secret-check-interval", o.SecretCheckInterval, "How often the resourceVersions of the Secrets DataSources name are read (one metadata GET per Secret) to verify a DataSource again when one changed; 0: only at --datasource-recheck-interval.")
	flag.StringVar(&o.CollectorImage, "collector-image", "", "The task pods' image for a DataSource whose spec.collector names none; empty: such a DataSource's tasks fail with ERROR_TASK_POD.")
	flag.IntVar(&o.PlanWorkers, "plan-workers", o.PlanWorkers, "JobTasks created concurrently while planning a Job.")
	flag.DurationVar(&o.TaskProgressDelay, "task-progress-delay", o.TaskProgressDelay, "How long a task's pod runs before the JobTask's IN_PROGRESS is written; a task that ends sooner is written once, with its end (0: at once).")
	flag.IntVar(&o.IndexesPerBatchJob, "indexes-per-batch-job", o.IndexesPerBatchJob, "The most tasks one Indexed batch Job runs (one completion index each); a run of more tasks runs them on several batch Jobs that share its parallelism.")
	flag.IntVar(&o.JobWorkers, "job-workers", o.JobWorkers, "Jobs reconciled concurrently.")
	flag.IntVar(&o.TaskWorkers, "jobtask-workers", o.TaskWorkers, "JobTasks reconciled concurrently.")
	flag.StringVar(&o.API.BindAddress, "api-bind-address", o.API.BindAddress, "Address the HTTP API (SpaceONE cost-analysis v1 Job/JobTask and job metering) binds to; \"0\" disables it.")
	flag.StringVar(&o.API.CertDir, "api-cert-dir", o.API.CertDir, "Directory holding the HTTP API's tls.crt and tls.key, reloaded when they change.")
	flag.BoolVar(&o.API.SelfSigned, "api-self-signed", o.API.SelfSigned, "When --api-cert-dir is empty, serve the HTTP API with a self-signed certificate made at start (its SHA-256 fingerprint is logged).")
	var defaultStore string
	flag.StringVar(&defaultStore, "default-store-secret", "", "The default store: <namespace>/<name> of a Secret whose key \"dsn\" is a PostgreSQL DSN, used by DataSources without spec.store; a bare <name> is in the manager's own namespace ($POD_NAMESPACE, or the service account's). Empty: none (such DataSources are not ready).")
	var storeMaxConns int
	flag.IntVar(&storeMaxConns, "store-max-conns", int(o.StoreMaxConns), "Most connections the manager opens to each store.")
	flag.DurationVar(&o.CommitRetryWindow, "commit-retry-window", o.CommitRetryWindow, "How long a failing commit of a run's records is retried before the run fails with ERROR_COMMIT_FAILED and is rolled back.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	setupLog := ctrl.Log.WithName("setup")
	if defaultStore != "" {
		key, err := parseSecretRef(defaultStore, ownNamespace)
		if err != nil {
			setupLog.Error(err, "Invalid --default-store-secret", "value", defaultStore)
			os.Exit(2)
		}
		o.DefaultStoreSecret = key
	}
	namespaces, err := parseNamespaces(watchNamespaces)
	if err != nil {
		setupLog.Error(err, "Invalid --watch-namespaces", "value", watchNamespaces)
		os.Exit(2)
	}
	o.WatchNamespaces = namespaces
	if storeMaxConns < 1 || storeMaxConns > 1000 {
		setupLog.Error(nil, "--store-max-conns must be between 1 and 1000", "value", storeMaxConns)
		os.Exit(2)
	}
	o.StoreMaxConns = int32(storeMaxConns)

	cfg := ctrl.GetConfigOrDie()
	cfg.QPS, cfg.Burst = float32(qps), burst
	mgr, err := operator.New(cfg, o)
	if err != nil {
		setupLog.Error(err, "Unable to set up the manager")
		os.Exit(1)
	}
	setupLog.Info("Starting the manager")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		setupLog.Error(err, "The manager stopped with an error")
		os.Exit(1)
	}
}

// serviceAccountNamespaceFile is where a pod finds its own namespace.
const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// ownNamespace is the manager's namespace: $POD_NAMESPACE (the downward API), else
// the service account's.
func ownNamespace() (string, error) {
	if ns := strings.TrimSpace(os.Getenv("POD_NAMESPACE")); ns != "" {
		return ns, nil
	}
	b, err := os.ReadFile(serviceAccountNamespaceFile)
	if err != nil {
		return "", fmt.Errorf("a bare Secret name needs the manager's namespace: set POD_NAMESPACE or run in a pod: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// parseSecretRef reads <namespace>/<name>, or a bare <name> in the namespace own gives.
func parseSecretRef(v string, own func() (string, error)) (types.NamespacedName, error) {
	ns, name, qualified := strings.Cut(v, "/")
	if !qualified {
		var err error
		if ns, err = own(); err != nil {
			return types.NamespacedName{}, err
		}
		name = v
	}
	for _, part := range []string{ns, name} {
		if errs := validation.IsDNS1123Subdomain(part); len(errs) > 0 {
			return types.NamespacedName{}, fmt.Errorf("want <namespace>/<name> or <name>: %q: %s", part, strings.Join(errs, "; "))
		}
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

// parseNamespaces reads a comma-separated list of namespace names.
func parseNamespaces(v string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, ns := range strings.Split(v, ",") {
		ns = strings.TrimSpace(ns)
		if ns == "" || seen[ns] {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("%q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
		seen[ns] = true
		out = append(out, ns)
	}
	return out, nil
}
