package kubectlplugin

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/scheme"
)

// cancelAttempts bounds the retries when the Job changes between our read and our
// patch (the operator writes its status often).
const cancelAttempts = 5

func (p *plugin) cancelCommand() *cobra.Command {
	printFlags := genericclioptions.NewPrintFlags("cancel requested").WithTypeSetter(scheme.Scheme)
	cmd := &cobra.Command{
		Use:   "cancel JOB",
		Short: "Cancel a run: set spec.cancel on its Job",
		Long: `Sets spec.cancel=true on the Job (a merge patch, as 'kubectl patch' would send); the
operator then stops the run's task pods, rolls back its records and ends it CANCELED
('watch' follows it there). A Job that has already finished, or has reached its outcome
and is committing or rolling back its records, is refused: there is nothing left to
cancel. Canceling a Job twice is harmless.`,
		Example: `  kubectl costanalysis cancel sample-billing-x7k2p
  kubectl costanalysis cancel sample-billing-x7k2p && kubectl costanalysis watch sample-billing-x7k2p`,
		Args: exactArgs("JOB"),
		RunE: func(cmd *cobra.Command, args []string) error {
			printer, err := printFlags.ToPrinter()
			if err != nil {
				return err
			}
			c, ns, err := p.target()
			if err != nil {
				return err
			}
			j, err := cancelJob(cmd.Context(), c, ns, args[0])
			if err != nil {
				return err
			}
			return printer.PrintObj(j, p.Streams.Out)
		},
	}
	printFlags.AddFlags(cmd)
	return cmd
}

// cancelJob sets spec.cancel on a Job that is still running. The patch carries the
// resourceVersion it was decided on, so a Job that finishes meanwhile is read again
// and refused rather than canceled after the fact.
func cancelJob(ctx context.Context, c client.Client, ns, arg string) (*costv1.Job, error) {
	for range cancelAttempts {
		j, err := getJob(ctx, c, ns, arg)
		if err != nil {
			return nil, err
		}
		if err := cancelable(j); err != nil {
			return nil, err
		}
		if j.Spec.Cancel {
			return j, nil // already asked: the operator is on it
		}
		patch, err := json.Marshal(map[string]any{
			"metadata": map[string]any{"resourceVersion": j.ResourceVersion},
			"spec":     map[string]any{"cancel": true},
		})
		if err != nil {
			return nil, err
		}
		err = c.Patch(ctx, j, client.RawPatch(types.MergePatchType, patch))
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("canceling job %q: %w", j.Name, err)
		}
		return j, nil
	}
	return nil, fmt.Errorf("job %q kept changing while it was being canceled; try again", arg)
}

// cancelable refuses a Job whose run has nothing left to cancel.
func cancelable(j *costv1.Job) error {
	if s := j.Status.Status; s.Finished() {
		return fmt.Errorf("job %q already finished (%s): there is nothing to cancel", j.Name, s)
	}
	if e := j.Status.Ending; e != nil {
		what := "rolling back"
		if e.Status == costv1.JobSuccess {
			what = "committing"
		}
		return fmt.Errorf("job %q already reached its outcome (%s) and is %s its records: it can no longer be canceled", j.Name, e.Status, what)
	}
	return nil
}
