#!/usr/bin/env bash
# The real node of a local control plane (hack/cluster.sh): a kubelet built from
# source (hack/kube-build.sh) on Debian's containerd, runc and CNI plugins, so that task
# pods really run the project's images (hack/image) on this machine, with kube-proxy and
# CoreDNS beside it so that Services route and resolve. kwok's fake nodes stay beside it
# for the scale tests.
#
#   hack/node.sh check          # can a real node run here? (exit 1 with the reason)
#   hack/node.sh up             # start it for the cluster $CLUSTER_NAME (running control plane)
#   hack/node.sh down           # stop it and remove everything it made
#   hack/node.sh host-address   # the host's address as pods see it (exit 1 when no node)
#   hack/node.sh addresses      # the cluster's addresses (host, Service CIDR, DNS), up or not
#   hack/node.sh import         # (re)build bin/image/*.tar and import them into its containerd
#
# Everything lives in .cluster/node-$CLUSTER_NAME/: containerd's root, state and socket,
# the runc root, the kubelet's root dir and pod logs, the CNI config and its IPAM data,
# the network namespaces, the configs and logs of kube-proxy, CoreDNS and the API
# server's relay. Outside it: the cluster's own bridge (cao-<hash>), the network
# namespace of its kube-proxy (/run/netns/cao-<hash>, joined to the bridge by the veth
# caop-<hash>), the route to its Service CIDR, the cgroups below
# /cost-analysis-<cluster>-<hash> in each hierarchy, CNI's result cache
# (/var/lib/cni/results/cao-<cluster>-<hash>-*) and the runc shims' sockets in
# /run/containerd/s; `down` removes all of them and checks that nothing is left.
#
# Networking: the bridge CNI plugin on a /24 of the cluster's own (10.201.0.0/24 for the
# default cluster, so the samples can name 10.201.0.1; another subnet of 10.201.0.0/16
# chosen from the cluster name and checkout for the others, or CLUSTER_NODE_SUBNET=a.b.c).
# The host is a.b.c.1 on that bridge: services on the host that pods call (the sample
# plugin, the database) listen there. The kubelet is the node's InternalIP at that
# address, so two clusters never share a port.
#
# Services: the cluster's Service CIDR is 10.96.c.0/24 (c as in the node's subnet, or
# CLUSTER_SERVICE_SUBNET=x.y.z), which hack/cluster.sh gives the API server; the
# `kubernetes` Service is x.y.z.1 and the cluster DNS (kube-system/kube-dns) x.y.z.10.
# kube-proxy (nftables mode) runs in a network namespace of the cluster's own, joined to
# the bridge at a.b.c.2: its rules are in that namespace, not the host's, so two local
# clusters on one machine each have their own kube-proxy and never touch each other's
# rules (kube-proxy's table and chain names are fixed, and each kube-proxy deletes
# what it does not know of). Pods reach the Service CIDR through a.b.c.2 (a route
# that CNI gives every pod), this host through its route to the Service CIDR; kube-proxy
# masquerades what it forwards (masqueradeAll), so that the answers come back through
# it: a backend sees a.b.c.2 as its client. The API server listens on 127.0.0.1 only:
# the `kubernetes` Service's endpoint (its advertise address) is a.b.c.1 at the API
# server's port, where socat relays the TCP connection to it (TLS end to end: the
# serving certificate names a.b.c.1 and x.y.z.1). CoreDNS runs on this host on
# a.b.c.1:53 (the selector-less kube-dns Service's endpoint), reads the cluster through
# a certificate of the user system:coredns (RBAC: list/watch Services, EndpointSlices,
# Namespaces), answers cluster.local and forwards the rest to this host's
# resolver; the kubelet's clusterDNS names x.y.z.10. NodePorts are not served.
#
# Needs root (containerd, mounts, network namespaces) and cgroups; `check` says what is
# missing. Installs containerd, runc and containernetworking-plugins with apt-get when
# they are missing, as the Makefile does with protoc.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER_NAME=${CLUSTER_NAME:-cost-analysis}
state="$root/.cluster"
node="$state/node-$CLUSTER_NAME"
cluster_dir="$state/kwok/clusters/$CLUSTER_NAME"
pki="$cluster_dir/pki"
if [[ "$CLUSTER_NAME" == cost-analysis ]]; then
  kubeconfig="$state/kubeconfig"
