"""A publisher written with the official Dapr Python SDK (DaprClient).

Usage: publisher.py COUNT [KEYS [FIRST]]
(DAPR_GRPC_PORT and DAPR_HTTP_PORT point at the sidecar)
Publishes COUNT JSON events to sdk-orders, ids sdk-FIRST onwards, keyed by
one user so they stay in order, or spread over KEYS users (the benchmark).
"""
import json
import sys

from dapr.clients import DaprClient

count = int(sys.argv[1])
keys = int(sys.argv[2]) if len(sys.argv) > 2 else 0
first = int(sys.argv[3]) if len(sys.argv) > 3 else 0
with DaprClient() as client:
    for n in range(first, first + count):
        key = f"user-{n % keys}" if keys else "alice"
        client.publish_event(
            pubsub_name="pubsub",
            topic_name="sdk-orders",
            data=json.dumps({"n": n}),
            data_content_type="application/json",
            publish_metadata={"partitionKey": key, "cloudevent.id": f"sdk-{n}", "cloudevent.type": "order.placed"},
        )
    meta = client.get_metadata()
    print(json.dumps({"app_id": meta.application_id}))
