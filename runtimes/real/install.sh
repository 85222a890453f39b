#!/usr/bin/env bash
# Builds or fetches the real runtime into a cache folder outside the
# repository: daprd and the Dapr Scheduler (built from dapr/dapr through a
# generated wrapper module), Jaeger (the v2 all-in-one, likewise), and a
# Kafka broker (its jars resolved from Maven Central). Versions come from
# runtimes/real/versions.env and nowhere else.
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
# shellcheck source=versions.env
source "$HERE/versions.env"

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

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

for tool in go java javac mvn python3; do
    command -v "$tool" >/dev/null || die "$tool is required to install the real runtime (see README: prerequisites)"
done
export CGO_ENABLED=0

# A step is skipped when its stamp file holds the same key (what it was
# built from); the key changes with the versions and with this script's
# inputs, so an edit rebuilds just what it touches.
step() {
    local name=$1 stamp=$2 key=$3
    shift 3
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
        say "$name: up to date"
        return 0
    fi
    say "$name: building (first time takes minutes; later runs are cached)"
    local started=$SECONDS
    "$@"
    mkdir -p "$(dirname "$stamp")"
    printf '%s' "$key" >"$stamp"
    say "$name: done in $((SECONDS - started)) s"
}

# A wrapper module that requires `module@version` with the replace
# directives of that module's own go.mod (go ignores a dependency's replace
# lines, and `go install` refuses a module that has any), generated from the
# upstream go.mod rather than copied.
wrapper_module() {
    local dir=$1 module=$2 version=$3
    shift 3
    mkdir -p "$dir"
    rm -f "$dir/go.mod" "$dir/go.sum"
    local upstream
    upstream=$(cd "$dir" && go mod download -json "$module@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    local go_version
    go_version=$(go mod edit -json "$upstream" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Go"])')
    (
        cd "$dir"
        go mod init "todo.local/$(basename "$dir")" >/dev/null 2>&1
        go mod edit -go="$go_version" -require="$module@$version"
        go mod edit -json "$upstream" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    old = r["Old"]["Path"] + ("@" + r["Old"]["Version"] if r["Old"].get("Version") else "")
    new = r["New"]["Path"] + ("@" + r["New"]["Version"] if r["New"].get("Version") else "")
    print(f"-replace={old}={new}")
' | xargs -r go mod edit
        {
            echo "//go:build tools"
            echo
            echo "package tools"
            echo
            echo "import ("
            for package in "$@"; do echo "	_ \"$package\""; done
            echo ")"
        } >tools.go
        go mod tidy
    )
}

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

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

total=$SECONDS
step "daprd + scheduler $DAPR_VERSION" "$DAPR_DIR/.stamp" "$DAPR_VERSION $(go env GOVERSION)" build_dapr
step "jaeger $JAEGER_MODULE_VERSION" "$JAEGER_DIR/.stamp" "$JAEGER_MODULE_VERSION $(go env GOVERSION)" build_jaeger
step "kafka $KAFKA_VERSION" "$KAFKA_DIR/.stamp-libs" "$KAFKA_VERSION $(hash_of "$HERE/kafka/pom.xml")" fetch_kafka
step "kafka tool" "$KAFKA_DIR/.stamp-tool" "$(hash_of "$HERE/kafka/KafkaTool.java" "$KAFKA_DIR/.stamp-libs")" build_kafka_tool
say "real runtime ready in $CACHE ($((SECONDS - total)) s)"
print_layout
