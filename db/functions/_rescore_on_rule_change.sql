-- _rescore_on_rule_change() -> trigger
--
-- Statement-level triggers on `rules`: a change to the live rules (set_rule,
-- add_rule, or INSERT/UPDATE/DELETE in psql) re-scores the stored history
-- in the same database transaction, so persisted alerts always equal what
-- the live rules compute. Only the rules whose enabled flag, parameters
-- (as normalised JSON text) or expression the statement changed are
-- re-scored (rescore_rules): the others' alerts cannot change. A renamed
-- rule counts as its old id (its alerts go) and its new one; TRUNCATE
-- counts every rule with alerts. When a user's rule (one with an
-- expression) is among them, the users' rules are compiled again first
-- (_compile_custom_rules), so an expression written in psql is the one
-- scored. The audit trail's rows of the change get the alerts it added and
-- removed (_rescore_rules_audited). While `pgfraud migrate` runs
-- (_is_migrating) it waits: migrate re-scores once at its end.
-- On Citus (docs/scaling.md) the trigger runs on every node's copy of
-- `rules`: each copy compiles the users' rules for its node; the
-- coordinator's copy alone re-scores, per account (_rescore_rules_audited),
-- after refusing a rule Citus cannot score (_refuse_on_citus: PF001).
CREATE OR REPLACE FUNCTION _rescore_on_rule_change()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
SET citus.allow_nested_distributed_execution = on
AS $$
DECLARE
    v_rule_ids text[];
    v_users_rules boolean;
BEGIN
    IF _is_migrating() THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        IF _on_worker_copy() THEN
            PERFORM _compile_custom_rules();
            RETURN NULL;
        END IF;
        v_rule_ids := ARRAY(SELECT DISTINCT al.rule_id FROM alerts AS al);
        v_users_rules := true;
    ELSIF TG_OP = 'INSERT' THEN
        SELECT array_agg(n.rule_id), bool_or(n.expression IS NOT NULL)
        INTO v_rule_ids, v_users_rules
        FROM new_rules AS n;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(o.rule_id), bool_or(o.expression IS NOT NULL)
        INTO v_rule_ids, v_users_rules
        FROM old_rules AS o;
    ELSE
        SELECT array_agg(DISTINCT c.rule_id), bool_or(c.expression IS NOT NULL)
        INTO v_rule_ids, v_users_rules
        FROM (
            (SELECT o.rule_id, o.enabled, o.parameters::text, o.expression FROM old_rules AS o
             EXCEPT
             SELECT n.rule_id, n.enabled, n.parameters::text, n.expression FROM new_rules AS n)
            UNION ALL
            (SELECT n.rule_id, n.enabled, n.parameters::text, n.expression FROM new_rules AS n
             EXCEPT
             SELECT o.rule_id, o.enabled, o.parameters::text, o.expression FROM old_rules AS o)
        ) AS c;
    END IF;
    IF v_users_rules THEN
        PERFORM _compile_custom_rules();
    END IF;
    IF _on_worker_copy() THEN  -- Citus: the coordinator's copy re-scores
        RETURN NULL;
    END IF;
    PERFORM _refuse_on_citus();
    PERFORM _rescore_rules_audited(v_rule_ids);
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION _rescore_on_rule_change() IS
    'Trigger: re-scores stored transactions for the rules a statement on the rules table changed.';

REVOKE ALL ON FUNCTION _rescore_on_rule_change() FROM PUBLIC;

-- One trigger per event: transition tables allow no more (the old single
-- trigger, rules_rescore_alerts, is dropped by migration 0014).
CREATE OR REPLACE TRIGGER rules_rescore_inserted
    AFTER INSERT ON rules REFERENCING NEW TABLE AS new_rules
    FOR EACH STATEMENT EXECUTE FUNCTION _rescore_on_rule_change();
CREATE OR REPLACE TRIGGER rules_rescore_updated
    AFTER UPDATE ON rules REFERENCING OLD TABLE AS old_rules NEW TABLE AS new_rules
    FOR EACH STATEMENT EXECUTE FUNCTION _rescore_on_rule_change();
CREATE OR REPLACE TRIGGER rules_rescore_deleted
    AFTER DELETE ON rules REFERENCING OLD TABLE AS old_rules
    FOR EACH STATEMENT EXECUTE FUNCTION _rescore_on_rule_change();
CREATE OR REPLACE TRIGGER rules_rescore_truncated
    AFTER TRUNCATE ON rules
    FOR EACH STATEMENT EXECUTE FUNCTION _rescore_on_rule_change();
