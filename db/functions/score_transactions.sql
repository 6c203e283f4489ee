-- score_transactions(p_from timestamptz, p_to timestamptz, p_rules jsonb) -> SETOF fraud_event
--
-- Batch scoring: the events of every account whose transaction time is in
-- [p_from, p_to) (NULL: unbounded), for the rules p_rules (default: the enabled
-- rules of the `rules` table). All accounts run through the one rule code
-- (_evaluate_from) from scratch in one set-based pass, so the rows are
-- exactly what evaluate_account returns per account; history before
-- p_from is still seen. Pass other parameters as p_rules for a backtest that
-- leaves the live rules alone. Rows in (account_id, ts, transaction_id,
-- rule_id) order. Errors: PF001 (invalid_input) from validate_rules for
-- p_rules that are not valid. p_from/p_to are timestamptz: give them with an
-- offset (or as timestamptz values); a literal without one is read in the
-- session's TimeZone by PostgreSQL before this function is called.
CREATE OR REPLACE FUNCTION score_transactions(
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL,
    p_rules jsonb DEFAULT NULL
)
RETURNS SETOF fraud_event
LANGUAGE plpgsql
STABLE
SET jit = off
SET work_mem = '256MB'
AS $$
DECLARE
    v_rules jsonb := coalesce(validate_rules(p_rules), active_rule_parameters());
    -- Every account with a stored transaction, from the running state (one
    -- row per account) rather than a pass over transactions.
    v_account_ids bigint[] := ARRAY(SELECT a.account_id FROM account_states AS a);
BEGIN
    -- EXECUTE plans with the arrays' values, so the planner knows how many
    -- accounts there are: it reads transactions in one scan and hashes it
    -- to the accounts (0.6 s at 1M rows) instead of an index range scan per
    -- account (1.2 s), which is what it picks for an array of unknown size.
    RETURN QUERY EXECUTE $query$
        SELECT e.*
        FROM _evaluate_from(
            $1, $2,
            array_fill('-infinity'::timestamptz, ARRAY[cardinality($2)]),
            array_fill(0::bigint, ARRAY[cardinality($2)]),
            array_fill(0::bigint, ARRAY[cardinality($2)]),
            array_fill(0::numeric, ARRAY[cardinality($2)])
        ) AS e
        WHERE ($3::timestamptz IS NULL OR e.ts >= $3)
          AND ($4::timestamptz IS NULL OR e.ts < $4)
        ORDER BY e.account_id, e.ts, e.transaction_id, e.rule_id
    $query$
    USING v_rules, v_account_ids, p_from, p_to;
END;
$$;

COMMENT ON FUNCTION score_transactions(timestamptz, timestamptz, jsonb) IS
    'Events of all accounts with transaction time in [p_from, p_to), exactly as is_fraud per account; p_rules overrides the live rule parameters (backtest).';

REVOKE ALL ON FUNCTION score_transactions(timestamptz, timestamptz, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION score_transactions(timestamptz, timestamptz, jsonb) TO pgfraud_app, pgfraud_readonly;
