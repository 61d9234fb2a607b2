package pluginpb

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

func TestWireConstants(t *testing.T) {
	cost := (*CostInfo)(nil).ProtoReflect().Descriptor().Fields()
	costs := (*CostsInfo)(nil).ProtoReflect().Descriptor().Fields()
	for _, c := range []struct {
		fields protoreflect.FieldDescriptors
		name   protoreflect.Name
		num    protowire.Number
	}{
		{costs, "results", CostsInfoResults},
		{cost, "cost", CostInfoCost}, {cost, "usage_quantity", CostInfoUsageQuantity},
		{cost, "usage_unit", CostInfoUsageUnit}, {cost, "provider", CostInfoProvider},
		{cost, "region_code", CostInfoRegionCode}, {cost, "product", CostInfoProduct},
		{cost, "usage_type", CostInfoUsageType}, {cost, "resource", CostInfoResource},
		{cost, "tags", CostInfoTags}, {cost, "additional_info", CostInfoAdditionalInfo},
		{cost, "data", CostInfoData}, {cost, "billed_date", CostInfoBilledDate},
	} {
		if fd := c.fields.ByName(c.name); fd == nil || fd.Number() != c.num {
			t.Errorf("%s: the constant says %d, the descriptor %v", c.name, c.num, fd)
		}
	}
}
