#!/usr/bin/env bash
# Captures the test objects of config/argocd/resource_customizations from the operator
# itself: a local control plane of its own (hack/cluster.sh, CLUSTER_NAME argocd by
# default), the sample plugin and the manager as processes, and DataSources and Jobs
# driven into each state the health checks tell apart. Each object is written as
# `kubectl get -o yaml` prints it (managedFields are left out, as kubectl does by
# default) into the kind's testdata/ folder, overwriting the file of the same name;
# check the health_test.yaml and action_test.yaml expectations afterwards with
# `make test-argocd`. Task pods run on the cluster's kwok nodes, whose results come from
# the pods' annotations (hack/kwok/README.md), so that a task fails or runs for an
# hour on purpose.
#
#   hack/argocd/capture.sh        # bring the cluster up, capture, remove the cluster
#
# Environment: CLUSTER_NAME (default argocd), CAPTURE_KEEP=1 leaves the cluster, the
# manager and the plugin running (their pids are printed) for a look.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export CLUSTER_NAME=${CLUSTER_NAME:-argocd}
[[ "$CLUSTER_NAME" != cost-analysis ]] || { echo "capture: use a cluster of its own, not the default one" >&2; exit 1; }
out="$root/config/argocd/resource_customizations/cost-analysis.costops.dev"
ns=billing-team
work=$(mktemp -d "/tmp/argocd-capture-XXXXXX")

