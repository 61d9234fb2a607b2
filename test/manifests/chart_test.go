package manifests_test

import (
	"strings"
	"testing"
)

// The chart is written by hand (its crds/ and files/manager-role.yaml are links to
// config/); these keep it in step with the kustomize installs.
func TestChartRendersWhatKustomizeRenders(t *testing.T) {
	defer func() {
		if t.Failed() {
			t.Log("dist/chart differs from config/: its CRDs and the manager's RBAC rules are links to config/, the rest of the chart is edited by hand to match")
		}
	}()
	t.Run("default values give config/default, less the Namespace", func(t *testing.T) {
		want := without(objects(t, kustomize(t, "config/default")), "Namespace")
		got := withoutHelmLabels(objects(t, helmTemplate(t)))
		sameObjects(t, "kubectl kustomize config/default", want, "helm template (default values)", got)
	})

	t.Run("watchNamespaces={default} gives config/namespaced, less the Namespace", func(t *testing.T) {
		want := without(objects(t, kustomize(t, "config/namespaced")), "Namespace")
		got := withoutHelmLabels(objects(t, helmTemplate(t, "--set", "watchNamespaces={"+namespacedWatch+"}")))
		sameObjects(t, "kubectl kustomize config/namespaced", want, "helm template (watchNamespaces)", got)
	})

	t.Run("createNamespace renders config/default's Namespace", func(t *testing.T) {
		want := ofKind(objects(t, kustomize(t, "config/default")), "Namespace")
		got := ofKind(withoutHelmLabels(objects(t, helmTemplate(t, "--set", "createNamespace=true"))), "Namespace")
		sameObjects(t, "kubectl kustomize config/default", want, "helm template (createNamespace)", got)
	})

	t.Run("several watched namespaces get a Role each and the flag names them all", func(t *testing.T) {
		objs := objects(t, helmTemplate(t, "--set", "watchNamespaces={team-a,team-b}"))
		for _, ns := range []string{"team-a", "team-b"} {
			if find(objs, "Role", ns, "cost-analysis-manager-role") == nil {
				t.Errorf("no Role of the manager in namespace %s", ns)
			}
			if find(objs, "RoleBinding", ns, "cost-analysis-manager-rolebinding") == nil {
				t.Errorf("no RoleBinding of the manager in namespace %s", ns)
			}
		}
		if args := managerArgs(t, objs); !strings.Contains(strings.Join(args, " "), "--watch-namespaces=team-a,team-b") {
			t.Errorf("manager args %q do not watch team-a,team-b", args)
		}
	})
}

// The images `make deploy` replaces (hack/mk/deploy.mk) are rendered once each,
// where it looks for them.
func TestDeployFindsTheImagesItReplaces(t *testing.T) {
	for _, dir := range []string{"config/default", "config/namespaced"} {
		out := string(kustomize(t, dir))
		for _, ref := range []string{"image: localhost/costops/cost-analysis-operator:dev\n", "--collector-image=localhost/costops/cost-analysis-collector:dev\n"} {
			if n := strings.Count(out, ref); n != 1 {
				t.Errorf("%s renders %q %d times, want once (make deploy replaces it)", dir, strings.TrimSpace(ref), n)
			}
		}
	}
}

// Every object of an install but the CRDs is labelled part-of, so that
// `kubectl get -l app.kubernetes.io/part-of=cost-analysis-operator` finds it.
func TestEveryObjectIsLabelledPartOf(t *testing.T) {
	for name, stream := range map[string][]byte{
		"config/default":    kustomize(t, "config/default"),
		"config/namespaced": kustomize(t, "config/namespaced"),
		"helm template":     helmTemplate(t, "--set", "createNamespace=true"),
	} {
		for _, o := range without(objects(t, stream), "CustomResourceDefinition") {
			if o.GetLabels()["app.kubernetes.io/part-of"] != "cost-analysis-operator" {
				t.Errorf("%s: %s has no label app.kubernetes.io/part-of=cost-analysis-operator", name, key(o))
			}
		}
	}
}
