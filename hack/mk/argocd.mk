# Argo CD: the health checks and actions of config/argocd, tested with Argo CD's own
# Lua VM and settings code (hack/argocd, a module of its own so that Argo CD's
# Kubernetes libraries stay out of the operator's go.mod). Included by the Makefile
# (-include hack/mk/*.mk).

##@ Argo CD

.PHONY: test-argocd
test-argocd: ## Run every health check and action of config/argocd through Argo CD v3.1.16's Lua VM (util/lua), and check that the argocd-cm snippet holds the same scripts.
	cd hack/argocd && go vet ./... && go test $(GOTEST_FLAGS) -count=1 ./...

.PHONY: argocd-cm
argocd-cm: ## Rewrite config/argocd/argocd-cm.yaml from the scripts under config/argocd/resource_customizations.
	cd hack/argocd && go test -count=1 -run '^TestConfigMapHoldsTheScripts$$' . -update

test: test-argocd
