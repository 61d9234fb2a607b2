package kubectlplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// jobResources are the ways kubectl names the operator's Job kind, so that a JOB
// argument may be "NAME" or "cajob/NAME", as `sync -o name` prints it.
var jobResources = []string{"cajob", "cajobs", "job.cost-analysis.costops.dev", "jobs.cost-analysis.costops.dev"}

// jobName is the Job's name in a JOB argument.
func jobName(arg string) (string, error) {
	res, name, found := strings.Cut(arg, "/")
	if !found {
		return arg, nil
	}
	for _, r := range jobResources {
		if strings.EqualFold(res, r) && name != "" {
			return name, nil
		}
	}
	return "", fmt.Errorf("%q is not a cost-analysis Job: give its name, or %s/NAME", arg, jobResources[0])
}

// getJob reads the Job named by arg, with an error that says where it looked.
func getJob(ctx context.Context, c client.Client, ns, arg string) (*costv1.Job, error) {
	name, err := jobName(arg)
	if err != nil {
		return nil, err
	}
	var j costv1.Job
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &j); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("job %q not found in namespace %q (kubectl get cajob -n %s lists them)", name, ns, ns)
		}
		return nil, fmt.Errorf("reading job %q: %w", name, err)
	}
	return &j, nil
}

// Output formats of the commands that print a report rather than an object.
const (
	outputTable = ""
	outputJSON  = "json"
	outputYAML  = "yaml"
)

// addReportOutput adds -o for a command whose report is a table or JSON/YAML.
func addReportOutput(cmd *cobra.Command, format *string) {
	cmd.Flags().StringVarP(format, "output", "o", outputTable, "Output format: json or yaml (a table when unset).")
}

func checkReportOutput(format string) error {
	switch format {
	case outputTable, outputJSON, outputYAML:
		return nil
	}
	return fmt.Errorf("unknown output format %q: use json or yaml, or leave -o out for a table", format)
}

// printReport writes v as indented JSON or as YAML.
func printReport(out io.Writer, format string, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	if format == outputYAML {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return err
		}
		_, err = out.Write(b)
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}
