package sampleplugin

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/costops/cost-analysis-operator/internal/plugin/pluginpb"
)

type clients struct {
	ds   pluginpb.DataSourceClient
	job  pluginpb.JobClient
	cost pluginpb.CostClient
	srv  *Server
}

// start serves a sample plugin on loopback for one test, with raw protocol clients.
func start(t *testing.T, opts ...Option) clients {
	t.Helper()
	addr, srv, stop, err := StartOnLoopback(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return clients{pluginpb.NewDataSourceClient(conn), pluginpb.NewJobClient(conn), pluginpb.NewCostClient(conn), srv}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func opts(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	return mustStruct(t, m)
}

// getData streams a task's records, returning the batches.
func getData(t *testing.T, c clients, options, task map[string]any) ([]*pluginpb.CostsInfo, error) {
	t.Helper()
	stream, err := c.cost.GetData(ctxFor(t), &pluginpb.GetDataRequest{Options: opts(t, options), TaskOptions: opts(t, task)})
	if err != nil {
		return nil, err
	}
	var out []*pluginpb.CostsInfo
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, msg)
	}
}

func count(batches []*pluginpb.CostsInfo) int {
	n := 0
	for _, b := range batches {
		n += len(b.GetResults())
	}
	return n
}

func TestGetDataStreamsDeterministicBatches(t *testing.T) {
	c := start(t)
	task := map[string]any{"account_id": "a", "month": "2024-02"}
	first, err := getData(t, c, nil, task)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 3 || count(first) != 24 {
		t.Fatalf("%d batches of %d records, want 3 of 24", len(first), count(first))
	}
	for _, r := range first[0].GetResults() {
		if !strings.HasPrefix(r.GetBilledDate(), "2024-02-") || r.GetAdditionalInfo().AsMap()["account_id"] != "a" {
			t.Fatalf("record %v", r)
		}
	}
	again, _ := getData(t, c, nil, task)
	if !proto.Equal(&pluginpb.CostsInfo{Results: flat(first)}, &pluginpb.CostsInfo{Results: flat(again)}) {
		t.Errorf("the same task gave other data")
	}
	other, _ := getData(t, c, nil, map[string]any{"account_id": "b", "month": "2024-02"})
	if proto.Equal(&pluginpb.CostsInfo{Results: flat(first)}, &pluginpb.CostsInfo{Results: flat(other)}) {
		t.Errorf("two accounts gave the same data")
	}
	if n := c.srv.Calls("get_data"); n != 3 {
		t.Errorf("get_data counted %d times", n)
	}
}

func flat(batches []*pluginpb.CostsInfo) []*pluginpb.CostInfo {
	var out []*pluginpb.CostInfo
	for _, b := range batches {
		out = append(out, b.GetResults()...)
	}
	return out
}

