package manifests_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// The installs the tests render: kustomize's two and the chart's two, each with the
// chart's values that should give kustomize's objects.
const (
	releaseNamespace = "cost-analysis-system"
	// namespacedWatch is the namespace config/namespaced watches.
	namespacedWatch = "default"
)

// kustomize renders a kustomization of the repository with kubectl's kustomize.
func kustomize(t *testing.T, dir string) []byte {
	t.Helper()
	return run(t, kubectl(t), "kustomize", filepath.Join(root, dir))
}

// helmTemplate renders dist/chart as `helm install` would into releaseNamespace,
// CRDs included.
func helmTemplate(t *testing.T, args ...string) []byte {
	t.Helper()
	all := append([]string{"template", "cost-analysis", filepath.Join(root, "dist", "chart"),
		"--namespace", releaseNamespace, "--include-crds"}, args...)
	return run(t, helmBinary(t), all...)
}

func run(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// kubectl is the kubectl built with the envtest binaries (hack/kube-build.sh).
func kubectl(t *testing.T) string {
	t.Helper()
	p := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no kubectl beside the envtest binaries (%s): run `make kube-bins`", p)
	}
	return p
}

// helmBinary is $HELM, or the helm `make helm` builds into bin/. Without it the
// tests that need it are skipped, except under CI=true, where they fail: `make
// test` builds it first.
func helmBinary(t *testing.T) string {
	t.Helper()
	p := os.Getenv("HELM")
	if p == "" {
		version, err := helmVersion()
		if err != nil {
			t.Fatal(err)
		}
		p = filepath.Join(root, "bin", "helm-"+version)
	}
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("no helm at %s: run `make helm` (make test does)", p)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// helmVersion is the helm version hack/tools/helm/go.mod pins.
func helmVersion() (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "hack", "tools", "helm", "go.mod"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) >= 2 && f[0] == "helm.sh/helm/v4" {
			return f[1], nil
		}
	}
	return "", errors.New("hack/tools/helm/go.mod requires no helm.sh/helm/v4")
}

// objects parses a multi-document YAML stream; empty documents are dropped.
func objects(t *testing.T, stream []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(stream), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatalf("parsing the rendered manifests: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// key names an object: group, kind, namespace, name.
func key(o *unstructured.Unstructured) string {
	return fmt.Sprintf("%s %s %s/%s", o.GroupVersionKind().Group, o.GetKind(), o.GetNamespace(), o.GetName())
}

// byKey indexes objects by key, failing on a duplicate.
func byKey(t *testing.T, objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	t.Helper()
	out := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if _, dup := out[key(o)]; dup {
			t.Fatalf("%s is rendered twice", key(o))
		}
		out[key(o)] = o
	}
	return out
}

// withoutHelmLabels drops the labels only the chart adds (its name and version,
// and managed-by Helm); an emptied label map goes too.
func withoutHelmLabels(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	for _, o := range objs {
		labels := o.GetLabels()
		if labels == nil {
			continue
		}
		delete(labels, "helm.sh/chart")
		delete(labels, "app.kubernetes.io/managed-by")
		if len(labels) == 0 {
			unstructured.RemoveNestedField(o.Object, "metadata", "labels")
		} else {
			o.SetLabels(labels)
		}
	}
	return objs
}

// without drops the objects of a kind.
func without(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() != kind {
			out = append(out, o)
		}
	}
	return out
}

// ofKind keeps the objects of a kind.
func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// sameObjects fails with each difference between two sets of objects.
func sameObjects(t *testing.T, wantName string, want []*unstructured.Unstructured, gotName string, got []*unstructured.Unstructured) {
	t.Helper()
	w, g := byKey(t, want), byKey(t, got)
	var keys []string
	for k := range w {
		keys = append(keys, k)
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		wo, inW := w[k]
		gotO, inG := g[k]
		switch {
		case !inW:
			t.Errorf("%s renders %s, which %s does not", gotName, k, wantName)
		case !inG:
			t.Errorf("%s renders %s, which %s does not", wantName, k, gotName)
		default:
			wy, _ := yaml.Marshal(wo.Object)
			gy, _ := yaml.Marshal(gotO.Object)
			if !bytes.Equal(wy, gy) {
				t.Errorf("%s differs:\n--- %s\n%s\n--- %s\n%s", k, wantName, wy, gotName, gy)
			}
		}
	}
}

// runIn runs bin with stdin and returns its combined output.
func runIn(bin string, stdin []byte, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// find returns the object of that kind, namespace and name, or nil.
func find(objs []*unstructured.Unstructured, kind, namespace, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetNamespace() == namespace && o.GetName() == name {
			return o
		}
	}
	return nil
}

// managerArgs are the manager container's arguments.
func managerArgs(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	d := find(objs, "Deployment", releaseNamespace, "cost-analysis-controller-manager")
	if d == nil {
		t.Fatal("no manager Deployment rendered")
	}
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		cm, _ := c.(map[string]any)
		if cm["name"] != "manager" {
			continue
		}
		args, _, _ := unstructured.NestedStringSlice(cm, "args")
		return args
	}
	t.Fatal("the manager Deployment has no container named manager")
	return nil
}
