package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/test/e2e/framework"
	"github.com/costops/cost-analysis-operator/test/observability"
)

// A real Prometheus (Debian's, a process of the test's own) scrapes the manager
// through three runs — two that commit records and one with a failing task — and a
// DataSource whose plugin does not answer. Then every query of the Grafana
// dashboard, with its template variables filled in from Prometheus as Grafana
// would, returns data, every metric selector of the alerts has series of the
// test's namespace, every alert expression is accepted and evaluated by
// Prometheus's rule engine, and the alerts that should be active are.
func TestPrometheus(t *testing.T) {
	requireRealNode(t) // committed records need task pods that really write
	promBin := prometheusBinary(t)
	k := setup(t)
	t.Parallel()

	// A scraper with get on /metrics, as config/rbac/metrics_reader_role.yaml grants.
	k.kubectl("create", "serviceaccount", "prometheus")
	role := "e2e-prometheus-" + k.ns
	k.kubectl("create", "clusterrole", role, "--verb=get", "--non-resource-url=/metrics")
	k.kubectl("create", "clusterrolebinding", role, "--clusterrole="+role, "--serviceaccount="+k.ns+":prometheus")
	t.Cleanup(func() {
		_, _, _ = k.try("delete", "clusterrolebinding", role)
		_, _, _ = k.try("delete", "clusterrole", role)
	})
	prom := startPrometheus(t, promBin, strings.TrimSpace(k.kubectl("create", "token", "prometheus", "--duration=1h")))
	start := time.Now()
	prom.waitTargetUp(t)

	closed, err := framework.FreePort() // nothing listens there: an unreachable plugin
	if err != nil {
		t.Fatal(err)
	}
	k.createDataSource("billing", source{real: true,
		options:  map[string]any{"tasks": 3, "records_per_task": 8},
		defaults: costv1.JobDefaults{Parallelism: ptr[int32](3)}})
	k.createDataSource("flaky", source{options: map[string]any{"tasks": 3},
		pods: map[string]string{fakeFailIndexes: "1", fakeDuration: "1s"}})
	k.createDataSource("unreachable", source{endpoint: framework.LoopbackAddr(closed), options: map[string]any{"tasks": 1}})

	// As with any DataSource that exists before its runs, Prometheus has seen its
	// counters at 0, so that the first failure is an increase.
	prom.waitSeries(t, fmt.Sprintf(`cost_analysis_jobs_finished_total{namespace=%q, data_source=~"billing|flaky", status="FAILURE"}`, k.ns), 2)
	k.createJob("first", "billing")
	k.createJob("broken", "flaky")
	k.wait("cajob/first", "{.status.status}", "SUCCESS", 2*time.Minute)
	k.wait("cajob/broken", "{.status.status}", "FAILURE", 2*time.Minute)
	k.createJob("second", "billing")
	k.wait("cajob/second", "{.status.status}", "SUCCESS", 2*time.Minute)
	k.wait("cads/unreachable", `{.status.conditions[?(@.type=="PluginReady")].status}`, "False", time.Minute)
	time.Sleep(5 * time.Second) // five more scrapes and rule evaluations

	// The series per metric, of this test's namespace where the metric has one.
	counts := prom.vector(t, fmt.Sprintf(`count by (__name__) ({__name__=~"cost_analysis_.+", namespace=%q} or {__name__=~"cost_analysis_(plugin_call|store_operation_duration).+"})`, k.ns))
	sort.Slice(counts, func(i, j int) bool { return counts[i].Metric["__name__"] < counts[j].Metric["__name__"] })
	var report strings.Builder
	for _, s := range counts {
		fmt.Fprintf(&report, "  %-55s %s\n", s.Metric["__name__"], s.value())
	}
	t.Logf("series per metric (namespace %s; plugin and store durations: all):\n%s", k.ns, report.String())

	dash, err := observability.ReadDashboard("../../config/grafana/cost-analysis-operator.json")
	if err != nil {
		t.Fatal(err)
	}
	// The variables, as Grafana fills them: the namespaces and data sources
	// Prometheus knows, "All" of the data sources being their values as a regex.
	vars := map[string]string{}
	for _, name := range []string{"namespace", "data_source"} {
		v := dash.Variable(name)
		if v == nil {
			t.Fatalf("the dashboard has no variable %s", name)
		}
		sel, label, err := v.LabelValuesQuery()
		if err != nil {
			t.Fatal(err)
		}
		if sel, err = observability.Substitute(sel, map[string]string{"namespace": regexp.QuoteMeta(k.ns)}); err != nil {
			t.Fatal(err)
		}
		values := prom.labelValues(t, label, sel)
		t.Logf("variable %s: label_values(%s, %s) = %v", name, sel, label, values)
		switch name {
		case "namespace":
			if !slices.Contains(values, k.ns) {
				t.Fatalf("variable namespace offers %v, not the test's %s", values, k.ns)
			}
			vars[name] = regexp.QuoteMeta(k.ns)
		case "data_source":
			if want := []string{"billing", "flaky", "unreachable"}; !slices.Equal(values, want) {
				t.Fatalf("variable data_source offers %v, want %v", values, want)
			}
			quoted := make([]string, len(values))
			for i, s := range values {
				quoted[i] = regexp.QuoteMeta(s)
			}
			vars[name] = "(" + strings.Join(quoted, "|") + ")"
		}
	}
	// The time range is the test's: $__range, and $__rate_interval as wide (one
	// point per panel, as with a step as long as the range).
	window := fmt.Sprintf("%ds", int(time.Since(start).Seconds())+5)
	vars["__range"], vars["__rate_interval"] = window, window
	t.Logf("variables: %v", vars)

	answered := 0
	for _, q := range dash.Queries() {
		expr, err := observability.Substitute(q.Expr, vars)
		if err != nil {
			t.Errorf("%s: %v", q, err)
			continue
		}
		var series []sample
		if q.Instant {
			series = prom.vector(t, expr)
		} else {
			series = prom.matrix(t, expr, start, time.Now(), 2*time.Second)
		}
		numbers := 0
		for _, s := range series {
			numbers += s.numbers()
		}
		if numbers == 0 {
			t.Errorf("%s: no data (%d series, none with a number): %s", q, len(series), expr)
			continue
		}
		answered++
		t.Logf("%s: %d series, %d values", q, len(series), numbers)
	}
	t.Logf("dashboard: %d of %d queries answered with data", answered, len(dash.Queries()))

	rules, err := observability.ReadRules("../../config/prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	selectors := 0
	for _, a := range rules.Alerts() {
		for _, sel := range observability.Selectors(a.Expr) {
			series := prom.vector(t, sel)
			ours := 0
			for _, s := range series {
				if s.Metric["namespace"] == k.ns {
					ours++
				}
			}
			if ours == 0 {
				t.Errorf("alert %s: %s has no series of namespace %s (%d of others)", a.Alert, sel, k.ns, len(series))
				continue
			}
			selectors++
			t.Logf("alert %s: %s: %d series of the namespace", a.Alert, sel, ours)
		}
		prom.vector(t, a.Expr) // accepted by the query API (usually empty: not firing)
	}
	t.Logf("alerts: %d selectors of %d alerts have series", selectors, len(rules.Alerts()))

	// The rule engine evaluated every alert without error, and the two the runs
	// call for are active: every run of flaky failed (no "for": firing), and
	// unreachable's plugin is not ready (pending for its 10 minutes).
	for _, r := range prom.rules(t) {
		if r.Health != "ok" || r.LastError != "" {
			t.Errorf("rule %s: health %q, %s", r.Name, r.Health, r.LastError)
		}
	}
	active := map[string]string{}
	for _, a := range prom.alerts(t) {
		if a.Labels["namespace"] == k.ns {
			active[a.Labels["alertname"]+" "+a.Labels["data_source"]] = a.State
		}
	}
	want := map[string]string{
		"CostAnalysisJobsFailing flaky":             "firing",
		"CostAnalysisPluginUnreachable unreachable": "pending",
	}
	for k, v := range want {
		if active[k] != v {
			t.Errorf("alert %s: %q, want %s (active: %v)", k, active[k], v, active)
		}
	}
	for k := range active {
		if _, ok := want[k]; !ok && !strings.HasPrefix(k, "CostAnalysisTaskFailureRateHigh flaky") {
			t.Errorf("alert %s is active (%s), want it quiet", k, active[k])
		}
	}
	t.Logf("active alerts of the namespace: %v", active)
}

// prometheusBinary is Debian's prometheus (make promtool installs the package).
func prometheusBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus is not installed, and CI=true requires it: make promtool installs Debian's prometheus package")
		}
		t.Skip("prometheus is not installed (make promtool installs Debian's prometheus package)")
	}
	return p
}

