#!/usr/bin/env bash
# Takes a cluster from nothing to the running system, on one of two targets:
#
#   scripts/deploy.sh            Minikube (the default)
#   scripts/deploy.sh local      the one-node cluster of `just cluster up`
#                                (runtimes/cluster), started if it is not running
#
#   1. checks the tools and starts the cluster if it is not running;
#   2. gets the images into the cluster: on Minikube the five services are
#      built from the Dockerfile inside Minikube's Docker and everything else
#      is pulled from registries; the local cluster has no registry, so
#      runtimes/cluster/images.sh makes all of them on this machine;
#   3. installs the Dapr control plane (with the Scheduler, for the Jobs API)
#      from the Dapr Helm chart if it is missing;
#   4. applies k8s/overlays/minikube and waits for everything to roll out;
#   5. prints how to reach task-api and the Jaeger UI.
# Only 1 and 2 differ between the targets.
#
# Re-running it is safe: each step skips what is already there, images are
# rebuilt from cache, and the services are restarted onto the new images.
#
# Environment knobs:
#   MINIKUBE_PROFILE   (default minikube)
#   MINIKUBE_CPUS      (default 4)    MINIKUBE_MEMORY (default 8192, MiB)
#   DAPR_VERSION       Dapr runtime to install (default: runtimes/versions.env's,
#                      the version the conformance and end-to-end suites run;
#                      1.16.2 is the oldest that sends the app token on
#                      deliveries, which the services require when it is set)
#   SKIP_BUILD=1       do not rebuild the service images
#   SERVICE_PROFILE    local only: dockerfile (default: the Dockerfile, built by
#                      buildah, as Minikube builds it), or release or debug: this
#                      machine's cargo build packed into the images, in seconds
#                      (runtimes/cluster/images.sh)
set -euo pipefail

cd "$(dirname "$0")/.."

TARGET=${1:-minikube}
case $TARGET in
    minikube | local) ;;
    *) echo "usage: $0 [minikube|local]" >&2; exit 2 ;;
esac

# shellcheck source=../runtimes/versions.env
DAPR_VERSION=${DAPR_VERSION:-$(. runtimes/versions.env && echo "$DAPR_VERSION")}
dapr_at_least() { [ "$(printf '%s\n%s\n' "$1" "$DAPR_VERSION" | sort -V | head -n 1)" = "$1" ]; }
dapr_at_least 1.16.2 || { echo "error: DAPR_VERSION $DAPR_VERSION is older than 1.16.2, which the app API token needs" >&2; exit 1; }

NAMESPACE=todo
OVERLAY=k8s/overlays/minikube
# Every folder under services/ is a service that ships (and nothing else is).
mapfile -t SERVICES < <(ls services)
PROFILE=${MINIKUBE_PROFILE:-minikube}
CPUS=${MINIKUBE_CPUS:-4}
MEMORY=${MINIKUBE_MEMORY:-8192}
started=$SECONDS

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'deploy: %s\n' "$*" >&2; exit 1; }

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 is required but not installed. $2"
}

# --- 1. the cluster --------------------------------------------------------------
need kubectl "Install: https://kubernetes.io/docs/tasks/tools/ (or use 'minikube kubectl --')"
if [ "$TARGET" = minikube ]; then
    need minikube "Install: https://minikube.sigs.k8s.io/docs/start/"
    need docker "The docker CLI builds the images against Minikube's daemon. Install: https://docs.docker.com/engine/install/"
    if command -v dapr >/dev/null 2>&1; then
        DAPR_INSTALLER=dapr
    elif command -v helm >/dev/null 2>&1; then
        DAPR_INSTALLER=helm HELM=helm
    else
        die "the Dapr CLI (https://docs.dapr.io/getting-started/install-dapr-cli/) or helm (https://helm.sh/docs/intro/install/) is required to install the Dapr control plane."
    fi
    # The chart of the Dapr Helm repository, at the version installed.
    DAPR_CHART=(dapr/dapr --version "$DAPR_VERSION")
    if minikube status -p "$PROFILE" >/dev/null 2>&1; then
        say "Minikube profile '$PROFILE' is running"
    else
        say "Starting Minikube (profile $PROFILE, ${CPUS} CPUs, ${MEMORY} MiB)"
        minikube start -p "$PROFILE" --cpus "$CPUS" --memory "$MEMORY"
    fi
    kubectl config use-context "$PROFILE" >/dev/null
else
    # Helm and the cluster's binaries from the cluster's install script; the
    # chart is the one inside the pinned dapr/dapr Go module, which the real
    # runtime's install downloaded (the same chart the Helm repository
    # publishes, before its release stamps the version into it).
    runtimes/real/install.sh >/dev/null
    runtimes/cluster/install.sh >/dev/null
    eval "$(runtimes/cluster/install.sh --print)"
    # shellcheck source=../runtimes/cluster/layout.sh
    source runtimes/cluster/layout.sh
    DAPR_INSTALLER=helm
    DAPR_CHART=("$(go env GOMODCACHE)/github.com/dapr/dapr@v$DAPR_VERSION/charts/dapr")
    [ -f "${DAPR_CHART[0]}/Chart.yaml" ] || die "no Dapr chart at ${DAPR_CHART[0]} (runtimes/real/install.sh downloads it)"
    if kubectl --context "$CONTEXT" get --raw /readyz >/dev/null 2>&1; then
        say "the local cluster is running"
    else
        say "Starting the local cluster (runtimes/cluster/cluster.sh up)"
        runtimes/cluster/cluster.sh up
    fi
    kubectl config use-context "$CONTEXT" >/dev/null
