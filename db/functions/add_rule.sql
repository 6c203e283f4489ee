-- add_rule(p_rule_id text, p_expression text, p_description text,
--          p_enabled boolean) -> rules
--
-- Adds a user's rule (or replaces the expression of one added before): a
-- boolean SQL expression over the features of rule_features, validated by
-- check_rule_expression (whitelisted tokens, parses, boolean). Off unless
-- p_enabled: backtest it first with evaluate_rules('{"<rule_id>": {}}'),
-- then switch it on with set_rule(rule_id, true). It is compiled into
-- _custom_rule_events, so it runs in the same scoring as the built-in rules;
-- turning it on re-scores the stored transactions like any rule change.
-- p_rule_id: lower_snake_case, at most 63 characters, not a built-in rule.
-- p_description: 1..500 characters (NULL: the expression, cut to 500
-- characters with an ellipsis when longer).
-- Errors: PF001 (invalid_input) naming rule_id, expression or description.
CREATE OR REPLACE FUNCTION add_rule(
    p_rule_id text,
    p_expression text,
    p_description text DEFAULT NULL,
    p_enabled boolean DEFAULT false
)
RETURNS rules
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_expression text;
    v_description text;
    v_rule rules;
BEGIN
    IF p_rule_id IS NULL OR p_rule_id !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'rule_id must be a lower_snake_case name of at most 63 characters'
            USING ERRCODE = 'PF001', COLUMN = 'rule_id';
    END IF;
    IF EXISTS (SELECT FROM rules AS r WHERE r.rule_id = p_rule_id AND r.expression IS NULL) THEN
        RAISE EXCEPTION '% is a built-in rule', p_rule_id
            USING ERRCODE = 'PF001', COLUMN = 'rule_id',
                  HINT = 'change its parameters with set_rule, or pick another name';
    END IF;
    v_expression := check_rule_expression(p_expression);
    IF p_description IS NULL THEN
        -- The expression (up to 1,000 characters) as the description, cut to
        -- 500 with an ellipsis when longer.
        v_description := CASE WHEN length(v_expression) > 500
                              THEN left(v_expression, 499) || '…'
                              ELSE v_expression END;
    ELSIF length(p_description) NOT BETWEEN 1 AND 500 THEN
        RAISE EXCEPTION 'description must be 1 to 500 characters; got %', length(p_description)
            USING ERRCODE = 'PF001', COLUMN = 'description';
    ELSE
        v_description := p_description;
    END IF;
    -- Stored off first: the rules triggers compile the users' rules again
    -- and re-score this one (a rule that was on loses its alerts; one that
    -- was off has none, so that costs nothing); switched on after, it is
    -- scored with the compiled new expression.
    INSERT INTO rules AS r (rule_id, enabled, parameters, description, expression)
    VALUES (p_rule_id, false, '{}', v_description, v_expression)
    ON CONFLICT ON CONSTRAINT rules_pkey DO UPDATE
    SET enabled = false, description = excluded.description, expression = excluded.expression;
    IF p_enabled THEN
        UPDATE rules AS r SET enabled = true WHERE r.rule_id = p_rule_id;
    END IF;
    SELECT * INTO v_rule FROM rules AS r WHERE r.rule_id = p_rule_id;
    RETURN v_rule;
END;
$$;

COMMENT ON FUNCTION add_rule(text, text, text, boolean) IS
    'Adds or replaces a user''s rule (validated boolean expression over rule_features), off unless p_enabled; PF001 naming the field.';

REVOKE ALL ON FUNCTION add_rule(text, text, text, boolean) FROM PUBLIC;
-- The service adds rules for a caller with the API token.
GRANT EXECUTE ON FUNCTION add_rule(text, text, text, boolean) TO pgfraud_app;
