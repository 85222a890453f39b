#!/usr/bin/env bash
# `just dev`: the whole system on this machine, in the foreground.
#
#   1. builds every binary;
#   2. starts a throw-away PostgreSQL in .dev/pg (as the postgres user when
#      run as root: initdb refuses root);
#   3. starts dev-sidecar, which reads dapr/dev.yaml, serves one Dapr
#      endpoint per app and starts the five services itself;
#   4. waits until every service has subscribed, prints where everything
#      listens, and streams the logs (prefixed per service) until Ctrl-C,
#      which stops the services, the sidecar and PostgreSQL.
#
# Every run starts from empty state (.dev/pg and .dev/sidecar are wiped).
set -euo pipefail
cd "$(dirname "$0")/.."

PG_PORT=${DEV_PG_PORT:-55432}
ADMIN_PORT=${DEV_SIDECAR_ADMIN_PORT:-50100}
STATE=.dev
PG_DIR="$STATE/pg"
export JWT_SECRET=${JWT_SECRET:-dev-secret-change-me}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

command -v curl >/dev/null || die "curl is required (apt install curl)"

# shellcheck source=lib/postgres.sh
source scripts/lib/postgres.sh

for port in "$PG_PORT" "$ADMIN_PORT" 50051 50052 50053 50054 50055 50001 50002 50003 50004 50007; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is already in use (another 'just dev'?); see docs/troubleshooting.md"
    fi
done

say "building"
cargo build --workspace --bins

say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
rm -rf "$STATE/sidecar"
pg_start "$PG_DIR" "$PG_PORT"

sidecar_pid=
cleanup() {
    trap - INT TERM EXIT
    echo
    say "stopping"
    if [ -n "$sidecar_pid" ] && kill -0 "$sidecar_pid" 2>/dev/null; then
        kill -TERM "$sidecar_pid" 2>/dev/null || true
        wait "$sidecar_pid" 2>/dev/null || true
    fi
    pg_stop
    say "stopped"
}
trap cleanup INT TERM EXIT

say "starting dev-sidecar and the five services (dapr/dev.yaml)"
target/debug/dev-sidecar --run-apps --run-file dapr/dev.yaml --data-dir "$STATE/sidecar" \
    --admin-port "$ADMIN_PORT" --env "DATABASE_URL=$DATABASE_URL" --env "JWT_SECRET=$JWT_SECRET" &
sidecar_pid=$!

for _ in $(seq 1 120); do
    kill -0 "$sidecar_pid" 2>/dev/null || die "dev-sidecar exited; see the log above"
    subscribed=$(curl -sf "http://127.0.0.1:$ADMIN_PORT/subscriptions" 2>/dev/null | grep -o '"app":"[a-z-]*"' | sort -u | wc -l || true)
    [ "${subscribed:-0}" -ge 5 ] && break
    sleep 0.5
done
[ "${subscribed:-0}" -ge 5 ] || die "the services did not all come up within 60 s"

cat <<BANNER

$(printf '\033[1;32m')The local stack is up.$(printf '\033[0m')

  task-api              grpc://127.0.0.1:50051   (gRPC + gRPC-Web; TaskService)
  notification-service  grpc://127.0.0.1:50054   (NotificationService)
  audit-service         grpc://127.0.0.1:50055   (AuditService)
  recurring / reminder  grpc://127.0.0.1:50052 / 50053 (AppCallback only)
  dev-sidecar (Dapr)    grpc://127.0.0.1:50001..50004, 50007 (one per app)
  inspection (HTTP)     http://127.0.0.1:$ADMIN_PORT/{topics,lag,dead-letters,jobs,subscriptions}
  PostgreSQL            $DATABASE_URL

  In another terminal:
    just demo                         # watch the event flow
    TOKEN=\$(just token alice)         # a JWT for user alice
    grpcurl -plaintext -H "authorization: Bearer \$TOKEN" -d '{"title":"hello"}' \\
        localhost:50051 todo.v1.TaskService/CreateTask
    just lag; just dlq                # consumer lag, dead letters

  Ctrl-C stops everything.

BANNER

wait "$sidecar_pid"
