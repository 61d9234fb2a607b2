package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/costops/cost-analysis-operator/test/e2e/framework"
)

// clusterName is the suite's own local control plane (E2E_CLUSTER_NAME overrides it).
const clusterName = "e2e"

// planRetryWindow is the manager's --plan-retry-window: long enough for the plugin
// restart test, short enough for the test of a plugin that never comes back.
const planRetryWindow = 30 * time.Second

var (
	env *framework.Env
	// skipReason is set when the suite cannot run here (no control plane binaries).
	skipReason string
)

func TestMain(m *testing.M) {
	flag.Parse()
	// The tests mostly wait on the cluster: run more of them at once than there are
	// CPUs (go test's default), unless -parallel was given.
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		_ = flag.Set("test.parallel", "8")
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	name := clusterName
	if v := os.Getenv("E2E_CLUSTER_NAME"); v != "" {
		name = v
	}
	start := time.Now()
	e, skip, err := framework.Start(context.Background(), framework.Options{
		ClusterName: name,
		ManagerArgs: []string{"--plan-retry-window=" + planRetryWindow.String()},
		KeepLogs:    os.Getenv("E2E_KEEP_LOGS") != "",
	})
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "e2e: setting up: %v\n", err)
		return 1
	case skip != "":
		skipReason = skip
		return m.Run() // every test skips with the reason
	}
	env = e
	fmt.Fprintf(os.Stderr, "e2e: set up in %s\n", time.Since(start).Round(time.Millisecond))
	code := m.Run()
	if code != 0 {
		env.Fail()
	}
	start = time.Now()
	env.Stop()
	fmt.Fprintf(os.Stderr, "e2e: torn down in %s\n", time.Since(start).Round(time.Millisecond))
	// The teardown's own test: nothing of the real node (its kubelet, containerd, shims
	// and containers, mounts, cgroups, bridge, CNI cache) is left on the machine.
	if err := env.CheckClean(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: %v\n", err)
		return 1
	}
	if env.RealNode {
		fmt.Fprintf(os.Stderr, "e2e: the real node left nothing mounted or running\n")
	}
	return code
}
