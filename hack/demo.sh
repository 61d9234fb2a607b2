#!/usr/bin/env bash
# `make demo`: the whole product on this machine in one command.
#
#   hack/demo.sh         # run the demo (again: it reuses the cluster, restarts the
#                        # manager and plugin, and recreates the sample Job)
#   hack/demo.sh stop    # stop the demo's manager and sample plugin
#
# Brings up the local control plane (hack/cluster.sh, the default cluster, with its real
# node when this machine can run one), builds and starts the sample plugin on the host
# address the node's pods reach (10.201.0.1:50051, what config/samples' DataSource
# points at) and the manager in the background (logs in .cluster/plugin.log and
# .cluster/manager.log), applies config/samples/ (Secret, DataSource, Job) in the
# default namespace, shows the Job and its JobTasks until the run ends, prints the
# final status and leaves everything running. Exits 1 when the run does not succeed.
# The task pods are real (the collector image on the real node, calling the plugin)
# unless the machine cannot run the real node: then kwok plays them, the plugin
# listens on 127.0.0.1:50051, and the demo says that the counts are made up.
#
# Environment: DEMO_METRICS_ADDR (default 127.0.0.1:8080), DEMO_PROBE_ADDR (default
# 127.0.0.1:8081), DEMO_API_ADDR (the HTTPS API, default 127.0.0.1:8443), DEMO_TIMEOUT
# (seconds to wait for the run, default 180).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state="$root/.cluster"
plugin_port=50051
metrics_addr=${DEMO_METRICS_ADDR:-127.0.0.1:8080}
probe_addr=${DEMO_PROBE_ADDR:-127.0.0.1:8081}
api_addr=${DEMO_API_ADDR:-127.0.0.1:8443}
timeout=${DEMO_TIMEOUT:-180}
job=sample-billing-2026-09

log() { echo "demo: $*" >&2; }
die() { log "$*"; exit 1; }

# running <name>: the pid of the demo's <name> (manager, plugin) when it still runs.
running() {
  local pidfile="$state/demo-$1.pid" pid
  [[ -f "$pidfile" ]] || return 1
  pid=$(<"$pidfile")
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  # The pid is ours only while it still runs our binary.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "^$root/bin/" || return 1
  echo "$pid"
}

stop() { # stop <name>
  local pid i
  pid=$(running "$1") || { rm -f "$state/demo-$1.pid"; return 0; }
  log "stopping the $1 (pid $pid)"
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$state/demo-$1.pid"
}

if [[ "${1:-}" == stop ]]; then
  stop manager
  stop plugin
  exit 0
