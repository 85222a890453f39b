#!/usr/bin/env bash
# A one-node Kubernetes cluster on this machine, as plain processes:
#
#   runtimes/cluster/cluster.sh up     # etcd, the control plane and the node; returns when it is Ready
#   runtimes/cluster/cluster.sh down   # stops everything and undoes what up changed
#
# Binaries from runtimes/cluster/install.sh. State (certificates,
# kubeconfigs, etcd's data, logs) in .dev/cluster, wiped by `up`. The
# API server advertises 10.250.0.1, an address `up` adds to the loopback
# interface (it refuses a loopback address) and `down` removes. kubectl
# gets a context of its own, `todo-local`, made current by `up`.
#
# In progress (issue 24): storage, images, Helm and the Dapr control plane
# come next (docs/cluster.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
# shellcheck source=../lib/install-steps.sh
source runtimes/lib/install-steps.sh
# shellcheck source=../versions.env
source runtimes/versions.env

STATE=${CLUSTER_STATE:-$ROOT/.dev/cluster}
NODE_IP=${CLUSTER_NODE_IP:-10.250.0.1}
API_PORT=6443
ETCD_CLIENT=32379
ETCD_PEER=32380
SERVICE_CIDR=10.96.0.0/16
CONTEXT=todo-local
NODE=todo-local
POD_CIDR=10.244.0.0/24
CLUSTER_DNS=10.96.0.10
BRIDGE=todo0
PAUSE_IMAGE=registry.k8s.io/pause:3.10
eval "$(runtimes/cluster/install.sh --print)"
BIN=$KUBERNETES_BIN

pki=$STATE/pki

