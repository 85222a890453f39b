"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/).

Real-looking inputs give the fuzzer a head start: events as task-api,
recurring-service and reminder-service publish them, in protobuf and proto3
JSON, and deliveries as daprd sends them. Run with the Python that
`scripts/python-peers.sh` prepares (it has protobuf and the Dapr protos):

    .dev/py/bin/python scripts/fuzz-seeds.py <todo_descriptor.bin>
"""

import pathlib
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from dapr.proto.runtime.v1 import appcallback_pb2

ROOT = pathlib.Path(__file__).resolve().parent.parent / "fuzz" / "corpus"


def messages(descriptor_path):
    files = descriptor_pb2.FileDescriptorSet()
    files.ParseFromString(pathlib.Path(descriptor_path).read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for proto in files.file:
        pool.Add(proto)
    get = lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
    return get("todo.v1.TaskEvent"), get("todo.v1.ReminderEvent"), get("todo.v1.TaskOccurrenceRequested")


def write(target, name, data):
    folder = ROOT / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def main():
    TaskEvent, ReminderEvent, Occurrence = messages(sys.argv[1])
    recurring = TaskEvent(
        event_id="0193a5c2-7d1e-7000-8000-000000000001",
        event_type="task.completed",
        user_id="alice",
        changed_fields=["completed"],
    )
    recurring.occurred_at.seconds = 1769860800
    task = recurring.task
    task.id = "0193a5c2-7d1e-7000-8000-0000000000aa"
    task.user_id = "alice"
    task.title = "Pay rent"
    task.completed = True
    task.due_at.seconds = 1769860800  # 2026-01-31: month-end clamping
    task.recurrence.frequency = 3  # monthly
    task.recurrence.interval = 1
    task.recurrence.count = 12
    task.series_id = task.id
    task.occurrence_number = 1
    task.version = 2
    created = TaskEvent()
    created.CopyFrom(recurring)
    created.event_type = "task.created"
    created.task.completed = False
    created.task.ClearField("recurrence")
    reminder = ReminderEvent(
        event_id="6f1c2b9e-0000-5000-8000-000000000002",
        event_type="reminder.due_soon",
        user_id="alice",
        task_id=task.id,
        title="Pay rent",
        kind=2,
    )
    reminder.due_at.seconds = 1769860800
    command = Occurrence(series_id=task.id, user_id="alice", occurrence_number=2)

    selectors = {"protobuf": b"\x00", "json": b"\x02"}
    for name, message in [("completed", recurring), ("created", created), ("reminder", reminder), ("command", command)]:
        binary = message.SerializeToString()
        text = json_format.MessageToJson(message).encode()
        write("event_decoders", f"{name}.pb", selectors["protobuf"] + binary)
        write("event_decoders", f"{name}.json", selectors["json"] + text)
        if name in ("completed", "created"):
            write("consumer_logic", f"{name}.pb", binary)

    single = appcallback_pb2.TopicEventRequest(
        id=recurring.event_id,
        source="task-api",
        type="task.completed",
        spec_version="1.0",
        data_content_type="application/protobuf",
        data=recurring.SerializeToString(),
        topic="task-events",
        pubsub_name="pubsub",
        path="/events/task",
    )
    single.extensions.fields["traceparent"].string_value = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    write("deliveries", "single.pb", single.SerializeToString())
    bulk = appcallback_pb2.TopicEventBulkRequest(id="bulk-1", topic="task-events", pubsub_name="pubsub", type="com.dapr.event.sent", path="/events/task")
    entry = bulk.entries.add(entry_id="1", content_type="application/json", bytes=json_format.MessageToJson(created).encode())
    entry.metadata["cloudevent.type"] = "task.created"
    entry.metadata["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    ce = bulk.entries.add(entry_id="2", content_type="application/cloudevents+json")
    ce.cloud_event.id = recurring.event_id
    ce.cloud_event.type = "task.completed"
    ce.cloud_event.data_content_type = "application/protobuf"
    ce.cloud_event.data = recurring.SerializeToString()
    write("deliveries", "bulk.pb", bulk.SerializeToString())


if __name__ == "__main__":
    main()
