package framework

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultStoreSecret is the Secret hack/cluster.sh makes for the cluster's
// PostgreSQL, which Start gives the manager as its default store.
const DefaultStoreSecret = "cost-analysis-system/cost-analysis-store"

// Options say how Start sets the product up.
type Options struct {
	// ClusterName is hack/cluster.sh's CLUSTER_NAME; it must not be the default
	// cluster's (a developer's `make run` or `make demo`).
	ClusterName string
	// ManagerArgs are added to the manager's flags (its metrics and probe addresses
	// and API addresses are chosen by Start).
	ManagerArgs []string
	// Log receives progress messages; nil means os.Stderr.
	Log io.Writer
	// KeepLogs keeps the log directory after a clean Stop.
	KeepLogs bool
	// InCluster leaves out the manager and sample-plugin processes: the suite
	// installs them into the cluster itself (the deploy suite).
	InCluster bool
	// RealNode is hack/cluster.sh's CLUSTER_REAL_NODE: "" means "1" (required) under
	// CI=true and "auto" (when the machine can) elsewhere; "0" leaves it out (the
	// scale benchmark, whose pods all run on kwok nodes).
	RealNode string
}

// Env is the product running on its own local control plane: the cluster, the sample
// plugin and the manager, each a process of its own.
type Env struct {
	Root    string
	KubeBin string
	Cluster *Cluster
	Kubectl Kubectl
	// LogDir holds the processes' logs (manager.log, plugin.log, ...).
	LogDir string

	// RealNode says whether the cluster has its real node (hack/node.sh), where
	// ordinary pods run the project's images; HostAddr is then the address at which
	// its pods reach this host (where the plugin listens), else 127.0.0.1.
	RealNode bool
	HostAddr string

	// StoreDSN is the cluster's PostgreSQL (hack/postgres.sh), the manager's default
	// store (the Secret DefaultStoreSecret holds it).
	StoreDSN string

	Plugin     *Process
	PluginAddr string // HostAddr:port of Plugin
	Manager    *Process
	// MetricsAddr and ProbeAddr are the manager's metrics and health endpoints;
	// APIAddr is its HTTPS API (SpaceONE cost-analysis and job metering, self-signed).
	MetricsAddr, ProbeAddr, APIAddr string

	opts     Options
	log      io.Writer
	guard    *Guard
	teardown *Teardown
	failed   bool
}

