// Package collector is the program of a task pod (cmd/collector). It reads its task
// from the task-pod contract (internal/taskpod) and the DataSource's secret from the
// mounted files, streams the task's costs from the plugin's Cost.get_data into the
// run's store (internal/store) and reports the outcome as a taskpod.Result in the
// pod's termination message: the rows and bytes stored, or a SpaceONE-style error
// code and message.
//
// # The task
//
// A pod of an Indexed batch Job reads its task (JobTask name and UID, task_options,
// task_changed) from its task file: COST_ANALYSIS_TASKS_DIR names the directory of
// the batch Job's task ConfigMap, and the file is the pod's completion index
// (JOB_COMPLETION_INDEX, which Kubernetes sets), parsed by taskpod.ParseTask.
// Without COST_ANALYSIS_TASKS_DIR the task comes from COST_ANALYSIS_JOB_TASK_ID,
// COST_ANALYSIS_JOB_TASK_UID, COST_ANALYSIS_TASK_OPTIONS and
// COST_ANALYSIS_TASK_CHANGED (a collector run by hand). When both are set the file
// wins and those four variables are ignored: a pod spec is the same for every task
// of its batch Job, so only the file can be this pod's task. A task file that is
// missing or malformed, or an index that is not a non-negative integer, fails the
// task with ERROR_INVALID_TASK and a message naming the file. Everything else
// (plugin, store, the run's identities) comes from the environment either way.
//
// # The store
//
// The store's DSN comes from COST_ANALYSIS_STORE_DSN (the operator sets it from the
// run's store Secret with an env valueFrom) or from a file named by
// --store-dsn-file / COLLECTOR_STORE_DSN_FILE (a mounted Secret key). When a file
// is named it wins: naming one is a deliberate choice, while the env var is what
// the operator always sets; the log says which source was used. The DSN itself is
// never logged nor reported: logs and messages name the store by user, host, port
// and database (store.Redact) and any error text is scrubbed of the DSN and its
// password. With a store the task's identity is required: job, job task and data
// source names and UIDs, and the domain (COST_ANALYSIS_*_ID, *_UID); the attempt
// is COST_ANALYSIS_POD_NAME (the host name when unset).
//
// One attempt of a task is one store.WriteTask, that is one transaction: the
// get_data stream runs in a goroutine that hands batches of records (Config.
// BatchSize) through a bounded queue to WriteTask's COPY, so the plugin and the
// database work at the same time and memory stays bounded. The transaction is
// opened when the first batch is ready (a plugin may think for minutes before it
// sends anything; the transaction does not wait through that), and a failure of
// either side cancels the other: a plugin failure rolls the transaction back, a
// store failure cancels the stream. A killed pod leaves nothing (its transaction
// aborts); a retried task ends with the rows of its last attempt exactly once.
// created_count is the rows stored and collected_bytes the bytes stored
// (store.WriteResult).
//
// Each record goes through storeRecord, the one place a plugin record becomes a
// store record. store.Record has an account_id that CostInfo lacks: it is the
// task options' "account_id" when that is a string (SpaceONE plugins that split a
// run per linked account put it there), else empty.
//
// Without a store the records can go, as JSON lines, to an output named with
// --output / COLLECTOR_OUTPUT ("-" for stdout): a developer's dry run. A task with
// neither fails with ERROR_INVALID_TASK, never a success for records that went
// nowhere; a task with both fails too (the records go to one place).
package collector

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/costops/cost-analysis-operator/internal/plugin"
	"github.com/costops/cost-analysis-operator/internal/store"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

// The error codes a collector reports. A plugin's own failure is ErrorGetData, or
// ErrorPluginPrefix and the gRPC code ("ERROR_PLUGIN_INVALID_ARGUMENT") when the
// plugin gave a specific one.
const (
	ErrorGetData           = "ERROR_GET_DATA"
	ErrorInvalidTask       = "ERROR_INVALID_TASK"
	ErrorInvalidPluginData = "ERROR_INVALID_PLUGIN_DATA"
	ErrorOutput            = "ERROR_OUTPUT"
	ErrorPluginUnavailable = "ERROR_PLUGIN_UNAVAILABLE"
	ErrorPluginTimeout     = "ERROR_PLUGIN_TIMEOUT"
	ErrorCanceled          = "ERROR_CANCELED"
	ErrorPluginPrefix      = "ERROR_PLUGIN_"
	// ErrorStore: the store could not be reached, or refused the write for a
	// reason of its own (the message never holds the DSN or its password).
	ErrorStore = "ERROR_STORE"
	// ErrorRunClosed: the run was committed or rolled back before this task's rows
	// were written (the pod is late: its run ended without it).
	ErrorRunClosed = "ERROR_RUN_CLOSED"
)

