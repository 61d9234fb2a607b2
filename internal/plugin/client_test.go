package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/costops/cost-analysis-operator/internal/sampleplugin"
)

func TestInitReturnsTheMetadata(t *testing.T) {
	addr, srv := startPlugin(t)
	c := testClient(t, Options{Endpoint: addr})
	md, err := c.Init(testContext(t), map[string]any{"accounts": []string{"x"}}, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if md["currency"] != "USD" || md["data_source_rules"] == nil {
		t.Errorf("metadata %v", md)
	}
	if n := srv.Calls("init"); n != 1 {
		t.Errorf("init called %d times", n)
	}
}

func TestVerify(t *testing.T) {
	addr, _ := startPlugin(t)
	c := testClient(t, Options{Endpoint: addr, Retries: -1})
	cases := map[string]struct {
		options map[string]any
		secret  map[string]any
		code    codes.Code
		inMsg   string
	}{
		"a secret with the required key passes": {secret: secret, code: codes.OK},
		"a missing key is an invalid argument naming it": {
			secret: map[string]any{"other": "x"}, code: codes.InvalidArgument, inMsg: `"api_key"`},
		"an empty key is unauthenticated": {
			secret: map[string]any{"api_key": ""}, code: codes.Unauthenticated, inMsg: `"api_key"`},
		"the required keys come from the options": {
			options: map[string]any{"required_secret_keys": []any{"token"}}, secret: map[string]any{"token": "t"}, code: codes.OK},
		"fail_verify fails with its message": {
			options: map[string]any{"fail_verify": "account suspended", "fail_code": "PERMISSION_DENIED"}, secret: secret,
			code: codes.PermissionDenied, inMsg: "account suspended"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := c.Verify(testContext(t), VerifyRequest{Options: tc.options, SecretData: tc.secret, DomainID: "ns"})
			if got := CodeOf(err); got != tc.code {
				t.Fatalf("code %v, want %v (err %v)", got, tc.code, err)
			}
			if tc.inMsg != "" && !strings.Contains(err.Error(), tc.inMsg) {
				t.Errorf("error %q does not mention %q", err, tc.inMsg)
			}
		})
	}
}

