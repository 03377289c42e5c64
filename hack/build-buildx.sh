#!/usr/bin/env bash
# Build docker buildx (the cluster benchmark's baseline, with its kubernetes driver)
# from its Go module at a pinned release; prints the directory holding `buildx`.
# Same cache layout as hack/build-buildkit.sh. Newer releases:
#   go list -m -versions github.com/docker/buildx
set -euo pipefail
BUILDX_VERSION="${BUILDX_VERSION:-v0.38.2}"
CACHE="${KB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-build}"
OUT="$CACHE/buildx-$BUILDX_VERSION/bin"
if [[ -x "$OUT/buildx" ]]; then
  echo "$OUT"; exit 0
fi
mkdir -p "$OUT.tmp"
ldflags="-s -w -X github.com/docker/buildx/version.Version=$BUILDX_VERSION -X github.com/docker/buildx/version.Package=github.com/docker/buildx"
# buildx's go.mod has no replace/exclude directives, so `go install pkg@version` works.
GOBIN="$OUT.tmp" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" \
  "github.com/docker/buildx/cmd/buildx@$BUILDX_VERSION" >&2
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"
echo "$OUT"
