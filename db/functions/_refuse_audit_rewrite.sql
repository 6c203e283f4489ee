-- _refuse_audit_rewrite() -> trigger
--
-- BEFORE UPDATE on audit_log, for each row: the audit log is append-only.
-- The one change allowed is to alerts_added and alerts_removed of a row
-- written by the same database transaction (the re-scoring trigger of
-- `rules` fills them in after the change's row was written); any other
-- UPDATE raises insufficient_privilege (42501), whoever runs it, the owner
-- included. Deleting (retention) is left to the owner's privileges. On
-- Citus the trail is a reference table: each node's copy checks that only
-- the counts change, and the coordinator's copy (whose transaction wrote
-- the entry) also checks the transaction (_on_worker_copy); the one
-- distributed transaction fails if any copy refuses.
CREATE OR REPLACE FUNCTION _refuse_audit_rewrite()
RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF (OLD.written_xact <> pg_current_xact_id() AND NOT _on_worker_copy())
       OR (to_jsonb(NEW) - 'alerts_added' - 'alerts_removed')
          IS DISTINCT FROM (to_jsonb(OLD) - 'alerts_added' - 'alerts_removed') THEN
        RAISE EXCEPTION 'the audit log is append-only: entry % cannot be changed', OLD.audit_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION _refuse_audit_rewrite() IS
    'Trigger: refuses an UPDATE of an audit_log row, but for the alert counts filled in by its own database transaction.';

REVOKE ALL ON FUNCTION _refuse_audit_rewrite() FROM PUBLIC;

CREATE OR REPLACE TRIGGER audit_log_append_only
    BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION _refuse_audit_rewrite();
