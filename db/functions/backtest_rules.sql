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
-- a label. Errors: PF001 (invalid_input) when p_rules is not an object of
-- objects or the range is reversed, naming the field.
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
    IF p_rules IS NOT NULL AND (jsonb_typeof(p_rules) <> 'object' OR EXISTS (
           SELECT FROM jsonb_each(p_rules) AS e WHERE jsonb_typeof(e.value) <> 'object')) THEN
        RAISE EXCEPTION 'rules must be an object {rule_id: {parameter: value}}'
            USING ERRCODE = 'PF001', COLUMN = 'rules';
    END IF;
    IF p_from IS NOT NULL AND p_to IS NOT NULL AND p_to < p_from THEN
        RAISE EXCEPTION 'to must not be before from' USING ERRCODE = 'PF001', COLUMN = 'to';
    END IF;
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
    'evaluate_rules for given or live rules over [p_from, p_to), with the transactions in range and flagged per 1,000; runs as the owner, returns counts only; PF001 for bad rules or range.';

REVOKE ALL ON FUNCTION backtest_rules(jsonb, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION backtest_rules(jsonb, timestamptz, timestamptz)
    TO pgfraud_app, pgfraud_readonly;
