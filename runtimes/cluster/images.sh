#!/usr/bin/env bash
# Gets the deployment's images into the local cluster (`just cluster up`),
# which has no registry to pull from. Made on this machine and imported into
# the cluster's containerd under the names k8s/ and the Dapr chart use, so
# `imagePullPolicy: IfNotPresent` and `Never` find them:
#
#   runtimes/cluster/images.sh infra      # what Minikube pulls from registries:
#                                         #   ghcr.io/dapr/{daprd,operator,injector,sentry,placement,scheduler},
#                                         #   apache/kafka, postgres, jaeger
#   runtimes/cluster/images.sh services   # todo/<service>:dev, built from the project's Dockerfile
#
# The services are built as Minikube's Docker builds them: the Dockerfile,
# by buildah, on local stand-ins for its two base images (rust:1-bookworm:
# the Debian userland with gcc and this machine's Rust toolchain;
# gcr.io/distroless/cc-debian12:nonroot: the Debian userland, which has
# glibc, libgcc, CA roots and user 65532). buildah keeps its layers in
# /var/lib/containers, so a second build compiles only what changed.
# SERVICE_PROFILE=debug or release packs this machine's cargo build on the
# userland instead: no Dockerfile, seconds after `just test`.
#
# The stand-ins for Kafka, PostgreSQL and Jaeger are built from the same
# pinned versions as the real runtime (runtimes/versions.env) and keep the
# contract k8s/ relies on of the official images (entry point, environment,
# users, paths); runtimes/cluster/images/ holds their entry points.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=../lib/install-steps.sh
source runtimes/lib/install-steps.sh
# shellcheck source=layout.sh
source runtimes/cluster/layout.sh
# shellcheck source=../versions.env
source runtimes/versions.env
eval "$(runtimes/real/install.sh --print)"
eval "$(runtimes/cluster/install.sh --print)"

[ -S "$CONTAINERD_SOCK" ] || die "the local cluster is not running (just cluster up)"
WORK=$STATE/images
mkdir -p "$WORK"
IMAGE=(python3 runtimes/cluster/image.py)

# Makes and imports image NAME with FUNCTION unless it was imported into
# this cluster from the same inputs (files, by size and time, and the
# scripts that make images): a second deploy imports only what changed.
# `just cluster down` forgets them all.
#   image_step NAME FUNCTION INPUT...
image_step() {
    local name=$1 make=$2 key
    shift 2
    key=$( { stat -L -c '%n %s %Y' "$@" runtimes/cluster/image.py "$0"; } | sha256sum | cut -c1-16)
    if [ -f "$WORK/$name.key" ] && [ "$(cat "$WORK/$name.key")" = "$key" ]; then
        say "$name: already imported"
        return 0
    fi
    "$make" "$WORK/$name.tar"
    import_image "$WORK/$name.tar"
    printf '%s' "$key" >"$WORK/$name.key"
}

# The name an image has in k8s/, read from the manifests rather than
# written here a second time.
image_in_manifests() {
    grep -rhoE "image: *$1:[^ \"]+" k8s/base | head -n 1 | sed 's/image: *//'
}

# One image holds the six Dapr binaries under every name the chart composes
# ({registry}/{name}:{tag}, running /{name}); its pods run as 65532.
dapr_image() {
    say "Dapr $DAPR_VERSION control plane and sidecar"
    local names=() name files=()
    for name in daprd scheduler operator injector sentry placement; do
        names+=("ghcr.io/dapr/$name:$DAPR_VERSION")
    done
    files+=(--file "$DAPRD=/daprd" --file "$SCHEDULER=/scheduler")
    for name in $DAPR_CONTROL_PLANE; do
        files+=(--file "$DAPR_CONTROL_PLANE_BIN/$name=/$name")
    done
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$WORK/passwd"
    "${IMAGE[@]}" "$1" "${names[@]}" "${files[@]}" \
        --file /etc/ssl/certs/ca-certificates.crt=/etc/ssl/certs/ca-certificates.crt:644 \
        --file "$WORK/passwd=/etc/passwd:644" --dir /tmp:1777 --user 65532:65532
}

kafka_image() {
    say "$KAFKA_IMAGE (Kafka $KAFKA_VERSION's jars from Maven Central on Debian's JRE)"
    "${IMAGE[@]}" "$1" "docker.io/$KAFKA_IMAGE" --layer "$DEBIAN_ROOTFS" \
        --tree "$KAFKA_LIBS=/opt/kafka/libs" \
        --file runtimes/real/kafka/log4j2.yaml=/opt/kafka/config/log4j2.yaml:644 \
        --file runtimes/cluster/images/kafka/run=/etc/kafka/docker/run \
        --file runtimes/cluster/images/kafka/bin/kafka-run-class.sh=/opt/kafka/bin/kafka-run-class.sh \
        --file runtimes/cluster/images/kafka/bin/kafka-topics.sh=/opt/kafka/bin/kafka-topics.sh \
        --file runtimes/cluster/images/kafka/bin/kafka-get-offsets.sh=/opt/kafka/bin/kafka-get-offsets.sh \
        --entrypoint=/etc/kafka/docker/run --user 1000:1000
}

