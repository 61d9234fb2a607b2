package manifests_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/yaml"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// The manager's identity in every install.
const (
	managerServiceAccount = "cost-analysis-controller-manager"
	managerUser           = "system:serviceaccount:" + releaseNamespace + ":" + managerServiceAccount
)

// grant is a set of rules the manager holds, and where: a namespace, or "" for the
// whole cluster (a ClusterRole bound by a ClusterRoleBinding).
type grant struct {
	Namespace string
	Role      string
	Rules     []rbacv1.PolicyRule
}

// managerGrants resolves every binding of the manager's ServiceAccount in objs.
func managerGrants(t *testing.T, objs []*unstructured.Unstructured) []grant {
	t.Helper()
	var out []grant
	for _, o := range objs {
		if o.GetKind() != "RoleBinding" && o.GetKind() != "ClusterRoleBinding" {
			continue
		}
		var b rbacv1.RoleBinding // a ClusterRoleBinding has the same fields
		convert(t, o, &b)
		if !slices.ContainsFunc(b.Subjects, func(s rbacv1.Subject) bool {
			return s.Kind == "ServiceAccount" && s.Name == managerServiceAccount && s.Namespace == releaseNamespace
		}) {
			continue
		}
		roleNS := ""
		if b.RoleRef.Kind == "Role" {
			roleNS = o.GetNamespace()
		}
		role := find(objs, b.RoleRef.Kind, roleNS, b.RoleRef.Name)
		if role == nil {
			t.Fatalf("%s %s binds %s %s, which is not rendered", o.GetKind(), o.GetName(), b.RoleRef.Kind, b.RoleRef.Name)
		}
		var r rbacv1.ClusterRole
		convert(t, role, &r)
		out = append(out, grant{Namespace: o.GetNamespace(), Role: b.RoleRef.Kind + " " + b.RoleRef.Name, Rules: r.Rules})
	}
	if len(out) == 0 {
		t.Fatal("nothing binds the manager's ServiceAccount")
	}
	return out
}

func convert(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
}

func names(r rbacv1.PolicyRule, resource string) bool {
	return (slices.Contains(r.APIGroups, "") || slices.Contains(r.APIGroups, "*")) &&
		(slices.Contains(r.Resources, resource) || slices.Contains(r.Resources, "*"))
}

// namespacedResources asks the API server which resources are namespaced
// ("group/resource"; subresources as "group/resource/sub").
func namespacedResources(t *testing.T) map[string]bool {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	_, lists, err := dc.ServerGroupsAndResources()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, l := range lists {
		gv := strings.SplitN(l.GroupVersion, "/", 2)
		group := ""
		if len(gv) == 2 {
			group = gv[0]
		}
		for _, r := range l.APIResources {
			out[group+"/"+r.Name] = r.Namespaced
		}
	}
	return out
}

// The RBAC each install gives the manager, read from the rendered objects.
func TestManagerRBACAsRendered(t *testing.T) {
	namespaced := namespacedResources(t)
	installs := map[string]struct {
		render     func(t *testing.T) []byte
		namespaced bool
	}{
		"config/default":                  {func(t *testing.T) []byte { return kustomize(t, "config/default") }, false},
		"config/namespaced":               {func(t *testing.T) []byte { return kustomize(t, "config/namespaced") }, true},
		"helm template (default values)":  {func(t *testing.T) []byte { return helmTemplate(t) }, false},
		"helm template (watchNamespaces)": {func(t *testing.T) []byte { return helmTemplate(t, "--set", "watchNamespaces={team-a,team-b}") }, true},
	}
	for name, in := range installs {
		t.Run(name, func(t *testing.T) {
			grants := managerGrants(t, objects(t, in.render(t)))
			for _, g := range grants {
				for _, r := range g.Rules {
					rule, _ := yaml.Marshal(r)
					for _, field := range [][]string{r.APIGroups, r.Resources, r.Verbs} {
						if slices.Contains(field, "*") {
							t.Errorf("%s has a wildcard rule:\n%s", g.Role, rule)
						}
					}
					if names(r, "secrets") {
						for _, v := range r.Verbs {
							if !slices.Contains([]string{"get", "create", "update"}, v) {
								t.Errorf("%s lets the manager %s Secrets (only get, create, update are allowed):\n%s", g.Role, v, rule)
							}
						}
					}
				}
			}
			if !in.namespaced {
				return
			}
			for _, g := range grants {
				if g.Namespace != "" {
					continue
				}
				// Cluster-wide: only cluster-scoped resources.
				for _, r := range g.Rules {
					for _, group := range r.APIGroups {
						for _, res := range r.Resources {
							isNamespaced, known := namespaced[group+"/"+res]
							if !known {
								t.Errorf("%s names %s/%s, which the API server does not serve", g.Role, group, res)
							}
							if isNamespaced {
								t.Errorf("the namespaced install grants %s/%s cluster-wide through %s", group, res, g.Role)
							}
						}
					}
				}
			}
			// In the manager's own namespace it may get the default store's Secret, by name.
			for _, g := range grants {
				if g.Namespace != releaseNamespace {
					continue
				}
				for _, r := range g.Rules {
					if names(r, "secrets") && !slices.Equal(r.ResourceNames, []string{"cost-analysis-store"}) {
						t.Errorf("%s in %s grants Secrets other than cost-analysis-store: %v", g.Role, releaseNamespace, r.ResourceNames)
					}
				}
			}
		})
	}
}

