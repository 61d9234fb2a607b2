// Package collector is the program of a task pod (cmd/collector). It reads its task
// from the environment of the task-pod contract (internal/taskpod) and the
// DataSource's secret from the mounted files, streams the task's costs from the
// plugin's Cost.get_data, writes each record as one JSON line, and reports the
// outcome as a taskpod.Result in the pod's termination message: the number of records
// and bytes collected, or a SpaceONE-style error code and message.
package collector

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/costops/cost-analysis-operator/internal/plugin"
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
)

// DefaultCallTimeout bounds the wait for each message of get_data's stream: a
// plugin may query its billing API for a while before it sends anything.
const DefaultCallTimeout = 5 * time.Minute

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
	// Output receives one JSON line per record.
	Output io.Writer
	// Logger (optional) logs the outcome.
	Logger *slog.Logger
	// Pool (optional) provides the connection; by default a pool of the run's own.
	Pool *plugin.Pool
}

// ConfigFromEnv reads a task from the taskpod environment variables (getenv is
// os.Getenv in a pod) and its secret data from the secret directory. The Output is
// left unset. A task that cannot be read is an *Error with ErrorInvalidTask.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var cfg Config
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

	taskOpts := getenv(taskpod.EnvTaskOptions)
	if strings.TrimSpace(taskOpts) == "" {
		return cfg, invalidTask("%s is not set", taskpod.EnvTaskOptions)
	}
	if cfg.Request.TaskOptions, err = jsonObject(taskpod.EnvTaskOptions, taskOpts); err != nil {
		return cfg, err
	}
	if cfg.Request.Options, err = jsonObject(taskpod.EnvPluginOptions, getenv(taskpod.EnvPluginOptions)); err != nil {
		return cfg, err
	}
	if changed := getenv(taskpod.EnvTaskChanged); strings.TrimSpace(changed) != "" {
		// Not sent to get_data, but a task whose window cannot be read is not the
		// task the operator meant.
		if _, err := jsonObject(taskpod.EnvTaskChanged, changed); err != nil {
			return cfg, err
		}
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
	return cfg, nil
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

// Run collects one task: it streams the records from the plugin into cfg.Output and
// returns the result to report. On failure the error is returned too, and the
// result carries its code and message (and the bytes collected before it). A record
// that breaks the data contract (see plugin.CostRecordFromInfo) fails the task with
// ErrorInvalidPluginData and the record's plugin.RecordError as the message.
func Run(ctx context.Context, cfg Config) (taskpod.Result, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Output == nil {
		cfg.Output = io.Discard
	}
	pool := cfg.Pool
	if pool == nil {
		pool = plugin.NewPool()
		defer pool.Close()
	}
	start := time.Now()
	var records, written int64
	fail := func(err error) (taskpod.Result, error) {
		msg := err.Error()
		var re *plugin.RecordError
		switch {
		case errors.As(err, &re):
			// The record's own message says which one it is and what is wrong:
			// "record 17 (account 1111, product EC2): billed_date ... is not a date".
			msg = re.Error()
		case records > 0:
			msg = fmt.Sprintf("%s (after %d records)", msg, records)
		}
		res := taskpod.Result{ErrorCode: ErrorCode(err), ErrorMessage: msg, CollectedBytes: written}
		logger.Error("Collection failed", "code", res.ErrorCode, "err", msg, "records", records, "bytes", written)
		return res, err
	}

	cl, err := pool.Client(cfg.Plugin)
	if err != nil {
		return fail(&Error{Code: ErrorInvalidTask, Err: err})
	}
	out := bufio.NewWriterSize(cfg.Output, 64<<10)
	err = cl.GetData(ctx, cfg.Request, func(r plugin.CostRecord) error {
		line, err := json.Marshal(r)
		if err != nil {
			return &Error{Code: ErrorInvalidPluginData, Err: fmt.Errorf("record %d cannot be encoded: %w", records, err)}
		}
		line = append(line, '\n')
		if _, err := out.Write(line); err != nil {
			return &Error{Code: ErrorOutput, Err: fmt.Errorf("writing record %d: %w", records, err)}
		}
		records++
		written += int64(len(line))
		return nil
	})
	if ferr := out.Flush(); ferr != nil && err == nil {
		err = &Error{Code: ErrorOutput, Err: fmt.Errorf("writing the records: %w", ferr)}
	}
	if err != nil {
		return fail(err)
	}
	logger.Info("Collected", "records", records, "bytes", written, "duration", time.Since(start).String())
	return taskpod.Result{CreatedCount: &records, CollectedBytes: written}, nil
}

// ErrorCode is the code a failure is reported with.
func ErrorCode(err error) string {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	var me *plugin.MalformedError
	var re *plugin.RecordError
	if errors.As(err, &me) || errors.As(err, &re) {
		return ErrorInvalidPluginData
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
