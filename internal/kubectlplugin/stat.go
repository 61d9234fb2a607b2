package kubectlplugin

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// statePending names the runs the operator has not picked up yet (status unset, the
// SpaceONE API's SCOPE_NONE) in stat's report.
const statePending = "PENDING"

// statStates are stat's columns, in the order a run goes through them.
var statStates = []string{statePending, string(costv1.JobInProgress), string(costv1.JobSuccess),
	string(costv1.JobFailure), string(costv1.JobTimeout), string(costv1.JobCanceled)}

// Stat is stat's report: the runs of a namespace by status, per DataSource.
type Stat struct {
	Namespace   string           `json:"namespace"`
	DataSources []DataSourceRuns `json:"dataSources"`
}

// DataSourceRuns counts one DataSource's runs by status.
type DataSourceRuns struct {
	DataSource string `json:"dataSource"`
	// Exists is false for runs of a DataSource that is gone.
	Exists bool `json:"exists"`
	Runs   int  `json:"runs"`
	// ByStatus has every status, PENDING (not picked up yet) included, even at 0.
	ByStatus map[string]int `json:"byStatus"`
	// LastJob is the most recently created run, and LastStatus its status.
	LastJob    string `json:"lastJob,omitempty"`
	LastStatus string `json:"lastStatus,omitempty"`
}

// statOf counts the Jobs by DataSource and status; every DataSource of sources
// appears, with or without runs.
func statOf(ns string, sources []costv1.DataSource, jobs []costv1.Job) Stat {
	byName := map[string]*DataSourceRuns{}
	entry := func(name string) *DataSourceRuns {
		if e, ok := byName[name]; ok {
			return e
		}
		e := &DataSourceRuns{DataSource: name, ByStatus: map[string]int{}}
		for _, s := range statStates {
			e.ByStatus[s] = 0
		}
		byName[name] = e
		return e
	}
	for _, ds := range sources {
		entry(ds.Name).Exists = true
	}
	last := map[string]*costv1.Job{}
	for i := range jobs {
		j := &jobs[i]
		e := entry(j.Spec.DataSourceRef.Name)
		e.Runs++
		e.ByStatus[stateName(j.Status.Status)]++
		if l := last[e.DataSource]; l == nil || newer(j, l) {
			last[e.DataSource] = j
		}
	}
	st := Stat{Namespace: ns, DataSources: []DataSourceRuns{}}
	for name, e := range byName {
		if l := last[name]; l != nil {
			e.LastJob, e.LastStatus = l.Name, stateName(l.Status.Status)
		}
		st.DataSources = append(st.DataSources, *e)
	}
	slices.SortFunc(st.DataSources, func(a, b DataSourceRuns) int { return compareStrings(a.DataSource, b.DataSource) })
	return st
}

func stateName(s costv1.JobState) string {
	if s == "" {
		return statePending
	}
	return string(s)
}

// newer orders runs by creation, then name (objects created within a second).
func newer(a, b *costv1.Job) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return b.CreationTimestamp.Before(&a.CreationTimestamp)
	}
	return a.Name > b.Name
}

func (p *plugin) statCommand() *cobra.Command {
	var (
		dataSource string
		output     string
	)
	cmd := &cobra.Command{
		Use:   "stat [--data-source DS]",
		Short: "Count the runs of the namespace by status, per DataSource",
		Long: `Counts the Jobs of the namespace by status for each DataSource: PENDING (not picked up
by the operator yet), IN_PROGRESS, SUCCESS, FAILURE, TIMEOUT and CANCELED, with each
DataSource's latest run. Every DataSource is listed, also one without runs; a
DataSource that is gone but still has runs is marked "(deleted)".`,
		Example: `  kubectl costanalysis stat
  kubectl costanalysis stat --data-source sample-billing -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkReportOutput(output); err != nil {
				return err
			}
			c, ns, err := p.target()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var sources costv1.DataSourceList
			var jobs costv1.JobList
			if err := c.List(ctx, &sources, client.InNamespace(ns)); err != nil {
				return fmt.Errorf("listing datasources: %w", err)
			}
			jobOpts := []client.ListOption{client.InNamespace(ns)}
			if dataSource != "" {
				// spec.dataSourceRef.name is a selectable field of the Job kind.
				jobOpts = append(jobOpts, client.MatchingFields{"spec.dataSourceRef.name": dataSource})
				sources.Items = slices.DeleteFunc(sources.Items, func(ds costv1.DataSource) bool { return ds.Name != dataSource })
			}
			if err := c.List(ctx, &jobs, jobOpts...); err != nil {
				return fmt.Errorf("listing jobs: %w", err)
			}
			st := statOf(ns, sources.Items, jobs.Items)
			if dataSource != "" && len(st.DataSources) == 0 {
				return fmt.Errorf("datasource %q not found in namespace %q, and no job names it", dataSource, ns)
			}
			if output != outputTable {
				return printReport(p.Streams.Out, output, st)
			}
			if len(st.DataSources) == 0 {
				fmt.Fprintf(p.Streams.ErrOut, "No datasources or jobs found in %s namespace.\n", ns)
				return nil
			}
			return printStat(p.Streams.Out, st)
		},
	}
	cmd.Flags().StringVar(&dataSource, "data-source", "", "Only the runs of this DataSource.")
	addReportOutput(cmd, &output)
	return cmd
}

func printStat(out io.Writer, st Stat) error {
	tw := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
	fmt.Fprint(tw, "DATA SOURCE\tRUNS")
	for _, s := range statStates {
		fmt.Fprint(tw, "\t"+s)
	}
	fmt.Fprintln(tw, "\tLAST JOB\tLAST STATUS")
	for _, e := range st.DataSources {
		name := e.DataSource
		if !e.Exists {
			name += " (deleted)"
		}
		fmt.Fprint(tw, name+"\t"+strconv.Itoa(e.Runs))
		for _, s := range statStates {
			fmt.Fprint(tw, "\t"+strconv.Itoa(e.ByStatus[s]))
		}
		fmt.Fprintf(tw, "\t%s\t%s\n", orNone(e.LastJob), orNone(e.LastStatus))
	}
	return tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
