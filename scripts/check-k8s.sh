#!/usr/bin/env bash
# Offline validation of the deployment: no cluster, no Docker, no cargo.
#
#   scripts/check-k8s.sh
#
# 1. Renders k8s/overlays/minikube (and k8s/base) with kustomize — the one
#    built into kubectl, or a standalone `kustomize`.
# 2. Validates every built-in resource against the Kubernetes OpenAPI schemas
#    in strict mode (unknown fields are errors), with the PyPI package
#    kubernetes-validate, which bundles the schemas.
# 3. Cross-checks the manifests, the Dapr resources, the Dockerfile and
#    scripts/deploy.sh against each other, against dapr/dev.yaml (the app ids
#    and every app's ports, written there once) and against the facts the
#    code exports (`todo-facts`: each service's default port and schema, the
#    topics), parsed, never read out of source text. The list of checks is
#    in scripts/check-k8s.py, one `check(...)` per rule.
#
# Needs cargo, python3 and kubectl (or kustomize). PyYAML and kubernetes-validate
# are used from the current python3 when importable; otherwise they are
# installed once from PyPI into .dev/check-k8s-venv (about 10 s).
# Exits non-zero on any problem.
set -euo pipefail

cd "$(dirname "$0")/.."

K8S_VERSION=${K8S_VERSION:-1.30.0}
VENV=${CHECK_K8S_VENV:-.dev/check-k8s-venv}
KUBERNETES_VALIDATE_VERSION=1.37.0

die() { printf 'check-k8s: %s\n' "$*" >&2; exit 1; }
started=$(date +%s%N)

# --- Python with PyYAML and kubernetes-validate ------------------------------
has_deps() { "$1" -c 'import yaml, kubernetes_validate' >/dev/null 2>&1; }
command -v python3 >/dev/null 2>&1 || die "python3 is required"
if has_deps python3; then
    PY=python3
elif [ -x "$VENV/bin/python" ] && has_deps "$VENV/bin/python"; then
    PY=$VENV/bin/python
else
    echo "check-k8s: installing PyYAML and kubernetes-validate into $VENV (once)"
    python3 -m venv "$VENV" || die "python3 -m venv failed (Debian/Ubuntu: apt install python3-venv)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "PyYAML>=6" \
        || die "pip could not install kubernetes-validate and PyYAML"
    PY=$VENV/bin/python
fi

# --- Render with kustomize -----------------------------------------------------
if command -v kubectl >/dev/null 2>&1; then
    render() { kubectl kustomize "$1"; }
elif command -v kustomize >/dev/null 2>&1; then
    render() { kustomize build "$1"; }
elif [ -z "${CI:-}" ]; then
    # A developer machine without kubectl still runs `just test`; CI never skips.
    echo "check-k8s: skipped: kubectl (or kustomize) not found; install it to validate k8s/" >&2
    exit 0
else
    die "kubectl (with its built-in kustomize) or kustomize is required to render k8s/"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
render k8s/overlays/minikube >"$tmp/overlay.yaml" || die "kustomize could not render k8s/overlays/minikube"
render k8s/base >"$tmp/base.yaml" || die "kustomize could not render k8s/base"
cargo run -q -p todo-tools --bin todo-facts >"$tmp/facts.json" || die "todo-facts could not say the code's facts"

# --- Schema validation and consistency checks ---------------------------------
"$PY" scripts/check-k8s.py "$tmp/overlay.yaml" "$tmp/base.yaml" "$K8S_VERSION" "$tmp/facts.json"

elapsed_ms=$(( ($(date +%s%N) - started) / 1000000 ))
printf 'check-k8s: done in %d.%01d s\n' $((elapsed_ms / 1000)) $(((elapsed_ms % 1000) / 100))
