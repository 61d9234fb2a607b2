package pluginpb

import "google.golang.org/protobuf/encoding/protowire"

// The field numbers of CostsInfo and CostInfo, for code that reads or writes
// get_data's messages in their wire form (the collector's decoder, the sample
// plugin's encoder). Hand-written beside the generated code; TestWireConstants
// holds them to the descriptors.
const (
	CostsInfoResults protowire.Number = 1

	CostInfoCost           protowire.Number = 1
	CostInfoUsageQuantity  protowire.Number = 2
	CostInfoUsageUnit      protowire.Number = 3
	CostInfoProvider       protowire.Number = 4
	CostInfoRegionCode     protowire.Number = 5
	CostInfoProduct        protowire.Number = 6
	CostInfoUsageType      protowire.Number = 7
	CostInfoResource       protowire.Number = 8
	CostInfoTags           protowire.Number = 12
	CostInfoAdditionalInfo protowire.Number = 13
	CostInfoData           protowire.Number = 14
	CostInfoBilledDate     protowire.Number = 21
)
