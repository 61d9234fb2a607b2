// Package e2e is the end-to-end suite: the whole product (manager, sample plugin) on a
// real local control plane (hack/cluster.sh, cluster "e2e"), driven with the kubectl
// built from source, the way a user drives it. `make test-e2e` runs it alone, `make
// test` with everything else. It skips (saying why) only when the control plane's
// binaries are not built (`make kube-bins`).
//
// E2E_CLUSTER_NAME picks another cluster name; E2E_KEEP_LOGS=1 keeps the processes'
// logs (they are always kept when a test fails, and their directory is printed).
package e2e
