#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler and kubelet from the
# k8s.io/kubernetes Go module (pinned release) into $KB_CACHE/kubernetes-<ver>/bin.
# Idempotent: prints the bin dir and exits at once when the binaries are cached.
#
# k8s.io/kubernetes replaces every staging module with a local path, so `go install`
# refuses it. We create a local module under $KB_CACHE that replaces each staging
# module by its published v0.<minor>.<patch> version, `go get`s the commands, and
# builds all four in one `go build` so they share compiled packages.
set -euo pipefail
#   KB_K8S_GOARCH=arm64 KB_K8S_COMMANDS=kubelet   cross-build a subset into bin-linux-arm64
K8S_VERSION="${KB_K8S_VERSION:-v1.33.13}"
GOARCH_TARGET="${KB_K8S_GOARCH:-amd64}"
KB_CACHE="${KB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-build}"
export PATH="/usr/local/go/bin:$PATH"
top="$KB_CACHE/kubernetes-$K8S_VERSION"
bin="$top/bin"
[[ "$GOARCH_TARGET" == amd64 ]] || bin="$top/bin-linux-$GOARCH_TARGET"
read -r -a cmds <<< "${KB_K8S_COMMANDS:-kube-apiserver kube-controller-manager kube-scheduler kubelet}"
have=1
for c in "${cmds[@]}"; do [[ -x "$bin/$c" ]] || have=0; done
if [[ $have == 1 ]]; then echo "$bin"; exit 0; fi

mod="$top/module"
mkdir -p "$mod" "$bin"
staging_ver="v0.${K8S_VERSION#v1.}"
cd "$mod"
if [[ ! -f go.mod ]]; then
  go mod init kubectl-build.local/kubernetes-build >&2
fi
gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
[[ -f "$gomod" ]] || { echo "cannot fetch k8s.io/kubernetes@$K8S_VERSION go.mod" >&2; exit 1; }
# Every "k8s.io/X => ./staging/src/k8s.io/X" replace becomes k8s.io/X@<staging_ver>.
args=()
while read -r m; do args+=("-replace=$m=$m@$staging_ver"); done < <(
  sed -n 's#^[[:space:](]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$gomod")
[[ ${#args[@]} -gt 20 ]] || { echo "unexpected replace list in $gomod" >&2; exit 1; }
go mod edit "${args[@]}"
pkgs=()
for c in "${cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
go get "${pkgs[@]/%/@$K8S_VERSION}" >&2

minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
commit="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"Hash": "\(.*\)",*$/\1/p' | head -1)"
date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  ld+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
done
tmp="$bin.tmp"; rm -rf "$tmp"; mkdir -p "$tmp"
echo "building ${cmds[*]} $K8S_VERSION linux/$GOARCH_TARGET (cold build: 15-40 min on 2 cores)" >&2
CGO_ENABLED=0 GOOS=linux GOARCH="$GOARCH_TARGET" go build -trimpath -ldflags "$ld" -o "$tmp/" "${pkgs[@]}" >&2
for c in "${cmds[@]}"; do mv -f "$tmp/$c" "$bin/$c"; done
rmdir "$tmp"
echo "$bin"
