package sampleplugin

import (
	"context"
	"fmt"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/costops/cost-analysis-operator/internal/plugin/pluginpb"
)

type dataSourceService struct {
	pluginpb.UnimplementedDataSourceServer
	*Server
}

type jobService struct {
	pluginpb.UnimplementedJobServer
	*Server
}

type costService struct {
	pluginpb.UnimplementedCostServer
	*Server
}

var (
	_ pluginpb.DataSourceServer = dataSourceService{}
	_ pluginpb.JobServer        = jobService{}
	_ pluginpb.CostServer       = costService{}
)

// begin counts a call and applies the stall and fail options of its method.
func (s *Server) begin(ctx context.Context, method string, options *structpb.Struct) (knobs, error) {
	s.calls[method].Add(1)
	k := knobsOf(options)
	s.logger.DebugContext(ctx, "Plugin call", "method", method)
	if err := k.stallAndFail(ctx, method); err != nil {
		return nil, s.failed(ctx, method, err)
	}
	return k, nil
}

func (s *Server) failed(ctx context.Context, method string, err error) error {
	s.logger.InfoContext(ctx, "Plugin call failed", "method", method, "code", status.Code(err).String(), "err", status.Convert(err).Message())
	return err
}

// metadata is what init returns: what a SpaceONE cost plugin declares about itself.
var metadata = map[string]any{
	"currency":               "USD",
	"supported_secret_types": []any{"MANUAL"},
	"data_source_rules": []any{
		map[string]any{
			"name":              "match_service_account",
			"conditions_policy": "ALWAYS",
			"actions": map[string]any{
				"match_service_account": map[string]any{"source": "additional_info.account_id", "target": "data.account_id"},
			},
			"options": map[string]any{"stop_processing": true},
		},
	},
}

func (d dataSourceService) Init(ctx context.Context, req *pluginpb.InitRequest) (*pluginpb.PluginInfo, error) {
	if _, err := d.begin(ctx, MethodInit, req.GetOptions()); err != nil {
		return nil, err
	}
	md, err := structpb.NewStruct(metadata)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &pluginpb.PluginInfo{Metadata: md}, nil
}

func (d dataSourceService) Verify(ctx context.Context, req *pluginpb.PluginVerifyRequest) (*emptypb.Empty, error) {
	k, err := d.begin(ctx, MethodVerify, req.GetOptions())
	if err != nil {
		return nil, err
	}
	if err := verifySecret(k, req.GetSecretData().AsMap()); err != nil {
		return nil, d.failed(ctx, MethodVerify, err)
	}
	return &emptypb.Empty{}, nil
}

// verifySecret checks that secret_data holds every required key as a non-empty string.
func verifySecret(k knobs, secret map[string]any) error {
	keys, set, err := k.strings(OptRequiredSecretKeys)
	if err != nil {
		return err
	}
	if !set {
		keys = []string{"api_key"}
	}
	for _, key := range keys {
		v, ok := secret[key]
		if !ok {
			return status.Errorf(codes.InvalidArgument, "secret_data has no key %q", key)
		}
		if s, ok := v.(string); !ok || s == "" {
			return status.Errorf(codes.Unauthenticated, "secret_data key %q is empty or not a string", key)
		}
	}
	return nil
}

func (j jobService) GetTasks(ctx context.Context, req *pluginpb.GetTasksRequest) (*pluginpb.TasksInfo, error) {
	k, err := j.begin(ctx, MethodGetTasks, req.GetOptions())
	if err != nil {
		return nil, err
	}
	res, err := plan(k, req, j.clock().UTC())
	if err != nil {
		return nil, j.failed(ctx, MethodGetTasks, err)
	}
	j.logger.DebugContext(ctx, "Planned", "tasks", len(res.GetTasks()))
	return res, nil
}

func (c costService) GetLinkedAccounts(ctx context.Context, req *pluginpb.GetLinkedAccountsRequest) (*pluginpb.AccountsInfo, error) {
	k, err := c.begin(ctx, MethodGetLinkedAccounts, req.GetOptions())
	if err != nil {
		return nil, err
	}
	accounts, err := accountsOf(k, nil)
	if err != nil {
		return nil, c.failed(ctx, MethodGetLinkedAccounts, err)
	}
	res := &pluginpb.AccountsInfo{}
	for _, a := range accounts {
		res.Results = append(res.Results, &pluginpb.AccountInfo{AccountId: a, Name: accountName(a)})
	}
	return res, nil
}

func (c costService) GetData(req *pluginpb.GetDataRequest, stream pluginpb.Cost_GetDataServer) error {
	ctx := stream.Context()
	k, err := c.begin(ctx, MethodGetData, req.GetOptions())
	if err != nil {
		return err
	}
	send := func(m *wireMessage) error { return stream.SendMsg(m) }
	if err := c.streamData(ctx, k, req, send); err != nil {
		return c.failed(ctx, MethodGetData, err)
	}
	return nil
}

func (c costService) streamData(ctx context.Context, k knobs, req *pluginpb.GetDataRequest, send func(*wireMessage) error) error {
	if req.GetTaskOptions() == nil {
		return status.Error(codes.InvalidArgument, "task_options is required")
	}
	// With required_secret_keys given, get_data wants the credentials as a billing
	// API would: a collector that did not read its DataSource's Secret fails here.
	if _, ok := k[OptRequiredSecretKeys]; ok {
		if err := verifySecret(k, req.GetSecretData().AsMap()); err != nil {
			return err
		}
	}
	task := knobs(req.GetTaskOptions().AsMap())
	spec, err := dataSpecOf(k, task, monthOf(c.clock().UTC()))
	if err != nil {
		return err
	}
	failing, _, err := k.strings(OptFailGetDataAccounts)
	if err != nil {
		return err
	}
	for _, a := range failing {
		if a == spec.account {
			return k.failure(fmt.Sprintf("get_data fails for account %s (%s)", a, OptFailGetDataAccounts))
		}
	}
	failAfter, err := k.integer(OptFailGetDataAfter, -1, 0, maxRecords)
	if err != nil {
		return err
	}
	batch, err := k.integer(OptBatchSize, 10, 1, 100_000)
	if err != nil {
		return err
	}
	sent := 0
	gen := newGenerator(spec)
	for sent < spec.records {
		if failAfter >= 0 && sent >= failAfter {
			break
		}
		n := min(batch, spec.records-sent)
		if failAfter >= 0 {
			n = min(n, failAfter-sent)
		}
		// A new buffer for each message: gRPC may still be writing the last one.
		msg := &wireMessage{b: make([]byte, 0, n*recordSizeHint)}
		for range n {
			msg.b = gen.appendNext(msg.b)
		}
		if err := ctx.Err(); err != nil {
			return status.FromContextError(err).Err()
		}
		if err := send(msg); err != nil {
			return err
		}
		sent += n
	}
	if failAfter >= 0 && failAfter < spec.records {
		return k.failure(fmt.Sprintf("get_data broke its stream after %d records (%s)", sent, OptFailGetDataAfter))
	}
	c.logger.DebugContext(ctx, "Streamed", "account", spec.account, "month", spec.month.String(), "records", sent,
		slog.Int("batch", batch))
	return nil
}
