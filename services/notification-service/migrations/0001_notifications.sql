-- Delivered notifications (schema `notifications`). The unique event id is
-- what makes delivery exactly-once in effect.

CREATE TABLE notifications (
    id         uuid PRIMARY KEY,
    event_id   uuid        NOT NULL UNIQUE,
    user_id    text        NOT NULL,
    task_id    text        NOT NULL,
    title      text        NOT NULL,
    message    text        NOT NULL,
    due_at     timestamptz,
    kind       smallint    NOT NULL,
    channel    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX notifications_by_user ON notifications (user_id, created_at DESC, id DESC);
