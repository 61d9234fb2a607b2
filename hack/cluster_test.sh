#!/usr/bin/env bash
# Self-check of the local control plane (hack/cluster.sh) and the kwok task-pod stages
# (hack/kwok/stages.yaml). Run by hand, not in CI:
#
#   hack/cluster_test.sh
#
# Brings the cluster up (or reuses a running one, which it then leaves running), creates
# in a fresh namespace, on the kwok nodes (the real node's taint keeps them for pods
# that select and tolerate them), task pods (label cost-analysis.costops.dev/job-task, which the stages still match)
# for success, failure, a raw termination message and a longer run time, a plain pod, a plain
# batch/v1 Job (completions 3, no task label) and a batch/v1 Job of task pods; waits,
# prints the pods' phases and termination messages, checks them (exit 1 on a mismatch),
# checks the store and, with the real node, the Services (the `kubernetes` Service and
# kube-dns at their addresses, kube-proxy's rules out of this host's tables), and brings
# the cluster down again (when it started it). CLUSTER_NAME picks the cluster.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$("$root/hack/kube-build.sh")
kubectl=() # set once the cluster is up
ns="cluster-test-$$"
failures=0

log() { echo "cluster: $*" >&2; }
fail() {
  echo "cluster: FAIL: $*" >&2
  failures=$((failures + 1))
}
k() { "${kubectl[@]}" -n "$ns" "$@"; }

started_here=false
if "$root/hack/cluster.sh" kubeconfig >/dev/null 2>&1; then
  log "test: reusing the running local cluster (it stays up afterwards)"
else
  started_here=true