// DefaultCallTimeout bounds the wait for each message of get_data's stream: a
// plugin may query its billing API for a while before it sends anything.
const DefaultCallTimeout = 5 * time.Minute

// DefaultBatchSize is how many records go to the store in one batch.
const DefaultBatchSize = 1000

// maxBatchSize bounds Config.BatchSize (a batch is held in memory, with
// batchQueue more of them).
const maxBatchSize = 100_000

// DefaultStoreConnectTimeout bounds connecting to the store, over attempts of
// storeConnectAttempt each.
const DefaultStoreConnectTimeout = 60 * time.Second

const storeConnectAttempt = 5 * time.Second

// storeConnectTimeout is DefaultStoreConnectTimeout; tests shorten it.
var storeConnectTimeout = DefaultStoreConnectTimeout

// Error is a failure with the code the collector reports for it.
type Error struct {
	Code string
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func invalidTask(format string, args ...any) *Error {
	return &Error{Code: ErrorInvalidTask, Err: fmt.Errorf(format, args...)}
}

// Config is one task's collection.
type Config struct {
	// Plugin says where the plugin is and how to call it.
	Plugin plugin.Options
	// Request is the get_data call: plugin options, secret data, schema, task
	// options, domain id.
	Request plugin.GetDataRequest
	// StoreDSN is the PostgreSQL DSN of the run's store; Run opens it (and never
	// logs it). Without StoreDSN or Store the records go to Output.
	StoreDSN string
	// Store (optional) is an open store, used instead of opening StoreDSN.
	Store *store.Store
	// Task is the attempt's identity in the store: its run, its JobTask and the
	// pod. Required with a store.
	Task store.TaskRef
	// BatchSize is how many records go to the store in one batch; 0 is
	// DefaultBatchSize.
	BatchSize int
	// Output (a developer's dry run, without a store) receives one JSON line per
	// record.
	Output io.Writer
	// Logger (optional) logs the outcome.
	Logger *slog.Logger
	// Pool (optional) provides the connection; by default a pool of the run's own.
	Pool *plugin.Pool

	// dsnSource says where StoreDSN came from, for the log.
	dsnSource string
	// taskSource says where the task came from ("env" or "file <path>"), for the
	// log.
	taskSource string
}

// ConfigFromEnv reads a task from the taskpod environment variables (getenv is
// os.Getenv in a pod) and, when COST_ANALYSIS_TASKS_DIR is set, from the task file
// of the pod's completion index (which wins over the task's own variables; see
// the package doc), its secret data from the secret directory and its store's
// DSN from COST_ANALYSIS_STORE_DSN or, when COLLECTOR_STORE_DSN_FILE names one,
// from that file (which wins). With a DSN the task's identity is required. The
// Output is left unset. A task that cannot be read is an *Error with
// ErrorInvalidTask. The JobTask's name and UID (cfg.Task) are filled as soon as
// they are read, so that a later failure can still be logged with them.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var cfg Config
	t, err := readTask(getenv)
	cfg.Task.JobTask, cfg.Task.JobTaskUID, cfg.taskSource = t.jobTask, t.jobTaskUID, t.source
	if err != nil {
		return cfg, err
	}
	if cfg.Request.TaskOptions, err = jsonObject(t.optionsFrom, t.options); err != nil {
		return cfg, err
	}
	if strings.TrimSpace(t.changed) != "" {
		// Not sent to get_data, but a task whose window cannot be read is not the
		// task the operator meant.
		if _, err := jsonObject(t.changedFrom, t.changed); err != nil {
			return cfg, err
		}
	}

	cfg.Plugin.Endpoint = strings.TrimSpace(getenv(taskpod.EnvPluginEndpoint))
	if cfg.Plugin.Endpoint == "" {
		return cfg, invalidTask("%s is not set", taskpod.EnvPluginEndpoint)
	}
	useTLS, err := envBool(getenv, taskpod.EnvPluginTLS)
	if err != nil {
		return cfg, err
	}
	if useTLS {
		skip, err := envBool(getenv, taskpod.EnvPluginInsecure)
		if err != nil {
			return cfg, err
		}
		cfg.Plugin.TLS = &plugin.TLSConfig{ServerName: getenv(taskpod.EnvPluginServerName), InsecureSkipVerify: skip}
		if f := getenv(taskpod.EnvPluginCAFile); f != "" {
			pem, err := os.ReadFile(f)
			if err != nil {
				return cfg, invalidTask("reading the plugin's CA from %s: %v", f, err)
			}
			cfg.Plugin.TLS.CAPEM = pem
		}
	}

	if cfg.Request.Options, err = jsonObject(taskpod.EnvPluginOptions, getenv(taskpod.EnvPluginOptions)); err != nil {
		return cfg, err
	}
	cfg.Request.Schema = getenv(taskpod.EnvPluginSchema)
	cfg.Request.DomainID = getenv(taskpod.EnvDomainID)

	dir := getenv(taskpod.EnvSecretDir)
	if dir == "" {
		dir = taskpod.SecretMountPath
	}
	if cfg.Request.SecretData, err = ReadSecretDir(dir); err != nil {
		return cfg, err
	}
	if err := storeFromEnv(getenv, &cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// storeFromEnv reads the store's DSN and the task's identity in it (its JobTask,
// read with the task, is in cfg.Task already).
func storeFromEnv(getenv func(string) string, cfg *Config) error {
	env := func(name string) string { return strings.TrimSpace(getenv(name)) }
	cfg.Task = store.TaskRef{
		Domain:     env(taskpod.EnvDomainID),
		DataSource: env(taskpod.EnvDataSourceID), DataSourceUID: env(taskpod.EnvDataSourceUID),
		Job: env(taskpod.EnvJobID), JobUID: env(taskpod.EnvJobUID),
		JobTask: cfg.Task.JobTask, JobTaskUID: cfg.Task.JobTaskUID,
		Attempt: env(taskpod.EnvPodName),
	}
	if cfg.Task.Attempt == "" {
		cfg.Task.Attempt, _ = os.Hostname() // a pod's host name is its name
	}
	cfg.StoreDSN, cfg.dsnSource = env(taskpod.EnvStoreDSN), "env "+taskpod.EnvStoreDSN
	if f := env(EnvStoreDSNFile); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return invalidTask("reading the store DSN from %s: %v", f, err)
		}
		cfg.StoreDSN, cfg.dsnSource = strings.TrimSpace(string(b)), "file "+f
		if cfg.StoreDSN == "" {
			return invalidTask("the store DSN file %s (%s) is empty", f, EnvStoreDSNFile)
		}
	}
	if cfg.StoreDSN == "" {
		return nil
	}
	for _, v := range []struct{ name, value string }{
		{taskpod.EnvDomainID, cfg.Task.Domain},
		{taskpod.EnvDataSourceID, cfg.Task.DataSource}, {taskpod.EnvDataSourceUID, cfg.Task.DataSourceUID},
		{taskpod.EnvJobID, cfg.Task.Job}, {taskpod.EnvJobUID, cfg.Task.JobUID},
		{taskpod.EnvJobTaskID, cfg.Task.JobTask}, {taskpod.EnvJobTaskUID, cfg.Task.JobTaskUID},
	} {
		if v.value == "" {
			return invalidTask("%s is not set: a task that writes to a store needs its identity", v.name)
		}
	}
	return nil
}

