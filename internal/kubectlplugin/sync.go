package kubectlplugin

import (
	"fmt"
	"regexp"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/scheme"
)

// startPattern is what the Job's CRD admits in spec.start: a month or a day.
var startPattern = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?$`)

// maxJobName is the longest Job name the CRD admits; generateName appends 5 characters.
const (
	maxJobName       = 52
	generatedSuffix  = 5
	maxGeneratedBase = maxJobName - generatedSuffix
)

// jobGenerateName is the generateName of a DataSource's run: "<ds>-", cut so that
// the generated name fits the Job kind's limit.
func jobGenerateName(ds string) string {
	base := ds
	if len(base) > maxGeneratedBase-1 {
		base = base[:maxGeneratedBase-1]
	}
	return base + "-"
}

func (p *plugin) syncCommand() *cobra.Command {
	var (
		start string
		wait  bool
	)
	printFlags := genericclioptions.NewPrintFlags("created").WithTypeSetter(scheme.Scheme)
	cmd := &cobra.Command{
		Use:   "sync DATASOURCE [--start YYYY-MM] [--wait]",
		Short: "Start a run of a DataSource: create a Job for it",
		Long: `Creates a Job (cost-analysis.costops.dev/v1) that collects the DataSource's billing data,
named after the DataSource with a random suffix, and prints its name (or the Job with -o).

--start is passed to the plugin's get_tasks as the first month (YYYY-MM) or day
(YYYY-MM-DD) to collect; without it the plugin starts from the DataSource's last
synchronization. --wait then follows the run as 'watch' does and exits with its
outcome (0 SUCCESS, 2 FAILURE, 3 TIMEOUT, 4 CANCELED); with -o the progress goes to
stderr so that stdout holds only the Job.`,
		Example: `  # Start a run and keep its name
  JOB=$(kubectl costanalysis sync sample-billing --start 2026-09)

  # Start a run and follow it to its end
  kubectl costanalysis sync sample-billing --wait

  # The created Job as YAML
  kubectl costanalysis sync sample-billing -o yaml`,
		Args: exactArgs("DATASOURCE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ds := args[0]
			if start != "" && !startPattern.MatchString(start) {
				return fmt.Errorf("--start %q is not a month (YYYY-MM) or a day (YYYY-MM-DD)", start)
			}
			// -o prints the Job as kubectl would; without it, the bare name.
			var printer printers.ResourcePrinter
			if *printFlags.OutputFormat != "" {
				pr, err := printFlags.ToPrinter()
				if err != nil {
					return err
				}
				printer = pr
			}
			c, ns, err := p.target()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var source costv1.DataSource
			if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: ds}, &source); err != nil {
				if apierrors.IsNotFound(err) {
					return fmt.Errorf("datasource %q not found in namespace %q (kubectl get cads -n %s lists them)", ds, ns, ns)
				}
				return fmt.Errorf("reading datasource %q: %w", ds, err)
			}
			job := &costv1.Job{
				ObjectMeta: metav1.ObjectMeta{
					GenerateName: jobGenerateName(ds),
					Namespace:    ns,
					Labels:       map[string]string{costv1.LabelDataSource: ds},
				},
				Spec: costv1.JobSpec{DataSourceRef: costv1.LocalObjectReference{Name: ds}, Start: start},
			}
			if err := c.Create(ctx, job); err != nil {
				return fmt.Errorf("creating a job for datasource %q: %w", ds, err)
			}
			progressOut := p.Streams.Out
			if printer != nil {
				if err := printer.PrintObj(job, p.Streams.Out); err != nil {
					return err
				}
				progressOut = p.Streams.ErrOut
			} else {
				fmt.Fprintln(p.Streams.Out, job.Name)
			}
			if !wait {
				return nil
			}
			return p.follow(ctx, c, job, progressOut)
		},
	}
	cmd.Flags().StringVar(&start, "start", "", "First month (YYYY-MM) or day (YYYY-MM-DD) to collect; the plugin decides when unset.")
	cmd.Flags().BoolVar(&wait, "wait", false, "Follow the run to its end, as 'watch' does, and exit with its outcome.")
	printFlags.AddFlags(cmd)
	return cmd
}

// exactArgs wants exactly one argument, named in the error.
func exactArgs(name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("%s wants one %s argument, got %d (see '%s --help')", cmd.Name(), name, len(args), cmd.CommandPath())
		}
		return nil
	}
}
