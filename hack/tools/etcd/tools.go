//go:build tools

// Package tools pins the etcd server that hack/kube-build.sh builds from source.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
