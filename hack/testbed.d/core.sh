#!/usr/bin/env bash
# Core test bed: qemu/binfmt emulation, two CNCF registries (plain HTTP and TLS + htpasswd
# auth), seeded base images, and a real buildkitd (OCI worker, runc) on a unix socket,
# plus the oldest buildkitd the client supports (BUILDKIT_OLD_VERSION) on a second socket.
#   hack/testbed.d/core.sh up|down|status|env     (normally through hack/testbed)
# Everything listens on 127.0.0.1 or a unix socket. State: $KB_STATE; cache: $KB_CACHE.
# `up` is idempotent (a warm `up` only checks), every wait is bounded, and `down` stops
# only the processes whose pid files and command lines say they are ours.
#
# Contract: `up` writes $KB_STATE/env (`export K=V` lines) and $KB_STATE/env.json with
#   BUILDKIT_HOST (unix://...), KB_BUILDKIT_TCP (the same daemon on tcp://127.0.0.1:PORT), KB_BUILDCTL, KB_BUILDKITD, KB_BUILDKIT_VERSION,
#   KB_REGISTRY (plain HTTP, 127.0.0.1:5000), KB_REGISTRY_TLS (127.0.0.1:5443, TLS + basic
#   auth), KB_REGISTRY_USER, KB_REGISTRY_PASSWORD, KB_REGISTRY_CA (CA of the TLS registry),
#   KB_DOCKER_CONFIG (dir with a config.json holding the TLS registry's auth), KB_STATE,
#   BUILDKIT_HOST_OLD, KB_BUILDCTL_OLD, KB_BUILDKITD_OLD, KB_BUILDKIT_OLD_VERSION (the old
#   daemon: own socket and root, same registries and mirrors).
# buildkitd resolves docker.io/* and mcr.microsoft.com/* against KB_REGISTRY (mirrors).
# Ports: KB_REGISTRY_PORT, KB_REGISTRY_TLS_PORT, KB_BUILDKIT_TCP_PORT (1234). binfmt registrations stay after `down`
# (host-wide, always with the P flag); KB_BINFMT_RESET=1 makes `down` undo them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KB_REPO="${KB_REPO:-$(cd "$here/../.." && pwd)}"
KB_STATE="${KB_STATE:-$KB_REPO/.testbed}"
KB_CACHE="${KB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-build}"
export KB_REPO KB_STATE KB_CACHE
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

BUILDKIT_VERSION="${BUILDKIT_VERSION:-v0.34.2}"
export BUILDKIT_VERSION
# The oldest supported daemon: the newest v0.12.x release (see hack/build-buildkit.sh).
BUILDKIT_OLD_VERSION="${BUILDKIT_OLD_VERSION:-v0.12.5}"
REG_PORT="${KB_REGISTRY_PORT:-5000}"
REG_TLS_PORT="${KB_REGISTRY_TLS_PORT:-5443}"
REG="127.0.0.1:$REG_PORT"
REG_TLS="127.0.0.1:$REG_TLS_PORT"
BK_TCP="127.0.0.1:${KB_BUILDKIT_TCP_PORT:-1234}"
REG_USER="testuser"
# Emulated architectures (binfmt names of Debian's qemu-user-static); i386 is added
# only when the host cannot run i386 binaries natively.
EMU_ARCHES=(arm aarch64 ppc64le s390x riscv64)
EXPECT_PLATFORMS=(linux/amd64 linux/386 linux/arm64 linux/arm/v7 linux/arm/v6 linux/ppc64le linux/s390x linux/riscv64)

BK="$KB_STATE/buildkitd"
SOCK="$BK/buildkitd.sock"
BK_OLD="$KB_STATE/buildkitd-old"
SOCK_OLD="$BK_OLD/buildkitd.sock"
CERTS="$KB_STATE/certs"
BINFMT=/proc/sys/fs/binfmt_misc

log() { printf '[core] %s\n' "$*" >&2; }
die() { printf '[core] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1fs", b-a}'; }

# ------------------------------------------------------------------ processes

# ours PIDFILE PATTERN: true when the pid file names a live (non-zombie) process whose
# command line contains PATTERN (protects against pid reuse).
ours() {
  local pid
  [[ -s "$1" ]] || return 1
  pid=$(<"$1")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}
