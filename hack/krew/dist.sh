#!/usr/bin/env bash
# Builds the release archives of kubectl-costanalysis and its krew manifest.
#
#   hack/krew/dist.sh            # archives for KPLUGIN_PLATFORMS, manifest with their sha256
#   hack/krew/dist.sh check      # and install the manifest with krew, run the plugin
#
# The archives are reproducible (-trimpath, no VCS stamping, fixed tar order, owner,
# mode and time, gzip without name or time): the same commit and Go version give the
# same sha256. The manifest is hack/krew/costanalysis.yaml with the version, the
# download URI and each archive's sha256 filled in; platforms not built are left out.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
version=${KPLUGIN_VERSION:-v0.0.0-dev}
base_uri=${KPLUGIN_BASE_URI:-https://github.com/costops/cost-analysis-operator/releases/download/$version}
platforms=${KPLUGIN_PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64}
out=${KPLUGIN_DIST:-$root/bin/kplugin-dist}
pkg=github.com/costops/cost-analysis-operator/internal/kubectlplugin

cd "$root"
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# The archives are built from the work tree: a release must come from a clean
# checkout of its tag, or the commit it names is not what it contains.
if [ -n "$(git status --porcelain -- . 2>/dev/null)" ]; then
	case $version in
	v0.0.0-dev) echo "hack/krew/dist.sh: the work tree has changes: these archives are not commit $commit alone" >&2 ;;
	*) echo "hack/krew/dist.sh: refusing to build release $version from a work tree with changes (git status)" >&2; exit 1 ;;
	esac
fi
rm -rf "$out"
mkdir -p "$out"
built=()
for p in $platforms; do
	os=${p%/*} arch=${p#*/}
	exe=kubectl-costanalysis
	[ "$os" = windows ] && exe=$exe.exe
	stage=$(mktemp -d)
	trap 'rm -rf "$stage"' EXIT
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -buildvcs=false \
		-ldflags "-s -w -X $pkg.buildVersion=$version -X $pkg.buildCommit=$commit" \
		-o "$stage/$exe" ./cmd/kubectl-costanalysis
	archive=kubectl-costanalysis_${version}_${os}_${arch}.tar.gz
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --mode=u=rwx,go=rx \
		-C "$stage" -cf - "$exe" | gzip -n -9 >"$out/$archive"
	rm -rf "$stage"
	sum=$(sha256sum "$out/$archive" | cut -d' ' -f1)
	key=$(echo "${os}_${arch}" | tr '[:lower:]' '[:upper:]')
	export "KPLUGIN_SHA256_$key=$sum"
	built+=("$os/$arch")
	echo "$archive  sha256 $sum"
done
export KPLUGIN_VERSION=$version KPLUGIN_BASE_URI=$base_uri KPLUGIN_BUILT="${built[*]}"

# Fill in the template: each platform block (from "  - selector:" on) is kept when
# its os/arch was built, and ${VAR}s are replaced from the environment.
awk '
function fill(s,   name) {
	while (match(s, /\$\{[A-Z0-9_]+\}/)) {
		name = substr(s, RSTART + 2, RLENGTH - 3)
		if (!(name in ENVIRON)) { print "hack/krew/dist.sh: " name " is not set" > "/dev/stderr"; exit 1 }
		s = substr(s, 1, RSTART - 1) ENVIRON[name] substr(s, RSTART + RLENGTH)
	}
	return s
}
function flush() {
	if (block != "" && index(" " ENVIRON["KPLUGIN_BUILT"] " ", " " os "/" arch " ") > 0) printf "%s", fill(block)
	block = ""; os = ""; arch = ""
}
/^#/ && !started { next }
{ started = 1 }
/^  - selector:/ { flush(); inblock = 1 }
inblock {
	block = block $0 "\n"
	if ($1 == "os:") os = $2
	if ($1 == "arch:") arch = $2
	next
}
{ print fill($0) }
END { flush() }
' hack/krew/costanalysis.yaml >"$out/costanalysis.yaml"
echo "krew manifest: $out/costanalysis.yaml"

if [ "${1:-}" = check ]; then
	# Install the manifest with krew from the archive of this machine's platform:
	# krew refuses an archive whose sha256 differs from the manifest's.
	krew=${KREW:?KREW must name the krew binary}
	host="$(go env GOOS)_$(go env GOARCH)"
	krew_root=$(mktemp -d)
	trap 'rm -rf "$krew_root"' EXIT
	KREW_ROOT=$krew_root "$krew" install --manifest="$out/costanalysis.yaml" \
		--archive="$out/kubectl-costanalysis_${version}_${host}.tar.gz"
	got=$("$krew_root/bin/kubectl-costanalysis" version)
	case $got in
	"kubectl-costanalysis $version ("*"commit $commit"*) echo "krew installed it: $got" ;;
	*) echo "the plugin krew installed says '$got', want version $version at commit $commit" >&2; exit 1 ;;
	esac
	# A tampered archive must be refused.
	tampered=$(mktemp -d)/kubectl-costanalysis_${version}_${host}.tar.gz
	{ cat "$out/kubectl-costanalysis_${version}_${host}.tar.gz"; printf x; } >"$tampered"
	if KREW_ROOT=$(mktemp -d) "$krew" install --manifest="$out/costanalysis.yaml" --archive="$tampered" >/dev/null 2>&1; then
		echo "krew installed an archive whose sha256 is not the manifest's" >&2
		exit 1
	fi
	echo "krew refused an archive whose sha256 differs from the manifest's"
fi