log() { echo "capture: $*" >&2; }
die() { log "$*"; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

manager_pid="" plugin_pid=""
stop_pid() { # stop_pid <pid>: a process this script started
  local pid=$1 i
  [[ -n "$pid" ]] || return 0
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}
cleanup() {
  if [[ "${CAPTURE_KEEP:-}" == 1 ]]; then
    log "kept: manager pid $manager_pid, plugin pid $plugin_pid, KUBECONFIG=$kubeconfig; logs in $work"
    return
  fi
  stop_pid "$manager_pid"
  stop_pid "$plugin_pid"
  "$root/hack/cluster.sh" down >>"$work/cluster.log" 2>&1 || log "removing cluster $CLUSTER_NAME failed (log $work/cluster.log)"
  log "logs in $work"
}
trap cleanup EXIT

bin=$("$root/hack/kube-build.sh" --print)
[[ -x "$bin/kubectl" ]] || die "the local control plane is not built: make kube-bins"
log "building bin/manager and bin/sample-plugin"
(cd "$root" && go build -o bin/manager . && go build -o bin/sample-plugin ./cmd/sample-plugin)
log "bringing up cluster $CLUSTER_NAME (log $work/cluster.log)"
"$root/hack/cluster.sh" up >>"$work/cluster.log" 2>&1 || { tail -n 20 "$work/cluster.log" >&2; die "hack/cluster.sh up failed"; }
kubeconfig=$("$root/hack/cluster.sh" kubeconfig)
k() { "$bin/kubectl" --kubeconfig "$kubeconfig" --namespace "$ns" "$@"; }
host=$("$root/hack/cluster.sh" host-address 2>/dev/null || echo 127.0.0.1)
dsn=$("$root/hack/cluster.sh" store-dsn)

plugin_addr=$host:$(free_port)
"$root/bin/sample-plugin" --listen "$plugin_addr" >"$work/plugin.log" 2>&1 &
plugin_pid=$!
probe_addr=127.0.0.1:$(free_port)
start_manager() {
  KUBECONFIG=$kubeconfig "$root/bin/manager" --metrics-bind-address=0 --api-bind-address=0 --health-probe-bind-address="$probe_addr" \
    --default-store-secret=cost-analysis-system/cost-analysis-store --plan-retry-window=2m --commit-retry-window=2m \
    >>"$work/manager.log" 2>&1 &
  manager_pid=$!
  for ((i = 0; i < 600; i++)); do
    curl -fsS -o /dev/null "http://$probe_addr/readyz" 2>/dev/null && return 0
    sleep 0.1
  done
  die "the manager is not ready (log $work/manager.log)"
}
stop_manager() { stop_pid "$manager_pid"; manager_pid=""; }

# wait_for <object> <jsonpath> <value> [timeout]
wait_for() { k wait "$1" --for="jsonpath=$2=$3" --timeout="${4:-120s}" >/dev/null; }
# capture <kind folder> <file> <object>
capture() {
  local dir="$out/$1/testdata"
  [[ "$1" == Job/actions ]] && dir="$out/Job/actions/testdata"
  k get "$3" -o yaml >"$dir/$2"
  log "$3 -> ${dir#"$root"/}/$2 ($(k get "$3" -o 'jsonpath={.status.status}{.status.conditions[?(@.type=="PluginReady")].status}'))"
}

# datasource <name> <endpoint> <pod annotations as YAML flow map> [extra spec YAML]: a
# Secret <name>-credentials and a DataSource <name> whose task pods run on kwok nodes.
datasource() {
  k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: $1-credentials
stringData:
  api_key: capture
---
apiVersion: cost-analysis.costops.dev/v1
kind: DataSource
metadata:
  name: $1
spec:
  plugin:
    endpoint: $2
    secretRef:
      name: $1-credentials
    options:
      accounts: ["111111111111", "222222222222"]
  collector:
    image: localhost/costops/cost-analysis-collector:dev
    podAnnotations: $3
    nodeSelector:
      type: kwok
    tolerations:
    - key: kwok.x-k8s.io/node
      operator: Exists
      effect: NoSchedule
  jobDefaults:
    parallelism: 2
${4:-}
EOF
}
job() { # job <name> <data source> [extra spec YAML]
  k apply -f - >/dev/null <<EOF
apiVersion: cost-analysis.costops.dev/v1
kind: Job
metadata:
  name: $1
spec:
  dataSourceRef:
    name: $2
  start: "2026-09"
${3:-}
EOF
}

"$bin/kubectl" --kubeconfig "$kubeconfig" create namespace "$ns" >/dev/null
for ((i = 0; i < 300; i++)); do k get serviceaccount default >/dev/null 2>&1 && break; sleep 0.1; done

# Not yet picked up: the manager is not running yet.
datasource billing "$plugin_addr" '{cost-analysis.costops.dev/fake-duration: 4s}'
job billing-2026-09 billing
capture Job job_not_picked_up.yaml cajob/billing-2026-09
capture DataSource datasource_not_checked.yaml cads/billing
start_manager

# A run in progress (2 of 8 tasks running under parallelism 2), to SUCCESS.
wait_for cajob/billing-2026-09 '{.status.tasks.inProgress}' 2
capture Job job_in_progress.yaml cajob/billing-2026-09
capture Job/actions job_in_progress.yaml cajob/billing-2026-09
capture JobTask jobtask_in_progress.yaml catask/billing-2026-09-0
capture JobTask jobtask_pending.yaml catask/billing-2026-09-7
wait_for cajob/billing-2026-09 '{.status.status}' SUCCESS 300s
capture Job job_success.yaml cajob/billing-2026-09
capture Job/actions job_success.yaml cajob/billing-2026-09
capture JobTask jobtask_success.yaml catask/billing-2026-09-0
wait_for cads/billing '{.status.lastJob.status}' SUCCESS
capture DataSource datasource_ready.yaml cads/billing

# A task fails (index 1); under the Fail policy the run ends FAILURE and the tasks
# still open are canceled.
datasource billing-fails "$plugin_addr" '{cost-analysis.costops.dev/fake-duration: 2s, cost-analysis.costops.dev/fake-fail-indexes: "1", cost-analysis.costops.dev/fake-error-code: ERROR_BILLING_API, cost-analysis.costops.dev/fake-error-message: "billing API answered 403 Forbidden for account 222222222222"}'
job billing-fails-2026-09 billing-fails
wait_for cajob/billing-fails-2026-09 '{.status.status}' FAILURE 300s
capture Job job_failure.yaml cajob/billing-fails-2026-09
capture JobTask jobtask_failure.yaml catask/billing-fails-2026-09-1
capture JobTask jobtask_canceled_by_failure.yaml catask/billing-fails-2026-09-7

# A slow run canceled: spec.cancel set while the manager is down shows the generation
# it has not observed yet, then the run ends CANCELED.
datasource billing-slow "$plugin_addr" '{cost-analysis.costops.dev/fake-duration: 1h}'
job billing-slow-2026-09 billing-slow
wait_for cajob/billing-slow-2026-09 '{.status.tasks.inProgress}' 2
stop_manager
k patch cajob billing-slow-2026-09 --type=merge -p '{"spec":{"cancel":true}}' >/dev/null
capture Job job_cancel_not_observed.yaml cajob/billing-slow-2026-09
capture Job/actions job_cancel_requested.yaml cajob/billing-slow-2026-09
k patch cads billing-slow --type=merge -p '{"spec":{"jobDefaults":{"parallelism":3}}}' >/dev/null
capture DataSource datasource_generation_not_observed.yaml cads/billing-slow
start_manager
wait_for cajob/billing-slow-2026-09 '{.status.status}' CANCELED
capture Job job_canceled.yaml cajob/billing-slow-2026-09
capture Job/actions job_canceled.yaml cajob/billing-slow-2026-09
capture JobTask jobtask_canceled.yaml catask/billing-slow-2026-09-0

# A run that outlives its timeout.
job billing-slow-timeout billing-slow '  timeout: 10s'
wait_for cajob/billing-slow-timeout '{.status.status}' TIMEOUT
capture Job job_timeout.yaml cajob/billing-slow-timeout
capture Job/actions job_timeout.yaml cajob/billing-slow-timeout
capture JobTask jobtask_timeout.yaml catask/billing-slow-timeout-0

# A plugin that cannot be reached: the DataSource is not ready, and a run of it waits
# for the plugin while planning.
datasource billing-unreachable 127.0.0.1:1 '{}'
wait_for cads/billing-unreachable '{.status.conditions[?(@.type=="PluginReady")].status}' False
capture DataSource datasource_plugin_unreachable.yaml cads/billing-unreachable
job billing-unreachable-2026-09 billing-unreachable
wait_for cajob/billing-unreachable-2026-09 '{.status.conditions[?(@.type=="Planned")].reason}' WaitingForPlugin
capture Job job_waiting_for_plugin.yaml cajob/billing-unreachable-2026-09

# A store of the DataSource's own that stops answering between the plan and the
# commit: the run holds its outcome (status.ending) while the commit is retried, and
# the DataSource's StoreReady turns False.
k create secret generic billing-own-store-db --from-literal=dsn="$dsn" >/dev/null
datasource billing-own-store "$plugin_addr" '{cost-analysis.costops.dev/fake-duration: 6s}' '  store:
    secretRef:
      name: billing-own-store-db'
wait_for cads/billing-own-store '{.status.conditions[?(@.type=="StoreReady")].status}' True
job billing-own-store-2026-09 billing-own-store
wait_for cajob/billing-own-store-2026-09 '{.status.tasks.inProgress}' 2
k create secret generic billing-own-store-db --from-literal=dsn="postgres://cost_analysis:wrong@127.0.0.1:1/cost_analysis?sslmode=disable&connect_timeout=2" \
  --dry-run=client -o yaml | k apply -f - >/dev/null
wait_for cajob/billing-own-store-2026-09 '{.status.ending.status}' SUCCESS 300s
sleep 3 # a failed commit attempt or two
capture Job job_committing.yaml cajob/billing-own-store-2026-09
capture Job/actions job_committing.yaml cajob/billing-own-store-2026-09
wait_for cads/billing-own-store '{.status.conditions[?(@.type=="StoreReady")].status}' False
capture DataSource datasource_store_unavailable.yaml cads/billing-own-store

# The scheduled sample of config/samples (and its Secret), with this cluster's plugin.
k apply -f "$root/config/samples/v1_secret.yaml" >/dev/null
sed "s|endpoint: 10.201.0.1:50051|endpoint: $plugin_addr|" "$root/config/samples/v1_datasource_scheduled.yaml" | k apply -f - >/dev/null
wait_for cads/scheduled-billing '{.status.conditions[?(@.type=="PluginReady")].status}' True
for ((i = 0; i < 100; i++)); do [[ -n "$(k get cads scheduled-billing -o 'jsonpath={.status.nextScheduleTime}')" ]] && break; sleep 0.2; done
capture DataSource datasource_scheduled.yaml cads/scheduled-billing

log "done"
