-- set_rule(p_rule_id text, p_enabled boolean, p_parameters jsonb) -> rules
--
-- Turns a rule on or off and/or changes its parameters (NULL: keep). The new
-- parameters are merged over the old ones; every value must be a number >= 0
-- and the keys must be the rule's own. Returns the updated row.
-- Errors: PF004 (rule_not_found), PF001 (invalid_input) for an unknown key or
-- a value that is not a non-negative number.
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
    v_key text;
    v_value jsonb;
BEGIN
    SELECT * INTO v_rule FROM rules AS r WHERE r.rule_id = p_rule_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no rule named %', p_rule_id USING ERRCODE = 'PF004', COLUMN = 'rule_id';
    END IF;
    IF p_parameters IS NOT NULL THEN
        IF jsonb_typeof(p_parameters) <> 'object' THEN
            RAISE EXCEPTION 'parameters must be a JSON object' USING ERRCODE = 'PF001', COLUMN = 'parameters';
        END IF;
        FOR v_key, v_value IN SELECT * FROM jsonb_each(p_parameters) LOOP
            IF NOT v_rule.parameters ? v_key THEN
                RAISE EXCEPTION 'rule % has no parameter %', p_rule_id, v_key
                    USING ERRCODE = 'PF001', COLUMN = 'parameters',
                          HINT = format('its parameters are %s', v_rule.parameters);
            END IF;
            IF jsonb_typeof(v_value) <> 'number' OR v_value::text::numeric < 0 THEN
                RAISE EXCEPTION 'parameter % of rule % must be a number >= 0', v_key, p_rule_id
                    USING ERRCODE = 'PF001', COLUMN = 'parameters';
            END IF;
        END LOOP;
        v_rule.parameters := v_rule.parameters || p_parameters;
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
