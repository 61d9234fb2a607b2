package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// argoCDManager is the field manager Argo CD's server-side apply uses.
const argoCDManager = "argocd-controller"

// gitOpsSamples is config/samples/ as Argo CD syncs it (the folder's kustomization)
// plus the samples kept beside it (a scheduled DataSource, one with a store of its
// own and that store's Secret), with the plugin endpoint of this suite. The objects
// of each, as kubectl names them.
func gitOpsSamples(t *testing.T, k *kube) (manifests string, objects []string) {
	t.Helper()
	dir := filepath.Join(env.Root, "config", "samples")
	parts := []string{k.kubectl("kustomize", dir)}
	for _, f := range []string{"v1_datasource_scheduled.yaml", "v1_datasource_own_store.yaml", "v1_secret_store.yaml"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("sample %s: %v", f, err)
		}
		parts = append(parts, string(b))
	}
	manifests = strings.Join(parts, "\n---\n")
	// The samples point at the plugin of `make run` / `make demo`; this suite's runs elsewhere.
	manifests = strings.ReplaceAll(manifests, "endpoint: 10.201.0.1:50051", "endpoint: "+env.PluginAddr)
	objects = []string{
		"secret/sample-billing-credentials", "secret/team-a-cost-store",
		"cads/sample-billing", "cads/scheduled-billing", "cads/team-a-billing",
		"cajob/sample-billing-2026-09",
	}
	return manifests, objects
}

// The samples of config/samples/, applied server-side the way Argo CD syncs them and
// reconciled by the operator (the Job run to SUCCESS, every DataSource checked, its
// status written and the API server's defaults filled in), show no drift: `kubectl
// diff --server-side` of the same manifests reports nothing, a second server-side
// apply changes no object, and no field of the manifests is owned by anyone but the
// applier. This is what keeps an Argo CD Application of these samples Synced: the
// controller and Git never fight over a field.
func TestGitOpsSamplesShowNoDrift(t *testing.T) {
	k := setup(t)
	t.Parallel()
	manifests, objects := gitOpsSamples(t, k)
	ssa := []string{"--server-side", "--field-manager=" + argoCDManager}
	k.apply(manifests, ssa...)

	// Wait until the operator has written everything it writes for these objects.
	k.wait("cajob/sample-billing-2026-09", "{.status.status}", "SUCCESS", 3*time.Minute)
	k.wait("cads/sample-billing", "{.status.lastJob.status}", "SUCCESS", 30*time.Second)
	k.wait("cads/sample-billing", `{.status.conditions[?(@.type=="PluginReady")].status}`, "True", 30*time.Second)
	k.wait("cads/scheduled-billing", `{.status.conditions[?(@.type=="PluginReady")].status}`, "True", 30*time.Second)
	k.eventually(30*time.Second, func() error {
		for _, ds := range []string{"sample-billing", "scheduled-billing", "team-a-billing"} {
			d := k.dataSource(ds)
			if d.Status.ObservedGeneration != d.Generation || condition(d.Status.Conditions, "StoreReady") == nil {
				return fmt.Errorf("DataSource %s: observedGeneration %d of generation %d, conditions %v: not checked yet",
					ds, d.Status.ObservedGeneration, d.Generation, d.Status.Conditions)
			}
		}
		if d := k.dataSource("scheduled-billing"); d.Status.NextScheduleTime == nil {
			return fmt.Errorf("DataSource scheduled-billing has no nextScheduleTime yet")
		}
		return nil
	})
	versions := func() map[string]string {
		m := map[string]string{}
		for _, obj := range objects {
			m[obj] = k.kubectl("get", obj, "-o", "jsonpath={.metadata.resourceVersion}/{.metadata.generation}")
		}
		return m
	}
	before := versions()

	diff := func(when string) {
		t.Helper()
		out, errOut, err := k.tryIn(manifests, append([]string{"diff", "-f", "-"}, ssa...)...)
		if err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("kubectl diff --server-side %s: %v\n%s%s", when, err, out, errOut)
		}
	}
	diff("after the operator reconciled the samples")

	out := k.apply(manifests, ssa...)
	if after := versions(); !equalMaps(before, after) {
		t.Errorf("the second server-side apply changed objects: resourceVersion/generation %v, then %v (kubectl said %q)", before, after, out)
	}
	diff("after the second apply")

	// The same diff does see a change of Git's: it is no check that passes on anything.
	changed := strings.Replace(manifests, "parallelism: 4", "parallelism: 5", 1)
	if changed == manifests {
		t.Fatal("config/samples' DataSource no longer sets jobDefaults.parallelism: 4; change this test's edit")
	}
	if out, _, err := k.tryIn(changed, append([]string{"diff", "-f", "-"}, ssa...)...); err == nil || !strings.Contains(out, "+    parallelism: 5") {
		t.Errorf("kubectl diff --server-side of a changed DataSource: %v, output %q: want the change reported", err, out)
	}

	// The applier owns the manifests' fields alone; the operator writes the status
	// subresource and nothing else of these objects.
	for _, obj := range objects {
		var u struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		k.get(&u, obj)
		for _, mf := range u.Metadata.ManagedFields {
			if mf.Manager != argoCDManager && mf.Subresource != "status" {
				t.Errorf("%s: field manager %q (%s) owns fields outside the status: %s", obj, mf.Manager, mf.Operation, mf.FieldsV1)
			}
		}
	}
}
