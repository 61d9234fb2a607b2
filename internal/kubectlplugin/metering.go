package kubectlplugin

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/metering"
)

// meteringCommand prints the job metering API's product_info_list (internal/metering,
// which internal/spaceone serves), built from the Job's status.metering.

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
			c, ns, err := p.target()
			if err != nil {
				return err
			}
			j, err := getJob(cmd.Context(), c, ns, args[0])
			if err != nil {
				return err
			}
			info := metering.Info{ProductInfoList: metering.Products(j)}
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
func printMetering(out io.Writer, j *costv1.Job, products []metering.ProductInfo) error {
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
		case metering.ResourceTypeTaskPod:
			resource, unit, measured = "task pod duration", "hours", formatDuration(secondsDuration(m.TaskPodSeconds))+" of task pods"
		case metering.ResourceTypeFlow:
			resource, unit, measured = "collected data", "GB", strconv.FormatInt(m.CollectedBytes, 10)+" bytes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", resource, pi.ResourceSpecCode, strconv.FormatFloat(pi.UsageValue, 'g', 6, 64), unit, measured)
	}
	return tw.Flush()
}
