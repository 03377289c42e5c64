#!/bin/sh
# Entrypoint of the test bed's stand-in for docker.io/tonistiigi/binfmt (the cluster has
# no internet): the same arguments and output, so kubectl-build's emulator installation
# runs against it unchanged. Assembled by build_binfmt_image.py with busybox and Debian's
# static qemu-user binaries at /usr/bin/qemu-<name>.
#
#   binfmt [--install ARCH[,ARCH...]|all] [--uninstall ARCH|NAME[,...]] [--mount DIR] [--version]
#
# ARCH is a GOARCH (arm64, riscv64, mips64le...) or a platform (linux/arm64). Handlers are
# registered with flags CF (P too when QEMU_PRESERVE_ARGV0 is set), as tonistiigi/binfmt
# does: F makes the kernel open the interpreter now, so it keeps working in every
# container after this pod is gone. One line per architecture on stderr
# ("installing: ARCH OK", "installing: ARCH qemu-NAME already registered", or the error),
# then the JSON status on stdout. Like the original, failures are reported in the log and
# the exit status is 0; only a usage error exits non-zero. Unlike it, the machine's own
# architecture is never registered. The magic/mask patterns come from build_binfmt_image.py.
set -u
MNT=/proc/sys/fs/binfmt_misc
TABLE=/etc/binfmt/handlers  # lines: GOARCH NAME OFFSET MAGIC MASK PLATFORM...
install="" uninstall=""

say() { echo "$*" >&2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --install) install="${2:-}"; shift 2 || shift ;;
    --install=*) install="${1#*=}"; shift ;;
    --uninstall) uninstall="${2:-}"; shift 2 || shift ;;
    --uninstall=*) uninstall="${1#*=}"; shift ;;
    --mount) MNT="${2:-}"; shift 2 || shift ;;
    --mount=*) MNT="${1#*=}"; shift ;;
    --version) say "binfmt/kubectl-build-testbed qemu/$(cat /etc/binfmt/qemu-version)"; exit 0 ;;
    *) say "usage: binfmt [--install ARCH,...|all] [--uninstall ARCH,...] [--mount DIR]"; exit 2 ;;
  esac
done

native_arch() {
  case "$(uname -m)" in
    x86_64) echo amd64 ;; aarch64) echo arm64 ;; armv7l|armv6l) echo arm ;; i?86) echo 386 ;;
    mips64) echo mips64le ;; loongarch64) echo loong64 ;; *) uname -m ;;
  esac
}
native_platforms() {
  case "$(native_arch)" in
    amd64) echo linux/amd64 ;; arm64) echo linux/arm64 ;; arm) echo linux/arm/v7 linux/arm/v6 ;;
    *) echo "linux/$(native_arch)" ;;
  esac
}
entry() { grep "^$1 " "$TABLE"; }  # the table line of GOARCH $1
arch_of() { a="${1#linux/}"; echo "${a%%/*}"; }  # linux/arm/v7 -> arm

install_one() {
  arch=$(arch_of "$1")
  line=$(entry "$arch") || { say "installing: $arch unsupported architecture: $arch"; return; }
  # shellcheck disable=SC2086  # split the table line into its fields (hex escapes, no globs)
  set -- $line
  name=$2 flags=CF
  [ -n "${QEMU_PRESERVE_ARGV0:-}" ] && flags=CFP
  if [ "$arch" = "$(native_arch)" ]; then
    # The original registers it anyway, sending every native program of the machine
    # through QEMU; on the shared test-bed host that is never wanted.
    say "installing: $arch is the native architecture: not registered"; return
  fi
  if [ -e "$MNT/$name" ]; then say "installing: $arch $name already registered"; return; fi
  if printf ':%s:M:%s:%s:%s:/usr/bin/%s:%s' "$name" "$3" "$4" "$5" "$name" "$flags" \
      >"$MNT/register" 2>/tmp/register.err; then
    say "installing: $arch OK"
  elif [ -e "$MNT/$name" ]; then  # a concurrent installer was first
    say "installing: $arch $name already registered"
  else
    say "installing: $arch cannot register \"/usr/bin/$name\" to $MNT/register: $(tr '\n' ' ' </tmp/register.err)"
  fi
}

uninstall_one() {
  # shellcheck disable=SC2086
  line=$(entry "$(arch_of "$1")") && set -- $line && name=$2 || name=$1
  if [ -e "$MNT/$name" ] && echo -1 >"$MNT/$name"; then say "uninstalling: $name OK"
  else say "uninstalling: $name not found"; fi
}

status() {
  # Supported: the native platforms, plus those of every enabled handler that can run in
  # a container (registered with F, or its interpreter present here).
  supported=$(native_platforms) emulators=""
  for f in "$MNT"/*; do
    name=${f##*/}
    case "$name" in register|status|'*') continue ;; esac
    head -n1 "$f" | grep -qx enabled || continue
    emulators="$emulators $name"
    interp=$(sed -n 's/^interpreter //p' "$f")
    grep -q '^flags: .*F' "$f" || [ -x "$interp" ] || continue
    line=$(grep " $name " "$TABLE") || continue
    # shellcheck disable=SC2086
    set -- $line
    shift 5
    supported="$supported $*"
  done
  printf '{\n  "supported": ['
  sep="" ; for p in $supported; do printf '%s\n    "%s"' "$sep" "$p"; sep=","; done
  printf '\n  ],\n  "emulators": ['
  sep="" ; for e in $emulators; do printf '%s\n    "%s"' "$sep" "$e"; sep=","; done
  printf '\n  ]\n}\n'
}

if [ ! -e "$MNT/status" ]; then
  if ! mount -t binfmt_misc binfmt_misc "$MNT" 2>/tmp/mount.err; then
    say "error: cannot mount binfmt_misc filesystem at $MNT: $(tr '\n' ' ' </tmp/mount.err)"
    exit 0
  fi
  trap 'umount "$MNT" 2>/dev/null' EXIT
fi

IFS=,
for a in $uninstall; do IFS=' '; uninstall_one "$a"; IFS=,; done
if [ "$install" = all ]; then
  IFS=' '
  install=$(awk -v n="$(native_arch)" '$1 != n {printf "%s%s", s, $1; s=","}' "$TABLE")
  IFS=,
fi
for a in $install; do IFS=' '; install_one "$a"; IFS=,; done
IFS=' '
status
