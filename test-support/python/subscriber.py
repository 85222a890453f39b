"""A subscriber written with the official Dapr Python SDK (dapr.ext.grpc.App).

Usage: subscriber.py PORT OUTPUT_FILE
Appends one JSON line per delivered event to OUTPUT_FILE.
"""
import json
import sys

from dapr.ext.grpc import App

port, output = int(sys.argv[1]), sys.argv[2]
app = App()


@app.subscribe(pubsub_name="pubsub", topic="sdk-orders", dead_letter_topic="sdk-orders-dlq")
def on_order(event) -> None:
    data = event.Data()
    if isinstance(data, bytes):
        data = data.decode()
    with open(output, "a", encoding="utf-8") as out:
        out.write(json.dumps({
            "id": event.EventID(),
            "type": event.EventType(),
            "source": event.Source(),
            "content_type": event.ContentType(),
            "data": data,
        }) + "\n")


app.run(port)
