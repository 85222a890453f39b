# Event-driven Todo backend: the commands people run.
# `just` lists them; `just dev` runs the system, `just test` checks everything.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Build every crate (debug).
build:
    cargo build --workspace --all-targets --all-features

# Format the code.
fmt:
    cargo fmt --all

# Formatting check, clippy with warnings as errors, proto lint, one gRPC
# stack, and the offline check of k8s/ and dapr/ against the code.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --all-features -- -D warnings
    scripts/buf-lint.sh
    scripts/check-single-grpc-stack.sh
    scripts/check-k8s.sh

# Everything CI checks: formatting, clippy, then every test (unit,
# integration, service start-up). Tests start their own throw-away
# PostgreSQL unless DATABASE_URL is set.
test: lint
    #!/usr/bin/env bash
    set -euo pipefail
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --workspace --all-features --no-fail-fast
    else
        cargo test --workspace --all-features --no-fail-fast
    fi

# Run the local stack. Not yet complete: today it builds every service and
# says so; the full stack (PostgreSQL, dev-sidecar, all services, demo) is
# tracked in the project's issues.
dev: build
    @echo "Built all services under target/debug/."
    @echo "The one-command local stack (PostgreSQL + dev-sidecar + services + demo) is not implemented yet."

# Deploy to Minikube: Dapr control plane (with Scheduler), Kafka, PostgreSQL, Jaeger, the five services.
deploy:
    scripts/deploy.sh

# Remove the deployment (`just undeploy --dapr` also removes Dapr, `--all` deletes the Minikube profile).
undeploy *args:
    scripts/undeploy.sh {{args}}

# Smoke-test the deployed task-api (port-forward, dev JWT, create/list/complete).
k8s-smoke:
    scripts/k8s-smoke.sh

# Validate k8s/ and dapr/ offline: kustomize render, Kubernetes schemas, consistency with the code.
k8s-check:
    scripts/check-k8s.sh
