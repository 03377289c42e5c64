#!/usr/bin/env bash
# Test bed, part 2: a real single-node Kubernetes cluster on this machine.
#   hack/testbed up|down|status|env cluster
#
# Pieces (all cached in $KB_CACHE by pinned version, state in $KB_STATE/cluster):
#   etcd 3.5 (Debian trixie package, extracted)        127.0.0.1:23790 (peer 23800)
#   kube-apiserver/controller-manager/scheduler/kubelet, Go-built from the
#   k8s.io/kubernetes module (hack/cluster/build-kubernetes.sh)
#                                                       apiserver https://127.0.0.1:6443
#   containerd 1.7 (trixie, extracted) + runc (Debian) with its own root/state/socket
#   CNI: Debian's bridge/host-local/loopback plugins; the bridge kb0 (10.244.0.1/24)
#   is created here; pods get 10.244.0.10-250, no default route, no NAT, no forwarding.
#   The node's InternalIP is the bridge address 10.244.0.1 (the kubelet refuses a
#   loopback node IP); the kubelet's API listens there only.
# Registries: the node's containerd pulls from the core registries on 127.0.0.1
# (docker.io is mirrored to the plain registry 127.0.0.1:5000; the TLS registry's CA
# is trusted). Pods that must talk to a registry themselves (builders pushing) use
# hostNetwork, where 127.0.0.1 is the node's loopback.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KB_REPO="${KB_REPO:-$(cd "$here/../.." && pwd)}"
KB_STATE="${KB_STATE:-$KB_REPO/.testbed}"
KB_CACHE="${KB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-build}"
export KB_REPO KB_STATE KB_CACHE
export PATH="/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

K8S_VERSION="${KB_K8S_VERSION:-v1.33.13}"
CONTAINERD_DEB="1.7.24~ds1-6+deb13u1"
ETCD_DEB="3.5.16-4"
BUILDKIT_VERSION="${KB_BUILDKIT_VERSION:-v0.34.2}"
PAUSE_IMAGE="registry.k8s.io/pause:3.8"
SERVICE_CIDR=10.96.0.0/16
API_PORT="${KB_API_PORT:-6443}"
ETCD_PORT=23790
ETCD_PEER_PORT=23800

C="$KB_STATE/cluster"
PKI="$C/pki"
RUN="$C/run"
LOGS="$C/logs"
KUBECONFIG_ADMIN="$C/kubeconfig"

# Nodes: "main" always; "arm64" (stretch, see hack/cluster/README.md: a linux/arm64
# kubelet run through binfmt/qemu-user, with its own amd64 containerd, root dir and
# bridge) when KB_CLUSTER_ARM64_NODE=1 at `up` time (remembered in $C/arm64-node).
select_node() {  # select_node main|arm64: sets the per-node variables
  case "$1" in
    main) NODE="${KB_NODE_NAME:-kb-node}"; SFX=""; NET=0; NODE_LABELS="" ;;
    arm64) NODE="${KB_NODE_NAME:-kb-node}-arm64"; SFX="-arm64"; NET=1
      NODE_LABELS="kb-testbed/runtime-arch=amd64" ;;
    *) die "unknown node $1" ;;
  esac
  BRIDGE="kb$NET"; NODE_IP="10.244.$NET.1"; POD_SUBNET="10.244.$NET.0/24"
  POD_RANGE_START="10.244.$NET.10"; POD_RANGE_END="10.244.$NET.250"
  CGROUP_PARENT="kbtestbed$SFX"
  CTRD="$C/containerd$SFX"; SOCK="$CTRD/containerd.sock"
  KDIR="$C/kubelet$SFX"; CNIDIR="$C/cni$SFX"; KUBELET_KUBECONFIG="$C/kubelet$SFX.kubeconfig"
  HEALTHZ_PORT=$((10248 + 20 * NET))
  P_CTRD="containerd$SFX"; P_KUBELET="kubelet$SFX"
}
NODES=(main)

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
T0="$(now)"
elapsed() { awk -v a="$T0" -v b="$(now)" 'BEGIN{printf "%.1fs", b-a}'; }

