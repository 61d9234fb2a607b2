# Container images, built without a Docker daemon (hack/image, internal/image):
# one image per program (manager, collector, sample plugin) plus the local node's
# pause image. Included by the Makefile (-include hack/mk/*.mk).

IMAGE_REGISTRY ?= localhost/costops
IMAGE_TAG ?= dev
COLLECTOR_IMG ?= $(IMAGE_REGISTRY)/cost-analysis-collector:$(IMAGE_TAG)
PLUGIN_IMG ?= $(IMAGE_REGISTRY)/cost-analysis-sample-plugin:$(IMAGE_TAG)
IMAGE_OUT ?= bin/image
# Extra flags of `image-push`, e.g. IMAGE_PUSH_FLAGS=--insecure for a plain-HTTP registry.
IMAGE_PUSH_FLAGS ?=

# The manager's ref is the Makefile's IMG ($(IMAGE_REGISTRY)/cost-analysis-operator:$(IMAGE_TAG)
# unless set).
IMAGE_FLAGS = --registry $(IMAGE_REGISTRY) --tag $(IMAGE_TAG) --manager-ref $(IMG) --collector-ref $(COLLECTOR_IMG) --plugin-ref $(PLUGIN_IMG)

##@ Images

.PHONY: image
image: ## Build the manager, collector, sample-plugin and pause images (no Docker) into bin/image/*.tar, for `ctr -n k8s.io images import`.
	go run ./hack/image build --out $(IMAGE_OUT) $(IMAGE_FLAGS)

.PHONY: image-push
image-push: ## Build and push the manager, collector and sample-plugin images to IMAGE_REGISTRY (docker config auth; IMAGE_PUSH_FLAGS=--insecure for plain HTTP).
	go run ./hack/image push --out $(IMAGE_OUT) $(IMAGE_FLAGS) $(IMAGE_PUSH_FLAGS)
