package kubectlplugin

import (
	"crypto/sha1"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// The job metering API's product_info_list (internal/spaceone serves it), rebuilt
// here from the Job's status.metering: importing internal/spaceone would link the
// manager's HTTP server and Kubernetes authentication stack into the plugin.
// TestMeteringMatchesTheAPI holds the two to the same answer for the same Job.

// ProductInfo is one entry of product_info_list.
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

// MeteringInfo is the metering API's answer.
type MeteringInfo struct {
	ProductInfoList []ProductInfo `json:"product_info_list"`
}

// The metering API's vocabulary.
const (
	cloudServiceType    = "costops.service.type.cost-analysis"
	resourceTypeTaskPod = "costops.resource.type.cost-analysis.task-pod"
	resourceTypeFlow    = "costops.resource.type.cost-analysis.flow"
	resourceSpecFlow    = "cost-analysis.collected-data"
	resourceSpecDefault = "default"
	measureNone         = 0
	measureHour         = 4
	measureGB           = 10
	bytesPerGB          = 1 << 30
)

// meteringProducts is what a Job's run consumed, as the metering API lists it.
func meteringProducts(j *costv1.Job) []ProductInfo {
	m := j.Status.Metering
	if m == nil {
		return []ProductInfo{}
	}
	spec := m.ResourceSpecCode
	if spec == "" {
		spec = resourceSpecDefault
	}
	return []ProductInfo{
		{
			ID: meteringID(j.UID, "task-pod-duration"), CloudServiceType: cloudServiceType,
			ResourceType: resourceTypeTaskPod, ResourceSpecCode: spec, ResourceSize: 1, ResourceSizeMeasureID: measureNone,
			UsageFactor: "Duration", UsageValue: float64(m.TaskPodSeconds) / 3600, UsageMeasureID: measureHour,
		},
		{
			ID: meteringID(j.UID, "collected-data-flow"), CloudServiceType: cloudServiceType,
			ResourceType: resourceTypeFlow, ResourceSpecCode: resourceSpecFlow, ResourceSize: 1, ResourceSizeMeasureID: measureNone,
			UsageFactor: "flow", UsageValue: float64(m.CollectedBytes) / bytesPerGB, UsageMeasureID: measureGB,
		},
	}
}

// meteringID is the entry's stable id: a name-based (version 5 layout) UUID of the
// Job's UID and the entry's kind.
func meteringID(uid types.UID, kind string) string {
	sum := sha1.Sum([]byte("cost-analysis.costops.dev/metering/" + string(uid) + "/" + kind))
	sum[6] = sum[6]&0x0f | 0x50
	sum[8] = sum[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
}

func (p *plugin) meteringCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "metering JOB",
		Short: "Show what a run consumed: task pod hours per resource spec, GB collected",
		Long: `Shows the run's metering (the Job's status.metering) as the job metering API serves it
(GET /v5/{namespace}/jobs/{job}/metering): the task pods' run time in hours on the
collector's resource spec, and the data the collectors reported in GB (1 GB = 2^30
bytes). -o json and -o yaml print the API's answer, {"product_info_list": [...]}. A run
the operator has not picked up yet has consumed nothing: the list is empty.`,
		Example: `  kubectl costanalysis metering sample-billing-x7k2p
  kubectl costanalysis metering sample-billing-x7k2p -o json`,
		Args: exactArgs("JOB"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkReportOutput(output); err != nil {
				return err
			}
			ns, err := p.namespace()
			if err != nil {
				return err
			}
			c, err := p.client()
			if err != nil {
				return err
			}
			j, err := getJob(cmd.Context(), c, ns, args[0])
			if err != nil {
				return err
			}
			info := MeteringInfo{ProductInfoList: meteringProducts(j)}
			if output != outputTable {
				return printReport(p.Streams.Out, output, info)
			}
			return printMetering(p.Streams.Out, j, info.ProductInfoList)
		},
	}
	addReportOutput(cmd, &output)
	return cmd
}

// printMetering is the metering as a table, with the raw figures beside the units
// the API bills in.
func printMetering(out io.Writer, j *costv1.Job, products []ProductInfo) error {
	if len(products) == 0 {
		_, err := fmt.Fprintf(out, "Job %s has no metering yet: the operator has not picked it up.\n", j.Name)
		return err
	}
	m := j.Status.Metering
	tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE\tRESOURCE SPEC\tUSAGE\tUNIT\tMEASURED")
	for _, pi := range products {
		resource, unit, measured := pi.ResourceType, "", ""
		switch pi.ResourceType {
		case resourceTypeTaskPod:
			resource, unit, measured = "task pod duration", "hours", formatDuration(secondsDuration(m.TaskPodSeconds))+" of task pods"
		case resourceTypeFlow:
			resource, unit, measured = "collected data", "GB", strconv.FormatInt(m.CollectedBytes, 10)+" bytes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", resource, pi.ResourceSpecCode, strconv.FormatFloat(pi.UsageValue, 'g', 6, 64), unit, measured)
	}
	return tw.Flush()
}
