// Package scheme is the one runtime.Scheme of the operator: the built-in kinds
// and the cost-analysis.costops.dev/v1 kinds, shared by the manager, its tests and
// the tools that talk to a cluster.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// Scheme holds the kinds the operator reads and writes.
var Scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(Scheme))
	utilruntime.Must(costv1.AddToScheme(Scheme))
}
