-- set_rule(p_rule_id text, p_enabled boolean, p_parameters jsonb) -> rules
--
-- Turns a rule on or off and/or changes its parameters (NULL: keep). The new
-- parameters are merged over the old ones and the result must pass
-- validate_rules (the rule's own parameters, each of its kind and range, see
-- rule_parameter_ranges). Takes the exclusive rule-change lock before the
-- rule's row (the one lock order, see docs/rules.md). Returns the updated row.
-- Errors: PF004 (rule_not_found), PF001 (invalid_input) naming the rule and
-- parameter (COLUMN '<rule_id>.<parameter>').
CREATE OR REPLACE FUNCTION set_rule(
    p_rule_id text,
    p_enabled boolean DEFAULT NULL,
    p_parameters jsonb DEFAULT NULL
)
RETURNS rules
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_rule rules;
BEGIN
    -- The exclusive rule-change lock first, the rule's row after: the one
    -- order of every path that changes rules, shadows, policy or lists
    -- (shadow_rule, promote_shadow_rule, the rules trigger, ...), so a
    -- change and a shadow of the same rule never deadlock.
    PERFORM pg_advisory_xact_lock(7231546390112208);
    SELECT * INTO v_rule FROM rules AS r WHERE r.rule_id = p_rule_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no rule named %', p_rule_id USING ERRCODE = 'PF004', COLUMN = 'rule_id';
    END IF;
    IF p_parameters IS NOT NULL THEN
        IF jsonb_typeof(p_parameters) <> 'object' THEN
            RAISE EXCEPTION 'parameters must be a JSON object' USING ERRCODE = 'PF001', COLUMN = 'parameters';
        END IF;
        -- The merged result must be complete and valid (validate_rules names the problem).
        v_rule.parameters := validate_rules(
            jsonb_build_object(p_rule_id, v_rule.parameters || p_parameters)) -> p_rule_id;
    END IF;
    UPDATE rules AS r
    SET enabled = coalesce(p_enabled, r.enabled),
        parameters = v_rule.parameters
    WHERE r.rule_id = p_rule_id
    RETURNING r.* INTO v_rule;
    RETURN v_rule;
END;
$$;

COMMENT ON FUNCTION set_rule(text, boolean, jsonb) IS
    'Enable/disable a rule and/or merge new parameters; raises PF004 for an unknown rule, PF001 for bad parameters.';

-- Changing rules is an administrator's act: not granted to the service role.
REVOKE ALL ON FUNCTION set_rule(text, boolean, jsonb) FROM PUBLIC;
