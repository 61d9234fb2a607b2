// Package argocd tests the operator's Argo CD customizations (config/argocd) with Argo
// CD's own code: every health check and action under
// config/argocd/resource_customizations runs through Argo CD's Lua VM (util/lua) with
// its default sandbox, against objects captured from the operator, both as files (the
// way Argo CD's resource_customizations tests run them) and as Argo CD reads them from
// the argocd-cm snippet (util/settings), which must hold exactly the same scripts.
//
// It is a module of its own so that Argo CD's Kubernetes libraries stay out of the
// operator's go.mod; `make test-argocd` runs it.
package argocd
