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

// tasksDir lays out a batch Job's task ConfigMap as the kubelet mounts it: one file
// per completion index, each a symlink through ..data (as secretDir).
func tasksDir(t *testing.T, files map[string]string) string {
	t.Helper()
	return secretDir(t, files)
}

// taskFileEnv is a pod of an Indexed batch Job: the task comes from the file of its
// completion index, and the task's own variables hold another task, which the file
// must win over.
func taskFileEnv(endpoint, dir, index string) map[string]string {
	env := dryRunEnv(endpoint, "/nonexistent")
	env[taskpod.EnvJobTaskID] = "not-this-task"
	env[taskpod.EnvJobTaskUID] = "not-this-uid"
	env[taskpod.EnvTaskOptions] = `{"account_id":"not-this-account"}`
	env[taskpod.EnvTaskChanged] = `not even JSON`
	env[taskpod.EnvTasksDir] = dir
	env[taskpod.EnvCompletionIndex] = index
	return env
}

func TestTheTaskComesFromItsTaskFile(t *testing.T) {
	task := func(changed string) string {
		return taskpod.Task{JobTaskID: "run-7", JobTaskUID: "uid-7", Options: json.RawMessage(`{"account_id":"b","month":"2024-03"}`),
			Changed: json.RawMessage(changed)}.Encode()
	}
	dir := tasksDir(t, map[string]string{
		"0":  task(`{"start":"2024-03","end":"2024-03"}`),
		"1":  task(""),
		"2":  task("null"),
		"10": task(`{"start":"2024-03"}`),
	})
	cases := map[string]struct {
		index       string
		wantChanged bool
	}{
		"a task with a task_changed window":      {index: "0"},
		"a task without task_changed":            {index: "1"},
		"a task whose task_changed is null":      {index: "2"},
		"an index of two digits names its file":  {index: "10"},
		"an index with spaces around it is read": {index: " 0\n"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			env := taskFileEnv("plugin:50051", dir, tc.index)
			cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Task.JobTask != "run-7" || cfg.Task.JobTaskUID != "uid-7" {
				t.Errorf("task %q uid %q, want the file's run-7 uid-7", cfg.Task.JobTask, cfg.Task.JobTaskUID)
			}
			if o := cfg.Request.TaskOptions; len(o) != 2 || o["account_id"] != "b" || o["month"] != "2024-03" {
				t.Errorf("task options %v, want the file's", o)
			}
			if want := "file " + filepath.Join(dir, strings.TrimSpace(tc.index)); cfg.taskSource != want {
				t.Errorf("task source %q, want %q", cfg.taskSource, want)
			}
			if cfg.Plugin.Endpoint != "plugin:50051" || cfg.Request.Schema != "sample" || cfg.Request.Options["records_per_task"] != float64(30) {
				t.Errorf("the rest of the environment is not read: %+v %+v", cfg.Plugin, cfg.Request)
			}
		})
	}

	// Without the tasks directory the variables are the task.
	env := taskEnv("plugin:50051", "/nonexistent")
	env[taskpod.EnvJobTaskUID] = "uid-0"
	env[taskpod.EnvCompletionIndex] = "0"
	cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil || cfg.Task.JobTask != "run-0" || cfg.Task.JobTaskUID != "uid-0" || cfg.Request.TaskOptions["account_id"] != "a" || cfg.taskSource != "env" {
		t.Errorf("without %s: task %+v, options %v, source %q, err %v", taskpod.EnvTasksDir, cfg.Task, cfg.Request.TaskOptions, cfg.taskSource, err)
	}
}

