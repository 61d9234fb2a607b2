package kubectlplugin

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildVersion is set at link time by release builds
// (-ldflags "-X github.com/costops/cost-analysis-operator/internal/kubectlplugin.buildVersion=v0.1.0");
// without it the module version go install recorded is used.
var buildVersion string

// buildCommit is set at link time with buildVersion by builds that do not stamp VCS
// information (hack/krew/dist.sh, whose archives must be reproducible).
var buildCommit string

// Version says which build of the plugin runs.
type Version struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

func version() Version {
	v := Version{Version: buildVersion, Commit: buildCommit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" {
			v.Version = info.Main.Version // "v0.1.0" from go install ...@v0.1.0, "(devel)" from a checkout
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && v.Commit == "" {
				v.Commit = s.Value
			}
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	return v
}

func (p *plugin) versionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the plugin's version",
		Example: `  kubectl costanalysis version
  kubectl costanalysis version -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkReportOutput(output); err != nil {
				return err
			}
			v := version()
			if output != outputTable {
				return printReport(p.Streams.Out, output, v)
			}
			commit := ""
			if v.Commit != "" {
				commit = ", commit " + v.Commit
			}
			_, err := fmt.Fprintf(p.Streams.Out, "kubectl-costanalysis %s (%s%s, %s)\n", v.Version, v.GoVersion, commit, v.Platform)
			return err
		},
	}
	addReportOutput(cmd, &output)
	return cmd
}
