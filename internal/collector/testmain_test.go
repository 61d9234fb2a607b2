package collector

import (
	"context"
	"os"
	"testing"

	"github.com/costops/cost-analysis-operator/internal/store/pgtest"
)

// runMainEnv makes the test binary a task pod's collector: Main on the process's
// environment, for the tests that kill it.
const runMainEnv = "COLLECTOR_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) != "" {
		os.Exit(Main(context.Background(), nil, os.Getenv, os.Stdout, os.Stderr))
	}
	os.Exit(pgtest.Main(m))
}
