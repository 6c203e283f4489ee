-- resolve_backtest_rules(p_rules jsonb) -> jsonb
--
-- The rules a backtest runs (evaluate_rules, backtest_rules, `pgfraud
-- evaluate --rules`), as {rule_id: parameters}: each rule of p_rules with the
-- parameters given merged over its live ones (the rules table), as PATCH
-- /rules and set_rule merge them, so a candidate names only what it changes
-- ({} runs the rule as it is, a user's rule included); then checked and
-- normalised by validate_rules. Rules not named do not run. NULL: the enabled
-- rules (active_rule_parameters()).
-- Errors: PF001 (invalid_input) from validate_rules, naming the rule and
-- parameter (unknown rule or parameter, not a number, out of range).
CREATE OR REPLACE FUNCTION resolve_backtest_rules(p_rules jsonb)
RETURNS jsonb
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN p_rules IS NULL THEN active_rule_parameters()
        WHEN jsonb_typeof(p_rules) <> 'object' THEN validate_rules(p_rules)  -- raises PF001
        ELSE validate_rules((
            SELECT coalesce(jsonb_object_agg(
                       g.key,
                       CASE WHEN jsonb_typeof(g.value) = 'object' AND r.parameters IS NOT NULL
                            THEN r.parameters || g.value
                            ELSE g.value END
                   ), '{}'::jsonb)
            FROM jsonb_each(p_rules) AS g
            LEFT JOIN rules AS r ON r.rule_id = g.key
        ))
    END;
$$;

COMMENT ON FUNCTION resolve_backtest_rules(jsonb) IS
    'The rules a backtest runs: the given {rule_id: parameters} merged over the live parameters and validated (PF001 naming rule and parameter); NULL: the enabled rules.';

REVOKE ALL ON FUNCTION resolve_backtest_rules(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION resolve_backtest_rules(jsonb) TO pgfraud_app, pgfraud_readonly;