// Start builds bin/manager and bin/sample-plugin, starts a fresh local control plane
// named opts.ClusterName, the sample plugin and the manager. When the control plane's
// binaries are not built, it returns a reason to skip and no error. Whatever happens,
// Stop (also run on SIGINT/SIGTERM) removes what Start made; a reaper removes the
// cluster when the test process dies without calling it.
func Start(ctx context.Context, opts Options) (env *Env, skip string, err error) {
	if opts.ClusterName == "" || opts.ClusterName == DefaultClusterName {
		return nil, "", fmt.Errorf("a suite needs a cluster name of its own, not %q", opts.ClusterName)
	}
	log := opts.Log
	if log == nil {
		log = os.Stderr
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, "", err
	}
	kubeBin, missing, err := KubeBin(root)
	if err != nil {
		return nil, "", err
	}
	if len(missing) > 0 {
		return nil, fmt.Sprintf("the local control plane is not built (%s missing from %s): run `make kube-bins` first",
			strings.Join(missing, ", "), kubeBin), nil
	}

	e := &Env{Root: root, KubeBin: kubeBin, opts: opts, log: log, teardown: NewTeardown(log)}
	defer func() {
		if err != nil {
			e.failed = true
			e.Stop()
		}
	}()
	if e.LogDir, err = os.MkdirTemp("", "cost-analysis-"+opts.ClusterName+"-"); err != nil {
		return nil, "", err
	}
	e.logf("logs in %s", e.LogDir)
	reaperLog, err := os.Create(filepath.Join(e.LogDir, "reaper.log"))
	if err != nil {
		return nil, "", err
	}
	// A file, not a pipe: the reaper writes to it after this process is gone.
	if e.guard, err = Acquire(ctx, root, opts.ClusterName, 10*time.Minute, log, reaperLog); err != nil {
		return nil, "", err
	}
	e.teardown.Add(e.guard.Release)

	start := time.Now()
	if !opts.InCluster {
		if err := Build(ctx, root, map[string]string{"manager": ".", "sample-plugin": "./cmd/sample-plugin"}); err != nil {
			return nil, "", err
		}
		e.logf("built bin/manager and bin/sample-plugin in %s", time.Since(start).Round(time.Millisecond))
	}

	clusterLog, err := os.Create(filepath.Join(e.LogDir, "cluster.log"))
	if err != nil {
		return nil, "", err
	}
	realNode := opts.RealNode
	if realNode == "" {
		realNode = "auto"
		if os.Getenv("CI") == "true" {
			realNode = "1" // never skipped in CI: hack/cluster.sh fails without it
		}
	}
	e.Cluster = &Cluster{Root: root, Name: opts.ClusterName, Log: clusterLog, RealNode: realNode}
	e.teardown.Add(func() {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := e.Cluster.Down(ctx); err != nil {
			e.logf("removing the cluster: %v", err)
			return
		}
		e.logf("cluster %s removed in %s", e.Cluster.Name, time.Since(start).Round(time.Millisecond))
	})
	start = time.Now()
	if e.Cluster.Exists() {
		// Left by a run that could not tear down (we hold the lock: nobody uses it).
		e.logf("removing cluster %s left over by an earlier run", opts.ClusterName)
		if err := e.Cluster.Down(ctx); err != nil {
			return nil, "", err
		}
	}
	if err := e.Cluster.Up(ctx); err != nil {
		return nil, "", err
	}
	e.Kubectl = NewKubectl(kubeBin, e.Cluster.Kubeconfig())
	e.HostAddr, e.RealNode = e.Cluster.HostAddress(ctx)
	nodes := "kwok nodes only"
	if e.RealNode {
		nodes = "real node " + e.Cluster.RealNodeName() + ", host at " + e.HostAddr
	} else {
		e.HostAddr = "127.0.0.1"
	}
	e.logf("cluster %s up in %s (%s; kubeconfig %s)", opts.ClusterName, time.Since(start).Round(time.Millisecond), nodes, e.Cluster.Kubeconfig())
	if e.StoreDSN, err = e.Cluster.StoreDSN(ctx); err != nil {
		return nil, "", err // hack/cluster.sh up starts it or fails: never skipped
	}
	if opts.InCluster {
		return e, "", nil
	}

	port, err := FreePort()
	if err != nil {
		return nil, "", err
	}
	e.PluginAddr = net.JoinHostPort(e.HostAddr, strconv.Itoa(port))
	if e.Plugin, err = e.StartPlugin(ctx, "plugin", e.PluginAddr); err != nil {
		return nil, "", err
	}

	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = FreePort(); err != nil {
			return nil, "", err
		}
	}
	e.MetricsAddr, e.ProbeAddr, e.APIAddr = LoopbackAddr(ports[0]), LoopbackAddr(ports[1]), LoopbackAddr(ports[2])
	args := append([]string{
		"--metrics-bind-address=" + e.MetricsAddr,
		"--health-probe-bind-address=" + e.ProbeAddr,
		"--api-bind-address=" + e.APIAddr,
		"--default-store-secret=" + DefaultStoreSecret,
	}, opts.ManagerArgs...)
	e.Manager = &Process{
		Name: "manager", Path: filepath.Join(root, "bin", "manager"), Args: args,
		Env: []string{"KUBECONFIG=" + e.Cluster.Kubeconfig()}, LogPath: filepath.Join(e.LogDir, "manager.log"),
	}
	e.teardown.Add(func() { e.stopProcess(e.Manager) })
	if err := e.StartManager(ctx); err != nil {
		return nil, "", err
	}
	e.logf("manager running (pid %d, metrics https://%s/metrics)", e.Manager.Pid(), e.MetricsAddr)
	return e, "", nil
}

// StartPlugin starts a sample plugin on addr (logging every call) and waits until it
// listens; Stop stops it.
func (e *Env) StartPlugin(ctx context.Context, name, addr string) (*Process, error) {
	p := &Process{
		Name: name, Path: filepath.Join(e.Root, "bin", "sample-plugin"), Args: []string{"--listen", addr, "-v"},
		LogPath: filepath.Join(e.LogDir, name+".log"),
	}
	e.teardown.Add(func() { e.stopProcess(p) })
	if err := p.Start(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return p, WaitTCP(ctx, p, addr)
}

// StartManager starts the manager (again) and waits until it is ready.
func (e *Env) StartManager(ctx context.Context) error {
	if err := e.Manager.Start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return WaitHTTP(ctx, e.Manager, "http://"+e.ProbeAddr+"/readyz")
}

func (e *Env) stopProcess(p *Process) {
	if err := p.Stop(10 * time.Second); err != nil {
		e.logf("stopping %s: %v", p.Name, err)
	}
}

// CheckClean reports what the cluster's real node left on the machine after Stop:
// mounts, processes, cgroups, its bridge, CNI's cache or its directory.
func (e *Env) CheckClean(ctx context.Context) error {
	if e.Cluster == nil {
		return nil
	}
	left, err := e.Cluster.Leftovers(ctx)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("the teardown of cluster %s left behind:\n  %s", e.Cluster.Name, strings.Join(left, "\n  "))
	}
	return nil
}

// Fail marks the run as failed: Stop then keeps the logs.
func (e *Env) Fail() { e.failed = true }

// Stop stops the manager and the plugins, removes the cluster and releases the lock;
// it keeps the log directory when the run failed (or Options.KeepLogs).
func (e *Env) Stop() {
	e.teardown.Run()
	if e.LogDir == "" {
		return
	}
	if e.failed || e.opts.KeepLogs {
		e.logf("logs kept in %s", e.LogDir)
		return
	}
	_ = os.RemoveAll(e.LogDir)
}

func (e *Env) logf(format string, args ...any) {
	fmt.Fprintf(e.log, "%s: %s\n", e.opts.ClusterName, fmt.Sprintf(format, args...))
}
