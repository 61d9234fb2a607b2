package plugin

import (
	"errors"
	"math"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/costops/cost-analysis-operator/internal/plugin/pluginpb"
)

// The wire encodings of single CostInfo fields, concatenated into messages.

func wireDouble(num protowire.Number, v float64) []byte {
	return protowire.AppendFixed64(protowire.AppendTag(nil, num, protowire.Fixed64Type), math.Float64bits(v))
}

func wireFloat(num protowire.Number, v float32) []byte {
	return protowire.AppendFixed32(protowire.AppendTag(nil, num, protowire.Fixed32Type), math.Float32bits(v))
}

func wireString(num protowire.Number, s string) []byte {
	return protowire.AppendString(protowire.AppendTag(nil, num, protowire.BytesType), s)
}

func wireVarint(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func wireMessage(fields ...[]byte) []byte {
	var b []byte
	for _, f := range fields {
		b = append(b, f...)
	}
	return b
}

// decodeCostInfo unmarshals wire bytes into a CostInfo as the gRPC codec does, so a
// field the schema does not take lands in the unknown fields the real way.
func decodeCostInfo(t *testing.T, b []byte) *pluginpb.CostInfo {
	t.Helper()
	var ci pluginpb.CostInfo
	if err := proto.Unmarshal(b, &ci); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return &ci
}

func TestCostRecordFromInfo(t *testing.T) {
	date := wireString(21, "2024-02-03")
	product := wireString(6, "EC2")
	cases := map[string]struct {
		wire []byte
		// hasUnknown says the message must carry unknown fields after decoding (so
		// the float path really is the unknown-field path).
		hasUnknown bool
		cost       float64
		usage      float64
		// field and problem, when the record is invalid.
		field   string
		problem string
	}{
		"a current plugin's double cost and usage_quantity are read as they are": {
			wire: wireMessage(wireDouble(1, 12.34), wireDouble(2, 0.125), product, date), cost: 12.34, usage: 0.125},
		"an old plugin's float cost and usage_quantity are decoded from the unknown fields": {
			wire: wireMessage(wireFloat(1, 12.34), wireFloat(2, 3.5), product, date), hasUnknown: true, cost: 12.34, usage: 3.5},
		"a float cost widens to the shortest decimal of the float, not its binary tail": {
			wire: wireMessage(wireFloat(1, 0.1), product, date), hasUnknown: true, cost: 0.1},
		"a float cost beside a double usage_quantity reads both": {
			wire: wireMessage(wireFloat(1, 7.25), wireDouble(2, 1e-9), product, date), hasUnknown: true, cost: 7.25, usage: 1e-9},
		"a negative float cost (a credit) stays negative": {
			wire: wireMessage(wireFloat(1, -4.5), product, date), hasUnknown: true, cost: -4.5},
		"the last of two float costs wins, as in protobuf": {
			wire: wireMessage(wireFloat(1, 1), wireFloat(1, 2), product, date), hasUnknown: true, cost: 2},
		"a zero cost is a zero cost": {
			wire: wireMessage(product, date)},
		"a cost sent both as a double and as a float is malformed": {
			wire: wireMessage(wireDouble(1, 1), wireFloat(1, 2), product, date), hasUnknown: true,
			field: "cost", problem: "cost (field 1) is sent both as double and as float"},
		"an unknown field 99 as a varint is malformed, not ignored": {
			wire: wireMessage(wireDouble(1, 1), product, date, wireVarint(99, 7)), hasUnknown: true,
			field: "field 99", problem: "unknown field 99 (wire type 0, varint)"},
		"an unknown field 9 (the old account) as a string is malformed": {
			wire: wireMessage(wireFloat(1, 1), product, date, wireString(9, "1111")), hasUnknown: true,
			field: "field 9", problem: "unknown field 9 (wire type 2, length-delimited)"},
		"cost as a varint is malformed, not a zero": {
			wire: wireMessage(wireVarint(1, 12), product, date), hasUnknown: true,
			field: "cost", problem: "cost (field 1) has wire type 0 (varint), not fixed64 (double) or fixed32 (float)"},
		"usage_quantity as a string is malformed": {
			wire: wireMessage(wireString(2, "3.5"), product, date), hasUnknown: true,
			field: "usage_quantity", problem: "usage_quantity (field 2) has wire type 2 (length-delimited), not fixed64 (double) or fixed32 (float)"},
		"usage_unit as a fixed32 is malformed": {
			wire: wireMessage(wireFloat(3, 1), product, date), hasUnknown: true,
			field: "usage_unit", problem: "usage_unit (field 3) has wire type 5 (fixed32), which its type string does not have"},
		"a record without billed_date is malformed": {
			wire: wireMessage(wireDouble(1, 1), product), field: "billed_date", problem: "billed_date is missing"},
		"a float-encoded record without billed_date is malformed too": {
			wire: wireMessage(wireFloat(1, 1), product), hasUnknown: true, field: "billed_date", problem: "billed_date is missing"},
		"a billed_date in month 13 is not a date": {
			wire:  wireMessage(wireDouble(1, 1), product, wireString(21, "2026-13-01")),
			field: "billed_date", problem: `billed_date "2026-13-01" is not a date`},
		"a billed_date of February 30 is not a date": {
			wire:  wireMessage(wireDouble(1, 1), product, wireString(21, "2024-02-30")),
			field: "billed_date", problem: `billed_date "2024-02-30" is not a date`},
		"a billed_date without its zero padding is not a date": {
			wire:  wireMessage(wireDouble(1, 1), product, wireString(21, "2024-2-3")),
			field: "billed_date", problem: `billed_date "2024-2-3" is not a date`},
		"a billed_date that is a month is not a date": {
			wire:  wireMessage(wireDouble(1, 1), product, wireString(21, "2024-02")),
			field: "billed_date", problem: `billed_date "2024-02" is not a date`},
		"a billed_date that is a time is not a date": {
			wire:  wireMessage(wireDouble(1, 1), product, wireString(21, "2024-02-03T00:00:00Z")),
			field: "billed_date", problem: `billed_date "2024-02-03T00:00:00Z" is not a date`},
		"a NaN cost is malformed": {
			wire: wireMessage(wireDouble(1, math.NaN()), product, date), field: "cost", problem: "cost is NaN, not a finite number"},
		"a NaN cost sent as a float is malformed": {
			wire: wireMessage(wireFloat(1, float32(math.NaN())), product, date), hasUnknown: true,
			field: "cost", problem: "cost is NaN, not a finite number"},
		"a -Inf cost is malformed": {
			wire: wireMessage(wireDouble(1, math.Inf(-1)), product, date), field: "cost", problem: "cost is -Inf, not a finite number"},
		"a +Inf usage_quantity is malformed": {
			wire:  wireMessage(wireDouble(1, 1), wireDouble(2, math.Inf(1)), product, date),
			field: "usage_quantity", problem: "usage_quantity is +Inf, not a finite number"},
		"a +Inf usage_quantity sent as a float is malformed": {
			wire: wireMessage(wireDouble(1, 1), wireFloat(2, float32(math.Inf(1))), product, date), hasUnknown: true,
			field: "usage_quantity", problem: "usage_quantity is +Inf, not a finite number"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ci := decodeCostInfo(t, tc.wire)
			if got := len(ci.ProtoReflect().GetUnknown()) > 0; got != tc.hasUnknown {
				t.Fatalf("unknown fields after decoding: %v, want %v", got, tc.hasUnknown)
			}
			rec, err := CostRecordFromInfo(3, ci)
			if tc.problem == "" {
				if err != nil {
					t.Fatalf("err %v", err)
				}
				if rec.Cost != tc.cost || rec.UsageQuantity != tc.usage || rec.Product != "EC2" || rec.BilledDate != "2024-02-03" {
					t.Errorf("record %+v, want cost %v, usage_quantity %v", rec, tc.cost, tc.usage)
				}
				return
			}
			var re *RecordError
			if !errors.As(err, &re) {
				t.Fatalf("err %v (%T), want a *RecordError", err, err)
			}
			if re.Index != 3 || re.Field != tc.field || re.Problem != tc.problem {
				t.Errorf("error %+v, want field %q, problem %q", re, tc.field, tc.problem)
			}
			if want := "record 3 (product EC2): " + tc.problem; err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
		})
	}
}