fi
cleanup() {
  local rc=$?
  if $started_here; then
    "$root/hack/cluster.sh" down || true
  elif ((${#kubectl[@]} > 0)); then
    "${kubectl[@]}" delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  fi
  exit "$rc"
}
trap cleanup EXIT

start=$SECONDS
"$root/hack/cluster.sh" up
log "test: hack/cluster.sh up took $((SECONDS - start))s"
start=$SECONDS
"$root/hack/cluster.sh" up >/dev/null
log "test: hack/cluster.sh up again (warm) took $((SECONDS - start))s"
kubectl=("$bin/kubectl" --kubeconfig "$("$root/hack/cluster.sh" kubeconfig)")

"${kubectl[@]}" create namespace "$ns" >/dev/null
for ((i = 0; i < 60; i++)); do
  k get serviceaccount default >/dev/null 2>&1 && break
  sleep 0.5
done

# task_pod <name> <annotation yaml lines...>
task_pod() {
  local name=$1
  shift
  {
    cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $name
  labels:
    cost-analysis.costops.dev/job-task: $name
  annotations:
    cluster-test: "true"
EOF
    local a
    for a in "$@"; do echo "    $a"; done
    cat <<EOF
spec:
  restartPolicy: Never
  nodeSelector: {type: kwok}
  tolerations: [{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}]
  containers:
  - name: collector
    image: cost-analysis/collector:test
EOF
  } | k apply -f - >/dev/null
}

task_pod task-default
task_pod task-success \
  'cost-analysis.costops.dev/fake-result: success' \
  'cost-analysis.costops.dev/fake-created-count: "7"' \
  'cost-analysis.costops.dev/fake-collected-bytes: "123"'
task_pod task-failure \
  'cost-analysis.costops.dev/fake-result: failure' \
  'cost-analysis.costops.dev/fake-error-code: ERROR_AUTHENTICATION' \
  "cost-analysis.costops.dev/fake-error-message: 'token \"abc\" expired'" \
  'cost-analysis.costops.dev/fake-exit-code: "3"'
task_pod task-failure-default \
  'cost-analysis.costops.dev/fake-result: failure'
task_pod task-raw \
  "cost-analysis.costops.dev/fake-message: 'not json {created_count: 1'"
task_pod task-empty-message \
  "cost-analysis.costops.dev/fake-message: ''"
task_pod task-slow \
  'cost-analysis.costops.dev/fake-duration: 5s'

k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: plain
spec:
  nodeSelector: {type: kwok}
  tolerations: [{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}]
  containers:
  - name: app
    image: busybox
---
apiVersion: batch/v1
kind: Job
metadata:
  name: baseline
spec:
  completions: 3
  parallelism: 3
  template:
    spec:
      restartPolicy: Never
      nodeSelector: {type: kwok}
      tolerations: [{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}]
      containers:
      - name: work
        image: busybox
---
apiVersion: batch/v1
kind: Job
metadata:
  name: task-job
spec:
  completions: 2
  parallelism: 2
  template:
    metadata:
      labels:
        cost-analysis.costops.dev/job-task: task-job
      annotations:
        cost-analysis.costops.dev/fake-created-count: "5"
    spec:
      restartPolicy: Never
      nodeSelector: {type: kwok}
      tolerations: [{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}]
      containers:
      - name: collector
        image: cost-analysis/collector:test
EOF
created=$SECONDS

# task-slow must still be Running a little after it started.
sleep 2
phase=$(k get pod task-slow -o 'jsonpath={.status.phase}')
[[ "$phase" == Running ]] || fail "task-slow: phase $phase 2s after creation, want Running"
podip=$(k get pod task-slow -o 'jsonpath={.status.podIP}')
[[ -n "$podip" ]] || fail "task-slow: no pod IP while Running"

# Wait until every pod but 'plain' has finished and both Jobs are complete.
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
  pending=$(k get pods -o 'jsonpath={range .items[*]}{.metadata.name}={.status.phase}{"\n"}{end}' |
    grep -v '^plain=' | grep -cv -e '=Succeeded$' -e '=Failed$' || true)
  jobs_done=$(k get jobs -o 'jsonpath={range .items[*]}{.status.succeeded}{" "}{end}')
  if [[ "$pending" == 0 && "$jobs_done" == "3 2 " ]]; then break; fi
  sleep 1
done
log "test: pods settled after $((SECONDS - created))s"

echo
k get pods -o 'custom-columns=NAME:.metadata.name,PHASE:.status.phase,EXIT:.status.containerStatuses[0].state.terminated.exitCode,REASON:.status.containerStatuses[0].state.terminated.reason,NODE:.spec.nodeName,IP:.status.podIP,MESSAGE:.status.containerStatuses[0].state.terminated.message'
echo
k get jobs
echo

# expect <pod> <phase> <exit code> <reason> <message>
expect() {
  local pod=$1 phase=$2 code=$3 reason=$4 message=$5 got
  got=$(k get pod "$pod" -o 'jsonpath={.status.phase}')
  [[ "$got" == "$phase" ]] || fail "$pod: phase '$got', want '$phase'"
  got=$(k get pod "$pod" -o 'jsonpath={.status.containerStatuses[0].state.terminated.exitCode}')
  [[ "$got" == "$code" ]] || fail "$pod: exit code '$got', want '$code'"
  got=$(k get pod "$pod" -o 'jsonpath={.status.containerStatuses[0].state.terminated.reason}')
  [[ "$got" == "$reason" ]] || fail "$pod: reason '$got', want '$reason'"
  got=$(k get pod "$pod" -o 'jsonpath={.status.containerStatuses[0].state.terminated.message}')
  [[ "$got" == "$message" ]] || fail "$pod: message '$got', want '$message'"
  got=$(k get pod "$pod" -o 'jsonpath={.status.containerStatuses[0].state.running}')
  [[ -z "$got" ]] || fail "$pod: state.running still set ($got)"
  local started finished start_time
  started=$(k get pod "$pod" -o 'jsonpath={.status.containerStatuses[0].state.terminated.startedAt}')
  finished=$(k get pod "$pod" -o 'jsonpath={.status.containerStatuses[0].state.terminated.finishedAt}')
  start_time=$(k get pod "$pod" -o 'jsonpath={.status.startTime}')
  [[ -n "$started" && -n "$finished" && -n "$start_time" ]] ||
    fail "$pod: startedAt '$started', finishedAt '$finished', status.startTime '$start_time': want all set"
}

expect task-default Succeeded 0 Completed '{"collected_bytes":4096,"created_count":24}'
expect task-success Succeeded 0 Completed '{"collected_bytes":123,"created_count":7}'
expect task-failure Failed 3 Error '{"error_code":"ERROR_AUTHENTICATION","error_message":"token \"abc\" expired"}'
expect task-failure-default Failed 1 Error '{"error_code":"FAKE_ERROR","error_message":"simulated task failure"}'
expect task-raw Succeeded 0 Completed 'not json {created_count: 1'
expect task-empty-message Succeeded 0 Completed ''
expect task-slow Succeeded 0 Completed '{"collected_bytes":4096,"created_count":24}'

# task-slow ran for its fake-duration (5s; the others for the default 1s).
s=$(k get pod task-slow -o 'jsonpath={.status.containerStatuses[0].state.terminated.startedAt}')
f=$(k get pod task-slow -o 'jsonpath={.status.containerStatuses[0].state.terminated.finishedAt}')
ran=$(($(date -d "$f" +%s) - $(date -d "$s" +%s)))
((ran >= 4 && ran <= 8)) || fail "task-slow: ran ${ran}s, want about 5s"
s=$(k get pod task-default -o 'jsonpath={.status.containerStatuses[0].state.terminated.startedAt}')
f=$(k get pod task-default -o 'jsonpath={.status.containerStatuses[0].state.terminated.finishedAt}')
ran=$(($(date -d "$f" +%s) - $(date -d "$s" +%s)))
((ran <= 3)) || fail "task-default: ran ${ran}s, want about 1s"

# A non-task pod follows kwok's default pod-ready stage and keeps running.
[[ "$(k get pod plain -o 'jsonpath={.status.phase}')" == Running ]] || fail "plain: not Running"

# The plain Job: kwok's default pod-complete (no termination message).
[[ "$(k get job baseline -o 'jsonpath={.status.succeeded}')" == 3 ]] || fail "baseline job: succeeded != 3"
while read -r name phase msg; do
  [[ "$phase" == Succeeded ]] || fail "baseline pod $name: phase $phase"
  [[ -z "$msg" ]] || fail "baseline pod $name: unexpected message $msg"
done < <(k get pods -l job-name=baseline -o 'jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.status.containerStatuses[0].state.terminated.message}{"\n"}{end}')

# Job-owned task pods: our stages win over kwok's pod-complete.
[[ "$(k get job task-job -o 'jsonpath={.status.succeeded}')" == 2 ]] || fail "task-job: succeeded != 2"
while read -r name msg; do
  [[ "$msg" == '{"collected_bytes":4096,"created_count":5}' ]] || fail "task-job pod $name: message '$msg'"
done < <(k get pods -l job-name=task-job -o 'jsonpath={range .items[*]}{.metadata.name} {.status.containerStatuses[0].state.terminated.message}{"\n"}{end}')

# Deletion goes through kwok's pod-delete stage.
k delete pod task-default --timeout=30s >/dev/null || fail "task-default: delete did not finish"

# Everything listens on the loopback only.
if command -v ss >/dev/null; then
  pids=$(cat "$root"/.cluster/kwok/clusters/*/pids/*.pid 2>/dev/null | tr '\n' '|')
  open=$(ss -ltnpH 2>/dev/null | grep -E "pid=(${pids%|}),") || true
  if [[ -n "$open" ]] && grep -vqE '127\.0\.0\.1:|\[::1\]:' <<<"$open"; then
    fail "a component listens beyond the loopback: $(grep -vE '127\.0\.0\.1:|\[::1\]:' <<<"$open")"
  fi
fi

# The store: PostgreSQL answers on the DSN, the Secret holds that DSN, and it listens
# on the loopback and (with the real node) on the host address, nowhere else.
dsn=$("$root/hack/cluster.sh" store-dsn) || fail "store: no DSN"
if [[ -n "${dsn:-}" ]]; then
  [[ "$(psql "$dsn" -XAtc 'SELECT current_user' 2>&1)" == cost_analysis ]] || fail "store: cannot log in with $dsn"
  secret=$("${kubectl[@]}" -n cost-analysis-system get secret cost-analysis-store -o 'jsonpath={.data.dsn}' | base64 -d)
  [[ "$secret" == "$dsn" ]] || fail "store: the Secret cost-analysis-system/cost-analysis-store does not hold the DSN"
  port=${dsn##*:}
  port=${port%%/*}
  host=$("$root/hack/cluster.sh" host-address 2>/dev/null || true)
  while read -r addr; do
    [[ "$addr" == "127.0.0.1:$port" || "$addr" == "$host:$port" ]] || fail "store: listens on $addr"
  done < <(ss -Hltn "sport = :$port" | awk '{print $4}')
fi

# Services (with the real node; hack/node.sh): the `kubernetes` Service answers at its
# ClusterIP, from this host too, with a certificate that verifies for its name; its
# endpoint is the host address; kube-dns is the kubelet's clusterDNS address; and
# kube-proxy's rules are in its own network namespace, none in this host's.
if host=$("$root/hack/cluster.sh" host-address 2>/dev/null); then
  addr() { "$root/hack/node.sh" addresses | awk -v k="$1" '$1 == k {print $2}'; }
  kip=$(addr kubernetes_service_ip)
  dip=$(addr dns_service_ip)
  got=$("${kubectl[@]}" -n default get service kubernetes -o 'jsonpath={.spec.clusterIP}')
  [[ "$got" == "$kip" ]] || fail "services: the kubernetes Service is $got, want $kip"
  got=$("${kubectl[@]}" -n default get endpointslices -l kubernetes.io/service-name=kubernetes -o 'jsonpath={.items[*].endpoints[*].addresses[*]}')
  [[ "$got" == "$host" ]] || fail "services: the kubernetes Service's endpoints are '$got', want the host address $host"
  got=$("${kubectl[@]}" -n kube-system get service kube-dns -o 'jsonpath={.spec.clusterIP}')
  [[ "$got" == "$dip" ]] || fail "services: kube-dns is '$got', want $dip"
  ca="$root/.cluster/kwok/clusters/${CLUSTER_NAME:-cost-analysis}/pki/ca.crt"
  got=$(curl -sS --max-time 5 --cacert "$ca" --resolve "kubernetes.default.svc:443:$kip" https://kubernetes.default.svc/readyz 2>&1) ||
    fail "services: https://kubernetes.default.svc/readyz at $kip: $got"
  if nft list table ip kube-proxy >/dev/null 2>&1; then
    fail "services: this host has kube-proxy's table (it belongs in the cluster's network namespace)"
  fi
fi

if ((failures > 0)); then
  log "test: $failures check(s) failed"
  exit 1
fi
log "test: all checks passed"
