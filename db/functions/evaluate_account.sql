-- evaluate_account(p_account_id bigint, p_rules jsonb) -> SETOF fraud_event
--
-- Every rule of p_rules that fires on every transaction of one account,
-- computed from scratch over its whole history: the reference that the
-- persisted alerts must equal (is_fraud reads those). p_rules maps rule_id ->
-- parameters object for the rules to run; active_rule_parameters() gives the
-- live ones, a backtest passes candidates. The rules themselves are in
-- _evaluate_from (one implementation for scoring from scratch, on arrival and
-- in batch). Rows in (ts, transaction_id, rule_id) order; none for an
-- account with no transactions.
-- Errors: PF001 (invalid_input) from validate_rules for p_rules that are not
-- valid (unknown rule or parameter, missing, wrong type, out of range).
CREATE OR REPLACE FUNCTION evaluate_account(p_account_id bigint, p_rules jsonb)
RETURNS SETOF fraud_event
LANGUAGE sql
STABLE
PARALLEL SAFE
AS $$
    SELECT e.*
    FROM _evaluate_from(
        validate_rules(p_rules),
        ARRAY[p_account_id],
        ARRAY['-infinity'::timestamptz],
        ARRAY[0::bigint],
        ARRAY[0::bigint],
        ARRAY[0::numeric]
    ) AS e
    ORDER BY e.ts, e.transaction_id, e.rule_id;
$$;

COMMENT ON FUNCTION evaluate_account(bigint, jsonb) IS
    'Fired rules (fraud_event rows) on every transaction of one account, from scratch, for the rules and parameters given as {rule_id: parameters}; only prior transactions are seen.';

REVOKE ALL ON FUNCTION evaluate_account(bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION evaluate_account(bigint, jsonb) TO pgfraud_app, pgfraud_readonly;
