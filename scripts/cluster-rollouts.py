#!/usr/bin/env python3
"""Rolling restarts under load, then the exactly-once check, on a deployed
system (scripts/test-cluster.sh runs it on the local cluster).

    cluster-rollouts.py TASK_API AUDIT NOTIFICATIONS   # host:port of each public API

With two replicas of every service, one user creates tasks at a steady
rate (every fifth a daily series, completed at once; every fifth due in an
hour and REMINDER_LEAD seconds, so its 1-hour reminder fires through the
Dapr Scheduler while the system is being restarted) while each Deployment
is restarted in turn, the Kafka pod is deleted and a Scheduler pod is
deleted. No call may fail meanwhile. Then every acknowledged change must be
in the audit log exactly once and in order, every completion must have
exactly one next occurrence, every due reminder exactly one notification,
no event may have been dead-lettered, and the user's chain must verify. The
addresses must survive a restart of the pods behind them: on the local
cluster the Services' ClusterIPs, which the node reaches directly (a
port-forward ends with its pod).

Needs grpcurl, kubectl and target/debug/todo-token.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import cluster  # noqa: E402
from cluster import Api, dead_letters, kubectl  # noqa: E402

RATE = float(os.environ.get("ROLLOUT_RATE", "5"))
REMINDER_LEAD = float(os.environ.get("REMINDER_LEAD", "40"))


def fail(message):
    cluster.fail("cluster-rollouts", message)


def rfc3339(at):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def load(tasks, acknowledged, completed, reminded, errors, stop):
    """Creates tasks at RATE a second until `stop`; every fifth is a daily
    series completed right away, every fifth has a reminder due
    REMINDER_LEAD seconds later. Only acknowledged calls count."""
    n = 0
    while not stop.is_set():
        started = time.time()
        n += 1
        recurring, reminder = n % 5 == 0, n % 5 == 2
        request = {"title": f"rollout {n}"}
        if recurring:
            request |= {"dueAt": "2031-01-01T09:00:00Z", "recurrence": {"frequency": "FREQUENCY_DAILY", "interval": 1}}
        if reminder:
            # The 24-hour reminder is already past: only the 1-hour one.
            request |= {"dueAt": rfc3339(time.time() + 3600 + REMINDER_LEAD)}
        try:
            task = tasks.call("todo.v1.TaskService/CreateTask", request)["task"]
            acknowledged.append(task["id"])
            if reminder:
                reminded.append(task["id"])
            if recurring:
                tasks.call("todo.v1.TaskService/CompleteTask", {"id": task["id"]})
                completed.append(task["id"])
        except RuntimeError as err:
            errors.append(str(err))
        time.sleep(max(0.0, 1 / RATE - (time.time() - started)))


def restart_everything(services):
    for service in services:
        print(f"  rollout restart deploy/{service}", flush=True)
        kubectl("rollout", "restart", f"deploy/{service}")
        kubectl("rollout", "status", f"deploy/{service}", "--timeout=240s")
    print("  delete pod kafka-0", flush=True)
    kubectl("delete", "pod", "kafka-0", "--wait=true")
    kubectl("rollout", "status", "statefulset/kafka", "--timeout=240s")
    kubectl("wait", "--for=condition=Ready", "pod/kafka-0", "--timeout=240s")
    print("  delete pod dapr-scheduler-server-0 (dapr-system)", flush=True)
    kubectl("delete", "pod", "dapr-scheduler-server-0", "--wait=true", namespace="dapr-system")
    kubectl("rollout", "status", "statefulset/dapr-scheduler-server", "--timeout=240s", namespace="dapr-system")


def main():
    task_api, audit_api, notifications_api = sys.argv[1], sys.argv[2], sys.argv[3]
    user = f"rollout-{os.getpid()}-{int(time.time())}"
    token = cluster.token_for(user)
    tasks, audit, notifications = Api(task_api, token), Api(audit_api, token), Api(notifications_api, token)
    services = sorted(os.listdir("services"))

    print(f"two replicas of every service; user {user}, {RATE:g} changes/s", flush=True)
    for service in services:
        kubectl("scale", f"deploy/{service}", "--replicas=2")
    for service in services:
        kubectl("rollout", "status", f"deploy/{service}", "--timeout=240s")

    dead_before = dead_letters()
    acknowledged, completed, reminded, errors, stop = [], [], [], [], threading.Event()
    worker = threading.Thread(target=load, args=(tasks, acknowledged, completed, reminded, errors, stop))
    worker.start()
    started = time.time()
    try:
        time.sleep(3)
        restart_everything(services)
        time.sleep(3)
    finally:
        stop.set()
        worker.join()
    print(f"{len(acknowledged)} tasks acknowledged ({len(completed)} completed series, "
          f"{len(reminded)} reminders) in "
          f"{time.time() - started:.0f} s; {len(errors)} calls refused during restarts", flush=True)
    for error in sorted(set(errors))[:5]:
        print(f"  refused: {error}", flush=True)
    if not acknowledged:
        fail(f"no change was acknowledged: {errors[:3]}")
    # Every pod keeps serving until the Service no longer routes to it
    # (preStop), and a new one is Ready before an old one goes.
    if errors:
        fail(f"{len(errors)} calls failed while the system was restarted; a rollout must not refuse any")

    # Each task created; each completion: completed, occurrence requested,
    # the occurrence created.
    expected = len(acknowledged) + 3 * len(completed)
    deadline = time.time() + 180 + REMINDER_LEAD
    while True:
        records = list(audit.pages("todo.v1.AuditService/ListAuditRecords", {}, "records"))
        created = {}
        for record in records:
            if record["eventType"] == "task.created":
                created[record["taskId"]] = created.get(record["taskId"], 0) + 1
        missing = [t for t in acknowledged if t not in created]
        occurrences = {}
        for task in tasks.pages("todo.v1.TaskService/ListTasks", {}, "tasks"):
            if task.get("seriesId") and task["seriesId"] != task["id"]:
                occurrences[task["seriesId"]] = occurrences.get(task["seriesId"], 0) + 1
        no_occurrence = [t for t in completed if t not in occurrences]
        notified = {}
        for note in notifications.pages("todo.v1.NotificationService/ListNotifications", {}, "notifications"):
            notified.setdefault(note["taskId"], []).append(note.get("kind"))
        unnotified = [t for t in reminded if t not in notified]
        if not missing and not no_occurrence and not unnotified and len(records) >= expected:
            break
        if time.time() > deadline:
            fail(f"after {180 + REMINDER_LEAD:.0f} s: {len(missing)} acknowledged tasks not audited "
                 f"(e.g. {missing[:3]}), {len(no_occurrence)} completions without a next occurrence, "
                 f"{len(unnotified)} due reminders without a notification, "
                 f"{len(records)} audit records of at least {expected}")
        time.sleep(3)

    duplicated = {t: n for t, n in created.items() if n > 1}
    if duplicated:
        fail(f"audited more than once: {list(duplicated.items())[:5]}")
    extra = {s: n for s, n in occurrences.items() if n > 1}
    if extra:
        fail(f"more than one next occurrence: {list(extra.items())[:5]}")
    twice = {t: kinds for t, kinds in notified.items() if kinds != ["REMINDER_KIND_1H_BEFORE"]}
    if twice:
        fail(f"not exactly one 1-hour notification per reminder: {list(twice.items())[:5]}")
    dead = dead_letters() - dead_before
    if dead:
        fail(f"{dead} events were dead-lettered during the restarts")
    sequences = [int(r["sequence"]) for r in records]
    if sequences != list(range(1, len(records) + 1)):
        fail("the audit records are not one gapless sequence")
    # A task's own events keep their commit order (one partition per user).
    per_task = {}
    for record in records:
        per_task.setdefault(record["taskId"], []).append(record["eventType"])
    out_of_order = [t for t in completed if per_task.get(t, [])[:2] != ["task.created", "task.completed"]]
    if out_of_order:
        fail(f"events out of order for {out_of_order[:3]}: {[per_task.get(t) for t in out_of_order[:3]]}")
    verdict = audit.call("todo.v1.AuditService/VerifyAuditChain", {})
    if not verdict.get("valid"):
        fail(f"the audit chain does not verify: {verdict}")
    print(f"exactly once: {len(records)} audit records, one per change, in order; "
          f"{len(completed)} completions, one occurrence each; {len(reminded)} reminders, one notification "
          f"each; no dead letters; chain valid ({verdict.get('recordsChecked')} checked)")


if __name__ == "__main__":
    main()
