#!/usr/bin/env bash
# `just dev-dapr [--tokens]`: the whole system on the real runtime, in the
# foreground: PostgreSQL (as `just dev`), then the dev-dapr launcher, which
# starts Kafka, the Dapr Scheduler, Jaeger, the five services and one daprd
# per service from dapr/dev.yaml (tools/todo/src/bin/dev-dapr.rs).
#
# Installs the real runtime first if it is missing (runtimes/real/install.sh: the
# first time takes minutes, later runs seconds). Every run starts from
# empty state (.dev/pg-real and .dev/real are wiped).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_PORT=${DEV_PG_PORT:-55433}
STATE=.dev
export JWT_SECRET=${JWT_SECRET:-dev-secret-change-me}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# shellcheck source=lib/postgres.sh
source scripts/lib/postgres.sh

for port in "$PG_PORT" 9092 9093 50006 4317 16686 50051 50052 50053 50054 50055 50001 50002 50003 50004 50007 3500 3501 3502 3503 3504; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is already in use (another 'just dev' or 'just dev-dapr'?); see docs/troubleshooting.md"
    fi
done

say "installing the real runtime (cached after the first time)"
runtimes/real/install.sh >/dev/null
say "building"
cargo build --workspace --bins

say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
pg_start "$STATE/pg-real" "$PG_PORT"
trap pg_stop EXIT

# Not exec: PostgreSQL stops when the launcher returns (Ctrl-C reaches both).
target/debug/dev-dapr --run-file dapr/dev.yaml --state-dir "$STATE/real" --database-url "$DATABASE_URL" "$@"
