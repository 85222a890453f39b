#!/usr/bin/env bash
# A one-node Kubernetes cluster on this machine, as plain processes:
#
#   runtimes/cluster/cluster.sh up     # etcd, the control plane and the node; returns when it is Ready
#   runtimes/cluster/cluster.sh down   # stops everything and undoes what up changed
#   runtimes/cluster/cluster.sh report # every pod's memory (from its cgroup) and start-up time
#   runtimes/cluster/cluster.sh diagnose # pods, warnings, and the logs of pods not Ready
#
# Binaries from runtimes/cluster/install.sh. State (certificates,
# kubeconfigs, etcd's data, logs) in .dev/cluster, wiped by `up`. The
# API server advertises 10.250.0.1, an address `up` adds to the loopback
# interface (it refuses a loopback address) and `down` removes. kubectl
# gets a context of its own, `todo-local`, made current by `up`.
#
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=../lib/install-steps.sh
source runtimes/lib/install-steps.sh
# shellcheck source=../versions.env
source runtimes/versions.env

# shellcheck source=layout.sh
source runtimes/cluster/layout.sh
NODE_IP=${CLUSTER_NODE_IP:-10.250.0.1}
API_PORT=6443
ETCD_CLIENT=32379
ETCD_PEER=32380
SERVICE_CIDR=10.96.0.0/16
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
    { ls /var/run/netns 2>/dev/null || true; } | sort >"$STATE/netns.before"

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
    storage_up

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
  address = "$CONTAINERD_SOCK"
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
    wait_for containerd 30 ctr --address "$CONTAINERD_SOCK" version
    python3 runtimes/cluster/image.py "$c/pause.tar" "$PAUSE_IMAGE" --file /usr/bin/catatonit=/pause \
        --user 65535:65535 --entrypoint=/pause --entrypoint=-P
    import_image "$c/pause.tar"

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
containerRuntimeEndpoint: "unix://$CONTAINERD_SOCK"
address: "$NODE_IP"
healthzBindAddress: 127.0.0.1
# Pods see a changed ConfigMap or Secret at their next sync: Dapr's trust
# bundle, which Sentry writes after the Scheduler and placement pods
# started, reaches them in seconds instead of a minute or more.
syncFrequency: 10s
# A crash-looping pod waits at most 20 s before its next try, not 5 min:
# the control plane's pods crash until Sentry serves, and each crash
# doubled the wait (alpha in 1.34, hence the gate).
featureGates: {KubeletCrashLoopBackOffMax: true}
crashLoopBackOff: {maxContainerRestartPeriod: 20s}
# No image garbage collection: nothing here can be pulled again, and the
# kubelet reads this machine's disk as 85 % full (its capacity counts space
# the volume does not have), so it deleted the pause image and Kafka's
# once buildah's layers grew. Eviction likewise on absolute free space,
# not on a share of that capacity.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "2Gi", imagefs.available: "2Gi"}
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
    import_image "$c/coredns.tar"
    "$KUBECTL" --kubeconfig "$STATE/admin.kubeconfig" apply -f runtimes/cluster/manifests/coredns.yaml >/dev/null
    "$KUBECTL" --kubeconfig "$STATE/admin.kubeconfig" -n kube-system rollout status deployment/coredns \
        --timeout=90s >/dev/null || die "CoreDNS did not become ready (kubectl -n kube-system describe pod -l k8s-app=kube-dns)"
}