# ---------------------------------------------------------------- processes
pidfile() { echo "$RUN/$1.pid"; }
# A PID is ours only if its command line names our state directory.
ours() {
  local pid="$1"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$C/"
}
running() { local f; f="$(pidfile "$1")"; [[ -f "$f" ]] && ours "$(cat "$f")"; }
start() {
  local name="$1"; shift
  mkdir -p "$RUN" "$LOGS"
  if running "$name"; then log "$name already running (pid $(cat "$(pidfile "$name")"))"; return 0; fi
  echo "=== $(date -u +%FT%TZ) start: $*" >> "$LOGS/$name.log"
  setsid "$@" >> "$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$(pidfile "$name")"
}
stop_pid() {  # stop_pid PID NAME: TERM, wait up to 10 s, then KILL
  local pid="$1" name="$2" i
  ours "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do ours "$pid" || return 0; sleep 0.1; done
  log "$name (pid $pid) did not stop on TERM; KILL"
  kill -KILL "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do [[ -d /proc/$pid ]] || return 0; sleep 0.1; done
}
stop() {
  local name="$1" f; f="$(pidfile "$name")"
  [[ -f "$f" ]] || return 0
  stop_pid "$(cat "$f")" "$name"
  rm -f "$f"
}
wait_for() {  # wait_for SECONDS DESC CMD...
  local secs="$1" desc="$2"; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) >= deadline )); then die "timed out after ${secs}s waiting for $desc (logs: $LOGS)"; fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------- inputs
