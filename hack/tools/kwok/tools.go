//go:build tools

// Package tools pins kwok and kwokctl, which hack/kube-build.sh builds from source.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
	_ "sigs.k8s.io/kwok/cmd/kwokctl"
)
