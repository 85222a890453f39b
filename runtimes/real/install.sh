#!/usr/bin/env bash
# Builds or fetches the real runtime into a cache folder outside the
# repository: daprd and the Dapr Scheduler (built from dapr/dapr through a
# generated wrapper module), Jaeger (the v2 all-in-one, likewise), and a
# Kafka broker (its jars resolved from Maven Central). Versions come from
# runtimes/versions.env and nowhere else.
#
#   runtimes/real/install.sh          # everything; a second run takes seconds
#   runtimes/real/install.sh --print  # only print where things are (sourceable)
#
# Prints the cache folder's layout as shell assignments on the last lines,
# so `eval "$(runtimes/real/install.sh --print)"` gives DAPRD, SCHEDULER, JAEGER,
# KAFKA_LIBS and KAFKA_TOOL_CLASSES.
#
# Needs: go (>= the version dapr's go.mod names), java 17+ with javac, mvn.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
# shellcheck source=../versions.env
source "$HERE/../versions.env"

CACHE=${TODO_RUNTIME_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/todo-runtime}
DAPR_DIR="$CACHE/dapr-$DAPR_VERSION"
JAEGER_DIR="$CACHE/jaeger-$JAEGER_MODULE_VERSION"
KAFKA_DIR="$CACHE/kafka-$KAFKA_VERSION"

print_layout() {
    cat <<EOF
TODO_RUNTIME_DIR=$CACHE
DAPR_VERSION=$DAPR_VERSION
DAPRD=$DAPR_DIR/bin/daprd
SCHEDULER=$DAPR_DIR/bin/scheduler
JAEGER=$JAEGER_DIR/bin/jaeger
KAFKA_VERSION=$KAFKA_VERSION
KAFKA_LIBS=$KAFKA_DIR/libs
KAFKA_TOOL_CLASSES=$KAFKA_DIR/tool
EOF
}
if [ "${1:-}" = "--print" ]; then
    print_layout
    exit 0
fi

# shellcheck source=../lib/install-steps.sh
source "$HERE/../lib/install-steps.sh"

for tool in go java javac mvn python3; do
    command -v "$tool" >/dev/null || die "$tool is required to install the real runtime (see README: prerequisites)"
done
export CGO_ENABLED=0

build_dapr() {
    local src="$CACHE/src/dapr-$DAPR_VERSION"
    wrapper_module "$src" github.com/dapr/dapr "v$DAPR_VERSION" \
        github.com/dapr/dapr/cmd/daprd github.com/dapr/dapr/cmd/scheduler
    # Without the version stamp daprd reports "edge".
    local ldflags="-s -w -X github.com/dapr/dapr/pkg/buildinfo.version=$DAPR_VERSION"
    mkdir -p "$DAPR_DIR/bin"
    (
        cd "$src"
        # Kafka pub/sub is a stable component; a plain build panics at start.
        go build -trimpath -tags stablecomponents -ldflags "$ldflags" -o "$DAPR_DIR/bin/daprd" github.com/dapr/dapr/cmd/daprd
        go build -trimpath -ldflags "$ldflags" -o "$DAPR_DIR/bin/scheduler" github.com/dapr/dapr/cmd/scheduler
    )
}

build_jaeger() {
    local src="$CACHE/src/jaeger-$JAEGER_MODULE_VERSION"
    wrapper_module "$src" github.com/jaegertracing/jaeger "v$JAEGER_MODULE_VERSION" \
        github.com/jaegertracing/jaeger/cmd/jaeger
    mkdir -p "$JAEGER_DIR/bin"
    (cd "$src" && go build -trimpath -ldflags "-s -w" -o "$JAEGER_DIR/bin/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger)
}

fetch_kafka() {
    rm -rf "$KAFKA_DIR/libs"
    mvn -q -B -f "$HERE/kafka/pom.xml" \
        -Dkafka.version="$KAFKA_VERSION" -Dkafka.scala="$KAFKA_SCALA" \
        -Ddependency.plugin.version="$MAVEN_DEPENDENCY_PLUGIN" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_DIR/libs"
}

build_kafka_tool() {
    rm -rf "$KAFKA_DIR/tool"
    mkdir -p "$KAFKA_DIR/tool"
    javac -nowarn -d "$KAFKA_DIR/tool" -cp "$KAFKA_DIR/libs/*" "$HERE/kafka/KafkaTool.java"
}

total=$SECONDS
step "daprd + scheduler $DAPR_VERSION" "$DAPR_DIR/.stamp" "$DAPR_VERSION $(go env GOVERSION)" build_dapr
step "jaeger $JAEGER_MODULE_VERSION" "$JAEGER_DIR/.stamp" "$JAEGER_MODULE_VERSION $(go env GOVERSION)" build_jaeger
step "kafka $KAFKA_VERSION" "$KAFKA_DIR/.stamp-libs" "$KAFKA_VERSION $(hash_of "$HERE/kafka/pom.xml")" fetch_kafka
step "kafka tool" "$KAFKA_DIR/.stamp-tool" "$(hash_of "$HERE/kafka/KafkaTool.java" "$KAFKA_DIR/.stamp-libs")" build_kafka_tool
say "real runtime ready in $CACHE ($((SECONDS - total)) s)"
print_layout
