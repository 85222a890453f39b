-- The append-only, hash-chained audit log (schema `audit`).

CREATE TABLE audit_records (
    user_id       text        NOT NULL,
    sequence      bigint      NOT NULL,
    event_id      uuid        NOT NULL UNIQUE,
    event_type    text        NOT NULL,
    task_id       text        NOT NULL,
    occurred_at   timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    payload       bytea       NOT NULL,
    previous_hash bytea       NOT NULL,
    hash          bytea       NOT NULL,
    PRIMARY KEY (user_id, sequence)
);

CREATE INDEX audit_records_by_task ON audit_records (user_id, task_id, sequence);

-- Append-only: the database itself refuses to change or remove a record.
CREATE FUNCTION audit_records_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only';
END;
$$;

CREATE TRIGGER audit_records_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_are_immutable();
