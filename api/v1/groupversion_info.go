// Package v1 contains the API of cost-analysis-operator: DataSource, Job and JobTask
// in the cost-analysis.costops.dev/v1 group.
// +kubebuilder:object:generate=true
// +groupName=cost-analysis.costops.dev
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is group version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "cost-analysis.costops.dev", Version: "v1"}

	// SchemeBuilder adds the types of this group-version to a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types in this group-version to the given scheme.
	AddToScheme = SchemeBuilder.AddToScheme

	// knownTypes are the kinds the type files register (register, in their init).
	knownTypes []runtime.Object
)

// register adds kinds to the group-version; the API package depends only on
// apimachinery, so that clients can import it cheaply.
func register(objs ...runtime.Object) { knownTypes = append(knownTypes, objs...) }

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, knownTypes...)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
