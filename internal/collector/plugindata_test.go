package collector

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/costops/cost-analysis-operator/internal/plugin"
	"github.com/costops/cost-analysis-operator/internal/plugin/pluginpb"
)

// rawPlugin is a plugin's Cost service that streams fixed batches of records, built
// field by field, so a test can send what real plugins send and the sample plugin
// never would.
type rawPlugin struct {
	pluginpb.UnimplementedCostServer
	batches [][]*pluginpb.CostInfo
}

func (p *rawPlugin) GetData(_ *pluginpb.GetDataRequest, stream grpc.ServerStreamingServer[pluginpb.CostsInfo]) error {
	for _, b := range p.batches {
		if err := stream.Send(&pluginpb.CostsInfo{Results: b}); err != nil {
			return err
		}
	}
	return nil
}

func startRawPlugin(t *testing.T, batches ...[]*pluginpb.CostInfo) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	pluginpb.RegisterCostServer(s, &rawPlugin{batches: batches})
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

func account(id string) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{"account_id": structpb.NewStringValue(id)}}
}

// record is a valid record as a current plugin sends it (cost as double).
func record(i int) *pluginpb.CostInfo {
	return &pluginpb.CostInfo{Cost: float64(i) + 0.5, UsageQuantity: 1, Provider: "aws", Product: "EC2",
		BilledDate: fmt.Sprintf("2024-02-%02d", 1+i%28), AdditionalInfo: account("1111")}
}

// withUnknown is ci carrying raw fields the current schema does not decode: on the
// wire they follow its known fields, as an old plugin's would.
func withUnknown(ci *pluginpb.CostInfo, fields ...[]byte) *pluginpb.CostInfo {
	var b []byte
	for _, f := range fields {
		b = append(b, f...)
	}
	ci.ProtoReflect().SetUnknown(b)
	return ci
}

// float32Field is field num encoded as a protobuf float (fixed32), as plugins on
// spaceone-api 1.12.x send cost (1) and usage_quantity (2).
func float32Field(num protowire.Number, v float32) []byte {
	return protowire.AppendFixed32(protowire.AppendTag(nil, num, protowire.Fixed32Type), math.Float32bits(v))
}

func TestCollectorWritesFloatEncodedCostsWithTheirValues(t *testing.T) {
	old := withUnknown(&pluginpb.CostInfo{Provider: "aws", Product: "AmazonEC2", BilledDate: "2024-02-03", AdditionalInfo: account("1111")},
		float32Field(1, 12.34), float32Field(2, 744))
	mixed := withUnknown(&pluginpb.CostInfo{UsageQuantity: 2.5, Provider: "aws", Product: "AmazonS3", BilledDate: "2024-02-04"},
		float32Field(1, 0.07))
	addr := startRawPlugin(t, []*pluginpb.CostInfo{record(0), old}, []*pluginpb.CostInfo{mixed})
	res := runMain(t, dryRunEnv(addr, "/nonexistent"))
	if res.exit != 0 || res.msg.Failed() || res.msg.CreatedCount == nil || *res.msg.CreatedCount != 3 {
		t.Fatalf("exit %d, result %s, stderr %s", res.exit, res.raw, res.stderr)
	}
	want := []struct {
		cost, usage float64
		product     string
	}{{0.5, 1, "EC2"}, {12.34, 744, "AmazonEC2"}, {0.07, 2.5, "AmazonS3"}}
	var got []plugin.CostRecord
	sc := bufio.NewScanner(strings.NewReader(res.stdout))
	for sc.Scan() {
		var rec plugin.CostRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("line %d is not a record: %v", len(got), err)
		}
		got = append(got, rec)
	}
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(got), len(want), res.stdout)
	}
	for i, w := range want {
		if got[i].Cost != w.cost || got[i].UsageQuantity != w.usage || got[i].Product != w.product {
			t.Errorf("line %d: cost %v, usage_quantity %v, product %s; want %+v", i, got[i].Cost, got[i].UsageQuantity, got[i].Product, w)
		}
	}
	if !strings.Contains(res.stdout, `"cost":12.34,"usage_quantity":744,`) {
		t.Errorf("the float cost is not written as the plugin meant it:\n%s", res.stdout)
	}
}

func TestCollectorFailsTheTaskOnInvalidPluginData(t *testing.T) {
	// valid is n valid records in batches of 5.
	valid := func(n int) [][]*pluginpb.CostInfo {
		var batches [][]*pluginpb.CostInfo
		for i := 0; i < n; i += 5 {
			var b []*pluginpb.CostInfo
			for j := i; j < min(i+5, n); j++ {
				b = append(b, record(j))
			}
			batches = append(batches, b)
		}
		return batches
	}
	cases := map[string]struct {
		before int // valid records before the bad one
		bad    *pluginpb.CostInfo
		msg    string
	}{
		"a billed_date that is not a date names the record and the field": {
			before: 17, bad: &pluginpb.CostInfo{Cost: 1, Product: "EC2", BilledDate: "2026-13-01", AdditionalInfo: account("1111")},
			msg: `record 17 (account 1111, product EC2): billed_date "2026-13-01" is not a date`},
		"a record without billed_date": {
			before: 0, bad: &pluginpb.CostInfo{Cost: 1, Product: "EC2", AdditionalInfo: account("1111")},
			msg: `record 0 (account 1111, product EC2): billed_date is missing`},
		"a NaN cost": {
			before: 3, bad: &pluginpb.CostInfo{Cost: math.NaN(), Product: "EC2", BilledDate: "2024-02-01"},
			msg: `record 3 (product EC2): cost is NaN, not a finite number`},
		"a +Inf usage_quantity sent as a float": {
			before: 5, bad: withUnknown(&pluginpb.CostInfo{Product: "EC2", BilledDate: "2024-02-01"},
				float32Field(1, 1), float32Field(2, float32(math.Inf(1)))),
			msg: `record 5 (product EC2): usage_quantity is +Inf, not a finite number`},
		"an unknown field 99": {
			before: 2, bad: withUnknown(&pluginpb.CostInfo{Cost: 1, Product: "EC2", BilledDate: "2024-02-01"},
				protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1)),
			msg: `record 2 (product EC2): unknown field 99 (wire type 0, varint)`},
		"a cost sent as a varint": {
			before: 1, bad: withUnknown(&pluginpb.CostInfo{Product: "EC2", BilledDate: "2024-02-01"},
				protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 12)),
			msg: `record 1 (product EC2): cost (field 1) has wire type 0 (varint), not fixed64 (double) or fixed32 (float)`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			batches := valid(tc.before)
			// The bad record comes with a valid one after it, in the same message.
			batches = append(batches, []*pluginpb.CostInfo{tc.bad, record(99)})
			addr := startRawPlugin(t, batches...)
			res := runMain(t, dryRunEnv(addr, "/nonexistent"))
			if res.exit != 1 || res.msg.ErrorCode != ErrorInvalidPluginData || res.msg.ErrorMessage != tc.msg {
				t.Fatalf("exit %d, result %s; want exit 1, %s: %s", res.exit, res.raw, ErrorInvalidPluginData, tc.msg)
			}
			if res.msg.CreatedCount != nil {
				t.Errorf("a failed task reports a count: %s", res.raw)
			}
			if n := strings.Count(res.stdout, "\n"); n != tc.before {
				t.Errorf("%d lines written, want the %d before the bad record", n, tc.before)
			}
			if !strings.Contains(res.stderr, ErrorInvalidPluginData) {
				t.Errorf("the log does not say why: %s", res.stderr)
			}
		})
	}
}
