-- get_alert_feed_start() -> text
--
-- The feed position '<xact>-0' of "now": get_alert_feed from it returns the
-- alerts of database transactions not yet finished when it was taken (and
-- later ones), none from before. Raises nothing.
CREATE OR REPLACE FUNCTION get_alert_feed_start()
RETURNS text
LANGUAGE sql
VOLATILE
AS $$
    SELECT pg_snapshot_xmin(pg_current_snapshot())::text || '-0';
$$;

COMMENT ON FUNCTION get_alert_feed_start() IS
    'The live feed position of now (''<xact>-0''), to start get_alert_feed from.';

REVOKE ALL ON FUNCTION get_alert_feed_start() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_alert_feed_start() TO pgfraud_app, pgfraud_readonly;
