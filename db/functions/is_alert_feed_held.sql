-- is_alert_feed_held(p_after_xact xid8, p_after_alert_id bigint) -> boolean
--
-- True when alerts after the feed position are committed but held back by
-- get_alert_feed because an older database transaction is still running (it
-- delivers only alerts below the snapshot's xmin): a reader should then look
-- again soon rather than wait for the next notification, which the older
-- transaction may never send. Raises nothing.
CREATE OR REPLACE FUNCTION is_alert_feed_held(p_after_xact xid8, p_after_alert_id bigint)
RETURNS boolean
LANGUAGE sql
STABLE
AS $$
    SELECT EXISTS (
        SELECT FROM alerts AS al
        WHERE (al.raised_xact, al.alert_id) > (p_after_xact, p_after_alert_id)
          AND al.raised_xact >= pg_snapshot_xmin(pg_current_snapshot())
    );
$$;

COMMENT ON FUNCTION is_alert_feed_held(xid8, bigint) IS
    'True when committed alerts after the feed position wait for an older running transaction (read again soon).';

REVOKE ALL ON FUNCTION is_alert_feed_held(xid8, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION is_alert_feed_held(xid8, bigint) TO pgfraud_app, pgfraud_readonly;
