# cost-analysis-operator Makefile. `make help` lists the targets.

# Tools, pinned, installed into bin/ by the targets that need them.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
# Kubernetes built from source (hack/kube-build.sh): etcd, kube-apiserver, kubectl, ...
KUBE_BIN = $(shell hack/kube-build.sh --print)
KUBECTL ?= $(KUBE_BIN)/kubectl

# Where the operator runs: `make run` uses $KUBECONFIG (or ~/.kube/config, or the
# in-cluster config) when it reaches a cluster, and else a local control plane.
# The manager image (make image, make image-push, make deploy); hack/mk/image.mk names the others.
IMG ?= $(IMAGE_REGISTRY)/cost-analysis-operator:$(IMAGE_TAG)
GOTEST_FLAGS ?=

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

# Targets of the end-to-end suite, the demo and the benchmarks live in hack/mk/.
-include hack/mk/*.mk

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRDs (config/crd/bases) and RBAC (config/rbac) from the code markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/..." paths="./controllers/..." paths="./internal/..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen protoc ## Generate deepcopy code (api/v1) and the plugin's protobuf code (internal/plugin/pluginpb).
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."
	hack/gen-proto.sh

.PHONY: fmt
fmt: ## Run gofmt over the code.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint (pinned, built into bin/ from the Go module proxy) with .golangci.yml.
	$(GOLANGCI_LINT) run ./...

.PHONY: verify-generated
verify-generated: manifests generate ## Fail when generated files (CRDs, RBAC, deepcopy, protobuf) drift from the code.
	@if [ -n "$$(git status --porcelain -- api config internal/plugin/pluginpb)" ]; then \
		echo "Generated files are out of date; run 'make manifests generate' and commit:"; \
		git status --porcelain -- api config internal/plugin/pluginpb; git diff --stat -- api config internal/plugin/pluginpb; exit 1; fi

.PHONY: kube-bins
kube-bins: ## Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet, kube-proxy, CoreDNS, kwok, kwokctl from source into bin/k8s (cached).
	hack/kube-build.sh

.PHONY: test
test: verify-generated vet lint kube-bins ## Run every test (unit, envtest against a real kube-apiserver, the manifests and chart, promtool, Argo CD's Lua, the kubectl plugin with krew, the e2e and deploy suites on local control planes) after checking generated files, go vet and golangci-lint.
	KUBEBUILDER_ASSETS="$(KUBE_BIN)" go test $(GOTEST_FLAGS) ./...

.PHONY: bench-engine
bench-engine: kube-bins ## Run a Job of 5,000 tasks against envtest and print plan time vs a plain client, writes per task, heap, status size.
	KUBEBUILDER_ASSETS="$(KUBE_BIN)" BENCH_ENGINE=1 go test -count=1 -timeout 30m -run '^TestEngineBenchmark$$' -v ./controllers/ | grep -v '^=== RUN'

STORE_BENCH_ROWS ?= 1000000
COLLECTOR_BENCH_RECORDS ?= 100000
# Pairs of collector run and plain COPY; the figure is their median ratio.
COLLECTOR_BENCH_PAIRS ?= 7

.PHONY: bench-store
bench-store: ## Benchmark the data plane on a throwaway PostgreSQL: collector ingest vs a plain COPY (goal >= 0.9), a task write vs a plain COPY, and a commit replacing a month of STORE_BENCH_ROWS (1,000,000) rows vs a bare DELETE (goal <= 1.2).
	COLLECTOR_BENCH_RECORDS=$(COLLECTOR_BENCH_RECORDS) go test -count=1 -run '^$$' -bench '^BenchmarkCollectorIngest$$' -benchtime $(COLLECTOR_BENCH_PAIRS)x ./internal/collector/
	STORE_BENCH_ROWS=$(STORE_BENCH_ROWS) go test -count=1 -timeout 40m -run '^$$' -bench . -benchtime 1x ./internal/store/

# Fuzz budgets are counts of executions, not durations: on Go 1.26 a duration budget
# can hit the fuzz coordinator's deadline race (golang/go#75804, fixed in Go 1.27) and
# fail with "context deadline exceeded" and no saved input. The defaults take about
# 30 s each on 2 cores (measured: ~230,000 and ~910,000 executions in 30 s).
FUZZ_QUERY_EXECS ?= 200000x
FUZZ_STAT_EXECS ?= 800000x

.PHONY: fuzz
fuzz: ## Fuzz the query engine: FUZZ_QUERY_EXECS (200000x) and FUZZ_STAT_EXECS (800000x) executions, about 30 s each.
	go test -run '^$$' -fuzz '^FuzzQuery$$' -fuzztime $(FUZZ_QUERY_EXECS) ./internal/query/
	go test -run '^$$' -fuzz '^FuzzStatisticsQuery$$' -fuzztime $(FUZZ_STAT_EXECS) ./internal/query/

##@ Build

.PHONY: build
build: ## Build the manager, the collector, the sample plugin and the kubectl plugin (kubectl-costanalysis) into bin/.
	go build -o $(LOCALBIN)/manager .
	go build -o $(LOCALBIN)/collector ./cmd/collector
	go build -o $(LOCALBIN)/sample-plugin ./cmd/sample-plugin
	go build -o $(LOCALBIN)/kubectl-costanalysis ./cmd/kubectl-costanalysis

.PHONY: run
run: build kube-bins ## Run the manager in the foreground against your cluster, or against a local control plane when none is configured.
	hack/run.sh

##@ Local control plane (built from source: a real node and kwok nodes)

.PHONY: cluster-up
cluster-up: kube-bins ## Start the local control plane (etcd, kube-apiserver, controller-manager, scheduler; a real kubelet node when root, kwok nodes) and install the CRDs.
	hack/cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop the demo's manager and plugin (if any), then stop and delete the local control plane.
	hack/demo.sh stop
	hack/cluster.sh down

# Deployment (install, uninstall, deploy, undeploy, chart, helm): hack/mk/deploy.mk.

##@ Tools

.PHONY: protoc
protoc: ## Install protoc (Debian's protobuf-compiler) when it is missing; protoc-gen-go(-grpc) go into bin/ via hack/gen-proto.sh.
	@command -v protoc >/dev/null 2>&1 || { \
		echo "protoc is missing: installing Debian's protobuf-compiler"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq protobuf-compiler >/dev/null; }

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Install golangci-lint into bin/ (built from source at its pinned version).
$(GOLANGCI_LINT):
	mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/golangci-lint $(GOLANGCI_LINT)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into bin/.
$(CONTROLLER_GEN):
	mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)
