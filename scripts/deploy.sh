#!/usr/bin/env bash
# Takes a Minikube cluster from nothing to the running system:
#   1. checks the tools (minikube, kubectl, docker; dapr CLI or helm);
#   2. starts Minikube if it is not running;
#   3. installs the Dapr control plane (with the Scheduler, for the Jobs API)
#      if it is missing;
#   4. builds the five service images inside Minikube's Docker;
#   5. applies k8s/overlays/minikube and waits for everything to roll out;
#   6. prints how to reach task-api and the Jaeger UI.
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
#   SKIP_BUILD=1       do not rebuild the images
set -euo pipefail

cd "$(dirname "$0")/.."

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

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'deploy: %s\n' "$*" >&2; exit 1; }

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 is required but not installed. $2"
}

# --- 1. prerequisites --------------------------------------------------------
need minikube "Install: https://minikube.sigs.k8s.io/docs/start/"
need kubectl "Install: https://kubernetes.io/docs/tasks/tools/ (or use 'minikube kubectl --')"
need docker "The docker CLI builds the images against Minikube's daemon. Install: https://docs.docker.com/engine/install/"
if command -v dapr >/dev/null 2>&1; then
    DAPR_INSTALLER=dapr
elif command -v helm >/dev/null 2>&1; then
    DAPR_INSTALLER=helm
else
    die "the Dapr CLI (https://docs.dapr.io/getting-started/install-dapr-cli/) or helm (https://helm.sh/docs/intro/install/) is required to install the Dapr control plane."
fi

# --- 2. Minikube ---------------------------------------------------------------
if minikube status -p "$PROFILE" >/dev/null 2>&1; then
    say "Minikube profile '$PROFILE' is running"
else
    say "Starting Minikube (profile $PROFILE, ${CPUS} CPUs, ${MEMORY} MiB)"
    minikube start -p "$PROFILE" --cpus "$CPUS" --memory "$MEMORY"
fi
kubectl config use-context "$PROFILE" >/dev/null

# --- 3. Dapr control plane -----------------------------------------------------
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
    say "Installing the Dapr control plane (via $DAPR_INSTALLER)"
    if [ "$DAPR_INSTALLER" = dapr ]; then
        args=(init -k --wait --timeout 600)
        [ -n "${DAPR_VERSION:-}" ] && args+=(--runtime-version "$DAPR_VERSION")
        dapr "${args[@]}"
    else
        helm repo add dapr https://dapr.github.io/helm-charts/ >/dev/null 2>&1 || true
        helm repo update dapr >/dev/null
        args=(upgrade --install dapr dapr/dapr --namespace dapr-system --create-namespace --wait --timeout 10m)
        [ -n "${DAPR_VERSION:-}" ] && args+=(--version "$DAPR_VERSION")
        helm "${args[@]}"
    fi
    scheduler_installed || die "the Dapr control plane came up without the Scheduler; install Dapr 1.14 or newer."
fi
kubectl -n dapr-system rollout status statefulset/dapr-scheduler-server --timeout=300s
kubectl -n dapr-system rollout status deploy/dapr-sidecar-injector --timeout=300s

# --- 4. images -----------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" = 1 ]; then
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

# --- 5. apply ------------------------------------------------------------------
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

# --- 6. how to use it ----------------------------------------------------------
cat <<MSG

The system is running in namespace '$NAMESPACE'.

  task-api (gRPC + gRPC-Web):
    kubectl -n $NAMESPACE port-forward svc/task-api 50051:50051
    grpcurl -plaintext localhost:50051 list
    scripts/k8s-smoke.sh          # create, list and complete a task through it

  Jaeger UI (traces from CreateTask to every consumer):
    kubectl -n $NAMESPACE port-forward svc/jaeger-query 16686:16686
    open http://localhost:16686

  Logs:  kubectl -n $NAMESPACE logs deploy/task-api -c task-api   (-c daprd for the sidecar)
  Remove: scripts/undeploy.sh
MSG