func TestRecordErrorsNameTheRecord(t *testing.T) {
	cases := map[string]struct {
		ci   *pluginpb.CostInfo
		want string
	}{
		"by the account in additional_info and the product": {
			&pluginpb.CostInfo{Product: "EC2", BilledDate: "2026-13-01", AdditionalInfo: &structpb.Struct{
				Fields: map[string]*structpb.Value{"account_id": structpb.NewStringValue("1111")}}},
			`record 17 (account 1111, product EC2): billed_date "2026-13-01" is not a date`},
		"by the account AWS plugins write as Account ID": {
			&pluginpb.CostInfo{Product: "S3", AdditionalInfo: &structpb.Struct{
				Fields: map[string]*structpb.Value{"Account ID": structpb.NewStringValue("2222")}}},
			`record 17 (account 2222, product S3): billed_date is missing`},
		"by the account in data": {
			&pluginpb.CostInfo{Cost: math.NaN(), BilledDate: "2024-01-01", Data: &structpb.Struct{
				Fields: map[string]*structpb.Value{"account_id": structpb.NewStringValue("3333")}}},
			`record 17 (account 3333): cost is NaN, not a finite number`},
		"by its index alone when it names nothing": {
			&pluginpb.CostInfo{}, `record 17: billed_date is missing`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := CostRecordFromInfo(17, tc.ci)
			if err == nil || err.Error() != tc.want {
				t.Errorf("err %v, want %s", err, tc.want)
			}
		})
	}
}