// taskInput is the task itself, as the pod received it: its JobTask and the raw
// task_options and task_changed, with the names of where each came from for
// messages.
type taskInput struct {
	jobTask, jobTaskUID      string
	options, changed         string
	optionsFrom, changedFrom string
	// source is "env" or "file <path>", for the log.
	source string
}

// readTask reads the task from the task file when EnvTasksDir is set, else from
// the task's environment variables. The JobTask's name and UID are returned even
// with an error, when they were read.
func readTask(getenv func(string) string) (taskInput, error) {
	dir := strings.TrimSpace(getenv(taskpod.EnvTasksDir))
	if dir == "" {
		t := taskInput{
			jobTask:     strings.TrimSpace(getenv(taskpod.EnvJobTaskID)),
			jobTaskUID:  strings.TrimSpace(getenv(taskpod.EnvJobTaskUID)),
			options:     getenv(taskpod.EnvTaskOptions),
			changed:     getenv(taskpod.EnvTaskChanged),
			optionsFrom: taskpod.EnvTaskOptions, changedFrom: taskpod.EnvTaskChanged,
			source: "env",
		}
		if strings.TrimSpace(t.options) == "" {
			return t, invalidTask("%s is not set", taskpod.EnvTaskOptions)
		}
		return t, nil
	}
	return readTaskFile(dir, getenv(taskpod.EnvCompletionIndex))
}

