-- The ids of deleted tasks of a series. An occurrence's id is derived from
-- its series and due date, so a replayed or redelivered command asks for
-- the same id again; this is how task-api knows the user deleted it and
-- does not bring it back.
CREATE TABLE deleted_tasks (
    id uuid PRIMARY KEY,
    deleted_at timestamptz NOT NULL DEFAULT now()
);
