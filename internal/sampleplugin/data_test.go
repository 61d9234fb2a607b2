package sampleplugin

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/costops/cost-analysis-operator/internal/plugin/pluginpb"
)

// referenceRecord is record i of a generator as the protobuf runtime would build
// it, drawing from r in the generator's order.
func referenceRecord(spec dataSpec, r *rand.Rand, i int) *pluginpb.CostInfo {
	region := regions[r.IntN(len(regions))]
	p := products[r.IntN(len(products))]
	cost := math.Round(r.Float64()*10000) / 100
	usage := math.Round(r.Float64()*1000000) / 1000
	env := envs[r.IntN(len(envs))]
	return &pluginpb.CostInfo{
		Cost: cost, UsageQuantity: usage, UsageUnit: p.unit, Provider: "sample", RegionCode: region,
		Product: p.name, UsageType: p.usageType,
		Resource: fmt.Sprintf("sample:%s:%s:resource-%d", region, spec.account, i),
		Tags:     &structpb.Struct{Fields: map[string]*structpb.Value{"env": structpb.NewStringValue(env)}},
		AdditionalInfo: &structpb.Struct{Fields: map[string]*structpb.Value{
			"account_id": structpb.NewStringValue(spec.account)}},
		Data: &structpb.Struct{Fields: map[string]*structpb.Value{
			"account_id": structpb.NewStringValue(spec.account), "record": structpb.NewNumberValue(float64(i))}},
		BilledDate: fmt.Sprintf("%s-%02d", spec.month, 1+i%spec.month.days()),
	}
}

// The generator's wire bytes are the records the protobuf runtime would have
// built and sent, field for field.
func TestGeneratorWritesWhatProtobufWould(t *testing.T) {
	for _, spec := range []dataSpec{
		{account: "a", month: month{2024, 2}, index: "0"},
		{account: "123456789012", month: month{2023, 12}, index: "17"},
	} {
		gen := newGenerator(spec)
		ref := newGenerator(spec) // for its seeded random source only
		var b []byte
		for range 1000 {
			b = gen.appendNext(b)
		}
		var got pluginpb.CostsInfo
		if err := proto.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.GetResults()) != 1000 {
			t.Fatalf("%d records", len(got.GetResults()))
		}
		for i, rec := range got.GetResults() {
			if want := referenceRecord(spec, ref.rnd, i); !proto.Equal(rec, want) {
				t.Fatalf("%s record %d:\n got %v\nwant %v", spec.account, i, rec, want)
			}
			if len(rec.ProtoReflect().GetUnknown()) > 0 {
				t.Fatalf("record %d has unknown fields", i)
			}
		}
	}
}