// readTaskFile reads the task file of completion index index in dir.
func readTaskFile(dir, index string) (taskInput, error) {
	index = strings.TrimSpace(index)
	if index == "" {
		return taskInput{}, invalidTask("%s is set but %s is not: the task file is named by the completion index of a pod of an Indexed Job",
			taskpod.EnvTasksDir, taskpod.EnvCompletionIndex)
	}
	// The ConfigMap's keys are the indexes in decimal: "+1" or "01" name no file.
	i, err := strconv.Atoi(index)
	if err != nil || i < 0 || strconv.Itoa(i) != index {
		return taskInput{}, invalidTask("%s %q is not a non-negative integer: it names no task file in %s",
			taskpod.EnvCompletionIndex, index, dir)
	}
	path := filepath.Join(dir, index)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return taskInput{}, invalidTask("the task file %s does not exist: no task for completion index %s in %s (is the batch Job's task ConfigMap mounted there?)",
			path, index, dir)
	}
	if err != nil {
		return taskInput{}, invalidTask("reading the task file %s: %v", path, err)
	}
	task, err := taskpod.ParseTask(b)
	if err != nil {
		return taskInput{}, invalidTask("%s: %v", path, err)
	}
	t := taskInput{
		jobTask:     strings.TrimSpace(task.JobTaskID),
		jobTaskUID:  strings.TrimSpace(task.JobTaskUID),
		options:     string(task.Options),
		changed:     string(task.Changed),
		optionsFrom: "task_options of the task file " + path,
		changedFrom: "task_changed of the task file " + path,
		source:      "file " + path,
	}
	if t.jobTask == "" || t.jobTaskUID == "" {
		return t, invalidTask("%s: the task file's job_task_id or job_task_uid is blank", path)
	}
	return t, nil
}

func envBool(getenv func(string) string, name string) (bool, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, invalidTask("%s must be true or false, not %q", name, v)
	}
	return b, nil
}

// jsonObject decodes an environment variable that holds a JSON object; empty is an
// empty object.
func jsonObject(name, value string) (map[string]any, error) {
	if strings.TrimSpace(value) == "" {
		return map[string]any{}, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(value), &m); err != nil {
		return nil, invalidTask("%s is not a JSON object: %v", name, err)
	}
	if m == nil {
		return nil, invalidTask("%s is null, not a JSON object", name)
	}
	return m, nil
}

// ReadSecretDir reads a mounted Secret: one key per regular file, its content the
// value. The "..data"-style entries Kubernetes adds are skipped, and a directory
// that does not exist is an empty secret.
func ReadSecretDir(dir string) (map[string]any, error) {
	out := map[string]any{}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, invalidTask("reading the secret directory: %v", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		info, err := os.Stat(path) // follows the symlinks of a Secret volume
		if err != nil {
			return nil, invalidTask("reading secret key %s: %v", e.Name(), err)
		}
		if !info.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, invalidTask("reading secret key %s: %v", e.Name(), err)
		}
		out[e.Name()] = string(b)
	}
	return out, nil
}

// Run collects one task: it streams the records from the plugin into the store
// (cfg.Store, or cfg.StoreDSN opened for the run) as one store.WriteTask of
// cfg.Task, or, without a store, into cfg.Output as JSON lines, and returns the
// result to report. On failure the error is returned too, and the result
// carries its code and message. A record that breaks the data contract (see
// plugin.CostRecordFromInfo, and store.Record.Validate) fails the task with
// ErrorInvalidPluginData and a message naming the record and field. A task with
// neither a store nor an output fails with ErrorInvalidTask.
func Run(ctx context.Context, cfg Config) (taskpod.Result, error) {
	c := &collection{cfg: cfg, logger: cfg.Logger, start: time.Now()}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	toStore := cfg.Store != nil || cfg.StoreDSN != ""
	switch {
	case toStore && cfg.Output != nil:
		return c.fail(invalidTask("both a store and an output were given: the records go to one of them"))
	case !toStore && cfg.Output == nil:
		return c.fail(invalidTask("no store: %s is not set (a dry run names an output: --output or %s)",
			taskpod.EnvStoreDSN, EnvOutput))
	case cfg.BatchSize < 0 || cfg.BatchSize > maxBatchSize:
		return c.fail(invalidTask("the batch size %d is not from 1 to %d", cfg.BatchSize, maxBatchSize))
	}
	pool := cfg.Pool
	if pool == nil {
		pool = plugin.NewPool()
		defer pool.Close()
	}
	cl, err := pool.Client(cfg.Plugin)
	if err != nil {
		return c.fail(&Error{Code: ErrorInvalidTask, Err: err})
	}
	if toStore {
		return c.toStore(ctx, cl)
	}
	return c.toOutput(ctx, cl)
}

