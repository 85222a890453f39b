#!/usr/bin/env bash
# Removes what scripts/deploy.sh created in the cluster: the `todo` namespace
# (services, Kafka, PostgreSQL with their volumes, Jaeger, Dapr components).
#
#   scripts/undeploy.sh              keep the Dapr control plane and Minikube
#   scripts/undeploy.sh --dapr       also uninstall the Dapr control plane
#   scripts/undeploy.sh --all        delete the Minikube profile altogether
set -euo pipefail

cd "$(dirname "$0")/.."
PROFILE=${MINIKUBE_PROFILE:-minikube}
NAMESPACE=todo

command -v kubectl >/dev/null 2>&1 || { echo "undeploy: kubectl is required" >&2; exit 1; }

case "${1:-}" in
    --all)
        command -v minikube >/dev/null 2>&1 || { echo "undeploy: minikube is required for --all" >&2; exit 1; }
        minikube delete -p "$PROFILE"
        exit 0
        ;;
    --dapr | "") ;;
    *)
        echo "usage: $0 [--dapr | --all]" >&2
        exit 2
        ;;
esac

if kubectl get namespace "$NAMESPACE" >/dev/null 2>&1; then
    echo "==> Deleting namespace $NAMESPACE (workloads, volumes, Dapr components)"
    # Deleting the namespace also removes the PersistentVolumeClaims that
    # `kubectl delete -k` would leave behind (they come from StatefulSet
    # templates, not from the overlay).
    kubectl delete namespace "$NAMESPACE" --wait=true --timeout=300s
else
    echo "==> Namespace $NAMESPACE is not there; nothing to remove"
fi

if [ "${1:-}" = --dapr ]; then
    echo "==> Uninstalling the Dapr control plane"
    if command -v dapr >/dev/null 2>&1; then
        dapr uninstall -k
    elif command -v helm >/dev/null 2>&1; then
        helm uninstall dapr --namespace dapr-system
    else
        echo "undeploy: neither the dapr CLI nor helm found; Dapr left installed" >&2
        exit 1
    fi
fi
