package manifests_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// ensureNamespace creates a namespace (a dry run creates none, and what is applied
// into it needs it).
func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8s.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// dryRun applies a stream with `kubectl apply --dry-run=server --server-side`
// (strict field validation) and returns kubectl's output and error.
func dryRun(t *testing.T, stream []byte, args ...string) (string, error) {
	t.Helper()
	return kubectlOn(t, stream, append([]string{"apply", "--dry-run=server", "--server-side", "--validate=strict", "-f", "-"}, args...)...)
}

// Every manifest a user installs is accepted by a real API server: the rendered
// installs, the chart's, and the samples. The CRDs are installed (envtest) and the
// namespaces exist, as they would after `make install` or on a real cluster.
func TestManifestsPassServerSideDryRun(t *testing.T) {
	// The release namespace as make deploy leaves it: labelled for restricted Pod
	// Security, so the API server checks the manager's pod template against it.
	ns := ofKind(objects(t, kustomize(t, "config/default")), "Namespace")
	if len(ns) != 1 || ns[0].GetLabels()["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Fatalf("config/default renders %d Namespaces, want one that enforces restricted Pod Security", len(ns))
	}
	nsYAML, err := yaml.Marshal(ns[0].Object)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := kubectlOn(t, nsYAML, "apply", "--server-side", "-f", "-"); err != nil {
		t.Fatalf("creating the release namespace: %v\n%s", err, out)
	}
	renders := map[string]func(t *testing.T) []byte{
		"kubectl kustomize config/default":    func(t *testing.T) []byte { return kustomize(t, "config/default") },
		"kubectl kustomize config/namespaced": func(t *testing.T) []byte { return kustomize(t, "config/namespaced") },
		"helm template (default values)":      func(t *testing.T) []byte { return helmTemplate(t) },
		"helm template (watchNamespaces, createNamespace)": func(t *testing.T) []byte {
			return helmTemplate(t, "--set", "watchNamespaces={"+namespacedWatch+"}", "--set", "createNamespace=true")
		},
	}
	for name, render := range renders {
		t.Run(name, func(t *testing.T) {
			stream := render(t)
			out, err := dryRun(t, stream)
			if err != nil {
				t.Fatalf("dry run refused: %v\n%s", err, out)
			}
			if strings.Contains(out, "PodSecurity") || strings.Contains(out, "Warning") {
				t.Errorf("the API server warned:\n%s", out)
			}
			// Every object was seen by the server.
			for _, o := range objects(t, stream) {
				if !strings.Contains(out, strings.ToLower(o.GetKind())) || !strings.Contains(out, o.GetName()) {
					t.Errorf("kubectl did not report %s %s:\n%s", o.GetKind(), o.GetName(), out)
				}
			}
		})
	}

	t.Run("config/samples", func(t *testing.T) {
		ensureNamespace(t, "samples")
		out, err := dryRun(t, kustomize(t, "config/samples"), "-n", "samples")
		if err != nil {
			t.Fatalf("dry run refused: %v\n%s", err, out)
		}
		files, err := filepath.Glob(filepath.Join(root, "config", "samples", "*.yaml"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no samples: %v", err)
		}
		for _, f := range files {
			if filepath.Base(f) == "kustomization.yaml" {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := dryRun(t, b, "-n", "samples"); err != nil {
				t.Errorf("%s: dry run refused: %v\n%s", filepath.Base(f), err, out)
			}
		}
	})

	t.Run("config/samples/invalid are refused", func(t *testing.T) {
		ensureNamespace(t, "samples")
		files, err := filepath.Glob(filepath.Join(root, "config", "samples", "invalid", "*.yaml"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no invalid samples: %v", err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := dryRun(t, b, "-n", "samples"); err == nil {
				t.Errorf("%s: accepted, want refused:\n%s", filepath.Base(f), out)
			}
		}
	})
}
