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
LANGUAGE sql
STABLE
AS $$
    WITH accounts AS (
        -- Every account with a stored transaction, from the running state
        -- (one row per account) rather than a pass over transactions.
        SELECT coalesce(array_agg(a.account_id), '{}') AS account_ids
        FROM account_states AS a
    ),
    parameters AS (
        SELECT coalesce(validate_rules(p_rules), active_rule_parameters()) AS rules
    )
    SELECT e.*
    FROM accounts AS a
    CROSS JOIN parameters AS p
    CROSS JOIN LATERAL _evaluate_from(
        p.rules,
        a.account_ids,
        array_fill('-infinity'::timestamptz, ARRAY[cardinality(a.account_ids)]),
        array_fill(0::bigint, ARRAY[cardinality(a.account_ids)]),
        array_fill(0::bigint, ARRAY[cardinality(a.account_ids)]),
        array_fill(0::numeric, ARRAY[cardinality(a.account_ids)])
    ) AS e
    WHERE (p_from IS NULL OR e.ts >= p_from)
      AND (p_to IS NULL OR e.ts < p_to)
    ORDER BY e.account_id, e.ts, e.transaction_id, e.rule_id;
$$;

COMMENT ON FUNCTION score_transactions(timestamptz, timestamptz, jsonb) IS
    'Events of all accounts with transaction time in [p_from, p_to), exactly as is_fraud per account; p_rules overrides the live rule parameters (backtest).';

REVOKE ALL ON FUNCTION score_transactions(timestamptz, timestamptz, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION score_transactions(timestamptz, timestamptz, jsonb) TO pgfraud_app, pgfraud_readonly;