# A key and a certificate signed by the cluster's CA: CN, O (may be empty),
# the extended key usages, then subject alternative names.
certificate() {
    local name=$1 cn=$2 org=$3 usage=$4
    shift 4
    local subject="/CN=$cn"
    [ -n "$org" ] && subject="/O=$org$subject"
    local ext="$pki/$name.ext"
    {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$usage"
        if [ $# -gt 0 ]; then
            local sans="" san
            for san in "$@"; do sans+="${sans:+,}$san"; done
            echo "subjectAltName=$sans"
        fi
    } >"$ext"
    openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -subj "$subject" \
        -out "$pki/$name.csr" 2>/dev/null
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
        -days 30 -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null
}

kubeconfig() {
    local name=$1 user=$2
    local file="$STATE/$name.kubeconfig"
    "$KUBECTL" config set-cluster todo-local --server="https://$NODE_IP:$API_PORT" \
        --certificate-authority="$pki/ca.crt" --embed-certs --kubeconfig="$file" >/dev/null
    "$KUBECTL" config set-credentials "$user" --client-certificate="$pki/$name.crt" \
        --client-key="$pki/$name.key" --embed-certs --kubeconfig="$file" >/dev/null
    "$KUBECTL" config set-context default --cluster=todo-local --user="$user" --kubeconfig="$file" >/dev/null
    "$KUBECTL" config use-context default --kubeconfig="$file" >/dev/null
}

# Starts NAME in the background with its output in $STATE/logs/NAME.log.
start() {
    local name=$1
    shift
    mkdir -p "$STATE/logs"
    setsid "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null &
    echo $! >"$STATE/$name.pid"
}

wait_for() {
    local what=$1 seconds=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || die "$what did not come up within $seconds s (logs in $STATE/logs)"
        sleep 0.5
    done
}

up() {
    command -v openssl >/dev/null || die "openssl is required"
    KUBECTL=$(command -v kubectl) || die "kubectl is required"
    [ -x "$BIN/kube-apiserver" ] || die "run runtimes/cluster/install.sh first"
    [ -e "$STATE" ] && down
    local started=$SECONDS
    mkdir -p "$pki"
    say "certificates"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" \
        -days 30 -subj "/CN=todo-local-ca" 2>/dev/null
    openssl genrsa -out "$pki/service-accounts.key" 2048 2>/dev/null
    openssl rsa -in "$pki/service-accounts.key" -pubout -out "$pki/service-accounts.pub" 2>/dev/null
    certificate apiserver kube-apiserver "" serverAuth \
        "IP:$NODE_IP" "IP:10.96.0.1" "IP:127.0.0.1" "DNS:localhost" "DNS:kubernetes" \
        "DNS:kubernetes.default" "DNS:kubernetes.default.svc" "DNS:kubernetes.default.svc.cluster.local"
    certificate apiserver-kubelet-client kube-apiserver-kubelet-client system:masters clientAuth
    certificate admin todo-local-admin system:masters clientAuth
    certificate controller-manager system:kube-controller-manager "" clientAuth
    certificate scheduler system:kube-scheduler "" clientAuth
    certificate kubelet "system:node:$NODE" system:nodes clientAuth
    certificate kubelet-serving "system:node:$NODE" system:nodes serverAuth "IP:$NODE_IP" "DNS:$NODE"
    certificate kube-proxy system:kube-proxy "" clientAuth
    kubeconfig admin todo-local-admin
    kubeconfig controller-manager system:kube-controller-manager
    kubeconfig scheduler system:kube-scheduler
    kubeconfig kubelet "system:node:$NODE"
    kubeconfig kube-proxy system:kube-proxy

    # The kubelet (and the CNI bridge plugin, and kube-proxy) change kernel
    # settings whatever their flags say: remember them all, and `down` puts
    # back every one that differs.
    sysctl -a 2>/dev/null | sort >"$STATE/sysctl.before"
    ls /var/run/netns 2>/dev/null | sort >"$STATE/netns.before"

    say "the node address $NODE_IP on lo"
    ip addr show dev lo | grep -q " $NODE_IP/" || ip addr add "$NODE_IP/32" dev lo
    touch "$STATE/added-address"

    say "etcd $ETCD_VERSION"
    mkdir -p "$STATE/etcd" && chmod 700 "$STATE/etcd"
    start etcd "$ETCD" --name local --data-dir "$STATE/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
        --initial-cluster "local=http://127.0.0.1:$ETCD_PEER" --listen-metrics-urls "" --log-level warn
    wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_CLIENT/health"

    say "kube-apiserver $KUBERNETES_VERSION on https://$NODE_IP:$API_PORT"
    start kube-apiserver "$BIN/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$ETCD_CLIENT" \
        --advertise-address "$NODE_IP" --bind-address "$NODE_IP" --secure-port "$API_PORT" \
        --client-ca-file "$pki/ca.crt" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$pki/service-accounts.pub" \
        --service-account-signing-key-file "$pki/service-accounts.key" \
        --service-cluster-ip-range "$SERVICE_CIDR" \
        --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction --allow-privileged \
        --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
        --kubelet-preferred-address-types InternalIP,Hostname
    wait_for kube-apiserver 60 "$KUBECTL" --kubeconfig "$STATE/admin.kubeconfig" get --raw /readyz

    say "kube-controller-manager and kube-scheduler"
    start kube-controller-manager "$BIN/kube-controller-manager" \
        --kubeconfig "$STATE/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --use-service-account-credentials \
        --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
        --root-ca-file "$pki/ca.crt" --service-account-private-key-file "$pki/service-accounts.key" \
        --service-cluster-ip-range "$SERVICE_CIDR"
    start kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$STATE/scheduler.kubeconfig" \
        --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
        --authorization-kubeconfig "$STATE/scheduler.kubeconfig" --bind-address 127.0.0.1
    wait_for "the default service account" 60 \
        "$KUBECTL" --kubeconfig "$STATE/admin.kubeconfig" -n default get serviceaccount default

    node_up
    dns_up

    # kubectl's own context, current from now on, as `minikube start` does.
    "$KUBECTL" config set-cluster "$CONTEXT" --server="https://$NODE_IP:$API_PORT" \
        --certificate-authority="$pki/ca.crt" --embed-certs >/dev/null
    "$KUBECTL" config set-credentials "$CONTEXT" --client-certificate="$pki/admin.crt" \
        --client-key="$pki/admin.key" --embed-certs >/dev/null
    "$KUBECTL" config set-context "$CONTEXT" --cluster="$CONTEXT" --user="$CONTEXT" >/dev/null
    "$KUBECTL" config use-context "$CONTEXT" >/dev/null
    say "cluster up in $((SECONDS - started)) s; kubectl context $CONTEXT"
}

# containerd (its own root, state and socket, beside any other), the CNI
# bridge, the kubelet and kube-proxy; returns once the node is Ready.
node_up() {
    say "containerd, with a local pause image"
    local c=$STATE/containerd
    mkdir -p "$c" "$STATE/cni" "$STATE/cni-ipam"
    cat >"$c/config.toml" <<TOML
version = 2
root = "$c/root"
state = "$c/state"
[grpc]
  address = "$c/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  disable_hugetlb_controller = true
  tolerate_missing_hugetlb_controller = true
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni"
TOML
    cat >"$STATE/cni/10-todo-local.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "todo-local", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$STATE/cni-ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
JSON
    start containerd containerd --config "$c/config.toml"
    wait_for containerd 30 ctr --address "$c/containerd.sock" version
    python3 runtimes/cluster/image.py "$c/pause.tar" "$PAUSE_IMAGE" --file /usr/bin/catatonit=/pause \
        --user 65535:65535 --entrypoint=/pause --entrypoint=-P
    ctr --address "$c/containerd.sock" -n k8s.io images import "$c/pause.tar" >/dev/null

    say "kubelet and kube-proxy"
    local k=$STATE/kubelet
    mkdir -p "$k" "$STATE/kubelet-plugins"
    # The kubelet's root must be a shared mount for volume propagation.
    mount --bind "$k" "$k"
    mount --make-rshared "$k"
    cat >"$STATE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failSwapOn: false
clusterDNS: ["$CLUSTER_DNS"]
clusterDomain: cluster.local
tlsCertFile: "$pki/kubelet-serving.crt"
tlsPrivateKeyFile: "$pki/kubelet-serving.key"
volumePluginDir: "$STATE/kubelet-plugins"
containerRuntimeEndpoint: "unix://$c/containerd.sock"
address: "$NODE_IP"
healthzBindAddress: 127.0.0.1
YAML
    start kubelet "$BIN/kubelet" --config "$STATE/kubelet.yaml" --kubeconfig "$STATE/kubelet.kubeconfig" \
        --root-dir "$k" --cert-dir "$pki" --node-ip "$NODE_IP" --hostname-override "$NODE"
    start kube-proxy "$BIN/kube-proxy" --kubeconfig "$STATE/kube-proxy.kubeconfig" --proxy-mode iptables \
        --hostname-override "$NODE" --cluster-cidr "$POD_CIDR" --oom-score-adj 0 \
        --conntrack-max-per-core 0 --conntrack-tcp-timeout-established 0 --conntrack-tcp-timeout-close-wait 0 \
        --metrics-bind-address 127.0.0.1:10249 --healthz-bind-address 127.0.0.1:10256
    wait_for "node $NODE Ready" 90 \
        "$KUBECTL" --kubeconfig "$STATE/admin.kubeconfig" wait --for=condition=Ready "node/$NODE" --timeout=1s
}

# CoreDNS as kube-dns, from a local image under the official name.
dns_up() {
    say "CoreDNS $COREDNS_VERSION as kube-dns ($CLUSTER_DNS)"
    local c=$STATE/containerd
    python3 runtimes/cluster/image.py "$c/coredns.tar" "docker.io/coredns/coredns:$COREDNS_VERSION" \
        --file "$COREDNS=/coredns" --entrypoint=/coredns
    ctr --address "$c/containerd.sock" -n k8s.io images import "$c/coredns.tar" >/dev/null
    "$KUBECTL" --kubeconfig "$STATE/admin.kubeconfig" apply -f runtimes/cluster/manifests/coredns.yaml >/dev/null
    "$KUBECTL" --kubeconfig "$STATE/admin.kubeconfig" -n kube-system rollout status deployment/coredns \
        --timeout=90s >/dev/null || die "CoreDNS did not become ready (kubectl -n kube-system describe pod -l k8s-app=kube-dns)"
}

# Puts back every kernel setting that differs from before `up`.
restore_sysctls() {
    [ -f "$STATE/sysctl.before" ] || return 0
    sysctl -a 2>/dev/null | sort >"$STATE/sysctl.after"
    comm -23 "$STATE/sysctl.before" "$STATE/sysctl.after" | while IFS= read -r line; do
        local key=${line%% = *} value=${line#* = }
        sysctl -q -w "$key=$value" >/dev/null 2>&1 || true
    done
}

down() {
    local name pid
    # The pods first (their containers, network namespaces and mounts), so
    # nothing of theirs outlives the cluster.
    local sock=$STATE/containerd/containerd.sock task
    if [ -S "$sock" ]; then
        local ctr_=(ctr --address "$sock" -n k8s.io)
        for task in $("${ctr_[@]}" tasks ls -q 2>/dev/null); do "${ctr_[@]}" tasks kill -a -s SIGKILL "$task" >/dev/null 2>&1 || true; done
        sleep 1
        for task in $("${ctr_[@]}" tasks ls -q 2>/dev/null); do "${ctr_[@]}" tasks delete -f "$task" >/dev/null 2>&1 || true; done
    fi
    for name in kube-proxy kubelet containerd kube-scheduler kube-controller-manager kube-apiserver etcd; do
        [ -f "$STATE/$name.pid" ] || continue
        pid=$(cat "$STATE/$name.pid")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    # Whatever a shim still runs, then the shims.
    for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $STATE/containerd/" || true); do
        pkill -KILL -P "$pid" 2>/dev/null || true
        kill -KILL "$pid" 2>/dev/null || true
    done
    # Any process still in a pod's cgroup (the kubelet's `kubepods` tree,
    # cgroupfs driver), then the tree itself, deepest first.
    local procs
    for procs in $(find /sys/fs/cgroup/*/kubepods -name cgroup.procs 2>/dev/null); do
        xargs -r kill -KILL <"$procs" 2>/dev/null || true
    done
    find /sys/fs/cgroup/*/kubepods -depth -type d -exec rmdir {} \; 2>/dev/null || true
    # Every mount under the state folder (containers' root filesystems,
    # sandboxes' shm, volumes, the kubelet's root), deepest first.
    findmnt -rn -o TARGET 2>/dev/null | awk -v state="$STATE" 'index($0, state) == 1' | sort -r \
        | while IFS= read -r target; do umount -l "$target" 2>/dev/null || true; done
    # The pods' network namespaces (containerd names them cni-…), only those
    # that were not there before `up`.
    if [ -f "$STATE/netns.before" ]; then
        comm -13 "$STATE/netns.before" <(ls /var/run/netns 2>/dev/null | sort) | grep '^cni-' \
            | while IFS= read -r netns; do ip netns del "$netns" 2>/dev/null || true; done
    fi
    # What kube-proxy and the bridge plugin wrote to iptables, and the bridge.
    [ -x "$BIN/kube-proxy" ] && [ -f "$STATE/kube-proxy.pid" ] && "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
    # kube-proxy's cleanup leaves the kubelet's chains (among them a rule
    # that drops traffic to 127.0.0.0/8 from elsewhere): every KUBE- and
    # CNI- chain and rule goes, in both address families.
    local save
    for save in iptables ip6tables; do
        "$save-save" 2>/dev/null | grep -qE "KUBE-|CNI-" || continue
        "$save-save" | grep -vE "KUBE-|CNI-" | "$save-restore" 2>/dev/null || true
    done
    ip link del "$BRIDGE" 2>/dev/null || true
    restore_sysctls
    if [ -f "$STATE/added-address" ]; then
        ip addr del "$NODE_IP/32" dev lo 2>/dev/null || true
    fi
    if command -v kubectl >/dev/null; then
        kubectl config delete-context "$CONTEXT" >/dev/null 2>&1 || true
        kubectl config delete-cluster "$CONTEXT" >/dev/null 2>&1 || true
        kubectl config delete-user "$CONTEXT" >/dev/null 2>&1 || true
    fi
    rm -rf "$STATE"
    say "cluster down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
