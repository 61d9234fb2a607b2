package observability

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite config/prometheus/prometheusrule.yaml from rules.yaml")

const (
	ruleFile           = "../../config/prometheus/rules.yaml"
	ruleTestFile       = "../../config/prometheus/rules_test.yaml"
	prometheusRuleFile = "../../config/prometheus/prometheusrule.yaml"
	readme             = "../../README.md"
)

// promtool is Debian's (package prometheus; `make promtool` installs it). Under
// CI=true its absence fails the test.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed, and CI=true requires it: make promtool installs Debian's prometheus package")
		}
		t.Skip("promtool is not installed (make promtool installs Debian's prometheus package)")
	}
	return p
}

func runPromtool(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestRuleFilePassesPromtoolCheck(t *testing.T) {
	out := runPromtool(t, "check", "rules", ruleFile)
	t.Logf("%s", out)
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(loadRules(t).Alerts())); !strings.Contains(out, want) {
		t.Errorf("promtool check rules said %q, want %q", out, want)
	}
}

func TestAlertsFireAndStayQuietInPromtoolUnitTests(t *testing.T) {
	// promtool resolves rule_files against the test file's directory.
	out := runPromtool(t, "test", "rules", ruleTestFile)
	t.Logf("%s", out)
}

func loadRules(t *testing.T) RuleGroups {
	t.Helper()
	g, err := ReadRules(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Alerts()) == 0 {
		t.Fatalf("%s has no alerts", ruleFile)
	}
	return g
}

// Every alert says how bad it is, what happened and where its runbook is (a
// heading of the README's "Alerts"), and the promtool unit tests show it both
// firing and staying quiet.
func TestEveryAlertIsDocumentedAndTested(t *testing.T) {
	doc, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string           `json:"alertname"`
				ExpAlerts []map[string]any `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	b, err := os.ReadFile(ruleTestFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, a := range loadRules(t).Alerts() {
		t.Run(a.Alert, func(t *testing.T) {
			if s := a.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("severity %q, want critical or warning", s)
			}
			for _, k := range []string{"summary", "description", "runbook_url"} {
				if a.Annotations[k] == "" {
					t.Errorf("no %s annotation", k)
				}
			}
			anchor := "#" + strings.ToLower(a.Alert)
			if !strings.HasSuffix(a.Annotations["runbook_url"], "/README.md"+anchor) {
				t.Errorf("runbook_url %q, want the README's %s", a.Annotations["runbook_url"], anchor)
			}
			if !bytes.Contains(doc, []byte("\n#### "+a.Alert+"\n")) {
				t.Errorf("README.md has no heading \"#### %s\" (its runbook)", a.Alert)
			}
			if !fires[a.Alert] || !quiet[a.Alert] {
				t.Errorf("%s: promtool tests where it fires: %v, where it stays quiet: %v; want both", ruleTestFile, fires[a.Alert], quiet[a.Alert])
			}
		})
	}
}

// prometheusRuleHeader opens the generated PrometheusRule.
const prometheusRuleHeader = `# The alerts of rules.yaml as a Prometheus Operator PrometheusRule (kustomization.yaml
# installs it). Generated: edit rules.yaml, then run
#   go test ./test/observability -run TestPrometheusRuleMatchesRuleFile -update
`

// prometheusRule is what the PrometheusRule must hold: the rule file's groups.
func prometheusRule(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	var groups map[string]any
	if err := yaml.Unmarshal(b, &groups); err != nil {
		t.Fatal(err)
	}
	obj := map[string]any{
		"apiVersion": "monitoring.coreos.com/v1",
		"kind":       "PrometheusRule",
		"metadata": map[string]any{
			"name":      "alerts",
			"namespace": "system",
			"labels":    map[string]any{"control-plane": "controller-manager"},
		},
		"spec": groups,
	}
	out, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(prometheusRuleHeader), out...)
}

func TestPrometheusRuleMatchesRuleFile(t *testing.T) {
	want := prometheusRule(t)
	if *update {
		if err := os.WriteFile(prometheusRuleFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(prometheusRuleFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what %s makes; run: go test ./test/observability -run TestPrometheusRuleMatchesRuleFile -update", prometheusRuleFile, ruleFile)
	}
	// And read back, its groups are the rule file's.
	var pr struct {
		Spec RuleGroups `json:"spec"`
	}
	if err := yaml.Unmarshal(got, &pr); err != nil {
		t.Fatal(err)
	}
	if rf := loadRules(t); !reflect.DeepEqual(pr.Spec, rf) {
		t.Errorf("the PrometheusRule's groups differ from %s", ruleFile)
	}
}
