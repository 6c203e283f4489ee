-- _drop_shadow_alerts() -> trigger
--
-- Shadow rules (issue 18): row-level trigger AFTER DELETE on shadow_rules
-- (drop_shadow_rule, promote_shadow_rule, a rule deleted, psql): the
-- shadow's alerts go with it. (shadow_alerts has no foreign key to
-- shadow_rules: every store would lock the shadow's row.) Raises nothing.
CREATE OR REPLACE FUNCTION _drop_shadow_alerts()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
-- Citus: the coordinator's copy writes other reference tables from its trigger
-- (a nested distributed statement, in the change's own distributed transaction).
SET citus.allow_nested_distributed_execution = on
AS $$
BEGIN
    IF _on_worker_copy() THEN  -- Citus: once, on the coordinator's copy
        RETURN NULL;
    END IF;
    DELETE FROM shadow_alerts AS sa WHERE sa.rule_id = OLD.rule_id;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION _drop_shadow_alerts() IS
    'Trigger on shadow_rules: a shadow removed takes its shadow alerts with it.';

REVOKE ALL ON FUNCTION _drop_shadow_alerts() FROM PUBLIC;

CREATE OR REPLACE TRIGGER shadow_rules_drop_alerts
    AFTER DELETE ON shadow_rules
    FOR EACH ROW EXECUTE FUNCTION _drop_shadow_alerts();