func TestGetDataKnobs(t *testing.T) {
	c := start(t)
	cases := map[string]struct {
		options map[string]any
		task    map[string]any
		secret  map[string]any
		records int
		code    codes.Code
		inMsg   string
	}{
		"records_per_task sets the count": {
			options: map[string]any{"records_per_task": 5}, task: map[string]any{}, records: 5},
		"a task's own records_per_task wins": {
			options: map[string]any{"records_per_task": 5}, task: map[string]any{"records_per_task": 2}, records: 2},
		"fail_get_data fails with Internal": {
			options: map[string]any{"fail_get_data": "quota exceeded"}, task: map[string]any{}, code: codes.Internal, inMsg: "quota exceeded"},
		"fail_code picks the code": {
			options: map[string]any{"fail_get_data": "later", "fail_code": "RESOURCE_EXHAUSTED"}, task: map[string]any{}, code: codes.ResourceExhausted},
		"fail_get_data_accounts fails the listed accounts": {
			options: map[string]any{"fail_get_data_accounts": []any{"bad"}}, task: map[string]any{"account_id": "bad"}, code: codes.Internal, inMsg: "bad"},
		"fail_get_data_accounts spares the others": {
			options: map[string]any{"fail_get_data_accounts": []any{"bad"}}, task: map[string]any{"account_id": "good"}, records: 24},
		"fail_get_data_after breaks the stream mid-way": {
			options: map[string]any{"fail_get_data_after": 12}, task: map[string]any{}, records: 12, code: codes.Internal, inMsg: "after 12 records"},
		"a task without options is refused": {
			task: nil, code: codes.InvalidArgument, inMsg: "task_options"},
		"required_secret_keys makes get_data want the credentials": {
			options: map[string]any{"required_secret_keys": []any{"api_key", "token"}}, task: map[string]any{},
			secret: map[string]any{"api_key": "k"}, code: codes.InvalidArgument, inMsg: `no key "token"`},
		"required_secret_keys met": {
			options: map[string]any{"required_secret_keys": []any{"api_key", "token"}}, task: map[string]any{},
			secret: map[string]any{"api_key": "k", "token": "t"}, records: 24},
		"a bad fail_code is an invalid argument": {
			options: map[string]any{"fail_get_data": "x", "fail_code": "BROKEN"}, task: map[string]any{}, code: codes.InvalidArgument, inMsg: "fail_code"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			req := &pluginpb.GetDataRequest{Options: opts(t, tc.options)}
			if tc.secret != nil {
				req.SecretData = opts(t, tc.secret)
			}
			if tc.task != nil {
				req.TaskOptions = opts(t, tc.task)
			}
			stream, err := c.cost.GetData(ctxFor(t), req)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for {
				msg, rerr := stream.Recv()
				if rerr != nil {
					if !errors.Is(rerr, io.EOF) {
						err = rerr
					}
					break
				}
				n += len(msg.GetResults())
			}
			if status.Code(err) != tc.code || n != tc.records {
				t.Fatalf("%d records, err %v; want %d records and %v", n, err, tc.records, tc.code)
			}
			if tc.inMsg != "" && !strings.Contains(status.Convert(err).Message(), tc.inMsg) {
				t.Errorf("message %q does not mention %q", status.Convert(err).Message(), tc.inMsg)
			}
		})
	}
}

func TestStallHonoursTheCallersDeadline(t *testing.T) {
	c := start(t)
	cases := map[string]func(ctx context.Context) error{
		"stall_get_tasks_seconds": func(ctx context.Context) error {
			_, err := c.job.GetTasks(ctx, &pluginpb.GetTasksRequest{Options: opts(t, map[string]any{"stall_get_tasks_seconds": 30})})
			return err
		},
		"stall_get_data_seconds": func(ctx context.Context) error {
			s, err := c.cost.GetData(ctx, &pluginpb.GetDataRequest{Options: opts(t, map[string]any{"stall_get_data_seconds": 30}), TaskOptions: opts(t, nil)})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		},
	}
	for name, call := range cases {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
			defer cancel()
			begin := time.Now()
			if err := call(ctx); status.Code(err) != codes.DeadlineExceeded {
				t.Errorf("err %v, want DeadlineExceeded", err)
			}
			if d := time.Since(begin); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
	// A short stall still answers.
	res, err := c.job.GetTasks(ctxFor(t), &pluginpb.GetTasksRequest{Options: opts(t, map[string]any{"stall_get_tasks_seconds": 0.05, "tasks": 1})})
	if err != nil || len(res.GetTasks()) != 1 {
		t.Errorf("short stall: %v, %v", res, err)
	}
}

func TestGetTasksFailKnobs(t *testing.T) {
	c := start(t)
	cases := map[string]struct {
		options map[string]any
		code    codes.Code
	}{
		"fail_get_tasks fails with Internal by default": {map[string]any{"fail_get_tasks": "billing API said no"}, codes.Internal},
		"fail_code UNAVAILABLE":                         {map[string]any{"fail_get_tasks": "billing API said no", "fail_code": "UNAVAILABLE"}, codes.Unavailable},
		"fail_code INVALID_ARGUMENT":                    {map[string]any{"fail_get_tasks": "billing API said no", "fail_code": "INVALID_ARGUMENT"}, codes.InvalidArgument},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := c.srv.Calls("get_tasks")
			_, err := c.job.GetTasks(ctxFor(t), &pluginpb.GetTasksRequest{Options: opts(t, tc.options)})
			if status.Code(err) != tc.code || status.Convert(err).Message() != "billing API said no" {
				t.Errorf("err %v, want %v with the message", err, tc.code)
			}
			if got := c.srv.Calls("Job.get_tasks"); got != before+1 {
				t.Errorf("calls %d -> %d", before, got)
			}
		})
	}
}

