#!/usr/bin/env bash
# `make run`: runs the manager (bin/manager) in the foreground on this machine.
#
# Where: the cluster of $KUBECONFIG (or ~/.kube/config) when it answers, or the
# in-cluster config when this runs in a pod (KUBERNETES_SERVICE_HOST); otherwise the
# local control plane of hack/cluster.sh (started when it is not running).
# Then: installs the CRDs, starts the sample plugin (bin/sample-plugin) in the
# background on $PLUGIN_LISTEN (default: on the local control plane, the host's address
# as its real node's pods see it, 10.201.0.1:50051, which config/samples names; else
# 127.0.0.1:50051), stopped when the manager exits, and execs the manager with --metrics-bind-address=127.0.0.1:8080, the HTTP API on
# https://127.0.0.1:8443 (self-signed),
# --health-probe-bind-address=127.0.0.1:8081, on the local control plane
# --default-store-secret=cost-analysis-system/cost-analysis-store (its PostgreSQL, started by
# hack/cluster.sh), and the extra arguments in $RUN_ARGS
# (split on blanks), e.g. RUN_ARGS="--leader-elect --zap-log-level=debug" make run.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PLUGIN_LISTEN=${PLUGIN_LISTEN:-}
RUN_ARGS=${RUN_ARGS:-}

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

bin=$("$root/hack/kube-build.sh")
kubectl="$bin/kubectl"
[[ -x "$kubectl" ]] || die "missing $kubectl (hack/kube-build.sh)"
[[ -x "$root/bin/manager" ]] || die "missing bin/manager: run 'make build' (or 'make run', which builds it)"

# Where to run.
reason=""
if [[ -n "${KUBERNETES_SERVICE_HOST:-}" && -z "${KUBECONFIG:-}" ]]; then
  log "running in a pod: using the in-cluster config (https://$KUBERNETES_SERVICE_HOST:${KUBERNETES_SERVICE_PORT:-443})"
  target="in-cluster"
elif err=$("$kubectl" version --request-timeout=5s 2>&1 >/dev/null); then
  kubeconfig=${KUBECONFIG:-$HOME/.kube/config}
  [[ -n "${KUBECONFIG:-}" || -f "$kubeconfig" ]] || kubeconfig="(kubectl defaults)"
  server=$("$kubectl" config view --minify -o 'jsonpath={.clusters[0].cluster.server}' 2>/dev/null || true)
  context=$("$kubectl" config current-context 2>/dev/null || true)
  log "using the configured cluster: context ${context:-?}, server ${server:-?}, kubeconfig $kubeconfig"
  target="configured"
else
  if [[ -n "${KUBECONFIG:-}" || -f "$HOME/.kube/config" ]]; then
    reason=" (${KUBECONFIG:-$HOME/.kube/config} does not reach a cluster: $(tail -n 1 <<<"$err"))"
  else
    reason=" (no KUBECONFIG, no ~/.kube/config)"
  fi
  log "using the local control plane$reason"
  "$root/hack/cluster.sh" up
  KUBECONFIG=$("$root/hack/cluster.sh" kubeconfig)
  export KUBECONFIG
  log "using the local control plane: kubeconfig $KUBECONFIG"
  target="local"
fi

if [[ "$target" != local ]]; then # hack/cluster.sh up has installed them already
  log "installing the CRDs (config/crd)"
  "$kubectl" apply --server-side -k "$root/config/crd" >/dev/null
  "$kubectl" kustomize "$root/config/crd" | "$kubectl" wait --for=condition=Established --timeout=60s -f - >/dev/null
fi

if [[ -z "$PLUGIN_LISTEN" ]]; then
  PLUGIN_LISTEN=127.0.0.1:50051
  if [[ "$target" == local ]]; then
    if host=$("$root/hack/cluster.sh" host-address 2>/dev/null); then
      PLUGIN_LISTEN=$host:50051
      log "task pods run on the real node; they reach the sample plugin at $PLUGIN_LISTEN (config/samples' endpoint)"
    else
      log "no real node: task pods are kwok fakes; apply the samples with the endpoint 127.0.0.1:50051 (sed 's/10.201.0.1:/127.0.0.1:/')"
    fi
  fi
fi

# The sample plugin, in the background, for as long as the manager runs.
plugin_pid=""
stop_plugin() {
  if [[ -n "$plugin_pid" ]]; then
    kill "$plugin_pid" 2>/dev/null || true
  fi
}
trap stop_plugin EXIT
if [[ -x "$root/bin/sample-plugin" ]]; then
  "$root/bin/sample-plugin" --listen "$PLUGIN_LISTEN" > >(sed -u 's/^/sample-plugin: /' >&2) 2>&1 &
  plugin_pid=$!
  sleep 0.3
  if kill -0 "$plugin_pid" 2>/dev/null; then
    log "sample plugin running on $PLUGIN_LISTEN (pid $plugin_pid)"
    # The manager replaces this shell below (same pid): a watcher stops the plugin
    # once that pid is gone, whichever way the manager ends.
    (
      trap '' INT
      while kill -0 $$ 2>/dev/null; do sleep 1; done
      kill "$plugin_pid" 2>/dev/null || true
    ) </dev/null >/dev/null 2>&1 &
  else
    log "warning: the sample plugin exited at once (is $PLUGIN_LISTEN in use?); continuing without it"
    plugin_pid=""
  fi
else
  log "warning: no bin/sample-plugin ('make build' builds it); continuing without the sample plugin"
fi

args=(--metrics-bind-address=127.0.0.1:8080 --health-probe-bind-address=127.0.0.1:8081 --api-bind-address=127.0.0.1:8443)
if [[ "$target" == local ]]; then
  # hack/cluster.sh up started the cluster's PostgreSQL and put its DSN in this Secret.
  args+=(--default-store-secret=cost-analysis-system/cost-analysis-store)
  log "the default store: the local PostgreSQL (hack/cluster.sh store-dsn prints its DSN)"
elif [[ "$RUN_ARGS" != *--default-store-secret* ]]; then
  log "no default store: DataSources need spec.store.secretRef, or give one with RUN_ARGS=--default-store-secret=<namespace>/<name>"
fi
read -r -a extra <<<"$RUN_ARGS"
args+=("${extra[@]}")
log "starting the manager ($target cluster${KUBECONFIG:+, KUBECONFIG=$KUBECONFIG}): bin/manager ${args[*]}"
trap - EXIT
exec "$root/bin/manager" "${args[@]}"
