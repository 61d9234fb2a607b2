# Deploying the operator to a cluster: kustomize (config/default, the cluster-wide
# install; config/namespaced, the install that watches given namespaces) and the
# Helm chart (dist/chart). Included by the Makefile (-include hack/mk/*.mk).

# helm, built from the Go module proxy at the version hack/tools/helm/go.mod pins.
HELM_VERSION ?= $(shell awk '$$1 == "helm.sh/helm/v4" { print $$2; exit } $$1 == "require" && $$2 == "helm.sh/helm/v4" { print $$3; exit }' hack/tools/helm/go.mod)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
# What `make deploy` and `make undeploy` apply: config/default or config/namespaced.
DEPLOY_CONFIG ?= config/default
# The images config/manager names; `make deploy` puts IMG and COLLECTOR_IMG in their place.
DEPLOY_MANIFEST_IMG = localhost/costops/cost-analysis-operator:dev
DEPLOY_MANIFEST_COLLECTOR_IMG = localhost/costops/cost-analysis-collector:dev

##@ Deployment

.PHONY: install
install: manifests ## Install the CRDs into the cluster of the current kubeconfig.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: manifests ## Remove the CRDs (and with them every DataSource, Job and JobTask) from the cluster.
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: manifests ## Deploy the operator (DEPLOY_CONFIG=config/default, or config/namespaced) with images IMG and COLLECTOR_IMG to the current kubeconfig's cluster.
	@out=$$($(KUBECTL) kustomize $(DEPLOY_CONFIG)); \
	for ref in 'image: $(DEPLOY_MANIFEST_IMG)' '--collector-image=$(DEPLOY_MANIFEST_COLLECTOR_IMG)'; do \
		grep -qF -e "$$ref" <<<"$$out" || { echo "deploy: $(DEPLOY_CONFIG) does not render '$$ref' any more: update hack/mk/deploy.mk" >&2; exit 1; }; \
	done; \
	sed -e 's|image: $(DEPLOY_MANIFEST_IMG)$$|image: $(IMG)|' \
		-e 's|--collector-image=$(DEPLOY_MANIFEST_COLLECTOR_IMG)$$|--collector-image=$(COLLECTOR_IMG)|' <<<"$$out" | \
		$(KUBECTL) apply --server-side -f -
	@echo "deploy: applied $(DEPLOY_CONFIG) (manager $(IMG), collector $(COLLECTOR_IMG)); wait with:"
	@echo "  $(KUBECTL) -n cost-analysis-system rollout status deployment/cost-analysis-controller-manager"

.PHONY: undeploy
undeploy: ## Remove everything `make deploy` made (CRDs with every DataSource, Job and JobTask, RBAC, the namespace), and wait for it to go.
	$(KUBECTL) delete --ignore-not-found --wait -k $(DEPLOY_CONFIG)

.PHONY: helm
helm: $(HELM) ## Build helm (pinned in hack/tools/helm/go.mod) from the Go module proxy into bin/ (cached).
$(HELM):
	@[ -n "$(HELM_VERSION)" ] || { echo "helm: cannot read the helm version from hack/tools/helm/go.mod" >&2; exit 1; }
	mkdir -p $(LOCALBIN)
	cd hack/tools/helm && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$(HELM_VERSION)" -o $(HELM).tmp helm.sh/helm/v4/cmd/helm
	mv $(HELM).tmp $(HELM)

# test/manifests renders dist/chart with helm.
test: helm
