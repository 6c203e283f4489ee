-- _rescore_on_rule_change() -> trigger
--
-- Statement-level trigger on `rules`: any change to the live rules (set_rule,
-- or INSERT/UPDATE/DELETE in psql) re-scores the stored history with
-- rescore_alerts(), in the same database transaction, so persisted alerts
-- always equal what the live rules compute. While `pgfraud migrate` runs
-- (pgfraud.migrating = on) it waits: migrate re-scores once at its end.
CREATE OR REPLACE FUNCTION _rescore_on_rule_change()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
BEGIN
    IF current_setting('pgfraud.migrating', true) = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM rescore_alerts(false);
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION _rescore_on_rule_change() IS
    'Trigger: re-scores stored transactions after any change to the rules table.';

REVOKE ALL ON FUNCTION _rescore_on_rule_change() FROM PUBLIC;

CREATE OR REPLACE TRIGGER rules_rescore_alerts
    AFTER INSERT OR UPDATE OR DELETE ON rules
    FOR EACH STATEMENT EXECUTE FUNCTION _rescore_on_rule_change();
