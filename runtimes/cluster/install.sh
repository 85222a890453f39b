#!/usr/bin/env bash
# Builds or fetches what a one-node Kubernetes cluster on this machine runs
# on, into the same cache folder as the real runtime: etcd and the five
# Kubernetes components (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy), CoreDNS and Helm from the Go module proxy
# through generated wrapper modules, and containerd, runc, the CNI plugins, iptables
# and conntrack from Debian's packages. Versions come from
# runtimes/versions.env and nowhere else.
#
#   runtimes/cluster/install.sh          # everything; a second run takes seconds
#   runtimes/cluster/install.sh --print  # only print where things are (sourceable)
#
# Needs: go (>= the version Kubernetes' go.mod names), python3, apt-get (root).
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
# shellcheck source=../versions.env
source "$HERE/../versions.env"
# shellcheck source=../lib/install-steps.sh
source "$HERE/../lib/install-steps.sh"

CACHE=${TODO_RUNTIME_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/todo-runtime}
K8S_DIR="$CACHE/kubernetes-$KUBERNETES_VERSION"
DAPR_CP_DIR="$CACHE/dapr-control-plane-$DAPR_VERSION"
# What the Dapr Helm chart runs besides daprd and the Scheduler (which the
# real runtime builds): same module, same version stamp.
DAPR_CP_COMMANDS="operator injector sentry placement"
DEBIAN_ROOTFS="$CACHE/debian-$DEBIAN_RELEASE/rootfs.tar"
COMPONENTS="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy"

print_layout() {
    cat <<LAYOUT
TODO_RUNTIME_DIR=$CACHE
KUBERNETES_VERSION=$KUBERNETES_VERSION
KUBERNETES_BIN=$K8S_DIR/bin
ETCD=$K8S_DIR/bin/etcd
COREDNS=$CACHE/coredns-$COREDNS_VERSION/bin/coredns
HELM=$CACHE/helm-$HELM_VERSION/bin/helm
DAPR_CONTROL_PLANE_BIN=$DAPR_CP_DIR/bin
DAPR_CONTROL_PLANE="$DAPR_CP_COMMANDS"
LOCAL_PATH_PROVISIONER=$CACHE/local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION/bin/local-path-provisioner
DEBIAN_ROOTFS=$DEBIAN_ROOTFS
LAYOUT
}
if [ "${1:-}" = "--print" ]; then
    print_layout
    exit 0
fi

for tool in go python3; do
    command -v "$tool" >/dev/null || die "$tool is required to install the local cluster (see README: prerequisites)"
done
export CGO_ENABLED=0