func TestABadTaskFileIsAnInvalidTask(t *testing.T) {
	addr := startPlugin(t)
	good := taskpod.Task{JobTaskID: "run-3", JobTaskUID: "uid-3", Options: json.RawMessage(`{}`)}.Encode()
	dir := tasksDir(t, map[string]string{
		"0": good,
		"1": `{"job_task_id":"run-3","job_task_uid":"uid-3","task_options":{`,
		"2": `{"job_task_id":"run-3","task_options":{}}`,
		"3": `{"job_task_id":"run-3","job_task_uid":"uid-3","task_options":[1,2]}`,
		"4": `{"job_task_id":"run-3","job_task_uid":"uid-3","task_options":"{}"}`,
		"5": `{"job_task_id":"run-3","job_task_uid":"uid-3","task_options":{},"task_changed":"2024-03"}`,
		"6": `{"job_task_id":"run-3","job_task_uid":"uid-3","task_options":{},"options":{}}`,
		"7": `{"job_task_id":" ","job_task_uid":"uid-3","task_options":{}}`,
		"8": `{"job_task_id":"run-3","job_task_uid":"uid-3"}`,
		"9": ``,
	})
	file := func(i string) string { return filepath.Join(dir, i) }
	cases := map[string]struct {
		dir, index string
		inMsg      []string
	}{
		"no completion index":            {index: "", inMsg: []string{taskpod.EnvCompletionIndex + " is not"}},
		"a negative index":               {index: "-1", inMsg: []string{`"-1" is not a non-negative integer`, dir}},
		"an index that is no number":     {index: "one", inMsg: []string{`"one" is not a non-negative integer`}},
		"an index with a sign":           {index: "+0", inMsg: []string{`"+0" is not a non-negative integer`}},
		"an index with a leading zero":   {index: "01", inMsg: []string{`"01" is not a non-negative integer`}},
		"an index beyond int":            {index: "99999999999999999999", inMsg: []string{"is not a non-negative integer"}},
		"an index with no file":          {index: "42", inMsg: []string{file("42"), "does not exist"}},
		"a tasks directory that is not":  {dir: "/nonexistent/tasks", index: "0", inMsg: []string{"/nonexistent/tasks/0", "does not exist"}},
		"a task file that is not JSON":   {index: "1", inMsg: []string{file("1"), "not a task"}},
		"a task file without its uid":    {index: "2", inMsg: []string{file("2"), "job_task_uid"}},
		"task_options that are an array": {index: "3", inMsg: []string{file("3"), "task_options is not a JSON object"}},
		"task_options that are a string": {index: "4", inMsg: []string{file("4"), "task_options is not a JSON object"}},
		"a task_changed that is no object": {index: "5",
			inMsg: []string{"task_changed of the task file " + file("5") + " is not a JSON object"}},
		"a field the contract does not know": {index: "6", inMsg: []string{file("6"), `unknown field "options"`}},
		"a blank job_task_id":                {index: "7", inMsg: []string{file("7"), "blank"}},
		"no task_options":                    {index: "8", inMsg: []string{file("8"), "task_options"}},
		"an empty task file":                 {index: "9", inMsg: []string{file("9"), "not a task"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d := dir
			if tc.dir != "" {
				d = tc.dir
			}
			res := runMain(t, taskFileEnv(addr, d, tc.index))
			if res.exit != 1 || res.msg.ErrorCode != ErrorInvalidTask || res.msg.CreatedCount != nil {
				t.Fatalf("exit %d, result %s; want exit 1 and %s", res.exit, res.raw, ErrorInvalidTask)
			}
			for _, s := range tc.inMsg {
				if !strings.Contains(res.msg.ErrorMessage, s) {
					t.Errorf("the message %q does not say %q", res.msg.ErrorMessage, s)
				}
			}
			if res.stdout != "" {
				t.Errorf("records were written for an invalid task: %.200s", res.stdout)
			}
		})
	}

	// The good file of the same directory runs, and the log names its task.
	res := runMain(t, taskFileEnv(addr, dir, "0"))
	if res.exit != 0 || res.msg.CreatedCount == nil {
		t.Fatalf("the good task file: exit %d, result %s, stderr %s", res.exit, res.raw, res.stderr)
	}
	if !strings.Contains(res.stderr, `"job_task_id":"run-3"`) || !strings.Contains(res.stderr, `"task_from":"file `+file("0")+`"`) {
		t.Errorf("the log does not name the file's task: %s", res.stderr)
	}
}