func TestGetTasksConvertsThePlan(t *testing.T) {
	addr, _ := startPlugin(t)
	c := testClient(t, Options{Endpoint: addr})
	res, err := c.GetTasks(testContext(t), GetTasksRequest{
		Options:    map[string]any{"accounts": []string{"a", "b"}, "now": "2024-03"},
		SecretData: secret, Start: "2024-02", DomainID: "ns",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Task{
		{Options: map[string]any{"account_id": "a", "month": "2024-02"}, Changed: &Changed{Start: "2024-02", End: "2024-02", Filter: map[string]any{"account_id": "a"}}},
		{Options: map[string]any{"account_id": "a", "month": "2024-03"}, Changed: &Changed{Start: "2024-03", End: "2024-03", Filter: map[string]any{"account_id": "a"}}},
		{Options: map[string]any{"account_id": "b", "month": "2024-02"}, Changed: &Changed{Start: "2024-02", End: "2024-02", Filter: map[string]any{"account_id": "b"}}},
		{Options: map[string]any{"account_id": "b", "month": "2024-03"}, Changed: &Changed{Start: "2024-03", End: "2024-03", Filter: map[string]any{"account_id": "b"}}},
	}
	if !reflect.DeepEqual(res.Tasks, want) {
		t.Errorf("tasks\n got %+v\nwant %+v", res.Tasks, want)
	}
	if !reflect.DeepEqual(res.Changed, []Changed{{Start: "2024-02"}}) {
		t.Errorf("changed %+v", res.Changed)
	}
	if !reflect.DeepEqual(res.SyncedAccounts, []Account{{"a", "Sample a"}, {"b", "Sample b"}}) {
		t.Errorf("synced accounts %+v", res.SyncedAccounts)
	}
}

func TestGetTasksSendsLinkedAccountsAndLastSync(t *testing.T) {
	addr, _ := startPlugin(t)
	c := testClient(t, Options{Endpoint: addr})
	res, err := c.GetTasks(testContext(t), GetTasksRequest{
		Options:            map[string]any{"now": "2024-03"},
		LastSynchronizedAt: "2024-03-05T10:00:00Z",
		LinkedAccounts:     []map[string]any{{"account_id": "linked-1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, task := range res.Tasks {
		got = append(got, fmt.Sprint(task.Options["account_id"], "/", task.Options["month"]))
	}
	if want := []string{"linked-1/2024-02", "linked-1/2024-03"}; !reflect.DeepEqual(got, want) {
		t.Errorf("tasks %v, want %v", got, want)
	}
}

func TestGetTasksRejectsMalformedAnswers(t *testing.T) {
	addr, _ := startPlugin(t)
	c := testClient(t, Options{Endpoint: addr})
	cases := map[string]struct {
		options map[string]any
		reason  string
	}{
		"a task without task_options": {
			options: map[string]any{"tasks": 2, "malformed_tasks": true}, reason: "task 2: task_options is missing"},
		"a changed window that is not a date": {
			options: map[string]any{"malformed_changed": true}, reason: `changed[0]: start "not-a-date" is not YYYY-MM`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := testutil.ToFloat64(callErrors.WithLabelValues(MethodGetTasks, codeMalformed))
			_, err := c.GetTasks(testContext(t), GetTasksRequest{Options: tc.options})
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("error %v (%T), want a *MalformedError", err, err)
			}
			if !strings.Contains(me.Reason, tc.reason) || !strings.Contains(err.Error(), "malformed") {
				t.Errorf("error %q, want reason %q", err, tc.reason)
			}
			if after := testutil.ToFloat64(callErrors.WithLabelValues(MethodGetTasks, codeMalformed)); after != before+1 {
				t.Errorf("malformed answers counted %v -> %v", before, after)
			}
		})
	}
}

func TestGetLinkedAccounts(t *testing.T) {
	addr, _ := startPlugin(t)
	c := testClient(t, Options{Endpoint: addr})
	got, err := c.GetLinkedAccounts(testContext(t), GetLinkedAccountsRequest{Options: map[string]any{"accounts": []any{"a", "b"}}, SecretData: secret})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Account{{"a", "Sample a"}, {"b", "Sample b"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("accounts %+v, want %+v", got, want)
	}
}

func collect(t *testing.T, c *Client, r GetDataRequest) ([]CostRecord, error) {
	t.Helper()
	var out []CostRecord
	err := c.GetData(testContext(t), r, func(rec CostRecord) error {
		out = append(out, rec)
		return nil
	})
	return out, err
}

func TestGetDataStreamsEveryRecord(t *testing.T) {
	addr, srv := startPlugin(t)
	c := testClient(t, Options{Endpoint: addr})
	task := map[string]any{"account_id": "a", "month": "2024-02"}
	recs, err := collect(t, c, GetDataRequest{SecretData: secret, TaskOptions: task, DomainID: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 24 {
		t.Fatalf("%d records, want 24", len(recs))
	}
	date := regexp.MustCompile(`^2024-02-\d\d$`)
	for i, r := range recs {
		if !date.MatchString(r.BilledDate) || r.Provider != "sample" || r.Cost <= 0 && r.UsageQuantity <= 0 ||
			member(t, r.Tags, "env") == nil || member(t, r.AdditionalInfo, "account_id") != "a" || member(t, r.Data, "record") != float64(i) {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
	again, err := collect(t, c, GetDataRequest{SecretData: secret, TaskOptions: task})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(recs, again) {
		t.Errorf("the same task gave other data the second time")
	}
	if n := srv.Calls("get_data"); n != 2 {
		t.Errorf("get_data called %d times", n)
	}
}

func TestGetDataStopsWhenFnFails(t *testing.T) {
	addr, _ := startPlugin(t)
	c := testClient(t, Options{Endpoint: addr})
	stop := errors.New("disk full")
	n := 0
	err := c.GetData(testContext(t), GetDataRequest{Options: map[string]any{"records_per_task": 1000}, TaskOptions: map[string]any{}},
		func(CostRecord) error {
			n++
			if n == 5 {
				return stop
			}
			return nil
		})
	if !errors.Is(err, stop) || n != 5 {
		t.Errorf("err %v after %d records, want %v after 5", err, n, stop)
	}
}

func TestGetDataNeverRetriesAHalfReadStream(t *testing.T) {
	addr, srv := startPlugin(t)
	c := testClient(t, Options{Endpoint: addr, Backoff: time.Millisecond})
	recs, err := collect(t, c, GetDataRequest{
		Options:     map[string]any{"fail_get_data_after": 15, "fail_code": "UNAVAILABLE", "batch_size": 10},
		TaskOptions: map[string]any{"account_id": "a"},
	})
	if !IsUnavailable(err) || !strings.Contains(err.Error(), "after 15 records") {
		t.Fatalf("err %v, want the plugin's Unavailable", err)
	}
	if len(recs) != 15 {
		t.Errorf("%d records reached fn, want 15", len(recs))
	}
	if n := srv.Calls("get_data"); n != 1 {
		t.Errorf("get_data called %d times: a broken stream was retried", n)
	}
}

func TestGetDataRetriesAStreamThatNeverStarted(t *testing.T) {
	addr, srv := startPlugin(t)
	c := testClient(t, Options{Endpoint: addr, Retries: 2, Backoff: time.Millisecond})
	_, err := collect(t, c, GetDataRequest{Options: map[string]any{"fail_get_data": "warming up", "fail_code": "UNAVAILABLE"}, TaskOptions: map[string]any{}})
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != codes.Unavailable || pe.Attempts != 3 || pe.Message != "warming up" {
		t.Fatalf("err %#v", err)
	}
	if n := srv.Calls("get_data"); n != 3 {
		t.Errorf("get_data called %d times, want 3", n)
	}
}

func TestErrorsKeepThePluginsCodeAndMessage(t *testing.T) {
	addr, srv := startPlugin(t)
	c := testClient(t, Options{Endpoint: addr, Backoff: time.Millisecond})
	cases := map[string]struct {
		failCode string
		code     codes.Code
		calls    int64
	}{
		"INTERNAL is not retried":         {failCode: "", code: codes.Internal, calls: 1},
		"INVALID_ARGUMENT is not retried": {failCode: "INVALID_ARGUMENT", code: codes.InvalidArgument, calls: 1},
		"UNAVAILABLE is retried 3 times":  {failCode: "UNAVAILABLE", code: codes.Unavailable, calls: 4},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			srv.ResetCalls()
			_, err := c.GetTasks(testContext(t), GetTasksRequest{Options: map[string]any{"fail_get_tasks": "billing API said no", "fail_code": tc.failCode}})
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T), want *Error", err, err)
			}
			want := fmt.Sprintf("plugin Job.get_tasks: %s: billing API said no", tc.code)
			if pe.Code != tc.code || err.Error() != want {
				t.Errorf("error %q (code %v), want %q", err, pe.Code, want)
			}
			if status.Code(err) != tc.code {
				t.Errorf("status.Code %v", status.Code(err))
			}
			if n := srv.Calls("get_tasks"); n != tc.calls {
				t.Errorf("get_tasks called %d times, want %d", n, tc.calls)
			}
		})
	}
}

// freeAddr is a loopback address that nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}

func TestUnreachablePluginIsUnavailableAfterTheRetries(t *testing.T) {
	addr := freeAddr(t)
	c := testClient(t, Options{Endpoint: addr, Retries: 2, Backoff: 50 * time.Millisecond})
	start := time.Now()
	_, err := c.GetTasks(testContext(t), GetTasksRequest{})
	if !IsUnavailable(err) {
		t.Fatalf("err %v, want Unavailable", err)
	}
	var pe *Error
	if errors.As(err, &pe); pe.Attempts != 3 {
		t.Errorf("%d attempts, want 3", pe.Attempts)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("gave up after %s: no backoff (50ms + 100ms)", d)
	}
	if !strings.HasPrefix(err.Error(), "plugin Job.get_tasks: Unavailable: ") {
		t.Errorf("error %q", err)
	}
}

func TestRetryReachesAPluginThatStartsLate(t *testing.T) {
	addr := freeAddr(t)
	c := testClient(t, Options{Endpoint: addr, Retries: 5, Backoff: 100 * time.Millisecond})
	srv := sampleplugin.New()
	t.Cleanup(srv.Stop)
	go func() {
		time.Sleep(250 * time.Millisecond)
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("listening again on %s: %v", addr, err)
			return
		}
		_ = srv.Serve(lis)
	}()
	res, err := c.GetTasks(testContext(t), GetTasksRequest{Options: map[string]any{"tasks": 3}})
	if err != nil {
		t.Fatalf("err %v, want the late plugin's answer", err)
	}
	if len(res.Tasks) != 3 || srv.Calls("get_tasks") != 1 {
		t.Errorf("%d tasks, %d calls", len(res.Tasks), srv.Calls("get_tasks"))
	}
}

func TestCallTimeout(t *testing.T) {
	addr, _ := startPlugin(t)
	c := testClient(t, Options{Endpoint: addr, CallTimeout: 200 * time.Millisecond})
	cases := map[string]func() error{
		"a stalled get_tasks": func() error {
			_, err := c.GetTasks(testContext(t), GetTasksRequest{Options: map[string]any{"stall_get_tasks_seconds": 10}})
			return err
		},
		"a stalled get_data": func() error {
			_, err := collect(t, c, GetDataRequest{Options: map[string]any{"stall_get_data_seconds": 10}, TaskOptions: map[string]any{}})
			return err
		},
	}
	for name, call := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			err := call()
			if !IsDeadlineExceeded(err) || !strings.Contains(err.Error(), "200ms") {
				t.Fatalf("err %v, want DeadlineExceeded naming the timeout", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}

func TestCallerCancellationIsNotRetried(t *testing.T) {
	addr, srv := startPlugin(t)
	c := testClient(t, Options{Endpoint: addr})
	ctx, cancel := context.WithTimeout(testContext(t), 100*time.Millisecond)
	defer cancel()
	_, err := c.GetTasks(ctx, GetTasksRequest{Options: map[string]any{"stall_get_tasks_seconds": 10}})
	if !IsDeadlineExceeded(err) || !strings.Contains(err.Error(), "the caller stopped waiting") {
		t.Fatalf("err %v", err)
	}
	if n := srv.Calls("get_tasks"); n != 1 {
		t.Errorf("%d calls", n)
	}
}

func TestCallsAreMeasured(t *testing.T) {
	addr, _ := startPlugin(t)
	c := testClient(t, Options{Endpoint: addr})
	errs := callErrors.WithLabelValues(MethodVerify, "Unauthenticated")
	before := testutil.ToFloat64(errs)
	_ = c.Verify(testContext(t), VerifyRequest{SecretData: map[string]any{"api_key": ""}})
	if got := testutil.ToFloat64(errs); got != before+1 {
		t.Errorf("errors counted %v -> %v", before, got)
	}
	if err := c.Verify(testContext(t), VerifyRequest{SecretData: secret}); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(callDuration, "cost_analysis_plugin_call_duration_seconds"); n == 0 {
		t.Errorf("no duration observed")
	}
	names := map[string]bool{}
	mfs, err := crmetricsGather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if strings.HasPrefix(mf.GetName(), "cost_analysis_plugin_") {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() != "method" && l.GetName() != "code" {
						t.Errorf("%s has label %s", mf.GetName(), l.GetName())
					}
				}
			}
		}
	}
	for _, n := range []string{"cost_analysis_plugin_call_duration_seconds", "cost_analysis_plugin_call_errors_total"} {
		if !names[n] {
			t.Errorf("%s is not in controller-runtime's registry", n)
		}
	}
}