// collection is one Run.
type collection struct {
	cfg    Config
	logger *slog.Logger
	start  time.Time
	// records counts the records the plugin streamed; bytes the bytes written
	// (to the output; the store reports its own).
	records, bytes int64
}

// fail is the result of a failure, logged.
func (c *collection) fail(err error) (taskpod.Result, error) {
	msg := err.Error()
	var re *plugin.RecordError
	var ie *store.InvalidRecordError
	switch {
	case errors.As(err, &re):
		// The record's own message says which one it is and what is wrong:
		// "record 17 (account 1111, product EC2): billed_date ... is not a date".
		msg = re.Error()
	case errors.As(err, &ie):
		msg = ie.Error() // "invalid cost record #17: tags: not JSON: ..."
	case c.records > 0:
		msg = fmt.Sprintf("%s (after %d records)", msg, c.records)
	}
	res := taskpod.Result{ErrorCode: ErrorCode(err), ErrorMessage: msg, CollectedBytes: c.bytes}
	c.logger.Error("Collection failed", "code", res.ErrorCode, "err", msg, "records", c.records, "bytes", c.bytes)
	return res, err
}

// succeed is the result of a task that stored (or wrote) rows records.
func (c *collection) succeed(rows, bytes int64) (taskpod.Result, error) {
	c.logger.Info("Collected", "records", rows, "bytes", bytes, "duration", time.Since(c.start).String())
	return taskpod.Result{CreatedCount: &rows, CollectedBytes: bytes}, nil
}

// toOutput is a dry run: the records as JSON lines, the way they would be stored.
func (c *collection) toOutput(ctx context.Context, cl *plugin.Client) (taskpod.Result, error) {
	account := accountID(c.cfg.Request.TaskOptions)
	out := bufio.NewWriterSize(c.cfg.Output, 64<<10)
	err := cl.GetData(ctx, c.cfg.Request, func(r plugin.CostRecord) error {
		line, err := json.Marshal(storeRecord(r, account))
		if err != nil {
			return &Error{Code: ErrorInvalidPluginData, Err: fmt.Errorf("record %d cannot be encoded: %w", c.records, err)}
		}
		line = append(line, '\n')
		if _, err := out.Write(line); err != nil {
			return &Error{Code: ErrorOutput, Err: fmt.Errorf("writing record %d: %w", c.records, err)}
		}
		c.records++
		c.bytes += int64(len(line))
		return nil
	})
	if ferr := out.Flush(); ferr != nil && err == nil {
		err = &Error{Code: ErrorOutput, Err: fmt.Errorf("writing the records: %w", ferr)}
	}
	if err != nil {
		return c.fail(err)
	}
	return c.succeed(c.records, c.bytes)
}

// ErrorCode is the code a failure is reported with.
func ErrorCode(err error) string {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	var me *plugin.MalformedError
	var re *plugin.RecordError
	if errors.As(err, &me) || errors.As(err, &re) || errors.Is(err, store.ErrInvalidRecord) {
		return ErrorInvalidPluginData
	}
	if errors.Is(err, store.ErrRunClosed) {
		return ErrorRunClosed
	}
	var pe *plugin.Error
	if !errors.As(err, &pe) {
		return ErrorGetData
	}
	switch pe.Code {
	case codes.Unavailable:
		return ErrorPluginUnavailable
	case codes.DeadlineExceeded:
		return ErrorPluginTimeout
	case codes.Canceled:
		return ErrorCanceled
	case codes.Unknown, codes.Internal, codes.OK:
		return ErrorGetData
	default:
		return ErrorPluginPrefix + upperSnake(pe.Code.String())
	}
}

// upperSnake turns "InvalidArgument" into "INVALID_ARGUMENT".
func upperSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}
