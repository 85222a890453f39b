# Where the local cluster keeps its state, for the scripts that work on it
# (cluster.sh, images.sh). Sourced from the repository's root, not run.
STATE=${CLUSTER_STATE:-$(pwd)/.dev/cluster}
CONTAINERD_SOCK=$STATE/containerd/containerd.sock
# kubectl's context for the cluster, made current by `up`.
CONTEXT=todo-local

# Imports a Docker archive into the cluster's containerd (the namespace the
# kubelet uses) and removes the archive.
import_image() {
    ctr --address "$CONTAINERD_SOCK" -n k8s.io images import "$1" >/dev/null
    rm -f "$1"
}
