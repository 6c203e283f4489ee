-- validate_rules(p_rules jsonb) -> jsonb
--
-- The one check of rule parameters, called by every place that takes them
-- (set_rule, the rules table's trigger, evaluate_account, score_transactions,
-- evaluate_rules, and so `pgfraud evaluate --rules`). p_rules is
-- {rule_id: {parameter: number}}; every rule named must be one of
-- rule_parameter_ranges() (or a user's rule of add_rule, with no parameters)
-- and give exactly its parameters, each a JSON number
-- of the parameter's kind and range; an optional parameter
-- (rule_parameter_defaults) may be left out and gets its default. Returns
-- p_rules normalised: integer parameters written as integers (5.0 -> 5),
-- other numbers exactly as given, defaults filled in.
-- NULL for NULL (STRICT), so callers can coalesce to the live rules.
-- Errors: PF001 (invalid_input), for the first problem in rule_id order, with
-- COLUMN 'rules', '<rule_id>' or '<rule_id>.<parameter>' and a message naming
-- the rule and parameter: not an object, unknown rule (the message lists
-- the built-in and users' rules), unknown parameter,
-- not a number, not an integer, out of range (the value given is quoted,
-- cut to 40 characters), missing parameter (a value given is judged before
-- one left out).
CREATE OR REPLACE FUNCTION validate_rules(p_rules jsonb)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
STRICT
PARALLEL SAFE
AS $$
DECLARE
    v_problem record;
    v_result jsonb;
BEGIN
    IF jsonb_typeof(p_rules) <> 'object' THEN
        RAISE EXCEPTION 'rules must be a JSON object {rule_id: {parameter: number}}'
            USING ERRCODE = 'PF001', COLUMN = 'rules';
    END IF;

    WITH ranges AS (
        SELECT * FROM rule_parameter_ranges()
    ),
    given AS (
        SELECT g.key AS rule_id, g.value AS parameters,
               EXISTS (SELECT FROM ranges AS s WHERE s.rule_id = g.key)
               -- A user's rule (add_rule): no parameters, so {} passes.
               OR EXISTS (SELECT FROM rules AS r
                          WHERE r.rule_id = g.key AND r.expression IS NOT NULL) AS known
        FROM jsonb_each(p_rules) AS g
    ),
    problems AS (
        SELECT g.rule_id, 1 AS step, NULL::text AS parameter,
               format('unknown rule %s; the rules are %s', g.rule_id,
                      -- built-in and users' rules alike (both are accepted)
                      (SELECT string_agg(k.rule_id, ', ' ORDER BY k.rule_id)
                       FROM (SELECT s.rule_id FROM ranges AS s
                             UNION
                             SELECT r.rule_id FROM rules AS r
                             WHERE r.expression IS NOT NULL) AS k)) AS message
        FROM given AS g
        WHERE NOT g.known
        UNION ALL
        SELECT g.rule_id, 2, NULL,
               format('the parameters of rule %s must be a JSON object', g.rule_id)
        FROM given AS g
        WHERE g.known AND jsonb_typeof(g.parameters) <> 'object'
        UNION ALL
        SELECT g.rule_id, 3, p.key,
               format('rule %s has no parameter %s; %s', g.rule_id, p.key,
                      coalesce('its parameters are '
                               || (SELECT string_agg(s.parameter, ', ' ORDER BY s.parameter)
                                   FROM ranges AS s WHERE s.rule_id = g.rule_id),
                               'a user''s rule takes none: give {}'))
        FROM given AS g
        CROSS JOIN LATERAL jsonb_each(
            CASE WHEN jsonb_typeof(g.parameters) = 'object' THEN g.parameters ELSE '{}' END
        ) AS p
        WHERE g.known
          AND NOT EXISTS (SELECT FROM ranges AS s
                          WHERE s.rule_id = g.rule_id AND s.parameter = p.key)
        UNION ALL
        SELECT g.rule_id, 5, s.parameter,
               format('parameter %s of rule %s is missing', s.parameter, g.rule_id)
        FROM given AS g
        JOIN ranges AS s ON s.rule_id = g.rule_id
        WHERE jsonb_typeof(g.parameters) = 'object' AND NOT g.parameters ? s.parameter
          -- An optional parameter may be left out (rule_parameter_defaults).
          AND NOT EXISTS (SELECT FROM rule_parameter_defaults() AS d
                          WHERE d.rule_id = g.rule_id AND d.parameter = s.parameter)
        UNION ALL
        SELECT g.rule_id, 4, s.parameter,
               format('parameter %s of rule %s must be %s from %s to %s%s; got %s',
                      s.parameter, g.rule_id,
                      CASE s.kind WHEN 'integer' THEN 'an integer' ELSE 'a number' END,
                      s.minimum, s.maximum,
                      CASE WHEN s.maximum_excluded THEN ' (excluded)' ELSE '' END,
                      CASE WHEN length(v.value::text) > 40
                           THEN left(v.value::text, 39) || '…' ELSE v.value::text END)
        FROM given AS g
        JOIN ranges AS s ON s.rule_id = g.rule_id
        CROSS JOIN LATERAL (SELECT g.parameters -> s.parameter AS value) AS v
        WHERE jsonb_typeof(g.parameters) = 'object'
          AND v.value IS NOT NULL
          AND CASE
                  WHEN jsonb_typeof(v.value) <> 'number' THEN true
                  WHEN s.kind = 'integer' AND v.value::numeric <> trunc(v.value::numeric) THEN true
                  WHEN v.value::numeric < s.minimum THEN true
                  WHEN s.maximum_excluded THEN v.value::numeric >= s.maximum
                  ELSE v.value::numeric > s.maximum
              END
    )
    SELECT * INTO v_problem
    FROM problems AS p
    ORDER BY p.rule_id, p.step, p.parameter
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '%', v_problem.message
            USING ERRCODE = 'PF001',
                  COLUMN = v_problem.rule_id || coalesce('.' || v_problem.parameter, '');
    END IF;

    SELECT coalesce(jsonb_object_agg(g.key, n.parameters), '{}'::jsonb)
    INTO v_result
    FROM jsonb_each(p_rules) AS g
    CROSS JOIN LATERAL (
        SELECT coalesce(jsonb_object_agg(
                   s.parameter,
                   CASE WHEN s.kind = 'integer'
                        THEN to_jsonb(trunc(coalesce(g.value -> s.parameter, d.value)::numeric))
                        ELSE coalesce(g.value -> s.parameter, d.value) END
               ), '{}'::jsonb) AS parameters
        FROM rule_parameter_ranges() AS s
        LEFT JOIN rule_parameter_defaults() AS d
          ON d.rule_id = s.rule_id AND d.parameter = s.parameter
        WHERE s.rule_id = g.key
    ) AS n;
    RETURN v_result;
END;
$$;

COMMENT ON FUNCTION validate_rules(jsonb) IS
    'Checks {rule_id: {parameter: number}} against rule_parameter_ranges() and returns it normalised; raises PF001 naming the rule and parameter.';

REVOKE ALL ON FUNCTION validate_rules(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION validate_rules(jsonb) TO pgfraud_app, pgfraud_readonly;
