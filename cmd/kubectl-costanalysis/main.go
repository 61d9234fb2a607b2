// Command kubectl-costanalysis is the kubectl plugin of cost-analysis-operator:
// `kubectl costanalysis sync|cancel|watch|logs|stat|metering|version`. Install it with
//
//	go install github.com/costops/cost-analysis-operator/cmd/kubectl-costanalysis@latest
//
// (or with krew, from hack/krew/costanalysis.yaml). The commands live in
// internal/kubectlplugin.
package main

import (
	"os"

	"github.com/costops/cost-analysis-operator/internal/kubectlplugin"
)

func main() {
	os.Exit(kubectlplugin.Main(os.Args[1:]))
}
