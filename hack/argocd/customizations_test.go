package argocd

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	argolua "github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
	"github.com/argoproj/gitops-engine/pkg/health"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
)

// group is the operator's API group: the one folder under resource_customizations.
const group = "cost-analysis.costops.dev"

// scriptLimit fails a script run that takes this long. Argo CD stops a script after
// 1 s (util/lua runs it under a 1 s context); one that needs a quarter of that on an
// idle test machine is too close to the limit on a busy Argo CD.
const scriptLimit = 250 * time.Millisecond

var update = flag.Bool("update", false, "rewrite config/argocd/argocd-cm.yaml from the scripts under config/argocd/resource_customizations")

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if runs.count > 0 {
		fmt.Printf("argocd: %d script runs through Argo CD's Lua VM, slowest %s (%s), limit %s (Argo CD's: 1s)\n",
			runs.count, runs.slowest, runs.slowestWhat, scriptLimit)
	}
	os.Exit(code)
}

// runs times every script run of the package.
var runs timings

type timings struct {
	mu          sync.Mutex
	count       int
	slowest     time.Duration
	slowestWhat string
}

// time runs fn, one script run described by what, and fails t when it took scriptLimit or more.
func (tm *timings) time(t *testing.T, what string, fn func()) {
	t.Helper()
	start := time.Now()
	fn()
	d := time.Since(start)
	tm.mu.Lock()
	tm.count++
	if d > tm.slowest {
		tm.slowest, tm.slowestWhat = d, what
	}
	tm.mu.Unlock()
	if d >= scriptLimit {
		t.Errorf("%s took %s, limit %s (Argo CD stops a script at 1s)", what, d, scriptLimit)
	}
}

// customization is one kind's folder under resource_customizations/<group>/.
type customization struct {
	kind      string
	dir       string
	health    string            // health.lua
	discovery string            // actions/discovery.lua; empty when the kind has no actions
	actions   map[string]string // action name: actions/<name>/action.lua
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "config", "argocd")); err != nil {
		t.Fatalf("the repository root %s has no config/argocd: %v", root, err)
	}
	return root
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// loadCustomizations reads every kind's scripts; the operator's group is the only one.
func loadCustomizations(t *testing.T) []customization {
	t.Helper()
	base := filepath.Join(repoRoot(t), "config", "argocd", "resource_customizations")
	groups, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || groups[0].Name() != group {
		t.Fatalf("%s holds %v, want the folder %s alone", base, groups, group)
	}
	kinds, err := os.ReadDir(filepath.Join(base, group))
	if err != nil {
		t.Fatal(err)
	}
	var cs []customization
	for _, k := range kinds {
		if !k.IsDir() {
			continue // README.md
		}
		dir := filepath.Join(base, group, k.Name())
		c := customization{kind: k.Name(), dir: dir, health: readFile(t, filepath.Join(dir, "health.lua")), actions: map[string]string{}}
		if b, err := os.ReadFile(filepath.Join(dir, "actions", "discovery.lua")); err == nil {
			c.discovery = string(b)
			entries, err := os.ReadDir(filepath.Join(dir, "actions"))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.IsDir() && e.Name() != "testdata" {
					c.actions[e.Name()] = readFile(t, filepath.Join(dir, "actions", e.Name(), "action.lua"))
				}
			}
			if len(c.actions) == 0 {
				t.Fatalf("%s: actions/discovery.lua but no actions/<name>/action.lua", dir)
			}
		} else if !os.IsNotExist(err) {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	if want := []string{"DataSource", "Job", "JobTask"}; !slices.EqualFunc(cs, want, func(c customization, k string) bool { return c.kind == k }) {
		t.Fatalf("customizations of %v, want %v", cs, want)
	}
	return cs
}

// The argocd-cm keys of a kind (Argo CD's resource.customizations.<type>.<group>_<kind>).
func healthKey(kind string) string  { return "resource.customizations.health." + group + "_" + kind }
func actionsKey(kind string) string { return "resource.customizations.actions." + group + "_" + kind }

func configMapPath(t *testing.T) string {
	return filepath.Join(repoRoot(t), "config", "argocd", "argocd-cm.yaml")
}

const configMapHeader = `# Argo CD customizations of cost-analysis-operator's kinds: the health of DataSources,
# Jobs and JobTasks, and the Job action "cancel". Merge them into Argo CD's argocd-cm:
#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file config/argocd/argocd-cm.yaml
# The scripts use Argo CD's default Lua sandbox (no useOpenLibs). Generated from
# config/argocd/resource_customizations (edit the .lua files there, then run
# 'cd hack/argocd && go test -run TestConfigMapHoldsTheScripts -update');
# make test-argocd checks that it holds exactly those scripts.
`

// renderConfigMap is argocd-cm.yaml as -update writes it.
func renderConfigMap(cs []customization) string {
	var b strings.Builder
	b.WriteString(configMapHeader)
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\n  labels:\n" +
		"    app.kubernetes.io/name: argocd-cm\n    app.kubernetes.io/part-of: argocd\ndata:\n")
	block := func(indent, text string) {
		for _, line := range strings.SplitAfter(text, "\n") {
			if strings.TrimSpace(line) == "" {
				b.WriteString(strings.TrimLeft(line, " \t"))
				continue
			}
			b.WriteString(indent + line)
		}
	}
	for _, c := range cs {
		b.WriteString("  " + healthKey(c.kind) + ": |\n")
		block("    ", c.health)
	}
	for _, c := range cs {
		if c.discovery == "" {
			continue
		}
		b.WriteString("  " + actionsKey(c.kind) + ": |\n    discovery.lua: |\n")
		block("      ", c.discovery)
		b.WriteString("    definitions:\n")
		names := make([]string, 0, len(c.actions))
		for n := range c.actions {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			b.WriteString("    - name: " + n + "\n      action.lua: |\n")
			block("        ", c.actions[n])
		}
	}
	return b.String()
}