// oldCostInfo is CostInfo as plugins on spaceone-api 1.12.x declare it: cost and
// usage_quantity are float. A message built from it and marshaled by the protobuf
// runtime is what such a plugin puts on the wire.
func oldCostInfo(t *testing.T) protoreflect.MessageDescriptor {
	t.Helper()
	field := func(name string, num int32, typ descriptorpb.FieldDescriptorProto_Type, msg string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{
			Name: proto.String(name), Number: proto.Int32(num), Type: typ.Enum(),
			Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
		}
		if msg != "" {
			f.TypeName = proto.String(msg)
		}
		return f
	}
	const (
		float  = descriptorpb.FieldDescriptorProto_TYPE_FLOAT
		str    = descriptorpb.FieldDescriptorProto_TYPE_STRING
		object = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	)
	file := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("spaceone/api/cost_analysis/plugin/v1/cost_1_12.proto"),
		Package:    proto.String("spaceone.api.cost_analysis.plugin.v1_12"),
		Dependency: []string{"google/protobuf/struct.proto"},
		Syntax:     proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("CostInfo"),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("cost", 1, float, ""),
				field("usage_quantity", 2, float, ""),
				field("usage_unit", 3, str, ""),
				field("provider", 4, str, ""),
				field("region_code", 5, str, ""),
				field("product", 6, str, ""),
				field("usage_type", 7, str, ""),
				field("resource", 8, str, ""),
				field("tags", 12, object, ".google.protobuf.Struct"),
				field("additional_info", 13, object, ".google.protobuf.Struct"),
				field("data", 14, object, ".google.protobuf.Struct"),
				field("billed_date", 21, str, ""),
			},
		}},
	}
	fd, err := protodesc.NewFile(file, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	return fd.Messages().ByName("CostInfo")
}

