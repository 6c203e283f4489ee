-- _audit_instead(p_table regclass, p_trigger name, p_action text, p_kind text,
--                p_key text, p_before jsonb, p_after jsonb) -> void
--
-- The audit entry that the trigger p_trigger of p_table (audit_change)
-- would write, written by the function that made the change, when that
-- trigger is off: on Citus (pgfraud db distribute turns it off) a trigger
-- on a distributed table runs on the row's shard, which cannot write the
-- audit_log reference table. On one node the trigger is on and this does
-- nothing. p_before and p_after are the row as to_jsonb gives it (NULL for
-- the side an insert or delete lacks); written as audit_change writes them
-- (_audit_row_json: times UTC, ms, Z). The actor is current_actor(), the
-- action p_action ('insert', 'update', ...), the kind and key as the
-- trigger's arguments make them. Raises nothing of its own.
CREATE OR REPLACE FUNCTION _audit_instead(
    p_table regclass,
    p_trigger name,
    p_action text,
    p_kind text,
    p_key text,
    p_before jsonb,
    p_after jsonb
)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_trigger AS tg
               WHERE tg.tgrelid = p_table AND tg.tgname = p_trigger AND tg.tgenabled = 'D') THEN
        INSERT INTO audit_log (actor, action, object_kind, object_key, before, after)
        VALUES (current_actor(), p_action, p_kind, p_key,
                _audit_row_json(p_before, p_table), _audit_row_json(p_after, p_table));
    END IF;
END;
$$;

COMMENT ON FUNCTION _audit_instead(regclass, name, text, text, text, jsonb, jsonb) IS
    'Writes the audit entry a row trigger (audit_change) would have written, when that trigger is off (Citus: not runnable on a shard); nothing on one node.';

REVOKE ALL ON FUNCTION _audit_instead(regclass, name, text, text, text, jsonb, jsonb) FROM PUBLIC;
