package collector

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

// Environment variables of the collector itself (the task comes through taskpod's).
// Each has a flag of the same meaning, which wins over it.
const (
	EnvOutput                 = "COLLECTOR_OUTPUT"                   // dry run without a store: the file for JSON lines, "-" for stdout
	EnvStoreDSNFile           = "COLLECTOR_STORE_DSN_FILE"           // file holding the store's DSN; wins over COST_ANALYSIS_STORE_DSN
	EnvBatchSize              = "COLLECTOR_BATCH_SIZE"               // records per batch to the store, default DefaultBatchSize
	EnvTerminationMessagePath = "COLLECTOR_TERMINATION_MESSAGE_PATH" // default DefaultTerminationMessagePath
	EnvCallTimeout            = "COLLECTOR_CALL_TIMEOUT"             // Go duration, default DefaultCallTimeout
)

// DefaultTerminationMessagePath is where Kubernetes reads a container's termination
// message by default.
const DefaultTerminationMessagePath = "/dev/termination-log"

const usage = `Usage: collector [flags]

The program of a cost-analysis task pod. It reads its task as the task-pod
contract says (below) and the DataSource's secret from the mounted files, streams
the task's costs from the plugin's Cost.get_data into the run's PostgreSQL store
(one transaction per attempt: a retried task's rows are stored exactly once, a
killed attempt leaves nothing) and writes the result to the termination message:
{"created_count":N,"collected_bytes":B}, or {"error_code":"...","error_message":"..."}
with exit code 1.

The task (its JobTask name and UID, task_options and task_changed) comes from the
task file $COST_ANALYSIS_TASKS_DIR/$JOB_COMPLETION_INDEX when COST_ANALYSIS_TASKS_DIR
is set (a pod of an Indexed batch Job: the directory is the batch Job's task
ConfigMap, JOB_COMPLETION_INDEX is set by Kubernetes); the file then wins over
COST_ANALYSIS_JOB_TASK_ID, COST_ANALYSIS_JOB_TASK_UID, COST_ANALYSIS_TASK_OPTIONS
and COST_ANALYSIS_TASK_CHANGED, which give the task otherwise (a run by hand). A
missing or malformed task file, or an index that is not a non-negative integer,
fails the task with ERROR_INVALID_TASK. The plugin (COST_ANALYSIS_PLUGIN_*), the
run's identities (COST_ANALYSIS_{JOB,DATA_SOURCE,DOMAIN}_ID, *_UID,
COST_ANALYSIS_POD_NAME) and the secret directory (COST_ANALYSIS_SECRET_DIR) come
from the environment either way.

The store's DSN is COST_ANALYSIS_STORE_DSN (set by the operator from the store
Secret), or the content of the file --store-dsn-file names, which wins. It is never
logged. Without a store, --output makes a dry run that writes the records as JSON
lines instead; with neither, the task fails with ERROR_INVALID_TASK.

Flags (each also read from the environment variable in brackets):
`

// Main is the collector program: it returns the exit code (0 on success, 1 when the
// task failed or its result could not be written, 2 for bad flags). Flags win over
// the COLLECTOR_* environment variables.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	logger := slog.New(slog.NewJSONHandler(stderr, nil)).With("job_id", getenv(taskpod.EnvJobID))

	fs := flag.NewFlagSet("collector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	output := fs.String("output", getenv(EnvOutput),
		"dry run without a store: the file the records go to, one JSON object a line (- for stdout) [$"+EnvOutput+"]")
	dsnFile := fs.String("store-dsn-file", getenv(EnvStoreDSNFile),
		"file holding the store's DSN (a mounted Secret key); wins over $"+taskpod.EnvStoreDSN+" [$"+EnvStoreDSNFile+"]")
	batchSize := fs.String("batch-size", orDefault(getenv(EnvBatchSize), strconv.Itoa(DefaultBatchSize)),
		"records per batch to the store [$"+EnvBatchSize+"]")
	termPath := fs.String("termination-message-path", orDefault(getenv(EnvTerminationMessagePath), DefaultTerminationMessagePath),
		"file the result goes to [$"+EnvTerminationMessagePath+"]")
	callTimeout := fs.String("call-timeout", orDefault(getenv(EnvCallTimeout), DefaultCallTimeout.String()),
		"longest wait for each message from the plugin [$"+EnvCallTimeout+"]")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
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

	cfg, err := ConfigFromEnv(func(name string) string {
		if name == EnvStoreDSNFile {
			return *dsnFile // the flag, or the variable it defaults to
		}
		return getenv(name)
	})
	// The task's name is known once it is read (from the task file or the
	// environment); a task file that could not be read is named by its index.
	if cfg.Task.JobTask != "" {
		logger = logger.With("job_task_id", cfg.Task.JobTask, "task_from", cfg.taskSource)
	} else if getenv(taskpod.EnvTasksDir) != "" {
		logger = logger.With("completion_index", getenv(taskpod.EnvCompletionIndex))
	}
	if err != nil {
		return invalid(err)
	}
	if cfg.Plugin.CallTimeout, err = time.ParseDuration(*callTimeout); err != nil || cfg.Plugin.CallTimeout <= 0 {
		return invalid(fmt.Errorf("the call timeout %q is not a positive duration", *callTimeout))
	}
	if cfg.BatchSize, err = strconv.Atoi(strings.TrimSpace(*batchSize)); err != nil || cfg.BatchSize <= 0 || cfg.BatchSize > maxBatchSize {
		return invalid(fmt.Errorf("the batch size %q is not a whole number from 1 to %d", *batchSize, maxBatchSize))
	}
	cfg.Logger = logger
	var file *os.File
	switch *output {
	case "":
	case "-":
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
