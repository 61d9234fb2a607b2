#!/usr/bin/env bash
# Regenerates the Go code of the SpaceONE cost-analysis plugin protocol
# (proto/spaceone/api/cost_analysis/plugin/*.proto) into internal/plugin/pluginpb.
#
#   hack/gen-proto.sh
#
# protoc comes from the system (Debian's protobuf-compiler); protoc-gen-go (at the
# google.golang.org/protobuf version in go.mod) and protoc-gen-go-grpc (pinned below)
# are installed into bin/ under versioned names when missing. The output carries no
# time stamp and no protoc version, so re-running it gives byte-identical files.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
PROTO_DIR=proto
PKG_DIR=spaceone/api/cost_analysis/plugin
OUT_DIR=internal/plugin/pluginpb
MODULE=github.com/costops/cost-analysis-operator
LOCALBIN="$root/bin"

log() { echo "gen-proto: $*" >&2; }

if ! command -v protoc >/dev/null 2>&1; then
  log "protoc is not installed. Install Debian's protobuf-compiler:"
  log "    sudo apt-get update && sudo apt-get install -y protobuf-compiler"
  log "(or run 'make protoc', which does that), then run this script again."
  exit 1
fi

PROTOC_GEN_GO_VERSION=$(go list -m -f '{{.Version}}' google.golang.org/protobuf)
if [[ -z "$PROTOC_GEN_GO_VERSION" ]]; then
  log "cannot read the google.golang.org/protobuf version from go.mod"
  exit 1
fi

# install <binary name> <package> <version>: go install into bin/<name>-<version>.
install_tool() {
  local name=$1 pkg=$2 version=$3 target="$LOCALBIN/$1-$3"
  if [[ ! -x "$target" ]]; then
    log "installing $pkg@$version into bin/"
    mkdir -p "$LOCALBIN"
    local tmp
    tmp=$(mktemp -d)
    GOBIN="$tmp" GOFLAGS= go install "$pkg@$version"
    mv "$tmp/$name" "$target"
    rm -rf "$tmp"
  fi
  echo "$target"
}
PROTOC_GEN_GO=$(install_tool protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION")
PROTOC_GEN_GO_GRPC=$(install_tool protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION")

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Sorted, so the order of the files given to protoc never depends on the file system.
mapfile -t protos < <(cd "$PROTO_DIR" && find "$PKG_DIR" -name '*.proto' | LC_ALL=C sort)
protoc \
  --proto_path="$PROTO_DIR" \
  --plugin=protoc-gen-go="$PROTOC_GEN_GO" \
  --plugin=protoc-gen-go-grpc="$PROTOC_GEN_GO_GRPC" \
  --go_out="$out" --go_opt=module="$MODULE" \
  --go-grpc_out="$out" --go-grpc_opt=module="$MODULE" \
  "${protos[@]}"

# The protoc version in the headers depends on the machine, not on the protocol.
for f in "$out/$OUT_DIR"/*.go; do
  sed -i -E \
    -e 's#^(//[[:space:]]+protoc[[:space:]]+)v[0-9][^[:space:]]*$#\1(system)#' \
    -e 's#^(// - protoc[[:space:]]+)v[0-9][^[:space:]]*$#\1(system)#' \
    "$f"
done

mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/*.pb.go
cp "$out/$OUT_DIR"/*.go "$OUT_DIR"/
gofmt -l "$OUT_DIR" | while read -r f; do log "warning: $f is not gofmt-clean"; done
log "generated $(ls "$OUT_DIR"/*.pb.go | wc -l) files into $OUT_DIR"
