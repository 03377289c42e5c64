#!/usr/bin/env bash
# Build buildkitd and buildctl from their Go module at a pinned release.
#   hack/build-buildkit.sh [VERSION]      (default $BUILDKIT_VERSION, else v0.34.2)
# `go install pkg@version` refuses buildkit (its go.mod has exclude/replace), so a
# throwaway local module requires it and builds the two commands from there.
# The test bed also builds the oldest supported daemon, v0.12.5 (the newest v0.12.x on
# the Go proxy): its own go.mod has no replace directives, so the dependency versions
# are exactly buildkit's, and go1.26 builds it as is.
set -euo pipefail
BUILDKIT_VERSION="${1:-${BUILDKIT_VERSION:-v0.34.2}}"
CACHE="${KB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-build}"
OUT="$CACHE/buildkit-$BUILDKIT_VERSION/bin"
if [[ -x "$OUT/buildkitd" && -x "$OUT/buildctl" ]]; then
  echo "$OUT"; exit 0
fi
mod="$CACHE/buildkit-$BUILDKIT_VERSION/mod"
mkdir -p "$mod" "$OUT.tmp"
cd "$mod"
[[ -f go.mod ]] || go mod init kubectl-build.local/buildkit-build >&2
go get "github.com/moby/buildkit/cmd/buildkitd@$BUILDKIT_VERSION" "github.com/moby/buildkit/cmd/buildctl@$BUILDKIT_VERSION" >&2
ldflags="-s -w -X github.com/moby/buildkit/version.Version=$BUILDKIT_VERSION -X github.com/moby/buildkit/version.Package=github.com/moby/buildkit"
CGO_ENABLED=0 go build -trimpath -tags "osusergo netgo static_build seccomp" \
  -ldflags "$ldflags -extldflags -static" -o "$OUT.tmp/buildkitd" github.com/moby/buildkit/cmd/buildkitd >&2
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$OUT.tmp/buildctl" github.com/moby/buildkit/cmd/buildctl >&2
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"
echo "$OUT"
