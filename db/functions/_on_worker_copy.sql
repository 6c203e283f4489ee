-- _on_worker_copy() -> boolean
--
-- True when the calling trigger runs on a Citus worker's copy of a
-- reference table (rules, shadow_rules, decision_policies, lists,
-- list_entries, api_tokens; docs/scaling.md). Citus applies a change of a
-- reference table to the copy on every node, in one distributed
-- transaction, and runs the table's triggers on each copy. The triggers
-- that write other tables (the audit trail, rule versions and rule sets,
-- the re-scoring after a rule change) act once, on the coordinator's copy
-- (Citus group 0, which `pgfraud db distribute` requires in the metadata),
-- and return at once on the workers'. The rule-change lock and the checks
-- of a row run on every copy. False on one node (no citus extension) and on
-- the coordinator. Raises nothing.
CREATE OR REPLACE FUNCTION _on_worker_copy()
RETURNS boolean
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_group integer;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_local_group') IS NULL THEN
        RETURN false;
    END IF;
    EXECUTE 'SELECT groupid FROM pg_catalog.pg_dist_local_group' INTO v_group;
    RETURN coalesce(v_group, 0) <> 0;
END;
$$;

COMMENT ON FUNCTION _on_worker_copy() IS
    'True inside a trigger running on a Citus worker''s copy of a reference table; false on one node and on the coordinator.';

REVOKE ALL ON FUNCTION _on_worker_copy() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _on_worker_copy() TO pgfraud_app, pgfraud_readonly;
