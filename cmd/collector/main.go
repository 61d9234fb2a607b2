// Command collector is the program of a task pod: it collects one JobTask's costs
// from the plugin's Cost.get_data and reports the outcome in the termination message
// (see internal/collector and the contract in internal/taskpod).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/costops/cost-analysis-operator/internal/collector"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := collector.Main(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
