#!/usr/bin/env bash
# Install what the core test bed needs, idempotently and without prompts:
#  - Debian packages (registry, runc, qemu-user-static + binfmt-support, htpasswd, ...);
#    apt is skipped entirely when they are all installed already;
#  - busybox-static .debs for every architecture of the seeded busybox image, fetched with
#    a private apt configuration (own lists/cache under $KB_CACHE, extra architectures
#    only there), so the host needs no `dpkg --add-architecture`. They are extracted with
#    `dpkg-deb -x` into $KB_CACHE/busybox/<debian-arch>/.
# Network is only touched when something is missing; retries are bounded.
set -euo pipefail
export CI=true DEBIAN_FRONTEND=noninteractive
CACHE="${KB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-build}"
log() { printf '[install-deps] %s\n' "$*" >&2; }

PKGS=(docker-registry runc qemu-user-static binfmt-support apache2-utils busybox-static
      openssl jq curl iproute2 ca-certificates util-linux procps python3 dpkg openssh-client)
# Debian architectures of the busybox image (amd64, 386, arm/v6, arm/v7, arm64, ppc64le, s390x).
BUSYBOX_ARCHES=(amd64 i386 armel armhf arm64 ppc64el s390x)

SUDO=()
if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo -n); fi

retry() { # retry N cmd...: bounded retries for network operations
  local n=$1 i; shift
  for ((i = 1; i <= n; i++)); do
    "$@" && return 0
    log "attempt $i/$n failed: $*"; sleep $((i * 3))
  done
  return 1
}

missing=()
for p in "${PKGS[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$st" == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  retry 3 "${SUDO[@]}" apt-get -q update </dev/null || log "apt-get update reported errors (continuing)"
  retry 3 "${SUDO[@]}" apt-get -q -y --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install "${missing[@]}" </dev/null
else
  log "Debian packages present"
fi

# Foreign busybox-static, extracted under $CACHE/busybox/<arch>/bin/busybox.
bb="$CACHE/busybox"
need=()
for a in "${BUSYBOX_ARCHES[@]}"; do
  [[ -x "$bb/$a/bin/busybox" ]] || need+=("$a")
done
if ((${#need[@]})); then
  apt_dir="$CACHE/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
  opts=(-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
        -o Debug::NoLocking=1 -o APT::Sandbox::User=root -q)
  for a in "${BUSYBOX_ARCHES[@]}"; do opts+=(-o "APT::Architectures::=$a"); done
  debs_ok() { local a; for a in "${need[@]}"; do compgen -G "$apt_dir/debs/busybox-static_*_$a.deb" >/dev/null || return 1; done; }
  if ! debs_ok; then
    log "downloading busybox-static for: ${need[*]}"
    # Some suites (e.g. security) may lack an index for a foreign arch: update errors are
    # tolerated, the download below is what must succeed.
    pkgs=(); for a in "${need[@]}"; do pkgs+=("busybox-static:$a"); done
    fetch() {
      apt-get "${opts[@]}" update </dev/null >/dev/null 2>&1 || log "private apt update reported errors (continuing)"
      (cd "$apt_dir/debs" && apt-get "${opts[@]}" download "${pkgs[@]}" </dev/null >&2)
    }
    retry 3 fetch
  fi
  for a in "${need[@]}"; do
    deb=$(ls -1 "$apt_dir/debs"/busybox-static_*_"$a".deb | sort | tail -1)
    rm -rf "$bb/$a.tmp"; mkdir -p "$bb/$a.tmp"
    dpkg-deb -x "$deb" "$bb/$a.tmp"
    dpkg-deb -f "$deb" Version >"$bb/$a.tmp/VERSION"
    rm -rf "$bb/$a"; mv "$bb/$a.tmp" "$bb/$a"
    log "busybox-static $a $(cat "$bb/$a/VERSION")"
  done
else
  log "busybox-static present for all architectures"
fi