// prometheus is a Prometheus server of the test's own.
type prometheus struct {
	base string
}

// startPrometheus runs Prometheus on a free port of 127.0.0.1 with its data in a
// temporary directory, scraping the manager every second with token and loading
// the operator's alerts; it is stopped when the test ends.
func startPrometheus(t *testing.T, bin, token string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	rules, err := filepath.Abs("../../config/prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
- %s
scrape_configs:
- job_name: cost-analysis-operator
  scheme: https
  honor_labels: true
  authorization:
    credentials_file: %s
  tls_config:
    insecure_skip_verify: true
  static_configs:
  - targets: [%q]
`, rules, tokenFile, env.MetricsAddr)
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := framework.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := framework.LoopbackAddr(port)
	p := &framework.Process{Name: "prometheus", Path: bin, LogPath: filepath.Join(dir, "prometheus.log"), Args: []string{
		"--config.file=" + configFile,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
	}}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(10 * time.Second); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			if b, err := os.ReadFile(p.LogPath); err == nil {
				t.Logf("prometheus log:\n%s", b)
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := framework.WaitTCP(ctx, p, addr); err != nil {
		b, _ := os.ReadFile(p.LogPath)
		t.Fatalf("prometheus did not start: %v\n%s", err, b)
	}
	// It listens before it is ready: its API answers 503 until then.
	for {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if ctx.Err() != nil {
			b, _ := os.ReadFile(p.LogPath)
			t.Fatalf("prometheus is not ready: %v\n%s", err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return &prometheus{base: "http://" + addr}
}

// get calls the HTTP API and decodes its data into out; an API error fails the test.
func (p *prometheus) get(t *testing.T, path string, params url.Values, out any) {
	t.Helper()
	resp, err := http.Get(p.base + path + "?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Status != "success" {
		t.Fatalf("prometheus %s %v: %d %s (%v)", path, params, resp.StatusCode, b, err)
	}
	if err := json.Unmarshal(r.Data, out); err != nil {
		t.Fatalf("prometheus %s: %v in %s", path, err, r.Data)
	}
}

// sample is a series of a query's answer: an instant value or a range of them.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
	Values [][]any           `json:"values"`
}

func (s sample) value() string {
	if len(s.Value) == 2 {
		return fmt.Sprint(s.Value[1])
	}
	return ""
}

// numbers counts the values that are numbers (histogram_quantile of no
// observations is NaN: no data).
func (s sample) numbers() int {
	n := 0
	for _, v := range append(s.Values, s.Value) {
		if len(v) != 2 {
			continue
		}
		if f, err := strconv.ParseFloat(fmt.Sprint(v[1]), 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			n++
		}
	}
	return n
}

func (p *prometheus) vector(t *testing.T, expr string) []sample {
	t.Helper()
	var d struct {
		Result []sample `json:"result"`
	}
	p.get(t, "/api/v1/query", url.Values{"query": {expr}}, &d)
	return d.Result
}

func (p *prometheus) matrix(t *testing.T, expr string, from, to time.Time, step time.Duration) []sample {
	t.Helper()
	var d struct {
		Result []sample `json:"result"`
	}
	p.get(t, "/api/v1/query_range", url.Values{"query": {expr},
		"start": {strconv.FormatInt(from.Unix(), 10)}, "end": {strconv.FormatInt(to.Unix(), 10)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}, &d)
	return d.Result
}

func (p *prometheus) labelValues(t *testing.T, label, match string) []string {
	t.Helper()
	var values []string
	p.get(t, "/api/v1/label/"+label+"/values", url.Values{"match[]": {match}}, &values)
	sort.Strings(values)
	return values
}

// waitTargetUp waits until a scrape of the manager succeeded.
func (p *prometheus) waitTargetUp(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var d struct {
			ActiveTargets []struct {
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"activeTargets"`
		}
		p.get(t, "/api/v1/targets", url.Values{"state": {"active"}}, &d)
		if len(d.ActiveTargets) == 1 && d.ActiveTargets[0].Health == "up" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus does not scrape the manager: %+v", d.ActiveTargets)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitSeries waits until selector has n series.
func (p *prometheus) waitSeries(t *testing.T, selector string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := p.vector(t, selector)
		if len(got) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d series after 30s, want %d", selector, len(got), n)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

type ruleState struct {
	Name      string `json:"name"`
	Health    string `json:"health"`
	LastError string `json:"lastError"`
}

func (p *prometheus) rules(t *testing.T) []ruleState {
	t.Helper()
	var d struct {
		Groups []struct {
			Rules []ruleState `json:"rules"`
		} `json:"groups"`
	}
	p.get(t, "/api/v1/rules", url.Values{}, &d)
	var out []ruleState
	for _, g := range d.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatal("prometheus loaded no rules")
	}
	return out
}

type alertState struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func (p *prometheus) alerts(t *testing.T) []alertState {
	t.Helper()
	var d struct {
		Alerts []alertState `json:"alerts"`
	}
	p.get(t, "/api/v1/alerts", url.Values{}, &d)
	return d.Alerts
}
