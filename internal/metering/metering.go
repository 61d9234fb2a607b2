// Package metering is the job metering API's model ("task pricing details"): what a
// run consumed, from the summary the Job controller keeps in status.metering. The
// manager's HTTP API (internal/spaceone) serves it and the kubectl plugin prints it;
// this package links nothing else into either.
package metering

import (
	"crypto/sha1"
	"fmt"

	"k8s.io/apimachinery/pkg/types"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// ProductInfo is one entry of product_info_list, with every field of the metering API document.
type ProductInfo struct {
	ID                    string  `json:"id"`
	CloudServiceType      string  `json:"cloud_service_type"`
	ResourceType          string  `json:"resource_type"`
	ResourceSpecCode      string  `json:"resource_spec_code"`
	ResourceSize          int     `json:"resource_size"`
	ResourceSizeMeasureID int     `json:"resource_size_measure_id"`
	UsageFactor           string  `json:"usage_factor"`
	UsageValue            float64 `json:"usage_value"`
	UsageMeasureID        int     `json:"usage_measure_id"`
}

// Info is the metering API's answer.
type Info struct {
	ProductInfoList []ProductInfo `json:"product_info_list"`
}

// What the entries say, in the metering API's vocabulary.
const (
	// CloudServiceType names this product's service.
	CloudServiceType = "costops.service.type.cost-analysis"
	// ResourceTypeTaskPod is the task pods' run time, per collector resource spec.
	ResourceTypeTaskPod = "costops.resource.type.cost-analysis.task-pod"
	// ResourceTypeFlow is the data the collectors reported.
	ResourceTypeFlow = "costops.resource.type.cost-analysis.flow"
	// ResourceSpecFlow is the flow entry's resource spec.
	ResourceSpecFlow = "cost-analysis.collected-data"
	// ResourceSpecDefault stands for a collector with no resource requests or limits.
	ResourceSpecDefault = "default"

	UsageFactorDuration = "Duration"
	UsageFactorFlow     = "flow"
	MeasureHour         = 4
	MeasureGB           = 10
	// MeasureNone is resource_size_measure_id of entries whose resource_size (1) is a
	// count of one resource of resource_spec_code, not a capacity.
	MeasureNone = 0

	bytesPerGB = 1 << 30 // the metering API's GB is binary: 1 GB = 1024 MB
)

// Products describes what a Job's run consumed: the task pods' run time in
// hours on the collector's resource spec, and the collected data in GB. A Job the
// operator has not picked up yet has consumed nothing: the list is empty. Entry ids
// derive from the Job's UID, so they are stable across calls and unique per Job.
func Products(j *costv1.Job) []ProductInfo {
	m := j.Status.Metering
	if m == nil {
		return []ProductInfo{}
	}
	spec := m.ResourceSpecCode
	if spec == "" {
		spec = ResourceSpecDefault
	}
	return []ProductInfo{
		{
			ID:                    stableID(j.UID, "task-pod-duration"),
			CloudServiceType:      CloudServiceType,
			ResourceType:          ResourceTypeTaskPod,
			ResourceSpecCode:      spec,
			ResourceSize:          1,
			ResourceSizeMeasureID: MeasureNone,
			UsageFactor:           UsageFactorDuration,
			UsageValue:            float64(m.TaskPodSeconds) / 3600,
			UsageMeasureID:        MeasureHour,
		},
		{
			ID:                    stableID(j.UID, "collected-data-flow"),
			CloudServiceType:      CloudServiceType,
			ResourceType:          ResourceTypeFlow,
			ResourceSpecCode:      ResourceSpecFlow,
			ResourceSize:          1,
			ResourceSizeMeasureID: MeasureNone,
			UsageFactor:           UsageFactorFlow,
			UsageValue:            float64(m.CollectedBytes) / bytesPerGB,
			UsageMeasureID:        MeasureGB,
		},
	}
}

// stableID is a name-based (version 5 layout) UUID of the Job's UID and the entry's kind.
func stableID(uid types.UID, kind string) string {
	sum := sha1.Sum([]byte("cost-analysis.costops.dev/metering/" + string(uid) + "/" + kind))
	sum[6] = sum[6]&0x0f | 0x50
	sum[8] = sum[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
}