ensure_packages() {
  local missing=() p
  for p in runc containernetworking-plugins openssl iproute2 gcc libc6-dev busybox-static curl; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if (( ${#missing[@]} )); then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  fi
  command -v kubectl >/dev/null || die "kubectl not found in PATH"
}

resolve_binaries() {
  K8S_BIN="$KB_CACHE/kubernetes-$K8S_VERSION/bin"
  local c have=1
  for c in kube-apiserver kube-controller-manager kube-scheduler kubelet; do [[ -x "$K8S_BIN/$c" ]] || have=0; done
  if [[ $have == 0 ]]; then
    log "building Kubernetes $K8S_VERSION (cold: 15-40 min; log $KB_CACHE/logs/k8s-build.log)"
    mkdir -p "$KB_CACHE/logs"
    K8S_BIN="$("$KB_REPO/hack/cluster/build-kubernetes.sh" 2> >(tee -a "$KB_CACHE/logs/k8s-build.log" | tail -5 >&2))"
  fi
  CTRD_ROOT="$("$KB_REPO/hack/cluster/fetch-trixie.sh" containerd "$CONTAINERD_DEB")"
  ETCD_ROOT="$("$KB_REPO/hack/cluster/fetch-trixie.sh" etcd-server "$ETCD_DEB")"
  CTRD_BIN="$CTRD_ROOT/usr/bin"
  ETCD_BIN="$ETCD_ROOT/usr/bin/etcd"
  CTR="$CTRD_BIN/ctr"
  RUNC="$(command -v runc)"
  CNI_BIN=/usr/lib/cni
  [[ -x "$CNI_BIN/bridge" ]] || die "CNI plugins missing in $CNI_BIN"
}

# ---------------------------------------------------------------- pki
gen_key() { [[ -f "$1" ]] || openssl genrsa -out "$1" 2048 2>/dev/null; }
gen_cert() {  # gen_cert NAME SUBJECT [SAN] -> $PKI/NAME.{key,crt} signed by the CA
  local name="$1" subj="$2" san="${3:-}" ext="$PKI/$1.ext"
  [[ -f "$PKI/$name.crt" ]] && return 0
  gen_key "$PKI/$name.key"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [[ -n "$san" ]]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"
    else echo "extendedKeyUsage=clientAuth"; fi
  } > "$ext"
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}
ensure_pki() {
  mkdir -p "$PKI"; chmod 700 "$PKI"
  if [[ ! -f "$PKI/ca.crt" ]]; then
    gen_key "$PKI/ca.key"
    openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=kubectl-build-testbed-ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out "$PKI/ca.crt" 2>/dev/null
  fi
  gen_cert apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:10.96.0.1,IP:10.244.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  gen_cert admin "/O=system:masters/CN=kubernetes-admin"
  local n
  for n in "${NODES[@]}"; do
    select_node "$n"
    gen_cert "kubelet-$NODE" "/O=system:nodes/CN=system:node:$NODE"
    gen_cert kubelet-serving-"$NODE" "/CN=$NODE" "IP:$NODE_IP,IP:127.0.0.1,DNS:$NODE,DNS:localhost"
  done
  select_node main
  gen_cert apiserver-kubelet-client "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client"
  gen_cert controller-manager "/CN=system:kube-controller-manager"
  gen_cert scheduler "/CN=system:kube-scheduler"
  gen_cert front-proxy-client "/CN=front-proxy-client"
  if [[ ! -f "$PKI/sa.key" ]]; then
    openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
}
kubeconfig() {  # kubeconfig FILE CERTNAME USER
  local f="$1" cert="$2" user="$3"
  [[ -f "$f" ]] && return 0
  local tmp="$f.tmp"; rm -f "$tmp"
  KUBECONFIG="$tmp" kubectl config set-cluster kb-testbed --server="https://127.0.0.1:$API_PORT" \
    --certificate-authority="$PKI/ca.crt" --embed-certs=true >/dev/null
  KUBECONFIG="$tmp" kubectl config set-credentials "$user" --client-certificate="$PKI/$cert.crt" \
    --client-key="$PKI/$cert.key" --embed-certs=true >/dev/null
  KUBECONFIG="$tmp" kubectl config set-context kb-testbed --cluster=kb-testbed --user="$user" >/dev/null
  KUBECONFIG="$tmp" kubectl config use-context kb-testbed >/dev/null
  chmod 600 "$tmp"; mv "$tmp" "$f"
}
ensure_kubeconfigs() {
  kubeconfig "$KUBECONFIG_ADMIN" admin kubernetes-admin
  local n
  for n in "${NODES[@]}"; do
    select_node "$n"
    kubeconfig "$KUBELET_KUBECONFIG" "kubelet-$NODE" "system:node:$NODE"
  done
  select_node main
  kubeconfig "$C/controller-manager.kubeconfig" controller-manager system:kube-controller-manager
  kubeconfig "$C/scheduler.kubeconfig" scheduler system:kube-scheduler
}
kc() { kubectl --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

# ---------------------------------------------------------------- network
ensure_bridge() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr show dev "$BRIDGE" | grep -qF "inet $NODE_IP/" || ip addr add "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  mkdir -p "$CNIDIR/net.d" "$CNIDIR/ipam"
  cat > "$CNIDIR/net.d/10-kb-testbed.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "kb-testbed",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": false,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CNIDIR/ipam",
        "ranges": [[{"subnet": "$POD_SUBNET", "rangeStart": "$POD_RANGE_START", "rangeEnd": "$POD_RANGE_END", "gateway": "$NODE_IP"}]]
      }
    }
  ]
}
EOF
}

