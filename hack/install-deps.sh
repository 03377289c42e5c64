#!/usr/bin/env bash
# Install what the core test bed needs, idempotently and without prompts:
#  - Debian packages (registry, runc, qemu-user-static + binfmt-support, htpasswd, ...);
#    apt is skipped entirely when they are all installed already;
#  - busybox-static .debs for every architecture of the seeded busybox image, fetched with
#    a private apt configuration (own lists/cache under $KB_CACHE, extra architectures
#    only there), so the host needs no `dpkg --add-architecture`. They are extracted with
#    `dpkg-deb -x` into $KB_CACHE/busybox/<debian-arch>/;
#  - an arm64 Debian Python (python3.11 and its shared libpython, with every library they
#    need, fetched the same way) extracted into $KB_CACHE/sysroot/arm64/, with its own
#    ld.so.cache: packaging/build_release.py --sysroot freezes the linux/arm64 release
#    archive with it under qemu-user, and the tests run that archive the same way.
# Network is only touched when something is missing; retries are bounded.
set -euo pipefail
export CI=true DEBIAN_FRONTEND=noninteractive
CACHE="${KB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-build}"
log() { printf '[install-deps] %s\n' "$*" >&2; }

PKGS=(docker-registry runc qemu-user-static binfmt-support apache2-utils busybox-static
      openssl jq curl iproute2 ca-certificates util-linux procps python3 dpkg openssh-client
      binutils-aarch64-linux-gnu)
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
apt_dir="$CACHE/apt"
apt_opts=(-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
          -o Debug::NoLocking=1 -o APT::Sandbox::User=root -q -o "APT::Architectures::=amd64")
for a in "${BUSYBOX_ARCHES[@]}"; do apt_opts+=(-o "APT::Architectures::=$a"); done
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
private_update() {
  # Some suites (e.g. security) may lack an index for a foreign arch: update errors are
  # tolerated, the download after it is what must succeed.
  apt-get "${apt_opts[@]}" update </dev/null >/dev/null 2>&1 || log "private apt update reported errors (continuing)"
}
private_download() { # private_download DIR PKG...: .debs into DIR with the private config
  local dir=$1; shift
  mkdir -p "$dir"
  (cd "$dir" && apt-get "${apt_opts[@]}" download "$@" </dev/null >&2)
}

if ((${#need[@]})); then
  debs_ok() { local a; for a in "${need[@]}"; do compgen -G "$apt_dir/debs/busybox-static_*_$a.deb" >/dev/null || return 1; done; }
  if ! debs_ok; then
    log "downloading busybox-static for: ${need[*]}"
    pkgs=(); for a in "${need[@]}"; do pkgs+=("busybox-static:$a"); done
    fetch() { private_update; private_download "$apt_dir/debs" "${pkgs[@]}"; }
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

# arm64 Python sysroot: the packages python3.11 and libpython3.11 depend on (arm64 ones;
# the architecture-independent ones hold data the interpreter does not need), libstdc++
# for grpcio, and libc-bin for ldconfig.
sysroot="$CACHE/sysroot/arm64"
if [[ ! -f "$sysroot/VERSION" ]]; then
  roots=(python3.11:arm64 libpython3.11:arm64 libstdc++6:arm64 libc-bin:arm64)
  closure() {
    apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
      --no-breaks --no-replaces --no-enhances "${roots[@]}" 2>/dev/null |
      grep -v '^ ' | grep ':arm64$' | grep -v -E '^(dpkg|tar|install-info):' | sort -u
  }
  fetch_sysroot() {
    local pkgs
    pkgs=$(closure)
    [[ -n "$pkgs" && "$pkgs" == *python3.11:arm64* ]] || { private_update; pkgs=$(closure); }
    [[ "$pkgs" == *python3.11:arm64* ]] || return 1
    rm -rf "$apt_dir/sysroot-debs"
    # shellcheck disable=SC2086 # one package per word
    private_download "$apt_dir/sysroot-debs" $pkgs
  }
  log "downloading an arm64 Python sysroot"
  retry 3 fetch_sysroot
  rm -rf "$sysroot.tmp"; mkdir -p "$sysroot.tmp"
  for deb in "$apt_dir"/sysroot-debs/*.deb; do dpkg-deb -x "$deb" "$sysroot.tmp"; done
  # The target's own ldconfig, emulated, writes the sysroot's cache (no chroot, so no root).
  QEMU_LD_PREFIX="$sysroot.tmp" qemu-aarch64-static "$sysroot.tmp/sbin/ldconfig" -X \
    -C "$sysroot.tmp/etc/ld.so.cache" -f "$sysroot.tmp/etc/ld.so.conf"
  dpkg-deb -f "$(ls -1 "$apt_dir"/sysroot-debs/python3.11_*_arm64.deb | tail -1)" Version >"$sysroot.tmp/VERSION"
  rm -rf "$sysroot"; mv "$sysroot.tmp" "$sysroot"
  log "arm64 Python sysroot $(cat "$sysroot/VERSION")"
else
  log "arm64 Python sysroot present ($(cat "$sysroot/VERSION"))"
fi