alive() { # non-zombie process exists
  local st
  st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

# start NAME PATTERN LOGFILE CMD...: run CMD as its own session leader, pid -> $KB_STATE/pids/NAME.pid
start() {
  local name=$1 pat=$2 logf=$3; shift 3
  local pidf="$KB_STATE/pids/$name.pid"
  if ours "$pidf" "$pat"; then log "$name already running (pid $(<"$pidf"))"; return 0; fi
  mkdir -p "$KB_STATE/pids" "$(dirname "$logf")"
  setsid "$@" >>"$logf" 2>&1 </dev/null 9>&- &   # 9: the up/down lock, not for daemons
  echo $! >"$pidf"
  local i  # the child needs a moment to exec; give up after 3 s
  for ((i = 0; i < 30; i++)); do ours "$pidf" "$pat" && break; sleep 0.1; done
  ours "$pidf" "$pat" || { tail -20 "$logf" >&2 || true; die "$name failed to start (log: $logf)"; }
  log "$name started (pid $(<"$pidf"))"
}

# stop NAME PATTERN [HOOK]: TERM, wait (bounded), KILL; then the rest of its process group.
# HOOK runs once if the process is still there after 3 s (buildkitd waits for running builds).
stop() {
  local name=$1 pat=$2 hook=${3:-} pidf="$KB_STATE/pids/$1.pid" pid i
  if ! ours "$pidf" "$pat"; then rm -f "$pidf"; return 0; fi
  pid=$(<"$pidf")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    alive "$pid" || break
    if ((i == 30)) && [[ -n "$hook" ]]; then "$hook"; fi
    sleep 0.1
  done
  if alive "$pid"; then log "$name (pid $pid) ignored TERM for 15s: KILL"; kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
  # leftovers of the session we created (same process group id as the leader's pid)
  local p
  for p in $(group_members "$pid"); do kill -KILL "$p" 2>/dev/null || true; done
  rm -f "$pidf"
  log "$name stopped (pid $pid)"
}
group_members() { # pids whose process group is $1
  local s
  for s in /proc/[0-9]*/stat; do
    awk -v g="$1" '{ sub(/^.*\) /, ""); if ($3 == g) { split(FILENAME, a, "/"); print a[3] } }' "$s" 2>/dev/null || true
  done
}

# wait_for SECONDS DESCRIPTION CMD...: poll CMD until it succeeds or time runs out.
wait_for() {
  local t=$1 what=$2 deadline; shift 2
  deadline=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    (( $(date +%s) < deadline )) || return 1
    sleep 0.1
  done
  log "$what ready"
}

# ------------------------------------------------------------------ binfmt / qemu

binfmt_ok() { # NAME: registered, enabled, flags contain P
  local e="$BINFMT/qemu-$1"
  [[ -r "$e" ]] && grep -qx enabled "$e" && grep -Eq '^flags: [A-Z]*P' "$e"
}

binfmt_register() { # NAME: through Debian's update-binfmts, else directly (flags PF)
  local a=$1 e="$BINFMT/qemu-$1" def="/usr/share/binfmts/qemu-$1"
  [[ -f "$def" ]] || die "$def missing (qemu-user-static not installed?)"
  if [[ -e "$e" ]] && ! grep -Eq '^flags: [A-Z]*P' "$e"; then
    # An entry without the P flag makes busybox-style multi-call binaries run the wrong
    # applet: replace it.
    log "qemu-$a is registered without the P flag: replacing it"
    echo -1 >"$e"
  fi
  update-binfmts --enable "qemu-$a" >/dev/null 2>&1 || true
  if ! binfmt_ok "$a"; then
    [[ -e "$e" ]] && echo -1 >"$e"
    local magic mask offset interp
    magic=$(awk '$1=="magic"{print $2}' "$def"); mask=$(awk '$1=="mask"{print $2}' "$def")
    offset=$(awk '$1=="offset"{print $2}' "$def"); interp=$(awk '$1=="interpreter"{print $2}' "$def")
    printf ':qemu-%s:M:%s:%s:%s:%s:PF' "$a" "${offset:-0}" "$magic" "$mask" "$interp" >"$BINFMT/register"
  fi
  binfmt_ok "$a" || die "could not register qemu-$a with the P flag"
  echo "$a" >>"$KB_STATE/binfmt.registered"
}

setup_binfmt() {
  if ! mountpoint -q "$BINFMT"; then
    mount -t binfmt_misc binfmt_misc "$BINFMT"
    touch "$KB_STATE/binfmt.mounted"
    log "mounted binfmt_misc"
  fi
  local arches=("${EMU_ARCHES[@]}") a
  if [[ -e "$BINFMT/qemu-i386" ]] || ! "$KB_CACHE/busybox/i386/bin/busybox" true 2>/dev/null; then
    arches+=(i386)  # not natively runnable here (or already emulated: keep it sane)
  fi
  for a in "${arches[@]}"; do binfmt_ok "$a" || binfmt_register "$a"; done
  log "binfmt: ${arches[*]} registered with flags $(awk '/^flags/{print $2}' "$BINFMT/qemu-aarch64")"
}

# ------------------------------------------------------------------ certificates / auth

setup_certs() {
  mkdir -p "$CERTS"
  if [[ ! -s "$CERTS/ca.crt" || ! -s "$CERTS/server.crt" ]]; then
    local t; t=$(mktemp -d)
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=kubectl-build test bed CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$t/ca.key" -out "$t/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" -keyout "$t/server.key" -out "$t/server.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$t/ext"
    openssl x509 -req -sha256 -days 3650 -in "$t/server.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" \
      -CAcreateserial -extfile "$t/ext" -out "$t/server.crt" 2>/dev/null
    chmod 600 "$t"/*.key
    mv "$t"/ca.key "$t"/ca.crt "$t"/server.key "$t"/server.crt "$CERTS/"
    rm -rf "$t"
    log "generated CA and server certificate in $CERTS"
  fi
  local r="$KB_STATE/registry/tls"
  mkdir -p "$r"
  if [[ ! -s "$r/password" ]]; then
    (umask 077; openssl rand -hex 16 >"$r/password")
  fi
  if [[ ! -s "$r/htpasswd" ]]; then
    htpasswd -Bbn "$REG_USER" "$(<"$r/password")" >"$r/htpasswd"
  fi
  mkdir -p "$KB_STATE/docker"
  (umask 077
   printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REG_TLS" "$(printf '%s:%s' "$REG_USER" "$(<"$r/password")" | base64 -w0)" \
     >"$KB_STATE/docker/config.json")
}

# ------------------------------------------------------------------ registries

registry_config() { # NAME PORT [tls]
  local name=$1 port=$2 r="$KB_STATE/registry/$1"
  mkdir -p "$r/data"
  [[ -s "$r/secret" ]] || (umask 077; openssl rand -hex 16 >"$r/secret")
  {
    echo "version: 0.1"
    echo "log: {level: warn, accesslog: {disabled: true}}"
    echo "storage:"
    echo "  filesystem: {rootdirectory: \"$r/data\"}"
    echo "  delete: {enabled: true}"
    echo "  maintenance: {uploadpurging: {enabled: false}}"
    echo "http:"
    echo "  addr: 127.0.0.1:$port"
    echo "  secret: $(<"$r/secret")"
    if [[ "${3:-}" == tls ]]; then
      echo "  tls: {certificate: \"$CERTS/server.crt\", key: \"$CERTS/server.key\"}"
      echo "auth:"
      echo "  htpasswd: {realm: kubectl-build-testbed, path: \"$r/htpasswd\"}"
    fi
  } >"$r/config.yml.tmp"
  install_config "$r/config.yml" "registry-$name"
}

# install_config FILE DAEMON [STOP-HOOK]: move FILE.tmp over FILE; restart-by-stop DAEMON if it changed.
install_config() {
  if [[ -f "$1" ]] && cmp -s "$1.tmp" "$1"; then rm -f "$1.tmp"; return 0; fi
  if [[ -f "$1" ]]; then
    log "$2 configuration changed"
    stop "$2" "$1" "${3:-}"
    if [[ "$2" == buildkitd* ]]; then delete_containers "$(dirname "$1")"; unmount_state "$(dirname "$1")"; fi
  fi
  mv "$1.tmp" "$1"
}

reg_up_plain() { curl -fsS -o /dev/null "http://$REG/v2/"; }
reg_up_tls() { # 401 without credentials means it answers with auth on
  [[ "$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$CERTS/ca.crt" "https://$REG_TLS/v2/")" == 401 ]]
}

start_registries() {
  registry_config plain "$REG_PORT"
  registry_config tls "$REG_TLS_PORT" tls
  start registry-plain "$KB_STATE/registry/plain/config.yml" "$KB_STATE/registry/plain/log" \
    docker-registry serve "$KB_STATE/registry/plain/config.yml"
  start registry-tls "$KB_STATE/registry/tls/config.yml" "$KB_STATE/registry/tls/log" \
    docker-registry serve "$KB_STATE/registry/tls/config.yml"
  wait_for 15 "registry http://$REG" reg_up_plain || { tail -5 "$KB_STATE/registry/plain/log" >&2; die "plain registry not answering"; }
  wait_for 15 "registry https://$REG_TLS (auth)" reg_up_tls || { tail -5 "$KB_STATE/registry/tls/log" >&2; die "TLS registry not answering"; }
}

# Seeded images: they are built once into a scratch registry (own storage, free port) whose
# storage is then kept in $KB_CACHE/registry-seed/<key> (key: seed script, busybox and Go
# versions), and merged into the plain registry's storage; a fresh state only copies it.
# The cache therefore holds exactly the seeded images, never what tests pushed.
seed() {
  local bbdir="$KB_CACHE/busybox" key data="$KB_STATE/registry/plain/data" marker="$KB_STATE/registry/plain/seed-key"
  key=$(python3 "$KB_REPO/hack/seed_images.py" --print-key --busybox-dir "$bbdir")
  local cached="$KB_CACHE/registry-seed/$key"
  if [[ ! -d "$cached/docker" ]]; then
    local tmp="$cached.tmp" port cfg="$KB_STATE/registry/seed-scratch.yml"
    rm -rf "$tmp"; mkdir -p "$tmp"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf '%s\n' "version: 0.1" "log: {level: warn, accesslog: {disabled: true}}" \
      "storage: {filesystem: {rootdirectory: \"$tmp\"}}" "http: {addr: 127.0.0.1:$port}" >"$cfg"
    stop registry-seed "$cfg"   # a leftover of an interrupted run
    start registry-seed "$cfg" "$KB_STATE/registry/seed-scratch.log" docker-registry serve "$cfg"
    python3 "$KB_REPO/hack/seed_images.py" --registry "127.0.0.1:$port" --busybox-dir "$bbdir" --force \
      || { stop registry-seed "$cfg"; die "seeding failed"; }
    stop registry-seed "$cfg"
    mv "$tmp" "$cached"
    local old
    for old in "$KB_CACHE/registry-seed"/*; do [[ "$old" == "$cached" ]] || rm -rf "$old"; done
    log "seeded images cached in $cached"
  fi
  if [[ "$(cat "$marker" 2>/dev/null)" != "$key" ]]; then
    cp -a "$cached/." "$data/"   # merge: keeps whatever else was pushed meanwhile
    echo "$key" >"$marker"
    log "seeded images copied from cache ($key)"
  fi
  python3 "$KB_REPO/hack/seed_images.py" --registry "$REG" --busybox-dir "$bbdir"  # verifies: all present
}

# ------------------------------------------------------------------ buildkitd

# buildkit_toml DIR GC-LIMIT: a daemon's config (root and socket in DIR). The GC limit
# line differs by version: maxUsedSpace since v0.17, gckeepstorage before.
buildkit_toml() {
  cat <<EOF
# generated by hack/testbed.d/core.sh
root = "$1/root"
insecure-entitlements = ["network.host", "security.insecure"]

[grpc]
  address = ["unix://$1/buildkitd.sock"${3:+, \"$3\"}]

[worker.oci]
  enabled = true
  gc = true
  $2

[worker.containerd]
  enabled = false

# Docker Hub and MCR names resolve against the local plain registry, so Dockerfiles
# stay exactly what users write. A mirror's scheme comes from the mirror's own entry.
[registry."docker.io"]
  mirrors = ["$REG"]

[registry."mcr.microsoft.com"]
  mirrors = ["$REG"]

[registry."$REG"]
  http = true

# http must be explicit: buildkit defaults loopback hosts to plain HTTP otherwise.
[registry."$REG_TLS"]
  http = false
  ca = ["$CERTS/ca.crt"]

[registry."localhost:$REG_TLS_PORT"]
  http = false
  ca = ["$CERTS/ca.crt"]
EOF
}

buildkit_config() {
  mkdir -p "$BK/root"
  # Also on loopback TCP: the clients that have no unix sockets (tests/portability's
  # Windows) reach it there.
  buildkit_toml "$BK" 'maxUsedSpace = "20GB"' "tcp://$BK_TCP" >"$BK/buildkitd.toml.tmp"
  install_config "$BK/buildkitd.toml" buildkitd kill_containers
}

# Build containers of one of our buildkitds ([DIR], default the main one): runc (default
# state root) containers whose bundle lies under that daemon's dir. They run in their
# own sessions, so killing buildkitd does not end them.
our_containers() {
  runc list -f json 2>/dev/null | jq -r --arg p "${1:-$BK}/" '.[]? | select(.bundle | startswith($p)) | .id' 2>/dev/null || true
}
kill_containers() {
  local id
  for id in $(our_containers "${1:-$BK}"); do
    log "killing build container $id"
    runc kill --all "$id" KILL 2>/dev/null || runc kill "$id" KILL 2>/dev/null || true
  done
}
kill_containers_old() { kill_containers "$BK_OLD"; }
delete_containers() {
  local id
  for id in $(our_containers "${1:-$BK}"); do runc delete --force "$id" 2>/dev/null || log "could not delete container $id"; done
}

bk_up() { "$BUILDCTL" --addr "unix://$SOCK" debug workers; }

start_buildkitd() {
  buildkit_config
  start buildkitd "$BK/buildkitd.toml" "$BK/log" "$BUILDKITD" --config "$BK/buildkitd.toml"
  wait_for 60 "buildkitd unix://$SOCK" bk_up || { tail -20 "$BK/log" >&2; die "buildkitd not ready in 60s (log: $BK/log)"; }
  local plats p missing=()
  plats=$("$BUILDCTL" --addr "unix://$SOCK" debug workers -v | awk -F': *' '/^Platforms/{print $2}' | tr -d ' \t')
  for p in "${EXPECT_PLATFORMS[@]}"; do [[ ",$plats," == *",$p,"* ]] || missing+=("$p"); done
  ((${#missing[@]} == 0)) || die "buildkitd worker lacks platforms: ${missing[*]} (has: $plats)"
  log "buildkitd platforms: $plats"
}

# The old daemon: same registries and mirrors, its own root and socket, and a build of
# its own (started in the background by do_up: cold, it compiles while the registries
# are seeded).
start_old_build() {
  mkdir -p "$KB_CACHE/logs"
  OLD_BUILD_LOG="$KB_CACHE/logs/buildkit-$BUILDKIT_OLD_VERSION.log"
  setsid "$KB_REPO/hack/build-buildkit.sh" "$BUILDKIT_OLD_VERSION" >"$OLD_BUILD_LOG" 2>&1 </dev/null 9>&- &
  OLD_BUILD_PID=$!
  # an `up` that dies meanwhile must not leave the compiler running
  trap 'kill -- -"$OLD_BUILD_PID" 2>/dev/null || true' EXIT
}
wait_old_build() {
  wait "$OLD_BUILD_PID" || { tail -20 "$OLD_BUILD_LOG" >&2; die "buildkit $BUILDKIT_OLD_VERSION build failed (log: $OLD_BUILD_LOG)"; }
  trap - EXIT
  [[ -x "$BUILDKITD_OLD" && -x "$BUILDCTL_OLD" ]] || die "buildkit build missing in ${BUILDKITD_OLD%/*}"
}

bk_old_up() { "$BUILDCTL_OLD" --addr "unix://$SOCK_OLD" debug workers; }

start_buildkitd_old() {
  mkdir -p "$BK_OLD/root"
  buildkit_toml "$BK_OLD" 'gckeepstorage = "10GB"' >"$BK_OLD/buildkitd.toml.tmp"
  install_config "$BK_OLD/buildkitd.toml" buildkitd-old kill_containers_old
  start buildkitd-old "$BK_OLD/buildkitd.toml" "$BK_OLD/log" "$BUILDKITD_OLD" --config "$BK_OLD/buildkitd.toml"
  wait_for 60 "buildkitd $BUILDKIT_OLD_VERSION unix://$SOCK_OLD" bk_old_up || { tail -20 "$BK_OLD/log" >&2; die "buildkitd-old not ready in 60s (log: $BK_OLD/log)"; }
  local plats p
  plats=$("$BUILDCTL_OLD" --addr "unix://$SOCK_OLD" debug workers -v | awk -F': *' '/^Platforms/{print $2}' | tr -d ' \t')
  for p in linux/amd64 linux/arm64; do  # what the compatibility tests build for
    [[ ",$plats," == *",$p,"* ]] || die "buildkitd-old worker lacks $p (has: $plats)"
  done
  log "buildkitd-old platforms: $plats"
}

# ------------------------------------------------------------------ env

write_env() {
  local vars=(
    "BUILDKIT_HOST=unix://$SOCK"
    "KB_BUILDKIT_TCP=tcp://$BK_TCP"
    "KB_BUILDCTL=$BUILDCTL"
    "KB_BUILDKITD=$BUILDKITD"
    "KB_BUILDKIT_VERSION=$BUILDKIT_VERSION"
    "KB_REGISTRY=$REG"
    "KB_REGISTRY_TLS=$REG_TLS"
    "KB_REGISTRY_USER=$REG_USER"
    "KB_REGISTRY_PASSWORD=$(<"$KB_STATE/registry/tls/password")"
    "KB_REGISTRY_CA=$CERTS/ca.crt"
    "KB_DOCKER_CONFIG=$KB_STATE/docker"
    "KB_STATE=$KB_STATE"
    "BUILDKIT_HOST_OLD=unix://$SOCK_OLD"
    "KB_BUILDCTL_OLD=$BUILDCTL_OLD"
    "KB_BUILDKITD_OLD=$BUILDKITD_OLD"
    "KB_BUILDKIT_OLD_VERSION=$BUILDKIT_OLD_VERSION"
  )
  local v
  for v in "${vars[@]}"; do printf 'export %s=%q\n' "${v%%=*}" "${v#*=}"; done >"$KB_STATE/env.tmp"
  python3 -c 'import json, sys; print(json.dumps(dict(a.split("=", 1) for a in sys.argv[1:]), indent=2))' "${vars[@]}" >"$KB_STATE/env.json.tmp"
  chmod 600 "$KB_STATE/env.tmp" "$KB_STATE/env.json.tmp"
  mv "$KB_STATE/env.tmp" "$KB_STATE/env"
  mv "$KB_STATE/env.json.tmp" "$KB_STATE/env.json"
}

# ------------------------------------------------------------------ actions

unmount_state() { # everything mounted under [DIR, default $KB_STATE] (buildkitd leftovers), deepest first
  local m
  { awk '{print $5}' /proc/self/mountinfo | grep -F "${1:-$KB_STATE}/" || true; } | sort -r | while read -r m; do
    m=$(printf '%b' "$m")
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done
}

do_up() {
  local t0 t; t0=$(now)
  [[ $(id -u) -eq 0 ]] || die "the core test bed needs root (binfmt_misc, runc)"
  command -v go >/dev/null || die "Go (>= 1.26.3) must be on PATH: it builds buildkit and is the seeded golang image's toolchain"
  mkdir -p "$KB_STATE" "$KB_CACHE"
  t=$(now); "$KB_REPO/hack/install-deps.sh"; log "deps: $(since "$t")"
  t=$(now)
  local bin; bin=$("$KB_REPO/hack/build-buildkit.sh" | tail -1)
  BUILDKITD="$bin/buildkitd"; BUILDCTL="$bin/buildctl"
  [[ -x "$BUILDKITD" && -x "$BUILDCTL" ]] || die "buildkit build missing in $bin"
  log "buildkit $BUILDKIT_VERSION: $(since "$t")"
  local t_old; t_old=$(now); start_old_build
  t=$(now); setup_binfmt; log "binfmt: $(since "$t")"
  t=$(now); setup_certs; start_registries; log "registries: $(since "$t")"
  t=$(now); seed; log "seed: $(since "$t")"
  t=$(now); start_buildkitd; log "buildkitd: $(since "$t")"
  t=$(now); wait_old_build; log "buildkit $BUILDKIT_OLD_VERSION build: $(since "$t_old") (waited $(since "$t"))"
  t=$(now); start_buildkitd_old; log "buildkitd-old: $(since "$t")"
  write_env
  log "up in $(since "$t0"); env: $KB_STATE/env ($KB_STATE/env.json)"
}

do_down() {
  local t0; t0=$(now)
  stop buildkitd-old "$BK_OLD/buildkitd.toml" kill_containers_old
  delete_containers "$BK_OLD"
  stop buildkitd "$BK/buildkitd.toml" kill_containers
  delete_containers
  unmount_state
  stop registry-tls "$KB_STATE/registry/tls/config.yml"
  stop registry-plain "$KB_STATE/registry/plain/config.yml"
  stop registry-seed "$KB_STATE/registry/seed-scratch.yml"
  rm -f "$SOCK" "$SOCK_OLD" "$KB_STATE/env" "$KB_STATE/env.json"
  # binfmt registrations are host-wide and harmless (always with the P flag); other test
  # bed parts may rely on them. KB_BINFMT_RESET=1 undoes what `up` registered/mounted.
  if [[ "${KB_BINFMT_RESET:-0}" == 1 ]]; then
    local a
    for a in $(sort -u "$KB_STATE/binfmt.registered" 2>/dev/null); do
      [[ -e "$BINFMT/qemu-$a" ]] && echo -1 >"$BINFMT/qemu-$a" && log "unregistered qemu-$a"
    done
    rm -f "$KB_STATE/binfmt.registered"
    if [[ -e "$KB_STATE/binfmt.mounted" ]]; then umount "$BINFMT" && log "unmounted binfmt_misc"; rm -f "$KB_STATE/binfmt.mounted"; fi
  fi
  log "down in $(since "$t0")"
}

do_status() {
  local rc=0 name pat addr
  for spec in "buildkitd|$BK/buildkitd.toml|unix://$SOCK" \
              "buildkitd-old|$BK_OLD/buildkitd.toml|unix://$SOCK_OLD" \
              "registry-plain|$KB_STATE/registry/plain/config.yml|http://$REG" \
              "registry-tls|$KB_STATE/registry/tls/config.yml|https://$REG_TLS"; do
    IFS='|' read -r name pat addr <<<"$spec"
    if ours "$KB_STATE/pids/$name.pid" "$pat"; then
      printf '%-15s running  pid %-8s %s\n' "$name" "$(<"$KB_STATE/pids/$name.pid")" "$addr"
    else
      printf '%-15s stopped\n' "$name"; rc=3
    fi
  done
  local regd=()
  for e in "$BINFMT"/qemu-*; do [[ -e "$e" ]] && regd+=("${e##*/qemu-}:$(awk '/^flags/{print $2}' "$e")"); done
  printf '%-15s %s\n' binfmt "${regd[*]:-none}"
  [[ -s "$KB_STATE/env" ]] && printf '%-15s %s\n' env "$KB_STATE/env"
  return $rc
}

# Paths of the buildkit binaries (for status/env without building).
BUILDKITD="$KB_CACHE/buildkit-$BUILDKIT_VERSION/bin/buildkitd"
BUILDCTL="$KB_CACHE/buildkit-$BUILDKIT_VERSION/bin/buildctl"
BUILDKITD_OLD="$KB_CACHE/buildkit-$BUILDKIT_OLD_VERSION/bin/buildkitd"
BUILDCTL_OLD="$KB_CACHE/buildkit-$BUILDKIT_OLD_VERSION/bin/buildctl"

lock() { # serialize concurrent up/down on the same state (bounded wait)
  mkdir -p "$KB_STATE"
  exec 9>"$KB_STATE/.lock"
  flock -w 900 9 || die "another up/down holds $KB_STATE/.lock"
}

case "${1:-status}" in
  up) lock; do_up ;;
  down) lock; do_down ;;
  status) do_status ;;
  env) [[ -s "$KB_STATE/env" ]] || die "no $KB_STATE/env: run hack/testbed up core"; cat "$KB_STATE/env" ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