fi

# --- 2. images -------------------------------------------------------------------
if [ "$TARGET" = local ]; then
    say "Images for the local cluster (no registry: made here and imported)"
    runtimes/cluster/images.sh infra
    if [ "${SKIP_BUILD:-0}" = 1 ]; then
        say "SKIP_BUILD=1: using the service images already in the cluster"
    else
        runtimes/cluster/images.sh services
    fi
elif [ "${SKIP_BUILD:-0}" = 1 ]; then
    say "SKIP_BUILD=1: using the images already in Minikube"
else
    say "Building images inside Minikube's Docker"
    # The images land in the daemon the cluster runs on, so no registry is
    # involved (the overlay sets imagePullPolicy: Never).
    eval "$(minikube -p "$PROFILE" docker-env)"
    for svc in "${SERVICES[@]}"; do
        # The first build compiles the workspace; the others reuse its cached
        # layers and only pick a different binary.
        echo "--- todo/$svc:dev"
        docker build --build-arg SERVICE="$svc" -t "todo/$svc:dev" .
    done
fi

# --- 3. Dapr control plane -------------------------------------------------------
dapr_installed() {
    kubectl get namespace dapr-system >/dev/null 2>&1 \
        && kubectl -n dapr-system get deploy dapr-sidecar-injector >/dev/null 2>&1
}
scheduler_installed() {
    kubectl -n dapr-system get statefulset dapr-scheduler-server >/dev/null 2>&1
}

if dapr_installed && scheduler_installed; then
    say "Dapr control plane present (with Scheduler)"
else
    if dapr_installed; then
        die "Dapr is installed in dapr-system but without the Scheduler, which reminder-service needs for the Jobs API (Dapr 1.14+). Upgrade it: 'dapr upgrade -k --runtime-version <1.14 or newer>', then re-run."
    fi
    say "Installing the Dapr control plane $DAPR_VERSION (via $DAPR_INSTALLER)"
    dapr_started=$SECONDS
    if [ "$DAPR_INSTALLER" = dapr ]; then
        dapr init -k --wait --timeout 600 --runtime-version "$DAPR_VERSION"
    else
        if [ "$TARGET" = minikube ]; then
            "$HELM" repo add dapr https://dapr.github.io/helm-charts/ >/dev/null 2>&1 || true
            "$HELM" repo update dapr >/dev/null
        fi
        # The chart's defaults (mTLS by Sentry, three Scheduler replicas on
        # the default StorageClass), with the images of the version installed.
        "$HELM" upgrade --install dapr "${DAPR_CHART[@]}" --namespace dapr-system --create-namespace \
            --set global.tag="$DAPR_VERSION" --wait --timeout 10m
    fi
    scheduler_installed || die "the Dapr control plane came up without the Scheduler; install Dapr 1.14 or newer."
    echo "Dapr control plane ready in $((SECONDS - dapr_started)) s"
fi
kubectl -n dapr-system rollout status statefulset/dapr-scheduler-server --timeout=300s
kubectl -n dapr-system rollout status deploy/dapr-sidecar-injector --timeout=300s

# --- 4. apply ------------------------------------------------------------------
say "Applying $OVERLAY"
# The topic Job's template is immutable; a finished Job is replaced (the
# topics are created with --if-not-exists, so running it again is harmless).
kubectl -n "$NAMESPACE" delete job kafka-topics --ignore-not-found >/dev/null 2>&1 || true
# Services already running keep their pods on `apply` (the tag is the same);
# remember which, to restart them onto the freshly built images below.
existing=()
for svc in "${SERVICES[@]}"; do
    if kubectl -n "$NAMESPACE" get "deploy/$svc" >/dev/null 2>&1; then existing+=("$svc"); fi
done
kubectl apply -k "$OVERLAY"

say "Waiting for infrastructure"
kubectl -n "$NAMESPACE" rollout status statefulset/postgres --timeout=300s
kubectl -n "$NAMESPACE" rollout status statefulset/kafka --timeout=300s
kubectl -n "$NAMESPACE" rollout status deploy/jaeger --timeout=300s
kubectl -n "$NAMESPACE" wait --for=condition=complete job/kafka-topics --timeout=300s

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    # Same tag, new image: make the Deployments that were already there pick it up.
    for svc in ${existing[@]+"${existing[@]}"}; do
        kubectl -n "$NAMESPACE" rollout restart "deploy/$svc" >/dev/null
    done
fi

say "Waiting for the services"
for svc in "${SERVICES[@]}"; do
    kubectl -n "$NAMESPACE" rollout status "deploy/$svc" --timeout=300s
done

# --- 5. how to use it ----------------------------------------------------------
if [ "$TARGET" = local ]; then remove="just cluster down (the whole cluster)"; else remove="scripts/undeploy.sh"; fi
cat <<MSG

The system is running in namespace '$NAMESPACE' ($TARGET; deployed in $((SECONDS - started)) s).

  task-api (gRPC + gRPC-Web):
    kubectl -n $NAMESPACE port-forward svc/task-api 50051:50051
    grpcurl -plaintext localhost:50051 list
    scripts/k8s-smoke.sh          # create, list and complete a task through it

  Jaeger UI (traces from CreateTask to every consumer):
    kubectl -n $NAMESPACE port-forward svc/jaeger-query 16686:16686
    open http://localhost:16686

  Logs:  kubectl -n $NAMESPACE logs deploy/task-api -c task-api   (-c daprd for the sidecar)
  Remove: $remove
MSG
