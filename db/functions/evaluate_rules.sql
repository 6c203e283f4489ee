-- evaluate_rules(p_rules jsonb, p_from timestamptz, p_to timestamptz)
--     -> TABLE (rule_id text, scenario text, labelled bigint, flagged bigint,
--               true_positives bigint, precision_ratio numeric, recall_ratio numeric)
--
-- Precision and recall of each rule, judged alone, against fraud_labels, over
-- the transactions with time in [p_from, p_to) (NULL: unbounded), for the rules
-- p_rules ({rule_id: parameters}; default: the enabled rules), so candidate
-- parameters can be measured without touching the live ones (a backtest).
-- One row per rule and 'any' (a transaction flagged by at least one rule), for
-- scenario 'all' (precision_ratio = true_positives / flagged, recall_ratio =
-- true_positives / labelled) and for each labelled scenario (recall only: a
-- false positive belongs to no scenario). Ratios have 4 decimal places; NULL
-- when the denominator is 0. Source: the usual definitions (precision =
-- TP / (TP + FP), recall = TP / (TP + FN)) counted per transaction.
-- Raises nothing.
CREATE OR REPLACE FUNCTION evaluate_rules(
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
    recall_ratio numeric
)
LANGUAGE sql
STABLE
AS $$
    WITH parameters AS (
        SELECT coalesce(p_rules, active_rule_parameters()) AS rules
    ),
    events AS (
        SELECT DISTINCT e.transaction_id, e.rule_id
        FROM parameters AS p
        CROSS JOIN LATERAL score_transactions(p_from, p_to, p.rules) AS e
    ),
    flags AS (
        SELECT ev.transaction_id, ev.rule_id FROM events AS ev
        UNION
        SELECT ev.transaction_id, 'any' FROM events AS ev
    ),
    labels AS (
        SELECT l.transaction_id, l.scenario
        FROM fraud_labels AS l
        JOIN transactions AS t ON t.transaction_id = l.transaction_id
        WHERE (p_from IS NULL OR t.ts >= p_from)
          AND (p_to IS NULL OR t.ts < p_to)
    ),
    rule_ids AS (
        SELECT jsonb_object_keys(p.rules) AS rule_id FROM parameters AS p
        UNION
        SELECT 'any'
    ),
    scenarios AS (
        SELECT 'all'::text AS scenario
        UNION
        SELECT DISTINCT l.scenario FROM labels AS l
    ),
    counts AS (
        SELECT
            r.rule_id,
            s.scenario,
            (SELECT count(*) FROM labels AS l
             WHERE s.scenario IN ('all', l.scenario)) AS labelled,
            (SELECT count(*) FROM flags AS f
             WHERE f.rule_id = r.rule_id) AS flagged,
            (SELECT count(*) FROM flags AS f
             JOIN labels AS l ON l.transaction_id = f.transaction_id
             WHERE f.rule_id = r.rule_id AND s.scenario IN ('all', l.scenario)) AS true_positives
        FROM rule_ids AS r
        CROSS JOIN scenarios AS s
    )
    SELECT
        c.rule_id,
        c.scenario,
        c.labelled,
        CASE WHEN c.scenario = 'all' THEN c.flagged END,
        c.true_positives,
        CASE WHEN c.scenario = 'all'
             THEN round(c.true_positives::numeric / nullif(c.flagged, 0), 4) END,
        round(c.true_positives::numeric / nullif(c.labelled, 0), 4)
    FROM counts AS c
    ORDER BY c.rule_id = 'any', c.rule_id, c.scenario <> 'all', c.scenario;
$$;

COMMENT ON FUNCTION evaluate_rules(jsonb, timestamptz, timestamptz) IS
    'Precision and recall of each rule (and any rule) against fraud_labels, overall and per scenario, for given or live parameters over [p_from, p_to).';

REVOKE ALL ON FUNCTION evaluate_rules(jsonb, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION evaluate_rules(jsonb, timestamptz, timestamptz) TO pgfraud_readonly;
