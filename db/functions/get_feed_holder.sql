-- get_feed_holder(p_min_age_ms bigint) -> TABLE (pid integer, held_ms bigint,
--                                              state text)
--
-- The session holding the live feeds back, if any: the oldest other session
-- of this database with a transaction id (pg_stat_activity.backend_xid, as
-- `BEGIN; SELECT pg_current_xact_id();` gets) whose transaction has been open
-- at least p_min_age_ms milliseconds. The alert and decision feeds deliver
-- only work committed before the oldest such transaction (get_alert_feed),
-- so while it stays open nothing new reaches them. pid: its server process
-- (pg_terminate_backend(pid) ends it); held_ms: how long its transaction has
-- been open, integer milliseconds; state: pg_stat_activity.state (like
-- 'idle in transaction'). No row: nothing holds the feeds that long.
-- SECURITY DEFINER so that the service sees every role's sessions' start
-- times. Raises nothing.
CREATE OR REPLACE FUNCTION get_feed_holder(p_min_age_ms bigint DEFAULT 10000)
RETURNS TABLE (pid integer, held_ms bigint, state text)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    SELECT a.pid,
           (extract(epoch FROM clock_timestamp() - a.xact_start) * 1000)::bigint,
           a.state
    FROM pg_catalog.pg_stat_activity AS a
    WHERE a.datname = current_database()
      AND a.pid <> pg_backend_pid()
      AND a.backend_xid IS NOT NULL
      AND a.xact_start <= clock_timestamp() - make_interval(secs => p_min_age_ms / 1000.0)
    ORDER BY a.xact_start, a.pid
    LIMIT 1;
$$;

COMMENT ON FUNCTION get_feed_holder(bigint) IS
    'The oldest other session with a transaction id open at least p_min_age_ms (pid, held_ms, state): it holds the live feeds back; no row when none.';

REVOKE ALL ON FUNCTION get_feed_holder(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_feed_holder(bigint) TO pgfraud_app, pgfraud_readonly;
