//go:build tools

// Package tools pins helm, which hack/mk/deploy.mk builds from source into bin/
// (make helm) for dist/chart's tests and `helm template`.
package tools

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