fi
[[ $# -eq 0 ]] || die "usage: $0 [stop]"

listening() { # listening host:port
  (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null
}

# start <name> <log> <command...>: in the background, in a session of its own, so it
# keeps running after this script (and its terminal) ends.
start() {
  local name=$1 logfile=$2
  shift 2
  echo "==== $(date -u +%FT%TZ) demo: $*" >>"$logfile"
  setsid nohup "$@" >>"$logfile" 2>&1 </dev/null &
  echo $! >"$state/demo-$name.pid"
}

# wait_for <what> <seconds> <command...>: until the command succeeds.
wait_for() {
  local what=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

bin=$("$root/hack/kube-build.sh")
kubectl="$bin/kubectl"

log "building bin/manager and bin/sample-plugin"
(cd "$root" && go build -o bin/manager . && go build -o bin/sample-plugin ./cmd/sample-plugin)

"$root/hack/cluster.sh" up
kubeconfig=$("$root/hack/cluster.sh" kubeconfig)
export KUBECONFIG=$kubeconfig
k() { "$kubectl" "$@"; }
sample_endpoint=10.201.0.1:$plugin_port
if host=$("$root/hack/cluster.sh" host-address 2>/dev/null); then
  real=1
  plugin_addr=$host:$plugin_port
else
  real=""
  plugin_addr=127.0.0.1:$plugin_port
  log "no real node on this machine: the sample's task pods run on kwok's fake nodes, and their record counts are made up by hack/kwok/stages.yaml, not collected"
fi

# A fresh manager and plugin (the binaries may have changed since the last demo).
stop manager
stop plugin
for addr in "$plugin_addr" "$metrics_addr" "$probe_addr" "$api_addr"; do
  if listening "$addr"; then
    die "$addr is in use (a 'make run' in another terminal?); stop it, or set DEMO_METRICS_ADDR / DEMO_PROBE_ADDR / DEMO_API_ADDR"
  fi
done
start plugin "$state/plugin.log" "$root/bin/sample-plugin" --listen "$plugin_addr"
wait_for "the plugin" 15 listening "$plugin_addr" || die "the sample plugin does not listen on $plugin_addr (log: $state/plugin.log)"
start manager "$state/manager.log" env KUBECONFIG="$kubeconfig" "$root/bin/manager" \
  --metrics-bind-address="$metrics_addr" --health-probe-bind-address="$probe_addr" --api-bind-address="$api_addr" \
  --default-store-secret=cost-analysis-system/cost-analysis-store
ready() { curl -fsS -o /dev/null "http://$probe_addr/readyz" 2>/dev/null || { ! command -v curl >/dev/null && listening "$probe_addr"; }; }
wait_for "the manager" 60 ready || die "the manager is not ready (log: $state/manager.log)"
log "sample plugin on $plugin_addr (pid $(running plugin)), manager ready (pid $(running manager))"

# Run the sample Job again from scratch: delete the last one and wait until its
# JobTasks and batch Jobs are gone too (foreground), so the new one starts clean.
if k get cajob "$job" >/dev/null 2>&1; then
  log "deleting the sample Job of an earlier demo"
  k delete cajob "$job" --cascade=foreground --wait=true --timeout=120s >/dev/null
fi
if [[ "$plugin_addr" == "$sample_endpoint" ]]; then
  log "kubectl apply -k config/samples/"
  k apply -k "$root/config/samples/"
else
  log "kubectl apply -k config/samples/ (with the plugin endpoint $plugin_addr instead of $sample_endpoint)"
  k kustomize "$root/config/samples/" | sed "s|endpoint: $sample_endpoint|endpoint: $plugin_addr|" | k apply -f -
fi

echo
start_time=$SECONDS
status=""
while ((SECONDS - start_time < timeout)); do
  status=$(k get cajob "$job" -o 'jsonpath={.status.status}' 2>/dev/null || true)
  echo "---- $((SECONDS - start_time))s: kubectl get cajob $job; kubectl get catask -l cost-analysis.costops.dev/job=$job"
  k get cajob "$job"
  k get catask -l "cost-analysis.costops.dev/job=$job" 2>/dev/null || true
  case "$status" in
    SUCCESS | FAILURE | TIMEOUT | CANCELED) break ;;
  esac
  sleep 2
done
echo

if [[ "$status" != SUCCESS ]]; then
  if [[ -z "$status" || "$status" == IN_PROGRESS ]]; then
    log "the Job did not finish within ${timeout}s (status ${status:-not picked up})"
  else
    log "the Job ended $status: $(k get cajob "$job" -o 'jsonpath={.status.errorCode}: {.status.errorMessage}')"
  fi
  k get events --field-selector "involvedObject.name=$job" 2>/dev/null | tail -n 10 >&2 || true
  log "last lines of $state/manager.log:"
  tail -n 20 "$state/manager.log" >&2
  exit 1
fi

echo "Final status (kubectl get cajob $job -o yaml, status part):"
k get cajob "$job" -o yaml | sed -n '/^status:/,$p'
echo
k get cads sample-billing
echo
# What landed in PostgreSQL, read as any reader reads it: the view cost (committed runs only).
dsn=$("$root/hack/cluster.sh" store-dsn)
uid=$(k get cajob "$job" -o 'jsonpath={.metadata.uid}')
echo "In the store (psql \"\$(hack/cluster.sh store-dsn)\"): the records of $job per billed month, from the view cost"
psql "$dsn" -X -P pager=off -c "SELECT billed_month, count(*) AS records, round(sum(cost)::numeric, 4) AS cost
  FROM cost WHERE job_uid = '$uid' GROUP BY billed_month ORDER BY billed_month" ||
  log "could not read the store (psql $(sed -E 's#//([^:]+):[^@]*@#//\1:***@#' <<<"$dsn"))"
if [[ -z "$real" ]]; then
  echo "(The task pods were kwok fakes: they collected nothing and wrote nothing, so the store holds no record of this run;"
  echo " the JobTasks' counts are made up by hack/kwok/stages.yaml and the Job's createdCount, what was committed, is 0.)"
fi
echo
cat <<EOF
The demo is up and stays up: local control plane, sample plugin and manager.
  export KUBECONFIG=$kubeconfig
  alias kubectl=$kubectl
  kubectl get costanalysis                       # DataSources, Jobs and JobTasks
  kubectl get cajob $job -o yaml
Manager: pid $(running manager), log .cluster/manager.log, metrics https://$metrics_addr/metrics (a token with get on /metrics, see the README)
         SpaceONE cost-analysis and job metering API on https://$api_addr (see the README's curl session)
Plugin:  pid $(running plugin), log .cluster/plugin.log, $plugin_addr
Pods:    $(if [[ -n "$real" ]]; then echo "real, on node cost-analysis-real-node: the counts above were collected by the collector image from the plugin"; else echo "kwok fakes: the counts above are made up by hack/kwok/stages.yaml"; fi)
Stop the manager and plugin:  hack/demo.sh stop
Remove the cluster:           hack/demo.sh stop && make cluster-down
EOF
