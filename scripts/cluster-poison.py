#!/usr/bin/env python3
"""Poison → dead letter on a deployed system (scripts/test-cluster.sh runs
it), the end-to-end suite's `poison` scenario as seen from outside.

    cluster-poison.py TASK_API AUDIT DAPRD   # host:port of each

An event no consumer can decode is published onto task-events through
task-api's sidecar (DAPRD: its Dapr gRPC API, with the deployment's
dapr-api-token), keyed like a user's events. Every subscriber of
task-events must dead-letter it, none may block on it: the user's next
change, behind it in the same partition, is audited, and task-events-dlq
gains exactly one record per consumer group.

Needs grpcurl, kubectl, target/debug/todo-token, and DAPR_PROTO: the
root of Dapr's protos (github.com/dapr/dapr at the deployed version).
"""
import base64
import json
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import cluster  # noqa: E402
from cluster import Api, dead_letters, kubectl  # noqa: E402

# The consumer groups of task-events: one per consuming app, whatever its
# replicas; and task-api's WatchTasks reads through pubsub-broadcast, a
# group per pod, so each task-api pod dead-letters on its own.
APP_GROUPS = ["audit-service", "recurring-service", "reminder-service"]


def subscribers():
    pods = int(kubectl("get", "deploy", "task-api", "-o", "jsonpath={.status.readyReplicas}") or 0)
    return len(APP_GROUPS) + pods


def fail(message):
    cluster.fail("cluster-poison", message)


def main():
    task_api, audit_api, daprd = sys.argv[1], sys.argv[2], sys.argv[3]
    proto_root = os.environ["DAPR_PROTO"]
    user = f"poison-{os.getpid()}-{int(time.time())}"
    token = cluster.token_for(user)
    tasks, audit = Api(task_api, token), Api(audit_api, token)
    api_token = base64.b64decode(kubectl("get", "secret", "dapr-api-token", "-o", "jsonpath={.data.token}")).decode()
    before = dead_letters("task-events-dlq")

    poison_id = f"poison-{uuid.uuid4()}"
    request = {
        "pubsubName": "pubsub",
        "topic": "task-events",
        "data": base64.b64encode(b"{ this is not an event").decode(),
        "dataContentType": "application/json",
        "metadata": {"partitionKey": user, "cloudevent.id": poison_id, "cloudevent.type": "task.completed"},
    }
    done = subprocess.run(
        ["grpcurl", "-plaintext", "-max-time", "10", "-import-path", proto_root,
         "-proto", "dapr/proto/runtime/v1/dapr.proto", "-H", f"dapr-api-token: {api_token}",
         "-d", json.dumps(request), daprd, "dapr.proto.runtime.v1.Dapr/PublishEvent"],
        capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"publishing the poison through task-api's sidecar: {done.stderr.strip()}")
    print(f"published {poison_id} onto task-events, keyed {user}")

    # The user's next change is behind the poison in the same partition.
    task = tasks.call("todo.v1.TaskService/CreateTask", {"title": "after the poison"})["task"]
    deadline = time.time() + 60
    while not any(r["taskId"] == task["id"] for r in audit.pages("todo.v1.AuditService/ListAuditRecords", {}, "records")):
        if time.time() > deadline:
            fail("the change behind the poison was not audited within 60 s: a consumer is stuck on it")
        time.sleep(1)
    print("the change behind it was audited: no consumer blocks on the poison")

    expected = subscribers()
    deadline = time.time() + 60
    while (letters := dead_letters("task-events-dlq") - before) < expected:
        if time.time() > deadline:
            fail(f"{letters} dead letters on task-events-dlq after 60 s, expected one per consumer group ({expected})")
        time.sleep(2)
    time.sleep(3)
    letters = dead_letters("task-events-dlq") - before
    if letters != expected:
        fail(f"{letters} dead letters on task-events-dlq, expected one per consumer group ({expected})")
    print(f"dead-lettered once by each of the {expected} consumer groups of task-events")


if __name__ == "__main__":
    main()