// The generated ClusterRole itself (controller-gen, from the markers).
func TestGeneratedManagerRoleReadsNoSecretItIsNotPointedAt(t *testing.T) {
	objs := objects(t, kustomize(t, "config/rbac"))
	role := find(objs, "ClusterRole", "", "manager-role")
	if role == nil {
		t.Fatal("config/rbac renders no ClusterRole manager-role")
	}
	var r rbacv1.ClusterRole
	convert(t, role, &r)
	var secretVerbs []string
	for _, rule := range r.Rules {
		if names(rule, "secrets") {
			secretVerbs = append(secretVerbs, rule.Verbs...)
		}
		if slices.Contains(rule.APIGroups, "authentication.k8s.io") || slices.Contains(rule.APIGroups, "authorization.k8s.io") {
			t.Errorf("manager-role holds a cluster-scoped grant (%v): it belongs in auth_role.yaml, so the namespaced install can make Roles of manager-role", rule.Resources)
		}
	}
	slices.Sort(secretVerbs)
	if !slices.Equal(secretVerbs, []string{"create", "get", "update"}) {
		t.Errorf("manager-role's verbs on Secrets are %v, want [create get update]", secretVerbs)
	}
}

// What the API server's authorizer answers once an install's RBAC is applied:
// `kubectl auth can-i` as the manager's ServiceAccount.
func TestManagerRBACAsAuthorized(t *testing.T) {
	ensureNamespace(t, releaseNamespace)
	ensureNamespace(t, "other")
	type check struct {
		args []string
		want bool
	}
	modes := []struct {
		name   string
		dir    string
		checks []check
	}{
		{"config/default", "config/default", []check{
			{[]string{"get", "secrets", "-n", "other"}, true},
			{[]string{"create", "secrets", "-n", "other"}, true},
			{[]string{"update", "secrets", "-n", "other"}, true},
			{[]string{"list", "secrets", "-A"}, false},
			{[]string{"list", "secrets", "-n", "other"}, false},
			{[]string{"watch", "secrets", "-n", "other"}, false},
			{[]string{"delete", "secrets", "-n", "other"}, false},
			{[]string{"patch", "secrets", "-n", "other"}, false},
			{[]string{"watch", "jobs.cost-analysis.costops.dev", "-A"}, true},
			{[]string{"update", "jobs.cost-analysis.costops.dev", "-n", "other"}, false},
			{[]string{"deletecollection", "pods", "-n", "other"}, true},
			{[]string{"get", "pods", "-n", "other"}, false},
			{[]string{"create", "tokenreviews"}, true},
			{[]string{"create", "subjectaccessreviews"}, true},
			{[]string{"update", "leases", "-n", releaseNamespace}, true},
			{[]string{"update", "leases", "-n", "other"}, false},
			{[]string{"create", "events.events.k8s.io", "-n", "other"}, true},
		}},
		{"config/namespaced", "config/namespaced", []check{
			{[]string{"get", "secrets", "-n", namespacedWatch}, true},
			{[]string{"create", "secrets", "-n", namespacedWatch}, true},
			{[]string{"list", "secrets", "-n", namespacedWatch}, false},
			{[]string{"get", "secrets", "-n", "other"}, false},
			{[]string{"get", "secrets/cost-analysis-store", "-n", releaseNamespace}, true},
			{[]string{"get", "secrets/another", "-n", releaseNamespace}, false},
			{[]string{"list", "secrets", "-n", releaseNamespace}, false},
			{[]string{"watch", "jobs.cost-analysis.costops.dev", "-n", namespacedWatch}, true},
			{[]string{"watch", "jobs.cost-analysis.costops.dev", "-n", "other"}, false},
			{[]string{"list", "jobs.batch", "-A"}, false},
			{[]string{"create", "tokenreviews"}, true},
			{[]string{"create", "subjectaccessreviews"}, true},
			{[]string{"update", "leases", "-n", releaseNamespace}, true},
		}},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			rbac := rbacOnly(t, kustomize(t, mode.dir))
			if out, err := kubectlOn(t, rbac, "apply", "--server-side", "-f", "-"); err != nil {
				t.Fatalf("applying the RBAC: %v\n%s", err, out)
			}
			t.Cleanup(func() {
				if out, err := kubectlOn(t, rbac, "delete", "--wait", "-f", "-"); err != nil {
					t.Errorf("deleting the RBAC: %v\n%s", err, out)
				}
			})
			for _, c := range mode.checks {
				out, err := kubectlOn(t, nil, append([]string{"auth", "can-i", "--as=" + managerUser}, c.args...)...)
				lines := strings.Split(strings.TrimSpace(out), "\n")
				got := strings.TrimSpace(lines[len(lines)-1]) == "yes"
				if err != nil && got || err == nil && !got {
					t.Fatalf("kubectl auth can-i %v: %v\n%s", c.args, err, out)
				}
				if got != c.want {
					t.Errorf("can the manager %s? %v, want %v", strings.Join(c.args, " "), got, c.want)
				}
			}
		})
	}
}

// rbacOnly keeps a stream's ServiceAccounts and RBAC objects.
func rbacOnly(t *testing.T, stream []byte) []byte {
	t.Helper()
	var out []byte
	for _, o := range objects(t, stream) {
		switch o.GetKind() {
		case "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
			b, err := yaml.Marshal(o.Object)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, []byte(fmt.Sprintf("---\n%s", b))...)
		}
	}
	return out
}
