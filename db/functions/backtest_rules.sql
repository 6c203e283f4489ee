-- backtest_rules(p_rules jsonb, p_from timestamptz, p_to timestamptz)
--     -> TABLE (rule_id text, scenario text, labelled bigint, flagged bigint,
--               true_positives bigint, precision_ratio numeric, recall_ratio numeric,
--               transactions bigint, flagged_per_1000 numeric)
--
-- evaluate_rules (precision and recall per rule and scenario, against labels
-- overruled by reviews) for the rules p_rules ({rule_id: parameters}; NULL:
-- the enabled rules) over transaction time [p_from, p_to) (NULL: unbounded),
-- plus how many transactions the range holds and, on the 'all' rows, the
-- flagged transactions per 1,000 of them (2 decimal places; NULL for an
-- empty range). For the service's role, which may not read fraud_labels
-- itself: it runs as the owner and returns only counts and ratios, never
-- a label. A reversed range holds no transactions. Errors: validate_rules'
-- PF001 (through evaluate_rules) for p_rules that are not valid rules and
-- parameters, naming rule and parameter.
CREATE OR REPLACE FUNCTION backtest_rules(
    p_rules jsonb DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL
)
RETURNS TABLE (
    rule_id text,
    scenario text,
    labelled bigint,
    flagged bigint,
    true_positives bigint,
    precision_ratio numeric,
    recall_ratio numeric,
    transactions bigint,
    flagged_per_1000 numeric
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_transactions bigint;
BEGIN
    SELECT count(*) INTO v_transactions
    FROM transactions AS t
    WHERE (p_from IS NULL OR t.ts >= p_from) AND (p_to IS NULL OR t.ts < p_to);
    RETURN QUERY
        SELECT e.rule_id, e.scenario, e.labelled, e.flagged, e.true_positives,
               e.precision_ratio, e.recall_ratio, v_transactions,
               round(e.flagged * 1000.0 / nullif(v_transactions, 0), 2)
        FROM evaluate_rules(p_rules, p_from, p_to) AS e;
END;
$$;

COMMENT ON FUNCTION backtest_rules(jsonb, timestamptz, timestamptz) IS
    'evaluate_rules for given or live rules over [p_from, p_to), with the transactions in range and flagged per 1,000; runs as the owner, returns counts only; PF001 (validate_rules) for bad rules.';

REVOKE ALL ON FUNCTION backtest_rules(jsonb, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION backtest_rules(jsonb, timestamptz, timestamptz)
    TO pgfraud_app, pgfraud_readonly;