# The default StorageClass: local-path-provisioner, making each volume a
# folder under the state, through a helper pod (busybox from Debian).
storage_up() {
    say "local-path-provisioner $LOCAL_PATH_PROVISIONER_VERSION as the default StorageClass"
    local c=$STATE/containerd busybox
    busybox=$(dpkg-query -W -f='${Version}' busybox-static | sed -E 's/^[0-9]+://; s/-.*//')
    python3 runtimes/cluster/image.py "$c/busybox.tar" "docker.io/library/busybox:$busybox" \
        --file /bin/busybox=/bin/busybox --link busybox=/bin/sh --link busybox=/bin/mkdir --link busybox=/bin/rm
    python3 runtimes/cluster/image.py "$c/local-path.tar" \
        "docker.io/rancher/local-path-provisioner:v$LOCAL_PATH_PROVISIONER_VERSION" \
        --file "$LOCAL_PATH_PROVISIONER=/usr/bin/local-path-provisioner"
    import_image "$c/busybox.tar"
    import_image "$c/local-path.tar"
    mkdir -p "$STATE/volumes"
    sed -e "s|__VOLUMES__|$STATE/volumes|g" -e "s|__VERSION__|$LOCAL_PATH_PROVISIONER_VERSION|g" \
        -e "s|__BUSYBOX__|$busybox|g" runtimes/cluster/manifests/local-path-storage.yaml \
        | "$KUBECTL" --kubeconfig "$STATE/admin.kubeconfig" apply -f - >/dev/null
    "$KUBECTL" --kubeconfig "$STATE/admin.kubeconfig" -n local-path-storage rollout status \
        deployment/local-path-provisioner --timeout=90s >/dev/null \
        || die "the storage provisioner did not become ready (kubectl -n local-path-storage describe pod)"
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
    local sock=$CONTAINERD_SOCK task
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
        comm -13 "$STATE/netns.before" <(ls /var/run/netns 2>/dev/null | sort) | { grep '^cni-' || true; } \
            | while IFS= read -r netns; do ip netns del "$netns" 2>/dev/null || true; done
    fi
    # What kube-proxy and the bridge plugin wrote to iptables, and the bridge.
    [ -x "$BIN/kube-proxy" ] && [ -f "$STATE/kube-proxy.pid" ] && "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
    # kube-proxy's cleanup leaves the kubelet's chains (among them a rule
    # that drops traffic to 127.0.0.0/8 from elsewhere): every KUBE- and
    # CNI- chain and rule goes, in both address families.
    # (The rules are read once into a variable: `grep -q` on a pipe would
    # close it early, and under pipefail the save's SIGPIPE reads as "none".)
    local save rules
    for save in iptables ip6tables; do
        rules=$("$save-save" 2>/dev/null) || continue
        grep -qE "KUBE-|CNI-" <<<"$rules" || continue
        grep -vE "KUBE-|CNI-" <<<"$rules" | "$save-restore" 2>/dev/null || true
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

# Every pod's memory, read from its cgroup (resident, and the working set
# the kubelet evicts and OOM-kills by), and how long it took from created
# to Ready.
report() {
    local kubectl=(kubectl --kubeconfig "$STATE/admin.kubeconfig")
    printf '%-58s %8s %12s %9s\n' POD "RSS MiB" "WORKING MiB" "READY IN"
    "${kubectl[@]}" get pods -A -o json | python3 -c '
import datetime, json, sys
def at(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
for pod in json.load(sys.stdin)["items"]:
    ready = [c for c in pod["status"].get("conditions", []) if c["type"] == "Ready" and c["status"] == "True"]
    took = (at(ready[0]["lastTransitionTime"]) - at(pod["metadata"]["creationTimestamp"])).seconds if ready else -1
    print(pod["metadata"]["namespace"] + "/" + pod["metadata"]["name"], pod["metadata"]["uid"], took)
' | while read -r name uid took; do
        local dir stat rss working
        dir=$(find /sys/fs/cgroup/memory/kubepods -maxdepth 3 -type d -name "pod$uid" 2>/dev/null | head -n 1)
        [ -n "$dir" ] || continue
        stat=$dir/memory.stat
        rss=$(awk '/^total_rss /{print $2}' "$stat")
        working=$(($(cat "$dir/memory.usage_in_bytes") - $(awk '/^total_inactive_file /{print $2}' "$stat")))
        if [ "$took" -ge 0 ]; then took="${took} s"; else took="not ready"; fi
        printf '%-58s %8d %12d %9s\n' "$name" $((rss / 1048576)) $((working / 1048576)) "$took"
    done
}

# What a failed deployment needs to be understood after the cluster is gone
# (CI deletes it): every pod, the warnings, and the logs of each pod that is
# not Ready, including the run before its last restart.
diagnose() {
    local kubectl=(kubectl --kubeconfig "$STATE/admin.kubeconfig")
    [ -f "$STATE/admin.kubeconfig" ] || { echo "no local cluster state in $STATE"; return 0; }
    echo "==== pods"
    "${kubectl[@]}" get pods -A -o wide || true
    echo "==== warning events"
    "${kubectl[@]}" get events -A --field-selector type=Warning --sort-by=.lastTimestamp | tail -n 40 || true
    "${kubectl[@]}" get pods -A -o jsonpath='{range .items[*]}{.metadata.namespace} {.metadata.name} {.status.phase} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' \
        | while read -r ns pod phase ready; do
            [ "$ready" = True ] || [ "$phase" = Succeeded ] && continue
            echo "==== $ns/$pod (not ready)"
            "${kubectl[@]}" -n "$ns" get pod "$pod" -o jsonpath='{range .status.containerStatuses[*]}{.name}: restarts {.restartCount}, {.state}{"\n"}{end}' || true
            "${kubectl[@]}" -n "$ns" logs "$pod" --all-containers --prefix --tail=25 --previous 2>/dev/null | sed 's/^/previous: /' || true
            "${kubectl[@]}" -n "$ns" logs "$pod" --all-containers --prefix --tail=25 || true
        done
    echo "==== kubelet (last warnings and errors)"
    grep -E '^[EW][0-9]{4}' "$STATE/logs/kubelet.log" 2>/dev/null | grep -v 'code = NotFound' | tail -n 20 || true
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    report) report ;;
    diagnose) diagnose ;;
    *) echo "usage: $0 up|down|report|diagnose" >&2; exit 2 ;;
esac
