-- Tasks and the transactional outbox of task-api (schema `tasks`).

CREATE TABLE tasks (
    id                   uuid PRIMARY KEY,
    user_id              text        NOT NULL,
    title                text        NOT NULL,
    description          text        NOT NULL DEFAULT '',
    completed            boolean     NOT NULL DEFAULT false,
    priority             smallint    NOT NULL,
    due_at               timestamptz,
    tags                 text[]      NOT NULL DEFAULT '{}',
    recurrence_frequency smallint,
    recurrence_interval  integer,
    recurrence_until     timestamptz,
    recurrence_count     integer,
    series_id            uuid,
    occurrence_number    integer     NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    completed_at         timestamptz,
    version              bigint      NOT NULL DEFAULT 1,
    -- Client-chosen idempotency key of CreateTask.
    request_id           uuid
);

-- ListTasks orders: newest first, and earliest due first; the id breaks ties.
CREATE INDEX tasks_by_user_created ON tasks (user_id, created_at DESC, id DESC);
CREATE INDEX tasks_by_user_due ON tasks (user_id, due_at ASC NULLS LAST, id ASC);
CREATE INDEX tasks_by_tag ON tasks USING gin (tags);
CREATE UNIQUE INDEX tasks_request_id ON tasks (user_id, request_id) WHERE request_id IS NOT NULL;

-- One row per event to publish, written in the same transaction as the task
-- change; the relay deletes it only after the sidecar accepted the event.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    event_id      uuid        NOT NULL UNIQUE,
    topic         text        NOT NULL,
    event_type    text        NOT NULL,
    partition_key text        NOT NULL,
    payload       bytea       NOT NULL,
    -- W3C trace context of the RPC that made the change.
    traceparent   text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