postgres_image() {
    say "$POSTGRES_IMAGE (Debian's PostgreSQL)"
    # Listing the userland reads all of it: only when the image is made.
    local pg_bin
    pg_bin=$(tar -tf "$DEBIAN_ROOTFS" | grep -oE '^\./usr/lib/postgresql/[0-9]+/bin/' | head -n 1)
    PG_BIN=${pg_bin#.}
    [ "${POSTGRES_IMAGE#*:}" = "$(basename "$(dirname "$PG_BIN")")-$DEBIAN_RELEASE" ] \
        || die "k8s/ runs $POSTGRES_IMAGE; the Debian userland has PostgreSQL in $PG_BIN"
    "${IMAGE[@]}" "$1" "docker.io/library/$POSTGRES_IMAGE" --layer "$DEBIAN_ROOTFS" \
        --file runtimes/cluster/images/postgres/docker-entrypoint.sh=/usr/local/bin/docker-entrypoint.sh \
        --env "PATH=$PG_BIN:/usr/local/bin:/usr/bin:/bin" --env LANG=C.UTF-8 \
        --entrypoint=docker-entrypoint.sh --user 999:999
}

jaeger_image() {
    say "$JAEGER_IMAGE (the real runtime's Jaeger)"
    "${IMAGE[@]}" "$1" "docker.io/$JAEGER_IMAGE" --file "$JAEGER=/cmd/jaeger/jaeger-linux" \
        --dir /tmp:1777 --entrypoint=/cmd/jaeger/jaeger-linux --user 10001:10001
}

infra() {
    local started=$SECONDS
    [ -f "$DEBIAN_ROOTFS" ] || die "run runtimes/cluster/install.sh first"
    KAFKA_IMAGE=$(image_in_manifests apache/kafka)
    POSTGRES_IMAGE=$(image_in_manifests postgres)
    JAEGER_IMAGE=$(image_in_manifests jaegertracing/jaeger)
    [ "${KAFKA_IMAGE##*:}" = "$KAFKA_VERSION" ] || die "k8s/ runs $KAFKA_IMAGE; runtimes/versions.env pins Kafka $KAFKA_VERSION"
    image_step dapr dapr_image "$DAPRD" "$SCHEDULER" "$DAPR_CONTROL_PLANE_BIN"/*
    image_step kafka kafka_image "$DEBIAN_ROOTFS" "$KAFKA_LIBS" runtimes/real/kafka/log4j2.yaml runtimes/cluster/images/kafka/run runtimes/cluster/images/kafka/bin/*
    image_step postgres postgres_image "$DEBIAN_ROOTFS" runtimes/cluster/images/postgres/*
    image_step jaeger jaeger_image "$JAEGER"
    say "infrastructure images ready in $((SECONDS - started)) s"
}

# The Dockerfile's base images, under its names, in buildah's storage
# (which the build reads with --pull-never: there is no registry).
RUST_IMAGE=docker.io/library/rust:1-bookworm
DISTROLESS_IMAGE=gcr.io/distroless/cc-debian12:nonroot
# The build trusts the CA roots this machine trusts: where a proxy
# re-signs TLS (as here), cargo reaches crates.io only through its CA.
rust_image() {
    say "$RUST_IMAGE (the Debian userland with gcc, and Rust $(rustc --version | cut -d' ' -f2) from this machine)"
    "${IMAGE[@]}" "$1" "$RUST_IMAGE" --layer "$DEBIAN_ROOTFS" \
        --file "$SYSROOT/bin/cargo=/usr/local/bin/cargo" --file "$SYSROOT/bin/rustc=/usr/local/bin/rustc" \
        --file "$SYSROOT/bin/rustdoc=/usr/local/bin/rustdoc" --tree "$SYSROOT/lib=/usr/local/lib" \
        --dir /usr/local/cargo --env CARGO_HOME=/usr/local/cargo \
        --file /etc/ssl/certs/ca-certificates.crt=/etc/ssl/certs/ca-certificates.crt:644 \
        --env PATH=/usr/local/cargo/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
}
distroless_image() {
    say "$DISTROLESS_IMAGE (the Debian userland: glibc, libgcc, CA roots, user 65532)"
    "${IMAGE[@]}" "$1" "$DISTROLESS_IMAGE" --layer "$DEBIAN_ROOTFS" --user 65532:65532
}

# Like image_step, into buildah's storage: makes NAME's image with FUNCTION
# unless buildah holds it from the same inputs.
#   base_step NAME IMAGE FUNCTION INPUT...
base_step() {
    local name=$1 image=$2 make=$3 key keys=/var/lib/containers/todo-bases
    shift 3
    # The function, not this whole script: an unrelated edit here must not
    # make a new base image, which would compile the workspace from scratch.
    key=$( { stat -L -c '%n %s %Y' "$@" runtimes/cluster/image.py; declare -f "$make"; } | sha256sum | cut -c1-16)
    if [ "$(cat "$keys/$name.key" 2>/dev/null)" = "$key" ] && buildah inspect --type image "$image" >/dev/null 2>&1; then
        return 0
    fi
    "$make" "$WORK/$name.tar"
    buildah pull -q "docker-archive:$WORK/$name.tar" >/dev/null
    rm -f "$WORK/$name.tar"
    mkdir -p "$keys"
    printf '%s' "$key" >"$keys/$name.key"
}

# The Dockerfile, once per service (the builder stages are shared, so the
# workspace compiles once), then each image exported into the cluster
# unless the same image was imported before.
dockerfile_images() {
    grep -q '^ARG RUST_VERSION=1$' Dockerfile && grep -q '^FROM rust:${RUST_VERSION}-bookworm ' Dockerfile \
        && grep -q "^FROM $DISTROLESS_IMAGE " Dockerfile \
        || die "the Dockerfile's base images are not $RUST_IMAGE and $DISTROLESS_IMAGE: update images.sh"
    # This machine's toolchain, which rust_image packs.
    SYSROOT=$(rustc --print sysroot)
    base_step rust "$RUST_IMAGE" rust_image "$DEBIAN_ROOTFS" "$SYSROOT/bin/rustc" "$SYSROOT/bin/cargo" \
        /etc/ssl/certs/ca-certificates.crt
    base_step distroless "$DISTROLESS_IMAGE" distroless_image "$DEBIAN_ROOTFS"
    local id
    for SERVICE in "$@"; do
        say "todo/$SERVICE:dev (Dockerfile)"
        # chroot isolation: RUN steps share this machine's network (crates.io).
        buildah bud --isolation chroot --pull-never --layers \
            --build-arg SERVICE="$SERVICE" -t "todo/$SERVICE:dev" .
        id=$(buildah images --quiet --no-trunc "todo/$SERVICE:dev")
        if [ "$(cat "$WORK/$SERVICE.key" 2>/dev/null)" = "$id" ]; then
            continue
        fi
        buildah push -q "todo/$SERVICE:dev" "docker-archive:$WORK/$SERVICE.tar:docker.io/todo/$SERVICE:dev"
        import_image "$WORK/$SERVICE.tar"
        printf '%s' "$id" >"$WORK/$SERVICE.key"
    done
}

# SERVICE_PROFILE's build of this machine, on the Debian userland standing
# in for distroless' cc image, as the Dockerfile's runtime stage uses it.
service_image() {
    say "todo/$SERVICE:dev ($PROFILE build)"
    "${IMAGE[@]}" "$1" "docker.io/todo/$SERVICE:dev" --layer "$DEBIAN_ROOTFS" \
        --file "target/$PROFILE/$SERVICE=/usr/local/bin/service" \
        --env PATH=/usr/local/bin:/usr/bin:/bin --env APP_HOST=0.0.0.0 \
        --entrypoint=/usr/local/bin/service --user 65532:65532
}

services() {
    local started=$SECONDS services=()
    mapfile -t services < <(ls services)
    PROFILE=${SERVICE_PROFILE:-dockerfile}
    if [ "$PROFILE" = dockerfile ]; then
        dockerfile_images "${services[@]}"
        say "service images ready in $((SECONDS - started)) s"
        return 0
    fi
    say "$PROFILE build of ${services[*]}"
    case $PROFILE in
        release) cargo build --release --locked $(printf -- '-p %s ' "${services[@]}") ;;
        # The workspace's own debug build, as `just build` and `just test`
        # make it: building only the services would unify features
        # differently and compile most of the tree again (12 minutes in CI).
        debug) cargo build --locked --workspace --all-targets ;;
        *) die "SERVICE_PROFILE is dockerfile (the default), release or debug, not $PROFILE" ;;
    esac
    for SERVICE in "${services[@]}"; do
        image_step "$SERVICE" service_image "$DEBIAN_ROOTFS" "target/$PROFILE/$SERVICE"
    done
    say "service images ready in $((SECONDS - started)) s"
}

case "${1:-}" in
    infra) infra ;;
    services) services ;;
    *) echo "usage: $0 infra|services" >&2; exit 2 ;;
esac
