
bulk-1¼
1»{
  "eventId": "0193a5c2-7d1e-7000-8000-000000000001",
  "eventType": "task.created",
  "occurredAt": "2026-01-31T12:00:00Z",
  "userId": "alice",
  "task": {
    "id": "0193a5c2-7d1e-7000-8000-0000000000aa",
    "userId": "alice",
    "title": "Pay rent",
    "dueAt": "2026-01-31T12:00:00Z",
    "seriesId": "0193a5c2-7d1e-7000-8000-0000000000aa",
    "version": "2",
    "occurrenceNumber": 1
  },
  "changedFields": [
    "completed"
  ]
}"application/json*F
traceparent700-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01*
cloudevent.typetask.created¸
2”
$0193a5c2-7d1e-7000-8000-000000000001task.completed*application/protobuf2Å
$0193a5c2-7d1e-7000-8000-000000000001task.completedÀÝ÷Ë"alice*s
$0193a5c2-7d1e-7000-8000-0000000000aaalicePay rent(:ÀÝ÷ËJ j$0193a5c2-7d1e-7000-8000-0000000000aapx2	completed"application/cloudevents+json"task-events*pubsub2com.dapr.event.sent:/events/task