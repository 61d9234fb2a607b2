package collector

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

// Environment variables of the collector itself (the task comes through taskpod's).
const (
	EnvOutput                 = "COLLECTOR_OUTPUT"                   // where records go; "-" or empty: stdout
	EnvTerminationMessagePath = "COLLECTOR_TERMINATION_MESSAGE_PATH" // default DefaultTerminationMessagePath
	EnvCallTimeout            = "COLLECTOR_CALL_TIMEOUT"             // Go duration, default DefaultCallTimeout
)

// DefaultTerminationMessagePath is where Kubernetes reads a container's termination
// message by default.
const DefaultTerminationMessagePath = "/dev/termination-log"

// Main is the collector program: it returns the exit code (0 on success, 1 when the
// task failed or its result could not be written). Flags win over the COLLECTOR_*
// environment variables.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	logger := slog.New(slog.NewJSONHandler(stderr, nil)).With(
		"job_id", getenv(taskpod.EnvJobID), "job_task_id", getenv(taskpod.EnvJobTaskID))

	fs := flag.NewFlagSet("collector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	output := fs.String("output", orDefault(getenv(EnvOutput), "-"), "file the records go to, one JSON object a line (- for stdout) [$"+EnvOutput+"]")
	termPath := fs.String("termination-message-path", orDefault(getenv(EnvTerminationMessagePath), DefaultTerminationMessagePath),
		"file the result goes to [$"+EnvTerminationMessagePath+"]")
	callTimeout := fs.String("call-timeout", orDefault(getenv(EnvCallTimeout), DefaultCallTimeout.String()),
		"longest wait for each message from the plugin [$"+EnvCallTimeout+"]")
	if err := fs.Parse(args); err != nil {
		return 2
	}

	report := func(res taskpod.Result) int {
		if err := os.WriteFile(*termPath, []byte(res.Encode()), 0o644); err != nil {
			logger.Error("Cannot write the termination message", "path", *termPath, "err", err.Error(), "result", res.Encode())
			return 1
		}
		if res.Failed() {
			return 1
		}
		return 0
	}
	invalid := func(err error) int {
		logger.Error("Invalid task", "err", err.Error())
		return report(taskpod.Result{ErrorCode: ErrorInvalidTask, ErrorMessage: err.Error()})
	}

	cfg, err := ConfigFromEnv(getenv)
	if err != nil {
		return invalid(err)
	}
	if cfg.Plugin.CallTimeout, err = time.ParseDuration(*callTimeout); err != nil || cfg.Plugin.CallTimeout <= 0 {
		return invalid(fmt.Errorf("the call timeout %q is not a positive duration", *callTimeout))
	}
	cfg.Logger = logger
	var file *os.File
	switch *output {
	case "-", "":
		cfg.Output = stdout
	default:
		if file, err = os.Create(*output); err != nil {
			logger.Error("Cannot open the output", "err", err.Error())
			return report(taskpod.Result{ErrorCode: ErrorOutput, ErrorMessage: err.Error()})
		}
		cfg.Output = file
	}
	res, _ := Run(ctx, cfg)
	if file != nil {
		if err := file.Close(); err != nil && !res.Failed() {
			res = taskpod.Result{ErrorCode: ErrorOutput, ErrorMessage: fmt.Sprintf("writing the output: %v", err)}
		}
	}
	return report(res)
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
