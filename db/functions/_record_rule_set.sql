-- _record_rule_set() -> trigger
--
-- Decisions (issue 17): statement-level trigger on `rules`. After any
-- change to the rules (set_rule, add_rule, psql), the live rule parameters
-- (active_rule_parameters()) are kept in decision_rule_sets under the md5 of
-- their JSON text, once per distinct set, so a decision names the whole set
-- it was made with (decisions.rule_set_id) without a write at store time
-- (two stores writing the same new key would wait for each other). Applied
-- with the function files, it also records the set in force then.
-- SECURITY DEFINER: a rule change by the service (change_rule) runs as the
-- owner already; psql changes by the owner too. Raises nothing.
CREATE OR REPLACE FUNCTION _record_rule_set()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
-- Citus: the coordinator's copy writes other reference tables from its trigger
-- (a nested distributed statement, in the change's own distributed transaction).
SET citus.allow_nested_distributed_execution = on
AS $$
DECLARE
    v_rules jsonb;
BEGIN
    IF _on_worker_copy() THEN  -- Citus: once, on the coordinator's copy
        RETURN NULL;
    END IF;
    v_rules := active_rule_parameters();
    INSERT INTO decision_rule_sets (rule_set_id, parameters)
    VALUES (md5(v_rules::text), v_rules)
    ON CONFLICT ON CONSTRAINT decision_rule_sets_pkey DO NOTHING;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION _record_rule_set() IS
    'Trigger on rules: keeps the live rule parameters in decision_rule_sets (key md5 of their JSON), for decisions to name.';

REVOKE ALL ON FUNCTION _record_rule_set() FROM PUBLIC;

CREATE OR REPLACE TRIGGER rules_record_rule_set
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON rules
    FOR EACH STATEMENT EXECUTE FUNCTION _record_rule_set();

-- Applied with the function files: the set in force now is recorded (the
-- query of active_rule_parameters, whose file is applied after this one;
-- jsonb text is canonical, so the md5 is the same).
INSERT INTO decision_rule_sets (rule_set_id, parameters)
SELECT md5(s.parameters::text), s.parameters
FROM (SELECT coalesce(jsonb_object_agg(r.rule_id, r.parameters), '{}'::jsonb) AS parameters
      FROM rules AS r
      WHERE r.enabled) AS s
ON CONFLICT ON CONSTRAINT decision_rule_sets_pkey DO NOTHING;
