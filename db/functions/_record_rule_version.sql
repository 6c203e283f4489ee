-- _record_rule_version() -> trigger
--
-- Rule versions (issue 18): row-level trigger on `rules`, AFTER INSERT OR
-- UPDATE. A rule added (add_rule, INSERT in psql) or whose enabled flag,
-- parameters (as normalised JSON) or expression changed (set_rule,
-- change_rule, PATCH /rules, the CLI, UPDATE in psql) gets a new row in
-- rule_versions: the next number of its rule_id (1 for a new id; a rule
-- deleted and added again continues its numbering), its new state, the
-- actor (current_actor()) and the clock time. A change of the description
-- alone is no new version. Row triggers fire before the statement triggers
-- that re-score (_rescore_on_rule_change), so the alerts that re-scoring
-- writes name the new version (_current_rule_versions).
-- SECURITY DEFINER: rule_versions is written by this trigger only.
-- Raises nothing of its own.
CREATE OR REPLACE FUNCTION _record_rule_version()
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
    IF TG_OP = 'UPDATE'
       AND OLD.rule_id = NEW.rule_id
       AND (OLD.enabled, OLD.parameters, OLD.expression)
           IS NOT DISTINCT FROM (NEW.enabled, NEW.parameters, NEW.expression) THEN
        RETURN NULL;
    END IF;
    INSERT INTO rule_versions (rule_id, version, enabled, parameters, expression, description,
                               valid_from, actor)
    SELECT NEW.rule_id, coalesce(max(v.version), 0) + 1, NEW.enabled, NEW.parameters,
           NEW.expression, NEW.description, clock_timestamp(), current_actor()
    FROM rule_versions AS v
    WHERE v.rule_id = NEW.rule_id;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION _record_rule_version() IS
    'Trigger on rules: appends the rule''s new state to rule_versions (next number, actor, time) when it is added or its enabled flag, parameters or expression change.';

REVOKE ALL ON FUNCTION _record_rule_version() FROM PUBLIC;

CREATE OR REPLACE TRIGGER rules_record_version
    AFTER INSERT OR UPDATE ON rules
    FOR EACH ROW EXECUTE FUNCTION _record_rule_version();

-- Applied with the function files: a rule whose state is not its latest
-- version (a migration that added or changed a rule while this trigger did
-- not exist yet, as on an empty database) gets one now, made by whoever
-- migrates (current_actor()'s rule, inline: its file is applied later).
INSERT INTO rule_versions (rule_id, version, enabled, parameters, expression, description, actor)
SELECT r.rule_id, coalesce(v.version, 0) + 1, r.enabled, r.parameters, r.expression, r.description,
       coalesce(nullif(current_setting('pgfraud.actor', true), ''), session_user::text)
FROM rules AS r
LEFT JOIN LATERAL (
    SELECT rv.version, rv.enabled, rv.parameters, rv.expression
    FROM rule_versions AS rv
    WHERE rv.rule_id = r.rule_id
    ORDER BY rv.version DESC
    LIMIT 1
) AS v ON true
WHERE v.version IS NULL
   OR (v.enabled, v.parameters, v.expression) IS DISTINCT FROM (r.enabled, r.parameters, r.expression);
