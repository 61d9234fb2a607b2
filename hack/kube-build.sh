#!/usr/bin/env bash
# Builds the Kubernetes control plane from the Go module proxy, at the versions pinned
# in hack/tools/*/go.mod, into a versioned cache under bin/k8s/. A second run with the
# cache present only checks that every binary is there and prints the directory.
#
#   hack/kube-build.sh            # build what is missing, print the bin directory
#   hack/kube-build.sh --print    # print the bin directory without building
#
# Binaries: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# kubelet, kwok, kwokctl. envtest uses etcd + kube-apiserver (KUBEBUILDER_ASSETS); the
# local cluster (hack/cluster.sh) runs the control plane through kwokctl's binary
# runtime and the kubelet of its real node through hack/node.sh.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/hack/tools"

modver() { # modver <dir> <module>: the version a tools go.mod requires
  awk -v m="$2" '$1 == "require" { $1 = ""; $0 = $0 } $1 == m && $2 ~ /^v/ { print $2; exit }' "$tools/$1/go.mod"
}

KUBE_VERSION=$(modver kubernetes k8s.io/kubernetes)
ETCD_VERSION=$(modver etcd go.etcd.io/etcd/server/v3)
KWOK_VERSION=$(modver kwok sigs.k8s.io/kwok)
dir="$root/bin/k8s/kube-${KUBE_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}"

if [[ "${1:-}" == "--print" ]]; then
  echo "$dir"
  exit 0
fi
if [[ -z "$KUBE_VERSION" || -z "$ETCD_VERSION" || -z "$KWOK_VERSION" ]]; then
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
  kwok_ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBE_VERSION#v}"
  build kwok sigs.k8s.io/kwok/cmd/kwok kwok "$kwok_ldflags"
  build kwok sigs.k8s.io/kwok/cmd/kwokctl kwokctl "$kwok_ldflags"
fi

echo "$dir"
