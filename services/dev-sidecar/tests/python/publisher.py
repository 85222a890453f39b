"""A publisher written with the official Dapr Python SDK (DaprClient).

Usage: publisher.py COUNT   (DAPR_GRPC_PORT and DAPR_HTTP_PORT point at the sidecar)
Publishes COUNT JSON events to sdk-orders, keyed by one user so they stay in order.
"""
import json
import sys

from dapr.clients import DaprClient

count = int(sys.argv[1])
with DaprClient() as client:
    for n in range(count):
        client.publish_event(
            pubsub_name="pubsub",
            topic_name="sdk-orders",
            data=json.dumps({"n": n}),
            data_content_type="application/json",
            publish_metadata={"partitionKey": "alice", "cloudevent.id": f"sdk-{n}", "cloudevent.type": "order.placed"},
        )
    meta = client.get_metadata()
    print(json.dumps({"app_id": meta.application_id}))
