package observability

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// Dashboard is what the tests read of a Grafana dashboard.
type Dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
	Panels []Panel `json:"panels"`
}

// Variable is a dashboard's template variable.
type Variable struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Definition string `json:"definition"`
	Query      any    `json:"query"`
	IncludeAll bool   `json:"includeAll"`
	Multi      bool   `json:"multi"`
}

// Panel is a dashboard panel; a row holds its panels when collapsed.
type Panel struct {
	Title   string   `json:"title"`
	Type    string   `json:"type"`
	Targets []Target `json:"targets"`
	Panels  []Panel  `json:"panels"`
}

// Target is one query of a panel.
type Target struct {
	RefID   string `json:"refId"`
	Expr    string `json:"expr"`
	Instant bool   `json:"instant"`
}

// Query is a panel's query, named for messages.
type Query struct {
	Panel, RefID, Expr string
	Instant            bool
}

func (q Query) String() string { return fmt.Sprintf("%q %s", q.Panel, q.RefID) }

// ReadDashboard reads a dashboard's JSON.
func ReadDashboard(path string) (*Dashboard, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d Dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &d, nil
}

// Queries are the PromQL queries of every panel, rows' panels included.
func (d *Dashboard) Queries() []Query {
	var out []Query
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				out = append(out, Query{Panel: p.Title, RefID: t.RefID, Expr: t.Expr, Instant: t.Instant})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// Variable returns the template variable name, or nil.
func (d *Dashboard) Variable(name string) *Variable {
	for i := range d.Templating.List {
		if d.Templating.List[i].Name == name {
			return &d.Templating.List[i]
		}
	}
	return nil
}

// labelValues matches a Prometheus variable query label_values(selector, label).
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// LabelValuesQuery splits a variable's label_values(selector, label) query.
func (v *Variable) LabelValuesQuery() (selector, label string, err error) {
	m := labelValues.FindStringSubmatch(strings.TrimSpace(v.Definition))
	if m == nil {
		return "", "", fmt.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, v.Definition)
	}
	return strings.TrimSpace(m[1]), m[2], nil
}

// RuleGroups is a Prometheus rule file.
type RuleGroups struct {
	Groups []RuleGroup `json:"groups"`
}

// RuleGroup is a group of rules.
type RuleGroup struct {
	Name  string `json:"name"`
	Rules []Rule `json:"rules"`
}

// Rule is an alerting (or recording) rule.
type Rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ReadRules reads a rule file, refusing fields it does not know.
func ReadRules(path string) (RuleGroups, error) {
	var g RuleGroups
	b, err := os.ReadFile(path)
	if err != nil {
		return g, err
	}
	if err := yaml.UnmarshalStrict(b, &g); err != nil {
		return g, fmt.Errorf("%s: %w", path, err)
	}
	return g, nil
}

// Alerts are the alerting rules of every group.
func (g RuleGroups) Alerts() []Rule {
	var out []Rule
	for _, grp := range g.Groups {
		for _, r := range grp.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

// selector matches a vector selector of one of the operator's metrics: its name
// and its label matchers, without a range. The dashboard's and the alerts' label
// values hold no braces.
var selector = regexp.MustCompile(`\bcost_analysis_[a-z0-9_]+(\{[^{}]*\})?`)

// Selectors are the vector selectors of the operator's metrics in expr, each once.
func Selectors(expr string) []string {
	var out []string
	for _, s := range selector.FindAllString(expr, -1) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// MetricName is the metric a series name belongs to: a histogram's _bucket,
// _sum and _count series belong to the histogram.
func MetricName(series string, histograms []string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok && slices.Contains(histograms, base) {
			return base
		}
	}
	return series
}

// SeriesName is the metric name of a selector.
func SeriesName(sel string) string {
	name, _, _ := strings.Cut(sel, "{")
	return name
}

// variable matches $name and ${name} in a query.
var variable = regexp.MustCompile(`\$\{?([a-zA-Z_][a-zA-Z0-9_]*)\}?`)

// Substitute replaces the template variables of a query ($name, ${name}) with
// vars' values, as Grafana does before sending it; a variable vars lacks is an error.
func Substitute(expr string, vars map[string]string) (string, error) {
	var missing []string
	out := variable.ReplaceAllStringFunc(expr, func(m string) string {
		name := variable.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("query %q: no value for %s", expr, strings.Join(missing, ", "))
	}
	return out, nil
}
