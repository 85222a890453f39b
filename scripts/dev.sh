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

# --- PostgreSQL binaries --------------------------------------------------
pg_bin=${PG_BIN_DIR:-}
if [ -z "$pg_bin" ]; then
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        pg_bin=$(dirname "$(command -v initdb)")
    else
        pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    fi
fi
[ -x "$pg_bin/initdb" ] || die "PostgreSQL server binaries not found: install PostgreSQL (apt install postgresql) or set PG_BIN_DIR"

for port in "$PG_PORT" "$ADMIN_PORT" 50051 50052 50053 50054 50055 50001 50002 50003 50004 50007; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is already in use (another 'just dev'?); see docs/troubleshooting.md"
    fi
done

say "building"
cargo build --workspace --bins

say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
rm -rf "$PG_DIR" "$STATE/sidecar"
mkdir -p "$PG_DIR"
as_pg=()
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user for initdb"
    chown -R postgres "$PG_DIR"
    as_pg=(runuser -u postgres --)
fi
pg_abs=$(cd "$PG_DIR" && pwd)
"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_abs/data" -U postgres --auth=trust -E UTF8 --no-sync >"$pg_abs/initdb.log" 2>&1 \
    || die "initdb failed; see $pg_abs/initdb.log"
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_abs/data" -l "$pg_abs/server.log" -w \
    -o "-p $PG_PORT -k $pg_abs -c listen_addresses=127.0.0.1" start >/dev/null \
    || die "PostgreSQL did not start; see $pg_abs/server.log"

sidecar_pid=
cleanup() {
    trap - INT TERM EXIT
    echo
    say "stopping"
    if [ -n "$sidecar_pid" ] && kill -0 "$sidecar_pid" 2>/dev/null; then
        kill -TERM "$sidecar_pid" 2>/dev/null || true
        wait "$sidecar_pid" 2>/dev/null || true
    fi
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_abs/data" -m fast -w stop >/dev/null 2>&1 || true
    say "stopped"
}
trap cleanup INT TERM EXIT

say "starting dev-sidecar and the five services (dapr/dev.yaml)"
DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
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