# Debian's packages: the container runtime and the node's networking tools,
# and buildah, which builds the services' images from the project's
# Dockerfile as Minikube's Docker does.
PACKAGES="containerd runc containernetworking-plugins iptables conntrack catatonit debootstrap busybox-static buildah"
install_packages() {
    local missing=()
    for package in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "apt-get is needed for ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build_kubernetes() {
    local src="$CACHE/src/kubernetes-$KUBERNETES_VERSION"
    local packages=()
    for component in $COMPONENTS; do packages+=("k8s.io/kubernetes/cmd/$component"); done
    # etcd's server has no main package of its own to import: a small one
    # calls etcdmain, as etcd's own binary does.
    STAGING_VERSION="v0.${KUBERNETES_VERSION#*.}" wrapper_module "$src" k8s.io/kubernetes "v$KUBERNETES_VERSION" \
        "${packages[@]}" "go.etcd.io/etcd/server/v3/etcdmain"
    local resolved
    resolved=$(cd "$src" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
    [ "$resolved" = "v$ETCD_VERSION" ] || die "Kubernetes $KUBERNETES_VERSION builds with etcd $resolved; runtimes/versions.env says $ETCD_VERSION"
    mkdir -p "$src/cmd/etcd"
    cat >"$src/cmd/etcd/main.go" <<'GO'
// etcd for the local cluster: the server's own entry point.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    # kubectl and Helm cannot parse a server version without the stamp.
    local major=${KUBERNETES_VERSION%%.*} rest=${KUBERNETES_VERSION#*.}
    local minor=${rest%%.*} stamp=""
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        stamp+=" -X $pkg.gitVersion=v$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        stamp+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000 -X $pkg.gitTreeState=clean"
        stamp+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    mkdir -p "$K8S_DIR/bin"
    (
        cd "$src"
        for component in $COMPONENTS; do
            go build -trimpath -ldflags "-s -w $stamp" -o "$K8S_DIR/bin/$component" "k8s.io/kubernetes/cmd/$component"
        done
        go build -trimpath -ldflags "-s -w" -o "$K8S_DIR/bin/etcd" ./cmd/etcd
    )
}

build_coredns() {
    local src="$CACHE/src/coredns-$COREDNS_VERSION"
    wrapper_module "$src" github.com/coredns/coredns "v$COREDNS_VERSION" github.com/coredns/coredns
    mkdir -p "$CACHE/coredns-$COREDNS_VERSION/bin"
    (cd "$src" && go build -trimpath -ldflags "-s -w" -o "$CACHE/coredns-$COREDNS_VERSION/bin/coredns" github.com/coredns/coredns)
}

build_helm() {
    local src="$CACHE/src/helm-$HELM_VERSION"
    wrapper_module "$src" helm.sh/helm/v3 "v$HELM_VERSION" helm.sh/helm/v3/cmd/helm
    mkdir -p "$CACHE/helm-$HELM_VERSION/bin"
    (cd "$src" && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION" \
        -o "$CACHE/helm-$HELM_VERSION/bin/helm" helm.sh/helm/v3/cmd/helm)
}

build_dapr_control_plane() {
    local src="$CACHE/src/dapr-control-plane-$DAPR_VERSION" packages=() cmd
    for cmd in $DAPR_CP_COMMANDS; do packages+=("github.com/dapr/dapr/cmd/$cmd"); done
    wrapper_module "$src" github.com/dapr/dapr "v$DAPR_VERSION" "${packages[@]}"
    mkdir -p "$DAPR_CP_DIR/bin"
    (
        cd "$src"
        for cmd in $DAPR_CP_COMMANDS; do
            go build -trimpath -ldflags "-s -w -X github.com/dapr/dapr/pkg/buildinfo.version=$DAPR_VERSION" \
                -o "$DAPR_CP_DIR/bin/$cmd" "github.com/dapr/dapr/cmd/$cmd"
        done
    )
}

build_local_path_provisioner() {
    local version=$LOCAL_PATH_PROVISIONER_VERSION
    local src="$CACHE/src/local-path-provisioner-$version"
    wrapper_module "$src" github.com/rancher/local-path-provisioner "v$version" github.com/rancher/local-path-provisioner
    mkdir -p "$CACHE/local-path-provisioner-$version/bin"
    (cd "$src" && go build -trimpath -ldflags "-s -w" \
        -o "$CACHE/local-path-provisioner-$version/bin/local-path-provisioner" github.com/rancher/local-path-provisioner)
}

# The userland of the stand-in images that need more than one static
# binary: Kafka's JVM, PostgreSQL with its tools, the C compiler and
# headers the Dockerfile's Rust build links with (ring compiles C). One
# tree, so containerd and buildah store it once.
DEBIAN_PACKAGES="bash,ca-certificates,openjdk-17-jre-headless,postgresql-15,gcc,libc6-dev"
build_debian_rootfs() {
    local dir
    dir=$(mktemp -d "$CACHE/debian-rootfs.XXXXXX")
    debootstrap --variant=minbase --include="$DEBIAN_PACKAGES" "$DEBIAN_RELEASE" "$dir/root" \
        http://deb.debian.org/debian >"$dir/debootstrap.log" 2>&1 \
        || { tail -20 "$dir/debootstrap.log" >&2; die "debootstrap failed (whole log: $dir/debootstrap.log)"; }
    # The users the official images run as, under the same ids: Kafka's
    # appuser, PostgreSQL's Debian image's postgres, distroless' nonroot.
    chroot "$dir/root" groupmod -g 999 postgres
    chroot "$dir/root" usermod -u 999 -g 999 postgres
    chroot "$dir/root" useradd -u 1000 -U -m -s /bin/bash appuser
    chroot "$dir/root" useradd -u 65532 -U -M -d /home/nonroot -s /usr/sbin/nologin nonroot
    # Package caches and lists are of no use inside an image.
    rm -rf "$dir/root/var/cache/apt/archives/"*.deb "$dir/root/var/lib/apt/lists/"* \
        "$dir/root/usr/share/doc" "$dir/root/usr/share/man" "$dir/root/usr/share/locale"
    mkdir -p "$(dirname "$DEBIAN_ROOTFS")"
    tar -C "$dir/root" --numeric-owner -cf "$DEBIAN_ROOTFS.tmp" .
    mv "$DEBIAN_ROOTFS.tmp" "$DEBIAN_ROOTFS"
    rm -rf "$dir"
}

total=$SECONDS
say "Debian packages: $PACKAGES"
install_packages
step "kubernetes $KUBERNETES_VERSION + etcd $ETCD_VERSION" "$K8S_DIR/.stamp" \
    "$KUBERNETES_VERSION $ETCD_VERSION $(go env GOVERSION) $(declare -f build_kubernetes | hash_of)" build_kubernetes
step "coredns $COREDNS_VERSION" "$CACHE/coredns-$COREDNS_VERSION/.stamp" \
    "$COREDNS_VERSION $(go env GOVERSION)" build_coredns
step "helm $HELM_VERSION" "$CACHE/helm-$HELM_VERSION/.stamp" "$HELM_VERSION $(go env GOVERSION)" build_helm
[ -x "$CACHE/dapr-$DAPR_VERSION/bin/daprd" ] || die "the Dapr control plane image needs daprd and the Scheduler: run runtimes/real/install.sh first"
step "dapr control plane $DAPR_VERSION ($DAPR_CP_COMMANDS)" "$DAPR_CP_DIR/.stamp" \
    "$DAPR_VERSION $(go env GOVERSION) $(declare -f build_dapr_control_plane | hash_of)" build_dapr_control_plane
step "local-path-provisioner $LOCAL_PATH_PROVISIONER_VERSION" \
    "$CACHE/local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION/.stamp" \
    "$LOCAL_PATH_PROVISIONER_VERSION $(go env GOVERSION)" build_local_path_provisioner
step "debian $DEBIAN_RELEASE userland ($DEBIAN_PACKAGES)" "$(dirname "$DEBIAN_ROOTFS")/.stamp" \
    "$DEBIAN_RELEASE $(declare -f build_debian_rootfs | hash_of) $DEBIAN_PACKAGES" build_debian_rootfs
say "local cluster's binaries ready in $CACHE ($((SECONDS - total)) s)"
print_layout
