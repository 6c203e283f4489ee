-- shadow_rule(p_rule_id text, p_parameters jsonb) -> shadow_rules
--
-- Puts a rule in shadow (issue 18): from now on every stored transaction is
-- also scored with p_parameters merged over the rule's live parameters
-- (NULL or {}: as it is; a user's rule, which has none, or a rule that is
-- off, runs as written), into shadow_alerts, which is_fraud, decisions, the
-- queue and the feed never read. The merged parameters must pass
-- validate_rules, the one check of live parameters, so a shadow is refused
-- exactly as a live change would be. A rule already in shadow starts again
-- (its shadow alerts go, started_at is now). Takes the exclusive side of the
-- rule-change lock, and started_at is the clock after it: a transaction
-- decided at or after started_at was scored by the shadow, one decided
-- before was not (compare_shadow_rules relies on it). Records
-- started_by = current_actor() and live_version = the rule's version now.
-- Returns the shadow_rules row. Errors: PF004 (rule_not_found) for an
-- unknown rule, PF001 (invalid_input) naming the rule and parameter
-- (COLUMN '<rule_id>.<parameter>') or 'parameters' for a non-object.
-- SECURITY DEFINER: the service calls it for owners only (PUT
-- /rules/<rule_id>/shadow).
CREATE OR REPLACE FUNCTION shadow_rule(p_rule_id text, p_parameters jsonb DEFAULT NULL)
RETURNS shadow_rules
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_rule rules;
    v_parameters jsonb;
    v_shadow shadow_rules;
BEGIN
    IF p_parameters IS NOT NULL AND jsonb_typeof(p_parameters) <> 'object' THEN
        RAISE EXCEPTION 'parameters must be a JSON object' USING ERRCODE = 'PF001', COLUMN = 'parameters';
    END IF;
    PERFORM pg_advisory_xact_lock(7231546390112208);
    SELECT * INTO v_rule FROM rules AS r WHERE r.rule_id = p_rule_id FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no rule named %', p_rule_id USING ERRCODE = 'PF004', COLUMN = 'rule_id';
    END IF;
    v_parameters := validate_rules(
        jsonb_build_object(p_rule_id, v_rule.parameters || coalesce(p_parameters, '{}'))) -> p_rule_id;
    DELETE FROM shadow_alerts AS sa WHERE sa.rule_id = p_rule_id;
    INSERT INTO shadow_rules AS s (rule_id, parameters, live_version, started_at, started_by)
    SELECT p_rule_id, v_parameters, max(v.version), clock_timestamp(), current_actor()
    FROM rule_versions AS v
    WHERE v.rule_id = p_rule_id
    ON CONFLICT ON CONSTRAINT shadow_rules_pkey DO UPDATE
    SET parameters = excluded.parameters,
        live_version = excluded.live_version,
        started_at = excluded.started_at,
        started_by = excluded.started_by
    RETURNING s.* INTO v_shadow;
    PERFORM _refuse_on_citus();  -- Citus: no shadow rules (PF001)
    RETURN v_shadow;
END;
$$;

COMMENT ON FUNCTION shadow_rule(text, jsonb) IS
    'Puts a rule in shadow with candidate parameters (merged over the live ones, validated as live ones are): scored on arrival into shadow_alerts from now on; PF004 unknown rule, PF001 bad parameters.';

REVOKE ALL ON FUNCTION shadow_rule(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION shadow_rule(text, jsonb) TO pgfraud_app;