else
  kubeconfig="$state/kubeconfig-$CLUSTER_NAME"
fi
node_name="$CLUSTER_NAME-real-node"
# The label of the real node (kwok's nodes carry type=kwok instead).
node_label="cost-analysis.costops.dev/node=real"
cni_bin=/usr/lib/cni
# What this node's pods run: the images of hack/image, imported at `up`.
image_dir="$root/bin/image"
pause_image=localhost/costops/pause:3.10

# Names unique to this cluster of this checkout: two checkouts (or two clusters of
# one) never share a bridge, a cgroup root or CNI cache entries.
id=$(printf '%s' "$root/$CLUSTER_NAME" | sha256sum | cut -c1-8)
bridge="cao-$id"
bridge_mac="02:${id:0:2}:${id:2:2}:${id:4:2}:${id:6:2}:01" # locally administered
cni_network="cao-$CLUSTER_NAME-$id"
cgroup_root="/cost-analysis-$CLUSTER_NAME-$id"
if [[ -n "${CLUSTER_NODE_SUBNET:-}" ]]; then
  subnet=$CLUSTER_NODE_SUBNET
elif [[ "$CLUSTER_NAME" == cost-analysis ]]; then
  subnet=10.201.0
else
  subnet="10.201.$((16#${id:0:4} % 254 + 1))"
