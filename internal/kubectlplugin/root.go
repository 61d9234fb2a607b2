// Package kubectlplugin is the kubectl plugin kubectl-costanalysis: the commands that
// drive cost-analysis runs from a terminal (sync, cancel, watch, logs, stat,
// metering, version). It builds on cli-runtime, so --namespace, --context,
// --kubeconfig and -o behave as they do in kubectl; cmd/kubectl-costanalysis is only
// its entry point.
package kubectlplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/costops/cost-analysis-operator/internal/scheme"
)

// Exit codes of the plugin. watch (and sync --wait) exit with the run's outcome, so
// that scripts can tell a failed run from a plugin that could not do its work.
const (
	// ExitSuccess: the command did its work; for watch, the run ended SUCCESS.
	ExitSuccess = 0
	// ExitError: the plugin could not do its work (bad arguments, an object that
	// does not exist, a refused request, a lost connection).
	ExitError = 1
	// ExitFailure: the watched run ended FAILURE.
	ExitFailure = 2
	// ExitTimeout: the watched run ended TIMEOUT.
	ExitTimeout = 3
	// ExitCanceled: the watched run ended CANCELED.
	ExitCanceled = 4
)

// ExitError is an error that ends the plugin with a given exit code.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// exitCode is the exit code for what a command returned.
func exitCode(err error) int {
	if err == nil {
		return ExitSuccess
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return ExitError
}

// Options inject what the commands use from the outside world, for tests.
type Options struct {
	// Streams are stdin, stdout and stderr.
	Streams genericiooptions.IOStreams
	// Clock drives the watch's rate, ETA and redraws.
	Clock clock.WithTicker
	// Terminal reports whether w is a terminal and how wide it is; nil looks at
	// the file descriptor behind w.
	Terminal func(w io.Writer) (ok bool, width int)
	// ConfigFlags are the kubeconfig flags; nil makes kubectl's.
	ConfigFlags *genericclioptions.ConfigFlags
	// WatchTimeout is how long the server keeps one watch of the Job open before
	// the watch starts another (0: 5 minutes, as client-go's reflectors do).
	WatchTimeout time.Duration
}

// Main runs the plugin with the process's arguments and streams, and returns its exit code.
func Main(args []string) int {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	cmd := NewCommand(Options{Streams: streams})
	cmd.SetArgs(args)
	// Ctrl-C ends a watch cleanly (the run goes on) rather than mid-frame.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cmd.ExecuteContext(ctx)
	if err != nil {
		var e *exitError
		if !errors.As(err, &e) || e.msg != "" {
			fmt.Fprintf(streams.ErrOut, "error: %v\n", err)
		}
	}
	return exitCode(err)
}

// plugin holds what every command shares.
type plugin struct {
	Options
}

// NewCommand is the plugin's root command.
func NewCommand(o Options) *cobra.Command {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Terminal == nil {
		o.Terminal = fileTerminal
	}
	if o.WatchTimeout <= 0 {
		o.WatchTimeout = 5 * time.Minute
	}
	if o.ConfigFlags == nil {
		o.ConfigFlags = genericclioptions.NewConfigFlags(true)
	}
	p := &plugin{Options: o}
	root := &cobra.Command{
		Use:   "kubectl-costanalysis",
		Short: "Drive cost-analysis runs: sync, watch, cancel, logs, stat, metering",
		Long: `kubectl costanalysis drives the runs of cost-analysis-operator (DataSources, Jobs and
JobTasks of cost-analysis.costops.dev/v1) in the current namespace.

Exit codes: 0 success (for watch: the run ended SUCCESS), 1 the plugin could not do
its work, 2 the run ended FAILURE, 3 TIMEOUT, 4 CANCELED.`,
		Example: `  # Start a run of a DataSource from September 2026 and follow it to its end
  kubectl costanalysis sync sample-billing --start 2026-09 --wait

  # Follow a run that is already going; the exit code is its outcome
  kubectl costanalysis watch sample-billing-x7k2p

  # Runs by status per DataSource, in another namespace
  kubectl costanalysis stat -n billing`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl costanalysis"},
	}
	root.SetIn(o.Streams.In)
	root.SetOut(o.Streams.Out)
	root.SetErr(o.Streams.ErrOut)
	o.ConfigFlags.AddFlags(root.PersistentFlags())
	root.AddCommand(
		p.syncCommand(),
		p.cancelCommand(),
		p.watchCommand(),
		p.logsCommand(),
		p.statCommand(),
		p.meteringCommand(),
		p.versionCommand(),
	)
	return root
}

// namespace is the namespace of --namespace or of the kubeconfig's context.
func (p *plugin) namespace() (string, error) {
	ns, _, err := p.ConfigFlags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("finding the namespace: %w", err)
	}
	return ns, nil
}

func (p *plugin) restConfig() (*rest.Config, error) {
	cfg, err := p.ConfigFlags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = "kubectl-costanalysis/" + version().Version
	return cfg, nil
}

// client is a client of the cluster with the operator's kinds, able to watch.
func (p *plugin) client() (client.WithWatch, error) {
	cfg, err := p.restConfig()
	if err != nil {
		return nil, err
	}
	return client.NewWithWatch(cfg, client.Options{Scheme: scheme.Scheme})
}

// target is what every command works on: a client of the cluster and the
// namespace that --namespace, --context and the kubeconfig select.
func (p *plugin) target() (client.WithWatch, string, error) {
	ns, err := p.namespace()
	if err != nil {
		return nil, "", err
	}
	c, err := p.client()
	if err != nil {
		return nil, "", err
	}
	return c, ns, nil
}

// clientset is client-go's, for what controller-runtime's client does not do (pod logs).
func (p *plugin) clientset() (kubernetes.Interface, error) {
	cfg, err := p.restConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// fileTerminal reports whether w is a terminal, and its width (80 when unknown).
func fileTerminal(w io.Writer) (bool, int) {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false, 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width <= 0 {
		width = 80
	}
	return true, width
}
