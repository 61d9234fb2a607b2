#!/usr/bin/env bash
# Builds the Kubernetes control plane from the Go module proxy, at the versions pinned
# in hack/tools/*/go.mod, into a versioned cache under bin/k8s/. A second run with the
# cache present only checks that every binary is there and prints the directory.
#
#   hack/kube-build.sh            # build what is missing, print the bin directory
#   hack/kube-build.sh --print    # print the bin directory without building
#   hack/kube-build.sh --print-coredns  # print the path of the CoreDNS binary
#
# Binaries: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# kubelet, kube-proxy, kwok, kwokctl, and CoreDNS (hack/tools/coredns: only the plugins
# the cluster's DNS uses). envtest uses etcd + kube-apiserver (KUBEBUILDER_ASSETS); the
# local cluster (hack/cluster.sh) runs the control plane through kwokctl's binary
# runtime, and the kubelet, kube-proxy and CoreDNS of its real node through hack/node.sh.
# CoreDNS's name carries its version and a hash of hack/tools/coredns, so that a change
# there builds it again without invalidating the rest of the cache.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/hack/tools"

modver() { # modver <dir> <module>: the version a tools go.mod requires
  awk -v m="$2" '$1 == "require" { $1 = ""; $0 = $0 } $1 == m && $2 ~ /^v/ { print $2; exit }' "$tools/$1/go.mod"
}

KUBE_VERSION=$(modver kubernetes k8s.io/kubernetes)
ETCD_VERSION=$(modver etcd go.etcd.io/etcd/server/v3)
KWOK_VERSION=$(modver kwok sigs.k8s.io/kwok)
COREDNS_VERSION=$(modver coredns github.com/coredns/coredns)
dir="$root/bin/k8s/kube-${KUBE_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}"
coredns="coredns-${COREDNS_VERSION}-$(cat "$tools"/coredns/go.mod "$tools"/coredns/go.sum "$tools"/coredns/*.go | sha256sum | cut -c1-8)"

case "${1:-}" in
  --print)
    echo "$dir"
    exit 0
    ;;
  --print-coredns)
    echo "$dir/$coredns"
    exit 0
    ;;
esac
if [[ -z "$KUBE_VERSION" || -z "$ETCD_VERSION" || -z "$KWOK_VERSION" || -z "$COREDNS_VERSION" ]]; then
  echo "kube-build: cannot read the pinned versions from hack/tools/*/go.mod" >&2
  exit 1
fi

mkdir -p "$dir"
log() { echo "kube-build: $*" >&2; }

# Version stamps, as kubernetes' hack/lib/version.sh sets them, so that
# `kubectl version` and the apiserver's /version report the real release.
major=${KUBE_VERSION#v}; major=${major%%.*}
minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=${KUBE_VERSION}"
  kube_ldflags+=" -X $pkg.gitMajor=${major}"
  kube_ldflags+=" -X $pkg.gitMinor=${minor}"
  kube_ldflags+=" -X $pkg.gitTreeState=clean"
  kube_ldflags+=" -X $pkg.buildDate=${build_date}"
done

build() { # build <tools dir> <package> <binary> <ldflags>
  local out="$dir/$3"
  if [[ -x "$out" ]]; then
    return 0
  fi
  log "building $3 from $2 (first time only; the whole set takes ~10-15 min on 2 cores)"
  local start=$SECONDS
  (cd "$tools/$1" && CGO_ENABLED=0 go build -trimpath -ldflags "$4" -o "$out.tmp" "$2")
  mv "$out.tmp" "$out"
  log "built $3 in $((SECONDS - start))s"
}

build etcd go.etcd.io/etcd/server/v3 etcd \
  "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_VERSION}"
build kubernetes k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver "$kube_ldflags"
build kubernetes k8s.io/kubernetes/cmd/kubectl kubectl "$kube_ldflags"
if [[ "${KUBE_BUILD_ENVTEST_ONLY:-}" != "1" ]]; then
  build kubernetes k8s.io/kubernetes/cmd/kube-controller-manager kube-controller-manager "$kube_ldflags"
  build kubernetes k8s.io/kubernetes/cmd/kube-scheduler kube-scheduler "$kube_ldflags"
  build kubernetes k8s.io/kubernetes/cmd/kubelet kubelet "$kube_ldflags"
  build kubernetes k8s.io/kubernetes/cmd/kube-proxy kube-proxy "$kube_ldflags"
  kwok_ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBE_VERSION#v}"
  build kwok sigs.k8s.io/kwok/cmd/kwok kwok "$kwok_ldflags"
  build kwok sigs.k8s.io/kwok/cmd/kwokctl kwokctl "$kwok_ldflags"
  build coredns . "$coredns" "-s -w -X github.com/coredns/coredns/coremain.GitCommit=${COREDNS_VERSION}"
fi

echo "$dir"