fi
host_addr="$subnet.1"
sock="$node/containerd.sock"
# kube-proxy's network namespace, its veth on the bridge and its address there.
proxy_netns="cao-$id"
proxy_veth="caop-$id"
proxy_addr="$subnet.2"
service_subnet=${CLUSTER_SERVICE_SUBNET:-10.96.${subnet##*.}}
service_cidr="$service_subnet.0/24"
kubernetes_service_ip="$service_subnet.1"
dns_service_ip="$service_subnet.10"
cluster_domain=cluster.local

log() { echo "node: $*" >&2; }
die() { log "$*"; exit 1; }

# reason_unavailable: why a real node cannot run here (empty when it can).
reason_unavailable() {
  if [[ "$(id -u)" != 0 ]]; then
    echo "not root (containerd, mounts and network namespaces need root)"
  elif [[ ! -d /sys/fs/cgroup ]] || [[ -z "$(ls -A /sys/fs/cgroup 2>/dev/null)" ]]; then
    echo "no cgroup filesystem at /sys/fs/cgroup"
  elif [[ ! -f /sys/fs/cgroup/cgroup.controllers && ! -d /sys/fs/cgroup/memory ]]; then
    echo "no memory cgroup controller (neither cgroup v2 nor a v1 memory hierarchy)"
  elif ! command -v ip >/dev/null; then
    echo "no ip command (iproute2)"
  elif ((${#sock} > 100)); then
    echo "the containerd socket path $sock is too long for a unix socket (move the checkout to a shorter path)"
  fi
}

# install_packages: Debian's containerd, runc and CNI plugins, nftables (kube-proxy's
# nft), socat (the API server's relay), openssl for the node's certificates and curl
# (CoreDNS's readiness), when missing.
install_packages() {
  local missing=()
  command -v containerd >/dev/null && command -v containerd-shim-runc-v2 >/dev/null && command -v ctr >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [[ -x "$cni_bin/bridge" && -x "$cni_bin/host-local" && -x "$cni_bin/loopback" ]] || missing+=(containernetworking-plugins)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v nft >/dev/null || missing+=(nftables)
  command -v socat >/dev/null || missing+=(socat)
  command -v curl >/dev/null || missing+=(curl)
  ((${#missing[@]} == 0)) && return 0
  log "installing Debian's ${missing[*]}"
  command -v apt-get >/dev/null || die "cannot install ${missing[*]}: no apt-get"
  apt-get update -qq >/dev/null
  # policy-rc.d keeps the package's own containerd service from starting.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

kubectl_() { "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }
ctr_() { ctr --address "$sock" --namespace k8s.io "$@"; }

# pid_of <name>: the pid in $node/<name>.pid when that process still runs.
pid_of() {
  local f="$node/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid=$(<"$f")
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

# start <name> <command...>: in the background, in a session of its own, its output
# in $node/logs/<name>.log and its pid in $node/<name>.pid.
start() {
  local name=$1
  shift
  setsid "$@" >>"$node/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$node/$name.pid"
}

# stop_pid <pid> <seconds>: SIGTERM, then SIGKILL after <seconds>.
stop_pid() {
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  sleep 0.2
}

write_network() {
  # The bridge exists before any pod does, so that the host's services can listen on
  # its address from the start; the CNI plugin then finds it in place.
  local other
  other=$(ip -4 -o addr show 2>/dev/null | awk -v a="$host_addr/" -v b="$bridge" 'index($4, a) == 1 && $2 != b {print $2}' | head -n 1)
  [[ -z "$other" ]] || die "$host_addr is already on $other: another cluster uses subnet $subnet.0/24 (set CLUSTER_NODE_SUBNET)"
  other=$(ip -4 route show "$service_cidr" 2>/dev/null | awk -v b="$bridge" '{for (i = 1; i < NF; i++) if ($i == "dev" && $(i + 1) != b) print $(i + 1)}' | head -n 1)
  [[ -z "$other" ]] || die "$service_cidr is already routed to $other: another cluster uses it (set CLUSTER_SERVICE_SUBNET)"
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
  fi
  # A fixed address: a bridge whose address was not given takes the lowest of its
  # ports' (pods' veths come and go), and every neighbour that cached the old one
  # (kube-proxy's namespace, the pods) loses this host for half a minute or more.
  ip link set "$bridge" address "$bridge_mac"
  ip addr replace "$host_addr/24" dev "$bridge"
  ip link set "$bridge" up
  mkdir -p "$node/cni/net.d" "$node/cni/ipam"
  cat >"$node/cni/net.d/10-$cni_network.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$cni_network",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$node/cni/ipam",
        "ranges": [[{"subnet": "$subnet.0/24", "rangeStart": "$subnet.10", "gateway": "$host_addr"}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "$service_cidr", "gw": "$proxy_addr"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

write_containerd_config() {
  mkdir -p "$node/containerd"
  cat >"$node/containerd/config.toml" <<EOF
# Generated by hack/node.sh for cluster $CLUSTER_NAME; do not edit.
version = 2
root = "$node/containerd/root"
state = "$node/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "$node/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_tls_streaming = false
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni_bin"
    conf_dir = "$node/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$node/runc"
EOF
}

# sign <name> <subject> [<ip SAN>]: a key and certificate signed by the cluster's CA.
sign() {
  local name=$1 subj=$2 ip=${3:-} ext
  ext=$(mktemp)
  if [[ -n "$ip" ]]; then
    printf 'subjectAltName=IP:%s,DNS:%s\nextendedKeyUsage=serverAuth\n' "$ip" "$node_name" >"$ext"
  else
    printf 'extendedKeyUsage=clientAuth\n' >"$ext"
  fi
  openssl req -new -newkey rsa:2048 -nodes -keyout "$node/pki/$name.key" -subj "$subj" -out "$node/pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$node/pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 365 -extfile "$ext" -out "$node/pki/$name.crt" 2>/dev/null
  rm -f "$ext" "$node/pki/$name.csr"
  chmod 600 "$node/pki/$name.key"
}

write_kubelet_config() {
  mkdir -p "$node/pki" "$node/kubelet" "$node/pod-logs"
  [[ -f "$pki/ca.crt" && -f "$pki/ca.key" ]] || die "no cluster CA in $pki (is the control plane of $CLUSTER_NAME up?)"
  # The kubelet's client certificate (the Node authorizer's system:node:<name>) and its
  # serving certificate, which the API server checks (--kubelet-certificate-authority).
  [[ -f "$node/pki/kubelet-client.crt" ]] || sign kubelet-client "/O=system:nodes/CN=system:node:$node_name"
  [[ -f "$node/pki/kubelet-serving.crt" ]] || sign kubelet-serving "/CN=$node_name" "$host_addr"
  local server
  server=$(kubectl_ config view --minify -o 'jsonpath={.clusters[0].cluster.server}')
  cat >"$node/kubelet.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $CLUSTER_NAME
  cluster:
    server: $server
    certificate-authority: $pki/ca.crt
users:
- name: $node_name
  user:
    client-certificate: $node/pki/kubelet-client.crt
    client-key: $node/pki/kubelet-client.key
contexts:
- name: $node_name
  context: {cluster: $CLUSTER_NAME, user: $node_name}
current-context: $node_name
EOF
  # cgroup v1 (as on this kind of machine) needs failCgroupV1: false; the kubelet makes
  # no QoS cgroups and enforces no allocatable (a node that shares the machine), and
  # every pod's cgroup sits below the cluster's own cgroupRoot, which teardown removes.
  cat >"$node/kubelet-config.yaml" <<EOF
# Generated by hack/node.sh for cluster $CLUSTER_NAME; do not edit.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $host_addr
port: 10250
readOnlyPort: 0
healthzBindAddress: $host_addr
healthzPort: 10248
tlsCertFile: $node/pki/kubelet-serving.crt
tlsPrivateKeyFile: $node/pki/kubelet-serving.key
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $pki/ca.crt
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$sock
podLogsDir: $node/pod-logs
cgroupDriver: cgroupfs
cgroupsPerQOS: false
cgroupRoot: $cgroup_root
enforceNodeAllocatable: []
failSwapOn: false
failCgroupV1: false
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
registerNode: true
maxPods: 110
clusterDNS: [$dns_service_ip]
clusterDomain: $cluster_domain
EOF
}

# make_cgroup_root: the cgroup below which every pod of this node lives, in each v1
# hierarchy (or in the v2 tree).
make_cgroup_root() {
  local h
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    mkdir -p "/sys/fs/cgroup$cgroup_root"
    return
  fi
  for h in /sys/fs/cgroup/*/; do
    [[ -d "$h" && -w "$h" ]] || continue
    mkdir -p "$h${cgroup_root#/}" 2>/dev/null || true
  done
}

wait_for() { # wait_for <seconds> <command...>
  local secs=$1 i
  shift
  for ((i = 0; i < secs * 10; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

# --- Services: kube-proxy, CoreDNS and the API server's relay (see the header) ---

nsexec() { ip netns exec "$proxy_netns" "$@"; }

# client_kubeconfig <file> <server> <user>: a kubeconfig of the client certificate
# $node/pki/<user>.crt.
client_kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $CLUSTER_NAME
  cluster:
    server: $2
    certificate-authority: $pki/ca.crt
users:
- name: $3
  user:
    client-certificate: $node/pki/$3.crt
    client-key: $node/pki/$3.key
contexts:
- name: $3
  context: {cluster: $CLUSTER_NAME, user: $3}
current-context: $3
EOF
}

# proxy_network: kube-proxy's network namespace, joined to the bridge at $proxy_addr,
# forwarding; this host's route to the Service CIDR goes through it.
proxy_network() {
  [[ -e "/run/netns/$proxy_netns" ]] || ip netns add "$proxy_netns"
  if ! ip link show "$proxy_veth" >/dev/null 2>&1; then
    ip link add "$proxy_veth" type veth peer name eth0 netns "$proxy_netns"
  fi
  ip link set "$proxy_veth" master "$bridge" up
  nsexec ip link set lo up
  nsexec ip addr replace "$proxy_addr/24" dev eth0
  nsexec ip link set eth0 up
  nsexec ip route replace default via "$host_addr"
  nsexec sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward'
  ip route replace "$service_cidr" via "$proxy_addr" dev "$bridge"
}

# cluster_services: what the cluster needs of its API for this node's Services: the
# kube-dns Service (its endpoint CoreDNS on this host) and CoreDNS's RBAC. kube-proxy's
# user system:kube-proxy has the API server's own binding to system:node-proxier.
cluster_services() {
  kubectl_ apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:coredns
rules:
- apiGroups: [""]
  resources: [services, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:coredns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:coredns
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: system:coredns
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels:
    k8s-app: kube-dns
    kubernetes.io/name: CoreDNS
spec:
  clusterIP: $dns_service_ip
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
---
# No selector: CoreDNS is a process on this host, not a pod.
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: node.sh.cost-analysis.costops.dev
addressType: IPv4
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
endpoints:
- addresses: [$host_addr]
  conditions: {ready: true}
  nodeName: $node_name
EOF
}

# write_kube_proxy_config <API server port>
write_kube_proxy_config() {
  mkdir -p "$node/kube-proxy"
  [[ -f "$node/pki/kube-proxy.crt" ]] || sign kube-proxy "/CN=system:kube-proxy"
  client_kubeconfig "$node/kube-proxy/kubeconfig" "https://$host_addr:$1" kube-proxy
  # conntrack: 0 leaves the kernel's limits and timeouts alone (nf_conntrack_max is
  # the machine's). The health and metrics ports are in the namespace, so never taken.
  cat >"$node/kube-proxy/config.yaml" <<EOF
# Generated by hack/node.sh for cluster $CLUSTER_NAME; do not edit.
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
hostnameOverride: $node_name
clientConnection:
  kubeconfig: $node/kube-proxy/kubeconfig
clusterCIDR: $subnet.0/24
nftables:
  masqueradeAll: true
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
EOF
}

# write_coredns_config <API server URL>
write_coredns_config() {
  mkdir -p "$node/coredns"
  [[ -f "$node/pki/coredns.crt" ]] || sign coredns "/CN=system:coredns"
  client_kubeconfig "$node/coredns/kubeconfig" "$1" coredns
  cat >"$node/coredns/Corefile" <<EOF
# Generated by hack/node.sh for cluster $CLUSTER_NAME; do not edit.
.:53 {
    bind $host_addr
    errors
    ready $host_addr:8181
    kubernetes $cluster_domain in-addr.arpa ip6.arpa {
        kubeconfig $node/coredns/kubeconfig
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    forward . /etc/resolv.conf
    cache 30
    loop
    loadbalance
}
EOF
}

# kube_proxy_synced: kube-proxy's rules hold the kubernetes and kube-dns Services.
kube_proxy_synced() {
  local m
  m=$(nsexec nft list map ip kube-proxy service-ips 2>/dev/null) || return 1
  [[ "$m" == *"$kubernetes_service_ip . tcp . 443 "* && "$m" == *"$dns_service_ip . udp . 53 "* ]]
}

coredns_ready() { curl -fsS --max-time 2 "http://$host_addr:8181/ready" >/dev/null 2>&1; }

# start_services: the API server's relay, kube-proxy and CoreDNS, those not running.
start_services() {
  local server port coredns_bin
  coredns_bin=$("$root/hack/kube-build.sh" --print-coredns)
  [[ -x "$bin/kube-proxy" ]] || die "missing $bin/kube-proxy (hack/kube-build.sh builds it)"
  [[ -x "$coredns_bin" ]] || die "missing $coredns_bin (hack/kube-build.sh builds it)"
  server=$(kubectl_ config view --minify -o 'jsonpath={.clusters[0].cluster.server}')
  port=${server##*:}
  port=${port%%/*}
  [[ "$server" == https://127.0.0.1:* && "$port" =~ ^[0-9]+$ ]] || die "the API server is not at https://127.0.0.1:<port> ($server)"
  cluster_services
  if ! pid_of apiserver-relay >/dev/null; then
    start apiserver-relay socat -lf "$node/logs/apiserver-relay.log" \
      "TCP-LISTEN:$port,bind=$host_addr,reuseaddr,fork" "TCP:127.0.0.1:$port"
  fi
  if ! pid_of kube-proxy >/dev/null; then
    proxy_network
    write_kube_proxy_config "$port"
    start kube-proxy ip netns exec "$proxy_netns" "$bin/kube-proxy" --config "$node/kube-proxy/config.yaml" --v 1
  fi
  if ! pid_of coredns >/dev/null; then
    write_coredns_config "$server"
    start coredns "$coredns_bin" -conf "$node/coredns/Corefile"
  fi
  wait_for 60 kube_proxy_synced || {
    tail -n 20 "$node/logs/kube-proxy.log" >&2
    die "kube-proxy did not program the Services within 60s (log: $node/logs/kube-proxy.log)"
  }
  wait_for 60 coredns_ready || {
    tail -n 20 "$node/logs/coredns.log" >&2
    die "CoreDNS was not ready within 60s (log: $node/logs/coredns.log)"
  }
}

cmd_import() {
  [[ -S "$sock" ]] || die "containerd of $CLUSTER_NAME is not running ($sock)"
  log "building the images (hack/image) into bin/image"
  (cd "$root" && go run ./hack/image build --out "$image_dir" >"$node/logs/image-build.log" 2>&1) ||
    { cat "$node/logs/image-build.log" >&2; die "building the images failed"; }
  local t
  for t in "$image_dir"/*.tar; do
    ctr_ images import "$t" >>"$node/logs/image-import.log" 2>&1 ||
      { tail -n 5 "$node/logs/image-import.log" >&2; die "importing $t into containerd failed"; }
  done
  log "imported $(cd "$image_dir" && ls -- *.tar | tr '\n' ' ')into the node's containerd"
}

cmd_up() {
  local start=$SECONDS reason
  reason=$(reason_unavailable)
  [[ -z "$reason" ]] || die "cannot run a real node here: $reason"
  bin=$("$root/hack/kube-build.sh" --print)
  [[ -x "$bin/kubelet" ]] || die "missing $bin/kubelet (hack/kube-build.sh builds it)"
  [[ -f "$kubeconfig" ]] || die "no kubeconfig $kubeconfig: start the control plane first (hack/cluster.sh up)"
  install_packages

  if pid_of kubelet >/dev/null && pid_of containerd >/dev/null && [[ -S "$sock" ]]; then
    log "the real node of $CLUSTER_NAME is already running"
    cmd_import
    start_services
    return 0
  fi
  # A node that is half there (stopped, crashed, the machine restarted): start clean.
  [[ -d "$node" ]] && cmd_down quiet
  mkdir -p "$node/logs"
  write_network
  write_containerd_config
  write_kubelet_config
  make_cgroup_root

  start containerd containerd --config "$node/containerd/config.toml"
  wait_for 30 ctr --address "$sock" version || { tail -n 20 "$node/logs/containerd.log" >&2; die "containerd did not start (log: $node/logs/containerd.log)"; }
  cmd_import

  start kubelet "$bin/kubelet" --config "$node/kubelet-config.yaml" --kubeconfig "$node/kubelet.kubeconfig" \
    --root-dir "$node/kubelet" --hostname-override "$node_name" --node-ip "$host_addr" \
    --node-labels "$node_label" --v 1
  if ! wait_for 90 kubectl_ wait --for=condition=Ready "node/$node_name" --timeout=1s; then
    tail -n 30 "$node/logs/kubelet.log" >&2
    die "node $node_name did not become Ready within 90s (log: $node/logs/kubelet.log)"
  fi
  # kube-proxy reads its node's addresses once, when it starts: after the kubelet
  # registered the node.
  start_services
  log "node $node_name Ready in $((SECONDS - start))s (kubelet on $host_addr:10250, containerd $sock); pods reach this host at $host_addr," \
    "Services $service_cidr (kube-proxy in netns $proxy_netns), cluster DNS $dns_service_ip (CoreDNS on $host_addr:53)"
}

# The leftovers of this node: what `down` must remove and `check-clean` reports.
leftover_mounts() { awk -v p="$node/" 'index($2, p) == 1 || $2 == substr(p, 1, length(p) - 1) {print $2}' /proc/mounts; }
leftover_pids() {
  local p cmd
  for p in /proc/[0-9]*; do
    # (a process that exits meanwhile has no cmdline to read: the braces quiet that)
    cmd=$({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null) || continue
    if [[ "$cmd" == *"$node/"* || "$cmd" == *"$sock"* ]]; then echo "${p#/proc/}"; fi
  done
  local h
  for h in /sys/fs/cgroup/*"$cgroup_root" /sys/fs/cgroup"$cgroup_root"; do
    if [[ -d "$h" ]]; then find "$h" -name cgroup.procs -exec cat {} + 2>/dev/null || true; fi
  done | sort -u
}
leftover_cgroups() {
  local h
  for h in /sys/fs/cgroup/*"$cgroup_root" /sys/fs/cgroup"$cgroup_root"; do
    if [[ -d "$h" ]]; then echo "$h"; fi
  done
  return 0
}
# shim_sockets: the sockets of this node's runc shims. containerd 1.6 puts them in
# /run/containerd/s whatever its state dir, named by the sha256 of
# <containerd address>/<namespace>/<task id>; a shim removes its own when it exits
# cleanly, one that was killed leaves it behind.
shim_sockets() {
  local d id sum
  for d in "$node"/containerd/state/io.containerd.runtime.v2.task/k8s.io/*/; do
    [[ -d "$d" ]] || continue
    id=$(basename "$d")
    sum=$(printf '%s' "$sock/k8s.io/$id" | sha256sum | cut -d' ' -f1)
    if [[ -e "/run/containerd/s/$sum" ]]; then echo "/run/containerd/s/$sum"; fi
  done
  return 0
}
leftover_other() {
  if ip link show "$bridge" >/dev/null 2>&1; then echo "bridge $bridge"; fi
  if [[ -e "/run/netns/$proxy_netns" ]]; then echo "network namespace $proxy_netns (kube-proxy's rules)"; fi
  if ip link show "$proxy_veth" >/dev/null 2>&1; then echo "veth $proxy_veth"; fi
  if [[ -n "$(ip -4 route show "$service_cidr" 2>/dev/null)" ]]; then echo "route to $service_cidr"; fi
  local f
  for f in /var/lib/cni/results/"$cni_network"-*; do
    if [[ -e "$f" ]]; then echo "cni cache $f"; fi
  done
  if [[ -e "$node" ]]; then echo "directory $node"; fi
  return 0
}

cmd_down() {
  local quiet=${1:-} pid i
  if [[ ! -d "$node" ]] && [[ -z "$(leftover_cgroups)$(leftover_other)" ]]; then
    return 0
  fi
  [[ -n "$quiet" ]] || log "stopping the real node of $CLUSTER_NAME"
  bin=$("$root/hack/kube-build.sh" --print)
  # 1. The kubelet, so that it restarts nothing. 2. Every container and sandbox, through
  # containerd while it runs (their shims then exit and remove their sockets). 3.
  # containerd. 4. Whatever still runs (a shim or a container whose containerd died):
  # killed by its cgroup or its command line. 5. Mounts, cgroups, kube-proxy's network
  # namespace (its rules go with it), the Service route, the bridge, CNI's cache.
  if pid=$(pid_of kubelet); then stop_pid "$pid" 10; fi
  local c
  for c in kube-proxy coredns apiserver-relay; do
    if pid=$(pid_of "$c"); then stop_pid "$pid" 5; fi
  done
  if [[ -S "$sock" ]] && pid_of containerd >/dev/null; then
    local tasks c
    tasks=$(ctr_ tasks ls -q 2>/dev/null || true)
    for c in $tasks; do ctr_ tasks kill --signal SIGKILL "$c" >/dev/null 2>&1 || true; done
    for c in $tasks; do
      for ((i = 0; i < 50; i++)); do
        ctr_ tasks delete "$c" >/dev/null 2>&1 && break
        sleep 0.1
      done
    done
    for c in $(ctr_ containers ls -q 2>/dev/null || true); do ctr_ containers delete "$c" >/dev/null 2>&1 || true; done
  fi
  if pid=$(pid_of containerd); then stop_pid "$pid" 10; fi
  for ((i = 0; i < 3; i++)); do
    local pids
    pids=$(leftover_pids)
    [[ -n "$pids" ]] || break
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
    sleep 0.3
  done
  # Deepest first; a lazy unmount for a mount that is still busy.
  local m
  for ((i = 0; i < 5; i++)); do
    [[ -n "$(leftover_mounts)" ]] || break
    while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done < <(leftover_mounts | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
  done
  local h
  while read -r h; do
    [[ -n "$h" ]] && find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done < <(leftover_cgroups)
  ip netns del "$proxy_netns" 2>/dev/null || true
  ip link del "$proxy_veth" 2>/dev/null || true
  ip route del "$service_cidr" 2>/dev/null || true
  ip link del "$bridge" 2>/dev/null || true
  rm -f /var/lib/cni/results/"$cni_network"-*
  local f
  while read -r f; do rm -f "$f"; done < <(shim_sockets)
  if [[ -n "$(leftover_mounts)" ]]; then
    die "still mounted under $node: $(leftover_mounts | tr '\n' ' ')"
  fi
  rm -rf "$node"
  # containerd 1.6 and its shims also make /run/containerd/{s,fifo,runc}: shared with any
  # other containerd, so removed only when empty (rmdir leaves a used one alone).
  rmdir /run/containerd/runc/k8s.io /run/containerd/runc /run/containerd/fifo /run/containerd/s /run/containerd 2>/dev/null || true
  if [[ -n "$(leftover_pids)$(leftover_cgroups)$(leftover_other)" ]]; then
    die "left behind: $(leftover_pids | sed 's/^/pid /' | tr '\n' ' ')$(leftover_cgroups | tr '\n' ' ')$(leftover_other | tr '\n' ' ')"
  fi
  [[ -n "$quiet" ]] || log "real node of $CLUSTER_NAME removed (nothing mounted or running)"
}

# check-clean: exit 1, listing them, when anything of this node is left.
cmd_check_clean() {
  local left
  left="$(leftover_mounts | sed 's/^/mount /')$(leftover_pids | sed 's/^/pid /')$(leftover_cgroups | sed 's/^/cgroup /')$(leftover_other)"
  if [[ -n "$left" ]]; then
    echo "$left"
    exit 1
  fi
}

case "${1:-}" in
  check)
    reason=$(reason_unavailable)
    if [[ -n "$reason" ]]; then
      echo "$reason"
      exit 1
    fi
    ;;
  up) cmd_up ;;
  down) cmd_down ;;
  import) cmd_import ;;
  check-clean) cmd_check_clean ;;
  addresses)
    printf 'host_address %s\nservice_cidr %s\nkubernetes_service_ip %s\ndns_service_ip %s\ncluster_domain %s\n' \
      "$host_addr" "$service_cidr" "$kubernetes_service_ip" "$dns_service_ip" "$cluster_domain"
    ;;
  host-address)
    if [[ -f "$node/containerd.pid" ]] && ip link show "$bridge" >/dev/null 2>&1; then
      echo "$host_addr"
    else
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 check|up|down|import|host-address|addresses|check-clean" >&2
    exit 2
    ;;
esac
