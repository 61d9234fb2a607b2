# Dashboards and alerts: promtool checks of config/prometheus and the Grafana
# dashboard of config/grafana (test/observability), and the Prometheus the e2e
# suite's TestPrometheus runs. Included by the Makefile (-include hack/mk/*.mk).

##@ Observability

# make test needs promtool (test/observability) and prometheus (test/e2e).
test: promtool

.PHONY: promtool
promtool: ## Install promtool and prometheus (Debian's prometheus package) when missing, with its service neither started nor left running.
	@command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || { \
		echo "promtool is missing: installing Debian's prometheus package"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		deny=; if [ ! -e /usr/sbin/policy-rc.d ]; then deny=1; \
			printf '#!/bin/sh\nexit 101\n' | $$SUDO tee /usr/sbin/policy-rc.d >/dev/null && $$SUDO chmod 755 /usr/sbin/policy-rc.d; fi; \
		rc=0; $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null || rc=$$?; \
		if [ -n "$$deny" ]; then $$SUDO rm -f /usr/sbin/policy-rc.d; fi; \
		if [ -d /run/systemd/system ]; then $$SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true; fi; \
		exit $$rc; }

.PHONY: test-observability
test-observability: promtool ## Check the alerts (promtool check rules, the rule unit tests), the PrometheusRule generated from them, and the Grafana dashboard and its ConfigMap.
	go test $(GOTEST_FLAGS) -count=1 ./test/observability/

.PHONY: prometheus-rule
prometheus-rule: ## Regenerate config/prometheus/prometheusrule.yaml from config/prometheus/rules.yaml.
	go test -count=1 -run '^TestPrometheusRuleMatchesRuleFile$$' ./test/observability/ -update
