-- TRUNCATE bypasses row triggers: refuse it too, and take the write
-- privileges that an append-only log never needs away from everyone,
-- the owning role included.
CREATE TRIGGER audit_records_no_truncate
    BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_are_immutable();

REVOKE UPDATE, DELETE, TRUNCATE ON audit_records FROM PUBLIC;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_records FROM CURRENT_USER;
