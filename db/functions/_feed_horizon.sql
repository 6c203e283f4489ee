-- _feed_horizon() -> timestamptz
--
-- The live feeds' horizon on Citus (docs/scaling.md, "The live feeds"):
-- a time before which every alert and decision of this database is
-- committed, so a feed that delivers in (time, id) order only what lies
-- below it never skips a row that commits late. On one node the feeds use
-- transaction ids instead (the snapshot's xmin); on Citus each node numbers
-- its own transactions, so the feeds order by the raise (decide) time.
-- An alert's raised_at is its transaction's start (now()) on the node whose
-- clock made it, and a decision's decided_at a time inside its transaction,
-- so neither is earlier than the start of a transaction that is still open
-- on that node while it is uncommitted. Per node (run_command_on_all_nodes:
-- the coordinator and every worker) the horizon is the earliest of: the
-- node's clock now, the start of every open transaction of a client in this
-- database (but the caller's), and the preparation time of every prepared
-- (two-phase) transaction less one second (their start is gone; a
-- coordinator's own transaction covers them until it has committed them
-- all, and the second allows for clock differences between nodes). The
-- result is the earliest over the nodes, truncated to the millisecond (the
-- feeds' positions are in milliseconds). An open transaction anywhere holds
-- the feeds back until it ends, as one does on one node. SECURITY DEFINER:
-- other roles' transaction starts are hidden from the service's role.
-- Errors: 58000 (system_error) when a node does not answer (the feeds then
-- report the database unavailable and retry).
CREATE OR REPLACE FUNCTION _feed_horizon()
RETURNS timestamptz
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_horizon timestamptz;
    v_answered boolean;
BEGIN
    EXECUTE $query$
        SELECT min(r.result::timestamptz), bool_and(r.success)
        FROM run_command_on_all_nodes($node$
            SELECT least(
                clock_timestamp(),
                (SELECT min(a.xact_start) FROM pg_stat_activity AS a
                 WHERE a.backend_type = 'client backend' AND a.datname = current_database()
                   AND a.xact_start IS NOT NULL AND a.pid <> pg_backend_pid()),
                (SELECT min(p.prepared) - interval '1 second' FROM pg_prepared_xacts AS p
                 WHERE p.database = current_database()))
        $node$) AS r
    $query$
    INTO v_horizon, v_answered;
    IF v_horizon IS NULL OR NOT v_answered THEN
        RAISE EXCEPTION 'a Citus node did not answer for the live feed''s horizon'
            USING ERRCODE = 'system_error';
    END IF;
    RETURN date_trunc('milliseconds', v_horizon);
END;
$$;

COMMENT ON FUNCTION _feed_horizon() IS
    'Citus: the time before which every alert and decision is committed (earliest open transaction start over all nodes), in ms.';

REVOKE ALL ON FUNCTION _feed_horizon() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _feed_horizon() TO pgfraud_app, pgfraud_readonly;