func readConfigMap(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := yaml.UnmarshalStrict([]byte(readFile(t, configMapPath(t))), cm); err != nil {
		t.Fatalf("%s: %v", configMapPath(t), err)
	}
	if cm.Kind != "ConfigMap" || cm.Name != "argocd-cm" {
		t.Fatalf("%s is %s %s, want the ConfigMap argocd-cm", configMapPath(t), cm.Kind, cm.Name)
	}
	return cm
}

// overrides are the resource overrides Argo CD reads from the argocd-cm snippet, with
// Argo CD's own settings code over a fake clientset.
func overrides(t *testing.T) map[string]v1alpha1.ResourceOverride {
	t.Helper()
	cm := readConfigMap(t)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "argocd-secret", Namespace: cm.Namespace,
		Labels: map[string]string{"app.kubernetes.io/part-of": "argocd"}}}
	mgr := settings.NewSettingsManager(context.Background(), fake.NewClientset(cm, secret), cm.Namespace)
	o, err := mgr.GetResourceOverrides()
	if err != nil {
		t.Fatalf("Argo CD refuses argocd-cm.yaml: %v", err)
	}
	return o
}

// The argocd-cm snippet holds exactly the scripts of resource_customizations, as Argo
// CD reads them, with the default sandbox; -update rewrites it from them.
func TestConfigMapHoldsTheScripts(t *testing.T) {
	cs := loadCustomizations(t)
	if *update {
		if err := os.WriteFile(configMapPath(t), []byte(renderConfigMap(cs)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := readFile(t, configMapPath(t)), renderConfigMap(cs); got != want {
		t.Errorf("config/argocd/argocd-cm.yaml is not what the scripts make; run 'cd hack/argocd && go test -run TestConfigMapHoldsTheScripts -update'")
	}

	cm := readConfigMap(t)
	wantKeys := map[string]bool{}
	ov := overrides(t)
	for _, c := range cs {
		wantKeys[healthKey(c.kind)] = true
		o, ok := ov[group+"/"+c.kind]
		if !ok {
			t.Errorf("Argo CD reads no override of %s/%s from argocd-cm.yaml", group, c.kind)
			continue
		}
		if o.UseOpenLibs {
			t.Errorf("%s: useOpenLibs is set; the scripts must run in Argo CD's default sandbox", c.kind)
		}
		if o.HealthLua != c.health {
			t.Errorf("%s: the health script in argocd-cm.yaml differs from %s/health.lua", c.kind, c.dir)
		}
		if c.discovery == "" {
			if o.Actions != "" {
				t.Errorf("%s: argocd-cm.yaml has actions, the folder has none", c.kind)
			}
			continue
		}
		wantKeys[actionsKey(c.kind)] = true
		actions, err := o.GetActions()
		if err != nil {
			t.Errorf("%s: Argo CD cannot read the actions: %v", c.kind, err)
			continue
		}
		if actions.ActionDiscoveryLua != c.discovery {
			t.Errorf("%s: discovery.lua in argocd-cm.yaml differs from %s/actions/discovery.lua", c.kind, c.dir)
		}
		if actions.MergeBuiltinActions {
			t.Errorf("%s: mergeBuiltinActions is set; Argo CD has no built-in actions for %s", c.kind, group)
		}
		got := map[string]string{}
		for _, d := range actions.Definitions {
			got[d.Name] = d.ActionLua
		}
		if !reflect.DeepEqual(got, c.actions) {
			t.Errorf("%s: the actions in argocd-cm.yaml differ from %s/actions/*/action.lua", c.kind, c.dir)
		}
	}
	for k := range cm.Data {
		if !wantKeys[k] {
			t.Errorf("argocd-cm.yaml has the key %s, which no script under resource_customizations makes", k)
		}
	}
	for k := range wantKeys {
		if _, ok := cm.Data[k]; !ok {
			t.Errorf("argocd-cm.yaml lacks the key %s", k)
		}
	}
}

// luaComment is a Lua line comment; the scripts have no "--" inside strings.
var luaComment = regexp.MustCompile(`--.*`)

// Libraries and functions Argo CD's default sandbox leaves out or that must not be
// used: it opens base, table and a safe os (time, date) alone; the scripts use no os.
var forbidden = regexp.MustCompile(`\b(os|io|string|math|debug|coroutine|channel|package)\s*\.|\b(require|load|loadstring|dofile|loadfile|print|module)\s*\(`)

// The scripts use only what Argo CD's default sandbox has, on every path (the runs
// below only see the paths their test objects take).
func TestScriptsUseOnlyTheDefaultSandbox(t *testing.T) {
	for _, c := range loadCustomizations(t) {
		scripts := map[string]string{"health.lua": c.health}
		if c.discovery != "" {
			scripts["actions/discovery.lua"] = c.discovery
		}
		for n, s := range c.actions {
			scripts["actions/"+n+"/action.lua"] = s
		}
		for name, s := range scripts {
			for i, line := range strings.Split(s, "\n") {
				if m := forbidden.FindString(luaComment.ReplaceAllString(line, "")); m != "" {
					t.Errorf("%s/%s:%d uses %q, which Argo CD's default sandbox lacks or which the scripts must not use", c.kind, name, i+1, m)
				}
			}
		}
	}
}

// healthTests is health_test.yaml, in the format of Argo CD's resource_customizations.
type healthTests struct {
	Tests []struct {
		InputPath    string              `json:"inputPath"`
		HealthStatus health.HealthStatus `json:"healthStatus"`
	} `json:"tests"`
}

// actionTests is actions/action_test.yaml, in the format of Argo CD's resource_customizations.
type actionTests struct {
	DiscoveryTests []struct {
		InputPath string                    `json:"inputPath"`
		Result    []v1alpha1.ResourceAction `json:"result"`
	} `json:"discoveryTests"`
	ActionTests []struct {
		Action               string `json:"action"`
		InputPath            string `json:"inputPath"`
		ExpectedOutputPath   string `json:"expectedOutputPath"`
		ExpectedErrorMessage string `json:"expectedErrorMessage"`
	} `json:"actionTests"`
}

func readYAML(t *testing.T, path string, out any) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(readFile(t, path)), out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readObject(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	obj := map[string]any{}
	readYAML(t, path, &obj)
	u := &unstructured.Unstructured{Object: obj}
	if u.GroupVersionKind().Group != group {
		t.Fatalf("%s is a %s, not an object of %s", path, u.GroupVersionKind(), group)
	}
	return u
}

// used records the testdata files the tests read, to find those none reads.
type used map[string]bool

func (u used) path(dir, rel string) string {
	p := filepath.Join(dir, rel)
	u[p] = true
	return p
}

// checkAllUsed fails for a file under dir/testdata that no test case reads.
func (u used) checkAllUsed(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "testdata", "*.yaml"))
	for _, f := range files {
		if !u[f] {
			t.Errorf("%s is read by no test case", f)
		}
	}
}

// Every case of each kind's health_test.yaml, run as Argo CD runs it: the file's script
// in the default sandbox (as Argo CD's resource_customizations tests do, but without
// the open libraries they allow built-in scripts), and the script Argo CD reads from
// the argocd-cm snippet, through GetResourceHealth as its controller calls it.
func TestHealthChecks(t *testing.T) {
	ov := overrides(t)
	total := 0
	for _, c := range loadCustomizations(t) {
		var tests healthTests
		u := used{}
		readYAML(t, u.path(c.dir, "health_test.yaml"), &tests)
		if len(tests.Tests) == 0 {
			t.Errorf("%s/health_test.yaml has no tests", c.kind)
		}
		statuses := map[health.HealthStatusCode]bool{}
		for _, tc := range tests.Tests {
			total++
			statuses[tc.HealthStatus.Status] = true
			t.Run(c.kind+"/"+tc.InputPath, func(t *testing.T) {
				obj := readObject(t, u.path(c.dir, tc.InputPath))
				if obj.GetKind() != c.kind {
					t.Fatalf("%s is a %s, want a %s", tc.InputPath, obj.GetKind(), c.kind)
				}
				var fromFile, fromConfigMap *health.HealthStatus
				var err error
				runs.time(t, c.kind+"/health.lua on "+tc.InputPath, func() {
					fromFile, err = argolua.VM{}.ExecuteHealthLua(obj, c.health)
				})
				if err != nil {
					t.Fatalf("health.lua: %v", err)
				}
				if *fromFile != tc.HealthStatus {
					t.Errorf("health.lua says %s %q, want %s %q", fromFile.Status, fromFile.Message, tc.HealthStatus.Status, tc.HealthStatus.Message)
				}
				runs.time(t, c.kind+" health from argocd-cm on "+tc.InputPath, func() {
					fromConfigMap, err = argolua.ResourceHealthOverrides(ov).GetResourceHealth(obj)
				})
				if err != nil {
					t.Fatalf("argocd-cm: %v", err)
				}
				if fromConfigMap == nil || *fromConfigMap != tc.HealthStatus {
					t.Errorf("argocd-cm's script says %+v, want %+v", fromConfigMap, tc.HealthStatus)
				}
			})
		}
		u.checkAllUsed(t, c.dir)
		// Each kind's tests reach the states Argo CD distinguishes.
		for _, s := range []health.HealthStatusCode{health.HealthStatusHealthy, health.HealthStatusProgressing, health.HealthStatusDegraded} {
			if !statuses[s] {
				t.Errorf("%s/health_test.yaml has no case that is %s", c.kind, s)
			}
		}
	}
	t.Logf("%d health cases", total)
}

// normalized is v as JSON values (numbers float64), so that an object from the Lua VM
// compares with one read from YAML.
func normalized(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func sortActions(a []v1alpha1.ResourceAction) {
	sort.Slice(a, func(i, j int) bool { return a[i].Name < a[j].Name })
}

// Every case of each kind's action_test.yaml, through the scripts Argo CD reads from the
// argocd-cm snippet: discovery returns exactly the expected actions (enabled or not),
// and an action returns exactly the expected object, or fails with the expected
// message.
func TestActions(t *testing.T) {
	vm := argolua.VM{ResourceOverrides: overrides(t)}
	total := 0
	for _, c := range loadCustomizations(t) {
		dir := filepath.Join(c.dir, "actions")
		if c.discovery == "" {
			if _, err := os.Stat(filepath.Join(dir, "action_test.yaml")); err == nil {
				t.Errorf("%s: action_test.yaml without actions", c.kind)
			}
			continue
		}
		var tests actionTests
		u := used{}
		readYAML(t, u.path(dir, "action_test.yaml"), &tests)
		if len(tests.DiscoveryTests) == 0 || len(tests.ActionTests) == 0 {
			t.Errorf("%s/actions/action_test.yaml needs discovery and action tests", c.kind)
		}
		tested := map[string]bool{}
		for _, tc := range tests.DiscoveryTests {
			total++
			t.Run(c.kind+"/discovery/"+tc.InputPath, func(t *testing.T) {
				obj := readObject(t, u.path(dir, tc.InputPath))
				scripts, err := vm.GetResourceActionDiscovery(obj)
				if err != nil {
					t.Fatal(err)
				}
				if len(scripts) != 1 || scripts[0] != c.discovery {
					t.Fatalf("Argo CD finds %d discovery scripts from argocd-cm, want discovery.lua alone", len(scripts))
				}
				var got []v1alpha1.ResourceAction
				runs.time(t, c.kind+"/actions/discovery.lua on "+tc.InputPath, func() {
					got, err = vm.ExecuteResourceActionDiscovery(obj, scripts)
				})
				if err != nil {
					t.Fatal(err)
				}
				want := slices.Clone(tc.Result)
				sortActions(got)
				sortActions(want)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("discovery says %+v, want %+v", got, want)
				}
			})
		}
		for _, tc := range tests.ActionTests {
			total++
			tested[tc.Action] = true
			t.Run(c.kind+"/"+tc.Action+"/"+tc.InputPath, func(t *testing.T) {
				obj := readObject(t, u.path(dir, tc.InputPath))
				def, err := vm.GetResourceAction(obj, tc.Action)
				if err != nil {
					t.Fatal(err)
				}
				if def.ActionLua != c.actions[tc.Action] {
					t.Fatalf("Argo CD's %s script from argocd-cm is not actions/%s/action.lua", tc.Action, tc.Action)
				}
				var impacted []argolua.ImpactedResource
				runs.time(t, c.kind+"/actions/"+tc.Action+"/action.lua on "+tc.InputPath, func() {
					impacted, err = vm.ExecuteResourceAction(obj, def.ActionLua, nil)
				})
				if tc.ExpectedErrorMessage != "" {
					if err == nil || err.Error() != tc.ExpectedErrorMessage {
						t.Errorf("error %v, want %q", err, tc.ExpectedErrorMessage)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				want := readObject(t, u.path(dir, tc.ExpectedOutputPath))
				if len(impacted) != 1 || impacted[0].K8SOperation != argolua.PatchOperation {
					t.Fatalf("the action returned %d objects (%+v), want one patch of the Job", len(impacted), impacted)
				}
				got := impacted[0].UnstructuredObj
				if !reflect.DeepEqual(normalized(t, got.Object), normalized(t, want.Object)) {
					g, _ := yaml.Marshal(got.Object)
					t.Errorf("the action returned\n%s\nwant %s", g, tc.ExpectedOutputPath)
				}
			})
		}
		for name := range c.actions {
			if !tested[name] {
				t.Errorf("%s: action %s has no test in action_test.yaml", c.kind, name)
			}
		}
		u.checkAllUsed(t, dir)
	}
	t.Logf("%d action cases", total)
}
