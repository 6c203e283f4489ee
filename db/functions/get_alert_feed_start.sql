-- get_alert_feed_start() -> text
--
-- The feed position '<xact>-0' of "now": get_alert_feed from it returns the
-- alerts of database transactions not yet finished when it was taken (and
-- later ones), none from before. On Citus the first number is the feeds'
-- horizon in milliseconds since 1970 UTC (see get_alert_feed). Raises
-- nothing of its own (_feed_horizon's error on Citus).
CREATE OR REPLACE FUNCTION get_alert_feed_start()
RETURNS text
LANGUAGE plpgsql
VOLATILE
AS $$
BEGIN
    -- On Citus: the feeds' horizon in milliseconds since 1970 UTC (get_alert_feed).
    IF _is_distributed() THEN
        RETURN floor(extract(epoch FROM _feed_horizon()) * 1000)::bigint::text || '-0';
    END IF;
    RETURN pg_snapshot_xmin(pg_current_snapshot())::text || '-0';
END;
$$;

COMMENT ON FUNCTION get_alert_feed_start() IS
    'The live feed position of now (''<xact>-0''), to start get_alert_feed from.';

REVOKE ALL ON FUNCTION get_alert_feed_start() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_alert_feed_start() TO pgfraud_app, pgfraud_readonly;
