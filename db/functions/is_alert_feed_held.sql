-- is_alert_feed_held(p_after_xact xid8, p_after_alert_id bigint) -> boolean
--
-- True when committed alerts after the feed position are not yet delivered:
-- held back by get_alert_feed because an older database transaction is still
-- running (it delivers only alerts below the snapshot's xmin), or committed
-- after the caller's get_alert_feed took its snapshot. A reader should then
-- look again soon rather than wait for the next notification, which the
-- older transaction may never send. Every alert after the position counts,
-- whatever this statement's own snapshot: in READ COMMITTED it is newer than
-- get_alert_feed's, and an older transaction that ended in between (so that
-- the alert is no longer held by this snapshot's xmin) must not make the
-- reader wait for a notification that never comes. Raises nothing.
CREATE OR REPLACE FUNCTION is_alert_feed_held(p_after_xact xid8, p_after_alert_id bigint)
RETURNS boolean
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    -- On Citus the feed hears no notification (a worker's scoring sends
    -- none): true, so a stream reads it again soon (polls).
    IF _is_distributed() THEN
        RETURN true;
    END IF;
    RETURN EXISTS (
        SELECT FROM alerts AS al
        WHERE (al.raised_xact, al.alert_id) > (p_after_xact, p_after_alert_id)
    );
END;
$$;

COMMENT ON FUNCTION is_alert_feed_held(xid8, bigint) IS
    'True when committed alerts after the feed position are not delivered yet (held by an older running transaction, or committed since the read): read again soon.';

REVOKE ALL ON FUNCTION is_alert_feed_held(xid8, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION is_alert_feed_held(xid8, bigint) TO pgfraud_app, pgfraud_readonly;