// An old plugin's whole record, encoded by the protobuf runtime from its float
// schema, decodes with every field and the float cost and usage_quantity.
func TestAnOldPluginsRecordDecodesWhole(t *testing.T) {
	md := oldCostInfo(t)
	m := dynamicpb.NewMessage(md)
	set := func(name string, v protoreflect.Value) { m.Set(md.Fields().ByName(protoreflect.Name(name)), v) }
	set("cost", protoreflect.ValueOfFloat32(1234.56))
	set("usage_quantity", protoreflect.ValueOfFloat32(744))
	set("usage_unit", protoreflect.ValueOfString("Hrs"))
	set("provider", protoreflect.ValueOfString("aws"))
	set("region_code", protoreflect.ValueOfString("us-east-1"))
	set("product", protoreflect.ValueOfString("AmazonEC2"))
	set("usage_type", protoreflect.ValueOfString("BoxUsage:m5.large"))
	set("billed_date", protoreflect.ValueOfString("2024-02-29"))
	info := m.Mutable(md.Fields().ByName("additional_info")).Message()
	b, err := proto.Marshal(&structpb.Struct{Fields: map[string]*structpb.Value{"Instance Type": structpb.NewStringValue("m5.large")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(b, info.Interface()); err != nil {
		t.Fatal(err)
	}
	wire, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if got := topFields(t, wire); got[1] != protowire.Fixed32Type || got[2] != protowire.Fixed32Type {
		t.Fatalf("the old schema's fields %v: cost and usage_quantity should be fixed32", got)
	}

	ci := decodeCostInfo(t, wire)
	if ci.GetCost() != 0 || len(ci.ProtoReflect().GetUnknown()) == 0 {
		t.Fatalf("cost %v with %d bytes of unknown fields: the float did not land in the unknown fields", ci.GetCost(), len(ci.ProtoReflect().GetUnknown()))
	}
	rec, err := CostRecordFromInfo(0, ci)
	if err != nil {
		t.Fatal(err)
	}
	want := CostRecord{Cost: 1234.56, UsageQuantity: 744, UsageUnit: "Hrs", Provider: "aws", RegionCode: "us-east-1",
		Product: "AmazonEC2", UsageType: "BoxUsage:m5.large", BilledDate: "2024-02-29"}
	got := rec
	got.AdditionalInfo = nil
	if got.Cost != want.Cost || got.UsageQuantity != want.UsageQuantity || got.UsageUnit != want.UsageUnit || got.Provider != want.Provider ||
		got.RegionCode != want.RegionCode || got.Product != want.Product || got.UsageType != want.UsageType || got.BilledDate != want.BilledDate {
		t.Errorf("record %+v, want %+v", rec, want)
	}
	if member(t, rec.AdditionalInfo, "Instance Type") != "m5.large" {
		t.Errorf("additional_info %v", rec.AdditionalInfo)
	}
}

// A current record carrying an old float in its unknown fields (as a proxy that
// decoded with the current schema forwards it) survives a marshal and unmarshal and
// reads as the float, beside the double it has for the other field.
func TestBothEncodingsInOneMarshaledMessage(t *testing.T) {
	ci := &pluginpb.CostInfo{
		UsageQuantity: 2.5, UsageUnit: "GB-Mo", Provider: "aws", Product: "AmazonS3", BilledDate: "2024-03-01",
		Tags: &structpb.Struct{Fields: map[string]*structpb.Value{"team": structpb.NewStringValue("a")}},
	}
	ci.ProtoReflect().SetUnknown(wireFloat(1, 99.99))
	wire, err := proto.Marshal(ci)
	if err != nil {
		t.Fatal(err)
	}
	got := topFields(t, wire)
	if got[1] != protowire.Fixed32Type || got[2] != protowire.Fixed64Type {
		t.Fatalf("fields on the wire %v, want cost fixed32 and usage_quantity fixed64", got)
	}
	rec, err := CostRecordFromInfo(0, decodeCostInfo(t, wire))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Cost != 99.99 || rec.UsageQuantity != 2.5 || member(t, rec.Tags, "team") != "a" {
		t.Errorf("record %+v", rec)
	}
}

// Every float32 reads back as itself: the widening never changes the value sent.
func TestWidenedFloatsReadBackAsTheSameFloat(t *testing.T) {
	for _, f := range []float32{0, 1, 0.1, 12.34, 1234.56, 1e-7, 3.4028235e38, 1.4e-45, -0.01, 16777217, 0.30000001} {
		if w := widenFloat32(f); float32(w) != f {
			t.Errorf("widenFloat32(%v) = %v, which is float32 %v", f, w, float32(w))
		}
	}
	if w := widenFloat32(12.34); w != 12.34 {
		t.Errorf("widenFloat32(12.34) = %v", w)
	}
}

// rawCostServer streams fixed batches of records from get_data.
type rawCostServer struct {
	pluginpb.UnimplementedCostServer
	batches [][]*pluginpb.CostInfo
}

func (s *rawCostServer) GetData(_ *pluginpb.GetDataRequest, stream grpc.ServerStreamingServer[pluginpb.CostsInfo]) error {
	for _, b := range s.batches {
		if err := stream.Send(&pluginpb.CostsInfo{Results: b}); err != nil {
			return err
		}
	}
	return nil
}

func startRawCostServer(t *testing.T, batches ...[]*pluginpb.CostInfo) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	pluginpb.RegisterCostServer(s, &rawCostServer{batches: batches})
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// floatRecord is a record as an old plugin sends it: cost and usage_quantity as
// fixed32 in what the current schema decodes as unknown fields.
func floatRecord(cost, usage float32, date string) *pluginpb.CostInfo {
	ci := &pluginpb.CostInfo{Provider: "aws", Product: "AmazonEC2", BilledDate: date}
	ci.ProtoReflect().SetUnknown(wireMessage(wireFloat(1, cost), wireFloat(2, usage)))
	return ci
}

func TestGetDataDecodesFloatsAndStopsAtAnInvalidRecord(t *testing.T) {
	t.Run("float and double records both arrive with their values", func(t *testing.T) {
		addr := startRawCostServer(t,
			[]*pluginpb.CostInfo{{Cost: 1.5, UsageQuantity: 2, BilledDate: "2024-01-01"}, floatRecord(12.34, 744, "2024-01-02")},
			[]*pluginpb.CostInfo{floatRecord(0.05, 1, "2024-01-03")})
		recs, err := collect(t, testClient(t, Options{Endpoint: addr}), GetDataRequest{})
		if err != nil {
			t.Fatal(err)
		}
		want := [][2]float64{{1.5, 2}, {12.34, 744}, {0.05, 1}}
		if len(recs) != len(want) {
			t.Fatalf("%d records: %+v", len(recs), recs)
		}
		for i, r := range recs {
			if r.Cost != want[i][0] || r.UsageQuantity != want[i][1] {
				t.Errorf("record %d: cost %v, usage_quantity %v, want %v", i, r.Cost, r.UsageQuantity, want[i])
			}
		}
	})
	t.Run("an invalid record in a later message is named by its index in the stream", func(t *testing.T) {
		bad := &pluginpb.CostInfo{Cost: 1, Product: "EC2", BilledDate: "2026-13-01",
			AdditionalInfo: &structpb.Struct{Fields: map[string]*structpb.Value{"account_id": structpb.NewStringValue("1111")}}}
		addr := startRawCostServer(t,
			[]*pluginpb.CostInfo{{Cost: 1, BilledDate: "2024-01-01"}, {Cost: 2, BilledDate: "2024-01-02"}},
			[]*pluginpb.CostInfo{{Cost: 3, BilledDate: "2024-01-03"}, bad, {Cost: 5, BilledDate: "2024-01-05"}})
		recs, err := collect(t, testClient(t, Options{Endpoint: addr}), GetDataRequest{})
		var me *MalformedError
		var re *RecordError
		if !errors.As(err, &me) || !errors.As(err, &re) || me.Method != MethodGetData {
			t.Fatalf("err %v (%T), want a *MalformedError wrapping a *RecordError", err, err)
		}
		if re.Index != 3 || re.Field != "billed_date" ||
			re.Error() != `record 3 (account 1111, product EC2): billed_date "2026-13-01" is not a date` {
			t.Errorf("record error %+v: %v", re, re)
		}
		if !strings.Contains(err.Error(), "Cost.get_data returned malformed data") {
			t.Errorf("err %v", err)
		}
		if len(recs) != 3 {
			t.Errorf("%d records reached fn before the invalid one, want 3", len(recs))
		}
	})
}
