package collector

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/costops/cost-analysis-operator/internal/plugin"
	"github.com/costops/cost-analysis-operator/internal/sampleplugin"
	"github.com/costops/cost-analysis-operator/internal/store"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

func startPlugin(t *testing.T) string {
	t.Helper()
	addr, _, stop, err := sampleplugin.StartOnLoopback()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return addr
}

// secretDir lays out a Secret volume as the kubelet does: the keys are symlinks into
// a timestamped directory, through ..data.
func secretDir(t *testing.T, keys map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	ts := filepath.Join(dir, "..2026_01_01_00_00_00.000")
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for k, v := range keys {
		if err := os.WriteFile(filepath.Join(ts, k), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", k), filepath.Join(dir, k)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// taskEnv is a task pod's environment, as the JobTask controller sets it.
func taskEnv(endpoint, secret string) map[string]string {
	return map[string]string{
		taskpod.EnvJobID:          "run",
		taskpod.EnvJobTaskID:      "run-0",
		taskpod.EnvDataSourceID:   "billing",
		taskpod.EnvDomainID:       "tenant-a",
		taskpod.EnvTaskOptions:    `{"account_id":"a","month":"2024-02"}`,
		taskpod.EnvTaskChanged:    `{"start":"2024-02","end":"2024-02"}`,
		taskpod.EnvPluginOptions:  `{"records_per_task":30}`,
		taskpod.EnvPluginSchema:   "sample",
		taskpod.EnvPluginEndpoint: endpoint,
		taskpod.EnvSecretDir:      secret,
	}
}

// dryRunEnv is taskEnv for a run without a store: the records go to stdout.
func dryRunEnv(endpoint, secret string) map[string]string {
	env := taskEnv(endpoint, secret)
	env[EnvOutput] = "-"
	return env
}

type result struct {
	exit   int
	msg    taskpod.Result
	raw    string
	stdout string
	stderr string
}

// runMain runs the collector program with env and returns what it left behind.
func runMain(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	term := filepath.Join(t.TempDir(), "termination-log")
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exit := Main(ctx, append([]string{"--termination-message-path", term}, args...),
		func(k string) string { return env[k] }, &stdout, &stderr)
	raw, err := os.ReadFile(term)
	if err != nil {
		t.Fatalf("no termination message: %v (stderr %s)", err, stderr.String())
	}
	res := result{exit: exit, raw: string(raw), stdout: stdout.String(), stderr: stderr.String()}
	if res.msg, err = taskpod.ParseResult(string(raw)); err != nil {
		t.Fatalf("the termination message does not parse: %v", err)
	}
	return res
}

func TestADryRunWritesRecordsAndResult(t *testing.T) {
	addr := startPlugin(t)
	env := dryRunEnv(addr, secretDir(t, map[string]string{"api_key": "k"}))
	res := runMain(t, env)
	if res.exit != 0 || res.msg.Failed() {
		t.Fatalf("exit %d, result %s, stderr %s", res.exit, res.raw, res.stderr)
	}
	if res.msg.CreatedCount == nil || *res.msg.CreatedCount != 30 {
		t.Errorf("created_count %v, want 30", res.raw)
	}
	if res.msg.CollectedBytes != int64(len(res.stdout)) {
		t.Errorf("collected_bytes %d, but %d bytes were written", res.msg.CollectedBytes, len(res.stdout))
	}
	lines := 0
	sc := bufio.NewScanner(strings.NewReader(res.stdout))
	for sc.Scan() {
		var rec store.Record // as it would be stored, account_id included
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("line %d is not a record: %v", lines, err)
		}
		if !strings.HasPrefix(rec.BilledDate, "2024-02-") || !strings.Contains(string(rec.AdditionalInfo), `"account_id":"a"`) || rec.AccountID != "a" {
			t.Errorf("line %d: %s", lines, sc.Text())
		}
		lines++
	}
	if lines != 30 {
		t.Errorf("%d lines, want 30", lines)
	}
	if !strings.Contains(res.stderr, `"job_task_id":"run-0"`) {
		t.Errorf("the log does not name the task: %s", res.stderr)
	}
}

func TestADryRunWritesToTheOutputFile(t *testing.T) {
	addr := startPlugin(t)
	out := filepath.Join(t.TempDir(), "records.jsonl")
	env := taskEnv(addr, "/nonexistent")
	env[EnvOutput] = out
	res := runMain(t, env)
	if res.exit != 0 || res.stdout != "" {
		t.Fatalf("exit %d, result %s, stdout %q", res.exit, res.raw, res.stdout)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != res.msg.CollectedBytes || bytes.Count(b, []byte("\n")) != 30 {
		t.Errorf("%d bytes, %d lines; result %s", len(b), bytes.Count(b, []byte("\n")), res.raw)
	}
}

func TestCollectorReportsFailures(t *testing.T) {
	addr := startPlugin(t)
	cases := map[string]struct {
		env      map[string]string
		args     []string
		code     string
		inMsg    string
		withData bool
	}{
		"the plugin's failure is ERROR_GET_DATA": {
			env:  map[string]string{taskpod.EnvPluginOptions: `{"fail_get_data":"quota exceeded"}`},
			code: ErrorGetData, inMsg: "quota exceeded"},
		"a plugin's specific code is kept": {
			env:  map[string]string{taskpod.EnvPluginOptions: `{"fail_get_data":"bad key","fail_code":"PERMISSION_DENIED"}`},
			code: "ERROR_PLUGIN_PERMISSION_DENIED", inMsg: "bad key"},
		"a failing account fails its task": {
			env:  map[string]string{taskpod.EnvPluginOptions: `{"fail_get_data_accounts":["a"]}`},
			code: ErrorGetData, inMsg: "account a"},
		"a stream broken mid-way is a failure": {
			env:  map[string]string{taskpod.EnvPluginOptions: `{"fail_get_data_after":12}`},
			code: ErrorGetData, inMsg: "after 12 records", withData: true},
		"an unreachable plugin is ERROR_PLUGIN_UNAVAILABLE": {
			env:  map[string]string{taskpod.EnvPluginEndpoint: "127.0.0.1:1"},
			code: ErrorPluginUnavailable, inMsg: "Unavailable"},
		"a stalled plugin is ERROR_PLUGIN_TIMEOUT": {
			env:  map[string]string{taskpod.EnvPluginOptions: `{"stall_get_data_seconds":30}`},
			args: []string{"--call-timeout", "200ms"}, code: ErrorPluginTimeout, inMsg: "200ms"},
		"task options that are not JSON are ERROR_INVALID_TASK": {
			env:  map[string]string{taskpod.EnvTaskOptions: `{"account_id":`},
			code: ErrorInvalidTask, inMsg: taskpod.EnvTaskOptions},
		"task options that are not an object are ERROR_INVALID_TASK": {
			env:  map[string]string{taskpod.EnvTaskOptions: `[1,2]`},
			code: ErrorInvalidTask, inMsg: taskpod.EnvTaskOptions},
		"null task options are ERROR_INVALID_TASK": {
			env:  map[string]string{taskpod.EnvTaskOptions: `null`},
			code: ErrorInvalidTask, inMsg: "null"},
		"missing task options are ERROR_INVALID_TASK": {
			env:  map[string]string{taskpod.EnvTaskOptions: ``},
			code: ErrorInvalidTask, inMsg: "not set"},
		"plugin options that are not JSON are ERROR_INVALID_TASK": {
			env:  map[string]string{taskpod.EnvPluginOptions: `{bad`},
			code: ErrorInvalidTask, inMsg: taskpod.EnvPluginOptions},
		"a task window that is not JSON is ERROR_INVALID_TASK": {
			env:  map[string]string{taskpod.EnvTaskChanged: `{`},
			code: ErrorInvalidTask, inMsg: taskpod.EnvTaskChanged},
		"no endpoint is ERROR_INVALID_TASK": {
			env:  map[string]string{taskpod.EnvPluginEndpoint: ""},
			code: ErrorInvalidTask, inMsg: taskpod.EnvPluginEndpoint},
		"a TLS flag that is no boolean is ERROR_INVALID_TASK": {
			env:  map[string]string{taskpod.EnvPluginTLS: "yes please"},
			code: ErrorInvalidTask, inMsg: taskpod.EnvPluginTLS},
		"an unreadable CA file is ERROR_INVALID_TASK": {
			env:  map[string]string{taskpod.EnvPluginTLS: "true", taskpod.EnvPluginCAFile: "/nonexistent/ca.crt"},
			code: ErrorInvalidTask, inMsg: "/nonexistent/ca.crt"},
		"a bad call timeout is ERROR_INVALID_TASK": {
			args: []string{"--call-timeout", "soon"}, code: ErrorInvalidTask, inMsg: "soon"},
		"a bad batch size is ERROR_INVALID_TASK": {
			args: []string{"--batch-size", "0"}, code: ErrorInvalidTask, inMsg: "batch size"},
		"neither a store nor an output is ERROR_INVALID_TASK, not a success for records that went nowhere": {
			env:  map[string]string{EnvOutput: ""},
			code: ErrorInvalidTask, inMsg: "no store: " + taskpod.EnvStoreDSN + " is not set"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			env := dryRunEnv(addr, "/nonexistent")
			for k, v := range tc.env {
				env[k] = v
			}
			res := runMain(t, env, tc.args...)
			if res.exit != 1 || res.msg.ErrorCode != tc.code || !strings.Contains(res.msg.ErrorMessage, tc.inMsg) {
				t.Fatalf("exit %d, result %s; want exit 1, %s mentioning %q", res.exit, res.raw, tc.code, tc.inMsg)
			}
			if res.msg.CreatedCount != nil {
				t.Errorf("a failure reports a count: %s", res.raw)
			}
			if tc.withData != (res.msg.CollectedBytes > 0) {
				t.Errorf("collected_bytes %d", res.msg.CollectedBytes)
			}
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	dir := secretDir(t, map[string]string{"api_key": "k", "region": "eu\n"})
	env := taskEnv("plugin:50051", dir)
	env[taskpod.EnvPluginTLS] = "true"
	env[taskpod.EnvPluginServerName] = "plugin.test"
	env[taskpod.EnvPluginInsecure] = "false"
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, []byte("PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	env[taskpod.EnvPluginCAFile] = caFile
	cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Plugin.Endpoint != "plugin:50051" || cfg.Plugin.TLS == nil || cfg.Plugin.TLS.ServerName != "plugin.test" || cfg.Plugin.TLS.InsecureSkipVerify ||
		string(cfg.Plugin.TLS.CAPEM) != "PEM" {
		t.Errorf("plugin options %+v", cfg.Plugin)
	}
	r := cfg.Request
	if r.Schema != "sample" || r.DomainID != "tenant-a" || r.TaskOptions["account_id"] != "a" || r.Options["records_per_task"] != float64(30) {
		t.Errorf("request %+v", r)
	}
	if len(r.SecretData) != 2 || r.SecretData["api_key"] != "k" || r.SecretData["region"] != "eu\n" {
		t.Errorf("secret data %v", r.SecretData)
	}
}

func TestReadSecretDir(t *testing.T) {
	got, err := ReadSecretDir(filepath.Join(t.TempDir(), "missing"))
	if err != nil || len(got) != 0 {
		t.Errorf("a missing directory: %v, %v", got, err)
	}
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "token"), []byte("t"), 0o600)
	_ = os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	got, err = ReadSecretDir(dir)
	if err != nil || len(got) != 1 || got["token"] != "t" {
		t.Errorf("a plain directory: %v, %v", got, err)
	}
}

func TestRunPassesTheSecretToThePlugin(t *testing.T) {
	addr := startPlugin(t)
	var out bytes.Buffer
	res, err := Run(context.Background(), Config{
		Plugin:  plugin.Options{Endpoint: addr},
		Request: plugin.GetDataRequest{TaskOptions: map[string]any{"records_per_task": 3}, SecretData: map[string]any{"api_key": "k"}},
		Output:  &out,
	})
	if err != nil || res.CreatedCount == nil || *res.CreatedCount != 3 || res.CollectedBytes != int64(out.Len()) {
		t.Fatalf("result %+v, err %v", res, err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

func TestRunReportsOutputFailures(t *testing.T) {
	addr := startPlugin(t)
	res, err := Run(context.Background(), Config{
		Plugin:  plugin.Options{Endpoint: addr},
		Request: plugin.GetDataRequest{TaskOptions: map[string]any{"records_per_task": 5000}},
		Output:  failingWriter{},
	})
	if err == nil || res.ErrorCode != ErrorOutput || !strings.Contains(res.ErrorMessage, "no space left") {
		t.Fatalf("result %+v, err %v", res, err)
	}
}

func TestErrorCode(t *testing.T) {
	cases := map[string]struct {
		err  error
		want string
	}{
		"an unreachable plugin":     {&plugin.Error{Code: codes.Unavailable}, ErrorPluginUnavailable},
		"a plugin out of time":      {&plugin.Error{Code: codes.DeadlineExceeded}, ErrorPluginTimeout},
		"a stopped collector":       {&plugin.Error{Code: codes.Canceled}, ErrorCanceled},
		"a plugin's internal error": {&plugin.Error{Code: codes.Internal}, ErrorGetData},
		"a plugin's unknown error":  {&plugin.Error{Code: codes.Unknown}, ErrorGetData},
		"a plugin's refusal":        {&plugin.Error{Code: codes.InvalidArgument}, "ERROR_PLUGIN_INVALID_ARGUMENT"},
		"a plugin without get_data": {&plugin.Error{Code: codes.Unimplemented}, "ERROR_PLUGIN_UNIMPLEMENTED"},
		"malformed data":            {&plugin.MalformedError{}, ErrorInvalidPluginData},
		"a collector error":         {&Error{Code: ErrorOutput, Err: errors.New("x")}, ErrorOutput},
		"anything else":             {errors.New("x"), ErrorGetData},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := ErrorCode(tc.err); got != tc.want {
				t.Errorf("ErrorCode = %s, want %s", got, tc.want)
			}
		})
	}
}