func TestVerifyAndInitAndLinkedAccounts(t *testing.T) {
	c := start(t)
	secret := opts(t, map[string]any{"api_key": "k"})
	if _, err := c.ds.Verify(ctxFor(t), &pluginpb.PluginVerifyRequest{SecretData: secret}); err != nil {
		t.Errorf("verify: %v", err)
	}
	_, err := c.ds.Verify(ctxFor(t), &pluginpb.PluginVerifyRequest{SecretData: opts(t, nil)})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `"api_key"`) {
		t.Errorf("verify without the key: %v", err)
	}
	_, err = c.ds.Verify(ctxFor(t), &pluginpb.PluginVerifyRequest{SecretData: opts(t, map[string]any{"api_key": 1.0})})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("verify with a number: %v", err)
	}
	_, err = c.ds.Verify(ctxFor(t), &pluginpb.PluginVerifyRequest{
		Options: opts(t, map[string]any{"required_secret_keys": []any{"id", "key"}}), SecretData: opts(t, map[string]any{"id": "i"})})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `"key"`) {
		t.Errorf("verify with custom keys: %v", err)
	}
	_, err = c.ds.Verify(ctxFor(t), &pluginpb.PluginVerifyRequest{Options: opts(t, map[string]any{"fail_verify": "account suspended"}), SecretData: secret})
	if status.Convert(err).Message() != "account suspended" {
		t.Errorf("fail_verify: %v", err)
	}

	info, err := c.ds.Init(ctxFor(t), &pluginpb.InitRequest{DomainId: "ns"})
	if err != nil || info.GetMetadata().AsMap()["currency"] != "USD" {
		t.Errorf("init: %v, %v", info, err)
	}
	accounts, err := c.cost.GetLinkedAccounts(ctxFor(t), &pluginpb.GetLinkedAccountsRequest{Options: opts(t, map[string]any{"accounts": []any{"x", "y"}})})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range accounts.GetResults() {
		ids = append(ids, a.GetAccountId())
	}
	if !reflect.DeepEqual(ids, []string{"x", "y"}) {
		t.Errorf("linked accounts %v", ids)
	}
	for _, m := range methods {
		if c.srv.Calls(m) == 0 && m != MethodGetTasks && m != MethodGetData {
			t.Errorf("%s not counted", m)
		}
	}
	c.srv.ResetCalls()
	if c.srv.Calls("verify") != 0 {
		t.Errorf("ResetCalls kept the counts")
	}
}

func TestClockDecidesTheCurrentMonth(t *testing.T) {
	c := start(t, WithClock(func() time.Time { return time.Date(2023, 7, 4, 0, 0, 0, 0, time.UTC) }))
	res, err := c.job.GetTasks(ctxFor(t), &pluginpb.GetTasksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := taskNames(res); !reflect.DeepEqual(got, []string{"account-a/2023-07"}) {
		t.Errorf("tasks %v", got)
	}
}

func TestShutdownWaitsForCallsInFlight(t *testing.T) {
	c := start(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.job.GetTasks(context.Background(), &pluginpb.GetTasksRequest{Options: opts(t, map[string]any{"stall_get_tasks_seconds": 0.3, "tasks": 1})})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.srv.Shutdown(ctx)
	if err := <-done; err != nil {
		t.Errorf("the call in flight failed: %v", err)
	}
}