# ---------------------------------------------------------------- cgroups
CGROUP_SUBSYS=(cpu cpuacct cpuset memory pids blkio devices freezer hugetlb systemd perf_event net_cls net_prio)
ensure_cgroup_parent() {
  local s d
  for s in "${CGROUP_SUBSYS[@]}"; do
    [[ -d /sys/fs/cgroup/$s ]] || continue
    d="/sys/fs/cgroup/$s/$CGROUP_PARENT"
    mkdir -p "$d" 2>/dev/null || continue
    if [[ $s == cpuset ]]; then
      [[ -s $d/cpuset.cpus && -n "$(cat "$d/cpuset.cpus")" ]] || cat /sys/fs/cgroup/cpuset/cpuset.cpus > "$d/cpuset.cpus"
      [[ -n "$(cat "$d/cpuset.mems")" ]] || cat /sys/fs/cgroup/cpuset/cpuset.mems > "$d/cpuset.mems"
    fi
  done
}
cgroup_pids() {  # every PID in our cgroup subtree
  local s
  for s in pids memory cpu; do
    if [[ -d /sys/fs/cgroup/$s/$CGROUP_PARENT ]]; then
      find "/sys/fs/cgroup/$s/$CGROUP_PARENT" -name cgroup.procs -exec cat {} + 2>/dev/null || true
    fi
  done | sort -un
}
remove_cgroups() {
  local s
  for s in "${CGROUP_SUBSYS[@]}" unified; do
    [[ -d /sys/fs/cgroup/$s/$CGROUP_PARENT ]] || continue
    find "/sys/fs/cgroup/$s/$CGROUP_PARENT" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

# ---------------------------------------------------------------- etcd + control plane
# A port taken by someone else's process (e.g. a test bed of another checkout) is a
# clear error, never a silent clash.
check_port_free() {  # check_port_free NAME PORT
  local name="$1" port="$2" line
  running "$name" && return 0
  line="$(ss -Hltnp "sport = :$port" 2>/dev/null | head -1)"
  [[ -z "$line" ]] || die "port $port (for $name) is already in use: $line -- another test bed running? (hack/testbed down cluster there)"
}
check_ports() {
  check_port_free etcd "$ETCD_PORT"; check_port_free etcd "$ETCD_PEER_PORT"
  check_port_free kube-apiserver "$API_PORT"
  check_port_free kube-controller-manager 10257; check_port_free kube-scheduler 10259
  local n
  for n in "${NODES[@]}"; do select_node "$n"; check_port_free "$P_KUBELET" "$HEALTHZ_PORT"; done
  select_node main
}

start_etcd() {
  mkdir -p "$C/etcd"; chmod 700 "$C/etcd"
  start etcd "$ETCD_BIN" --name kb-testbed --data-dir "$C/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "kb-testbed=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "" \
    --unsafe-no-fsync --snapshot-count 10000 --quota-backend-bytes 4294967296 --log-level warn
}
etcd_healthy() { curl -fsS "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }

start_apiserver() {
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --secure-port="$API_PORT" --advertise-address="$NODE_IP" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true \
    --client-ca-file="$PKI/ca.crt" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --requestheader-client-ca-file="$PKI/ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --profiling=false --event-ttl=1h --endpoint-reconciler-type=none -v=1
}
apiserver_ready() { kc get --raw /readyz >/dev/null; }
start_controller_manager() {
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$C/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$C/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$C/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10257 \
    --root-ca-file="$PKI/ca.crt" --service-account-private-key-file="$PKI/sa.key" \
    --use-service-account-credentials=true \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --leader-elect=false --profiling=false -v=1
}
start_scheduler() {
  start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig="$C/scheduler.kubeconfig" \
    --authentication-kubeconfig="$C/scheduler.kubeconfig" \
    --authorization-kubeconfig="$C/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false --profiling=false -v=1
}
apply_rbac() {
  kc apply -f - >/dev/null <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kb-testbed:apiserver-kubelet-client
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kubelet-api-admin
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: kube-apiserver-kubelet-client
EOF
}

# ---------------------------------------------------------------- containerd
core_env() {  # reads core's env.json (registries, CA) when present
  local f="$KB_STATE/env.json"
  REG_PLAIN=127.0.0.1:5000; REG_TLS=127.0.0.1:5443; REG_CA="$KB_STATE/certs/ca.crt"
  if [[ -f "$f" ]]; then
    eval "$(python3 - "$f" <<'EOF'
import json, shlex, sys
d = json.load(open(sys.argv[1]))
for k, v in (("REG_PLAIN", "KB_REGISTRY"), ("REG_TLS", "KB_REGISTRY_TLS"), ("REG_CA", "KB_REGISTRY_CA")):
    if d.get(v):
        print(f"{k}={shlex.quote(str(d[v]))}")
EOF
)"
  fi
  REG_PLAIN="${REG_PLAIN#http://}"; REG_TLS="${REG_TLS#https://}"
}
write_containerd_config() {
  mkdir -p "$CTRD/root" "$CTRD/state" "$CTRD/certs.d" "$CTRD/opt"
  local h
  # docker.io (and registry.k8s.io) resolve through the local plain registry.
  for h in docker.io registry.k8s.io; do
    mkdir -p "$CTRD/certs.d/$h"
    cat > "$CTRD/certs.d/$h/hosts.toml" <<EOF
server = "http://$REG_PLAIN"
[host."http://$REG_PLAIN"]
  capabilities = ["pull", "resolve"]
EOF
  done
  for h in "$REG_PLAIN" "localhost:${REG_PLAIN##*:}"; do
    mkdir -p "$CTRD/certs.d/$h"
    printf 'server = "http://%s"\n[host."http://%s"]\n  capabilities = ["pull", "resolve", "push"]\n' "$h" "$h" \
      > "$CTRD/certs.d/$h/hosts.toml"
  done
  for h in "$REG_TLS" "localhost:${REG_TLS##*:}"; do
    mkdir -p "$CTRD/certs.d/$h"
    printf 'server = "https://%s"\n[host."https://%s"]\n  capabilities = ["pull", "resolve", "push"]\n  ca = "%s"\n' \
      "$h" "$h" "$REG_CA" > "$CTRD/certs.d/$h/hosts.toml"
  done
  cat > "$CTRD/config.toml" <<EOF
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = ""
  level = "${KB_CONTAINERD_LOG_LEVEL:-warn}"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_selinux = false
  # This machine's root lacks CAP_SYS_RESOURCE, so the kubelet's -998 for sandboxes
  # cannot be applied: clamp OOM scores to containerd's own (as for rootless).
  restrict_oom_score_adj = true
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$RUNC"
        Root = "$CTRD/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$CNIDIR/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$CTRD/certs.d"
EOF
}
start_containerd() {
  write_containerd_config
  # The shim is looked up in PATH: make it the trixie one next to containerd.
  start "$P_CTRD" env PATH="$CTRD_BIN:$PATH" "$CTRD_BIN/containerd" --config "$CTRD/config.toml"
}
ctr_() { "$CTR" -a "$SOCK" -n k8s.io "$@"; }
ensure_pause_image() {
  if ctr_ images ls -q 2>/dev/null | grep -qxF "$PAUSE_IMAGE"; then return 0; fi
  local tar="$KB_CACHE/images/pause-3.8.tar"
  mkdir -p "$KB_CACHE/images"
  [[ -f "$tar" ]] || python3 "$KB_REPO/hack/cluster/small_images.py" pause "$tar" "$PAUSE_IMAGE"
  ctr_ images import "$tar" >/dev/null
  ctr_ images label "$PAUSE_IMAGE" io.cri-containerd.pinned=pinned >/dev/null 2>&1 || true
}

# ---------------------------------------------------------------- kubelet
start_kubelet() {
  mkdir -p "$KDIR/root" "$KDIR/pod-logs" "$KDIR/volume-plugins"
  cat > "$KDIR/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $HEALTHZ_PORT
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $PKI/ca.crt
authorization:
  mode: Webhook
tlsCertFile: $PKI/kubelet-serving-$NODE.crt
tlsPrivateKeyFile: $PKI/kubelet-serving-$NODE.key
containerRuntimeEndpoint: unix://$SOCK
imageServiceEndpoint: unix://$SOCK
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_PARENT
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 87600h
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
podLogsDir: $KDIR/pod-logs
volumePluginDir: $KDIR/volume-plugins
resolvConf: /etc/resolv.conf
serializeImagePulls: false
maxPods: 110
podPidsLimit: -1
registerNode: true
makeIPTablesUtilChains: false
localStorageCapacityIsolation: true
protectKernelDefaults: false
syncFrequency: 10s
nodeStatusUpdateFrequency: 5s
runtimeRequestTimeout: 10m
streamingConnectionIdleTimeout: 1h
EOF
  local labels=()
  [[ -z "$NODE_LABELS" ]] || labels=(--node-labels="$NODE_LABELS")
  local kubelet="$K8S_BIN/kubelet"
  if [[ $NET == 1 ]]; then
    # The kubelet labels its node with its own GOARCH (and reconciles that label), so
    # this node runs the linux/arm64 kubelet build, executed through binfmt_misc/qemu.
    [[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || die "arm64 node needs the qemu-aarch64 binfmt (hack/testbed up core)"
    kubelet="$(KB_K8S_GOARCH=arm64 KB_K8S_COMMANDS=kubelet "$KB_REPO/hack/cluster/build-kubernetes.sh")/kubelet"
  fi
  start "$P_KUBELET" "$kubelet" --config="$KDIR/config.yaml" \
    --kubeconfig="$KUBELET_KUBECONFIG" --root-dir="$KDIR/root" \
    --hostname-override="$NODE" --node-ip="$NODE_IP" "${labels[@]}" -v=1
}
node_ready() {
  [[ "$(kc get node "$NODE" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}
default_sa() { kc -n default get serviceaccount default >/dev/null; }

# ---------------------------------------------------------------- buildkit image
ensure_buildkit_image() {
  local py="$KB_REPO/hack/cluster/build_buildkit_image.py"
  [[ -f "$py" ]] || return 0
  python3 "$py" --registry "$REG_PLAIN" --ensure >&2 || log "WARNING: BuildKit image not pushed (see above)"
}

# ---------------------------------------------------------------- binfmt installer image
# kubectl-build installs QEMU emulators with docker.io/tonistiigi/binfmt:latest (one-off
# privileged pod); the node pulls a local stand-in through its docker.io mirror.
BINFMT_IMAGE="docker.io/tonistiigi/binfmt:latest"
ensure_binfmt_image() {
  local py="$KB_REPO/hack/cluster/build_binfmt_image.py" out n
  [[ -f "$py" ]] || return 0
  if ! out="$(python3 "$py" --registry "$REG_PLAIN" --ensure)"; then
    log "WARNING: binfmt installer image not pushed (see above)"; return 0
  fi
  [[ "$out" == *pushed* ]] || return 0
  # A new recipe under the same tag: the nodes must pull it again, not keep an old copy.
  for n in "${NODES[@]}"; do select_node "$n"; ctr_ images rm "$BINFMT_IMAGE" >/dev/null 2>&1 || true; done
  select_node main
}

write_env() {
  # $KB_STATE/cluster/env (sourceable, "export K=V") and env.json (same keys)
  local vars=(
    "KUBECONFIG=$KUBECONFIG_ADMIN"
    "KB_CLUSTER_NODE=$NODE"
    "KB_CLUSTER_NODE_IP=$NODE_IP"
    "KB_CLUSTER_API=https://127.0.0.1:$API_PORT"
    "KB_CLUSTER_K8S_VERSION=$K8S_VERSION"
    "KB_CLUSTER_CONTAINERD_SOCK=$SOCK"
    "KB_CLUSTER_CTR=$CTR"
    "KB_CLUSTER_BUILDKIT_IMAGE=docker.io/moby/buildkit:$BUILDKIT_VERSION"
    "KB_CLUSTER_BUILDKIT_IMAGE_ROOTLESS=docker.io/moby/buildkit:$BUILDKIT_VERSION-rootless"
    "KB_CLUSTER_BINFMT_IMAGE=$BINFMT_IMAGE"
  )
  if [[ " ${NODES[*]} " == *" arm64 "* ]]; then
    select_node arm64
    vars+=("KB_CLUSTER_ARM64_NODE=$NODE" "KB_CLUSTER_ARM64_NODE_IP=$NODE_IP")
    select_node main
  fi
  local v
  for v in "${vars[@]}"; do printf 'export %s=%q\n' "${v%%=*}" "${v#*=}"; done > "$C/env.tmp"
  python3 -c 'import json, sys; print(json.dumps(dict(a.split("=", 1) for a in sys.argv[1:]), indent=2))' \
    "${vars[@]}" > "$C/env.json.tmp"
  mv "$C/env.tmp" "$C/env"; mv "$C/env.json.tmp" "$C/env.json"
}

# ---------------------------------------------------------------- actions
do_up() {
  [[ $(id -u) == 0 ]] || die "the cluster test bed needs root"
  mkdir -p "$C" "$RUN" "$LOGS"
  if [[ -x "$KB_REPO/hack/testbed.d/core.sh" && -z "${KB_CLUSTER_SKIP_CORE:-}" ]]; then
    "$KB_REPO/hack/testbed" up core >&2 || log "WARNING: core test bed did not come up; registries may be missing"
    log "core up ($(elapsed))"
  fi
  ensure_packages
  resolve_binaries
  log "binaries ready ($(elapsed))"
  core_env
  if [[ "${KB_CLUSTER_ARM64_NODE:-}" == 1 || -f "$C/arm64-node" ]]; then NODES=(main arm64); touch "$C/arm64-node"; fi
  ensure_pki
  ensure_kubeconfigs
  check_ports
  local n
  for n in "${NODES[@]}"; do select_node "$n"; ensure_bridge; ensure_cgroup_parent; start_containerd; done
  select_node main
  ensure_shared_buildkit_dir
  start_etcd
  wait_for 30 etcd etcd_healthy
  start_apiserver
  for n in "${NODES[@]}"; do
    select_node "$n"; wait_for 60 "$P_CTRD" "$CTR" -a "$SOCK" version; ensure_pause_image
  done
  select_node main
  wait_for 90 kube-apiserver apiserver_ready
  log "apiserver ready ($(elapsed))"
  apply_rbac
  start_controller_manager
  start_scheduler
  for n in "${NODES[@]}"; do select_node "$n"; start_kubelet; done
  select_node main
  write_env
  for n in "${NODES[@]}"; do
    select_node "$n"; wait_for 120 "node $NODE Ready" node_ready
    # Where this node's containerd lives (not the standard /run/containerd, /var/lib/containerd):
    # the annotations kubectl-build reads for builders that use the node's containerd.
    kc annotate --overwrite node "$NODE" "kubectl-build.dev/containerd-sock=$SOCK" \
      "kubectl-build.dev/containerd-root=$CTRD/root" "kubectl-build.dev/containerd-state=$CTRD/state" >/dev/null
  done
  if [[ " ${NODES[*]} " != *" arm64 "* ]]; then  # a second node of an earlier `up` is gone
    kc delete node "${KB_NODE_NAME:-kb-node}-arm64" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  fi
  select_node main
  wait_for 60 "default service account" default_sa
  log "node(s) Ready ($(elapsed))"
  ensure_buildkit_image
  ensure_binfmt_image
  log "up in $(elapsed); KUBECONFIG=$KUBECONFIG_ADMIN"
  echo "$(date -u +%FT%TZ) up $(elapsed)" >> "$C/timings.log"
}

kill_pod_processes() {
  local pids pid i
  for i in 1 2 3; do
    pids="$(cgroup_pids)"
    [[ -n "$pids" ]] || return 0
    for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
    sleep 0.3
  done
}
our_shims() {
  local p
  for p in /proc/[0-9]*; do
    { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null | grep -qE "containerd-shim.* -address $SOCK( |$)" && echo "${p#/proc/}"
  done
  return 0
}
# Builders with the containerd worker keep their state under /var/lib/buildkit with
# Bidirectional propagation, which needs a shared mount there (systemd nodes have one;
# this host's / is private). Bind it onto itself once and mark it shared.
BK_SHARED=/var/lib/buildkit
ensure_shared_buildkit_dir() {
  mkdir -p "$BK_SHARED"
  if awk -v p="$BK_SHARED" '$5 == p && / shared:/ {f=1} END {exit !f}' /proc/self/mountinfo; then return 0; fi
  if ! mountpoint -q "$BK_SHARED"; then
    mount --bind "$BK_SHARED" "$BK_SHARED"
    touch "$C/buildkit-shared.ours"
  fi
  mount --make-rshared "$BK_SHARED"
}
release_shared_buildkit_dir() {
  [[ -f "$C/buildkit-shared.ours" ]] || return 0
  umount "$BK_SHARED" 2>/dev/null || umount -l "$BK_SHARED" 2>/dev/null || true
  rm -f "$C/buildkit-shared.ours"
}
unmount_ours() {
  local m i
  for i in 1 2 3; do
    # mount points under our state dir, deepest first (field 5 of mountinfo)
    mapfile -t mounts < <(awk -v p="$C/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
    (( ${#mounts[@]} )) || return 0
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  done
}
do_down() {
  local n pid all=(main arm64)
  for n in "${all[@]}"; do select_node "$n"; stop "$P_KUBELET"; done
  for n in "${all[@]}"; do
    select_node "$n"
    kill_pod_processes
    for pid in $(our_shims); do stop_pid "$pid" containerd-shim; done
    stop "$P_CTRD"
    for pid in $(our_shims); do kill -KILL "$pid" 2>/dev/null || true; done
  done
  stop kube-scheduler
  stop kube-controller-manager
  stop kube-apiserver
  stop etcd
  unmount_ours
  release_shared_buildkit_dir
  for n in "${all[@]}"; do
    select_node "$n"
    remove_cgroups
    rm -rf "$CNIDIR/ipam" "$CTRD/state"
    if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link del "$BRIDGE" 2>/dev/null || true; fi
  done
  rm -f "$C/arm64-node"
  log "down"
}

do_status() {
  local n pid state rc=0
  local procs=(etcd containerd kube-apiserver kube-controller-manager kube-scheduler kubelet)
  [[ -f "$C/arm64-node" ]] && procs+=(containerd-arm64 kubelet-arm64)
  for n in "${procs[@]}"; do
    if running "$n"; then state="running (pid $(cat "$(pidfile "$n")"))"; else state="stopped"; rc=3; fi
    printf '%-24s %s\n' "$n" "$state"
  done
  select_node main
  printf '%-24s %s\n' "pod shims" "$(our_shims | wc -l)"
  printf '%-24s %s\n' "kubeconfig" "$KUBECONFIG_ADMIN"
  if [[ -f "$KUBECONFIG_ADMIN" ]] && running kube-apiserver; then
    kc get nodes -o wide 2>/dev/null | sed 's/^/  /' || true
  fi
  return $rc
}

select_node main
case "${1:-status}" in
  up) do_up ;;
  down) do_down ;;
  status) do_status ;;
  env) if [[ -f "$C/env" ]]; then cat "$C/env"; else echo "export KUBECONFIG=$KUBECONFIG_ADMIN"; fi ;;
  *) die "usage: cluster.sh up|down|status|env" ;;
esac
