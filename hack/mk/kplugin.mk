# The kubectl plugin kubectl-costanalysis (cmd/kubectl-costanalysis): its release
# archives, its krew manifest and their check. Included by the Makefile.

##@ kubectl plugin

KPLUGIN_VERSION ?= v0.0.0-dev
KPLUGIN_BASE_URI ?= https://github.com/costops/cost-analysis-operator/releases/download/$(KPLUGIN_VERSION)
KPLUGIN_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64
KPLUGIN_DIST ?= $(LOCALBIN)/kplugin-dist
KREW_VERSION ?= v0.4.3
KREW ?= $(LOCALBIN)/krew-$(KREW_VERSION)
KPLUGIN_ENV = KPLUGIN_VERSION=$(KPLUGIN_VERSION) KPLUGIN_BASE_URI=$(KPLUGIN_BASE_URI) KPLUGIN_DIST=$(KPLUGIN_DIST)

.PHONY: kplugin-dist
kplugin-dist: ## Build kubectl-costanalysis's reproducible release archives (KPLUGIN_PLATFORMS, KPLUGIN_VERSION) and the krew manifest with their sha256 into bin/kplugin-dist/.
	$(KPLUGIN_ENV) KPLUGIN_PLATFORMS="$(KPLUGIN_PLATFORMS)" hack/krew/dist.sh

.PHONY: kplugin-krew-check
kplugin-krew-check: krew ## Build this platform's archive and manifest, install them with krew (which checks the sha256), run the installed plugin, and see krew refuse a tampered archive.
	$(KPLUGIN_ENV) KPLUGIN_PLATFORMS="$$(go env GOOS)/$$(go env GOARCH)" KREW=$(KREW) hack/krew/dist.sh check

test: kplugin-krew-check

.PHONY: krew
krew: $(KREW) ## Install krew (pinned, built from the Go module proxy) into bin/.
$(KREW):
	mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/krew/cmd/krew@$(KREW_VERSION)
	mv $(LOCALBIN)/krew $(KREW)
