package observability

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const dashboardFile = "../../config/grafana/cost-analysis-operator.json"

func loadDashboard(t *testing.T) *Dashboard {
	t.Helper()
	d, err := ReadDashboard(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The dashboard picks its Prometheus, namespaces and data sources with template
// variables, and every panel filters by the last two wherever its metric has them.
func TestDashboardHasItsVariablesAndQueries(t *testing.T) {
	d := loadDashboard(t)
	if v := d.Variable("datasource"); v == nil || v.Type != "datasource" || v.Query != "prometheus" {
		t.Errorf("datasource variable %+v, want a Prometheus data source picker", v)
	}
	for _, name := range []string{"namespace", "data_source"} {
		v := d.Variable(name)
		if v == nil || v.Type != "query" || !v.Multi || !v.IncludeAll {
			t.Errorf("%s variable %+v, want a multi-value query variable with All", name, v)
			continue
		}
		if _, label, err := v.LabelValuesQuery(); err != nil || label != name {
			t.Errorf("%s variable: label %q, %v; want label_values(..., %s)", name, label, err, name)
		}
	}
	queries := d.Queries()
	if len(queries) < 10 {
		t.Fatalf("%d queries, want the dashboard's panels", len(queries))
	}
	documented := readmeMetrics(t)
	labelled := metricsWithLabel(t, "data_source")
	for _, q := range queries {
		if strings.TrimSpace(q.Expr) == "" {
			t.Errorf("%s: no query", q)
			continue
		}
		sels := Selectors(q.Expr)
		if len(sels) == 0 {
			t.Errorf("%s: %q reads none of the operator's metrics", q, q.Expr)
		}
		for _, s := range sels {
			m := MetricName(SeriesName(s), histograms(t))
			if !slices.Contains(documented, m) {
				t.Errorf("%s: %s is not in the README's metrics table", q, m)
			}
			if slices.Contains(labelled, m) && !strings.Contains(s, `namespace=~"$namespace"`) {
				t.Errorf("%s: %s does not filter by $namespace and $data_source", q, s)
			}
		}
	}
}

// What the README's "Metrics" table lists is what the code defines.
func TestReadmeDocumentsEveryMetric(t *testing.T) {
	documented, defined := readmeMetrics(t), definedMetrics(t)
	for _, m := range defined {
		if !slices.Contains(documented, m) {
			t.Errorf("%s is defined in the code but not in the README's metrics table", m)
		}
	}
	for _, m := range documented {
		if !slices.Contains(defined, m) {
			t.Errorf("the README's metrics table lists %s, which the code does not define", m)
		}
	}
	// And the alerts read only documented metrics.
	for _, a := range loadRules(t).Alerts() {
		for _, s := range Selectors(a.Expr) {
			if m := MetricName(SeriesName(s), histograms(t)); !slices.Contains(documented, m) {
				t.Errorf("alert %s reads %s, which the README's metrics table does not list", a.Alert, m)
			}
		}
	}
}

// readmeRow is a row of the README's metrics table: | `name` | type | labels | meaning |.
var readmeRow = regexp.MustCompile("(?m)^\\| `(cost_analysis_[a-z0-9_]+)` \\| (counter|gauge|histogram) \\| ([^|]*) \\|")

type documentedMetric struct{ name, kind, labels string }

func readmeTable(t *testing.T) []documentedMetric {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	var out []documentedMetric
	for _, m := range readmeRow.FindAllStringSubmatch(string(b), -1) {
		out = append(out, documentedMetric{name: m[1], kind: m[2], labels: m[3]})
	}
	if len(out) == 0 {
		t.Fatal("README.md has no metrics table (rows | `cost_analysis_...` | type | labels | meaning |)")
	}
	return out
}

func readmeMetrics(t *testing.T) []string {
	var n []string
	for _, m := range readmeTable(t) {
		n = append(n, m.name)
	}
	return n
}

func histograms(t *testing.T) []string {
	var n []string
	for _, m := range readmeTable(t) {
		if m.kind == "histogram" {
			n = append(n, m.name)
		}
	}
	return n
}

func metricsWithLabel(t *testing.T, label string) []string {
	var n []string
	for _, m := range readmeTable(t) {
		if strings.Contains(m.labels, "`"+label+"`") {
			n = append(n, m.name)
		}
	}
	return n
}

// definedName matches a metric name given to client_golang in the code.
var definedName = regexp.MustCompile(`(?:Name:\s*|NewDesc\()"(cost_analysis_[a-z0-9_]+)"`)

// definedMetrics are the metrics the manager's code defines (internal/).
func definedMetrics(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir("../../internal", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range definedName.FindAllStringSubmatch(string(b), -1) {
			if !slices.Contains(out, m[1]) {
				out = append(out, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("found no metric definitions under internal/")
	}
	return out
}

// kustomize builds a kustomization directory as kubectl apply -k would.
func kustomize(t *testing.T, dir string) []map[string]any {
	t.Helper()
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	var out []map[string]any
	for _, r := range resMap.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// config/grafana makes the dashboard's ConfigMap for Grafana's sidecar from the
// JSON file itself.
func TestGrafanaConfigMapHoldsTheDashboard(t *testing.T) {
	objs := kustomize(t, "../../config/grafana")
	if len(objs) != 1 || objs[0]["kind"] != "ConfigMap" {
		t.Fatalf("config/grafana made %d objects (%v), want one ConfigMap", len(objs), objs)
	}
	cm := objs[0]
	meta := cm["metadata"].(map[string]any)
	if labels, _ := meta["labels"].(map[string]any); labels["grafana_dashboard"] != "1" {
		t.Errorf("labels %v, want grafana_dashboard: \"1\" (what the sidecar looks for)", labels)
	}
	want, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	data := cm["data"].(map[string]any)
	got, _ := data["cost-analysis-operator.json"].(string)
	if got != string(want) {
		t.Errorf("the ConfigMap's cost-analysis-operator.json differs from %s", dashboardFile)
	}
	var d Dashboard
	if err := json.Unmarshal([]byte(got), &d); err != nil || d.UID == "" {
		t.Errorf("the ConfigMap's dashboard: uid %q, %v", d.UID, err)
	}
}

// config/prometheus installs the alerts, and a ServiceMonitor that keeps the
// metrics' own namespace label.
func TestPrometheusKustomizationInstallsTheRules(t *testing.T) {
	kinds := map[string]map[string]any{}
	for _, o := range kustomize(t, "../../config/prometheus") {
		kinds[o["kind"].(string)] = o
	}
	for _, k := range []string{"ServiceMonitor", "PrometheusRule"} {
		if kinds[k] == nil {
			t.Fatalf("config/prometheus has no %s", k)
		}
	}
	b, err := json.Marshal(kinds["PrometheusRule"]["spec"])
	if err != nil {
		t.Fatal(err)
	}
	var spec RuleGroups
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	if got, want := len(spec.Alerts()), len(loadRules(t).Alerts()); got != want {
		t.Errorf("the installed PrometheusRule has %d alerts, want %d", got, want)
	}
	eps, _ := kinds["ServiceMonitor"]["spec"].(map[string]any)["endpoints"].([]any)
	if len(eps) != 1 || eps[0].(map[string]any)["honorLabels"] != true {
		t.Errorf("ServiceMonitor endpoints %v, want one with honorLabels: true", eps)
	}
}
