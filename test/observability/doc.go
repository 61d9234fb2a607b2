// Package observability tests the operator's dashboard and alerts as files: the
// rule file with promtool (check rules, and the rule unit tests of
// config/prometheus/rules_test.yaml), the PrometheusRule generated from it, the
// Grafana dashboard and its ConfigMap, and that every metric they read is one the
// operator serves and the README documents. The e2e suite's TestPrometheus runs
// the same queries against a real Prometheus scraping a real manager.
package observability
