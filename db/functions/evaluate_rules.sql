-- evaluate_rules(p_rules jsonb, p_from timestamptz, p_to timestamptz)
--     -> TABLE (rule_id text, scenario text, labelled bigint, flagged bigint,
--               true_positives bigint, precision_ratio numeric, recall_ratio numeric)
--
-- Precision and recall of each rule, judged alone, against the known fraud
-- (fraud_labels, overruled by analysts' reviews: see labels below), over
-- the transactions with time in [p_from, p_to) (NULL: unbounded), for the rules
-- p_rules ({rule_id: parameters}, each merged over the rule's live
-- parameters by resolve_backtest_rules, so {} runs a rule as it is; default:
-- the enabled rules), so candidate parameters can be measured without
-- touching the live ones (a backtest).
-- One row per rule and 'any' (a transaction flagged by at least one rule), for
-- scenario 'all' (precision_ratio = true_positives / flagged, recall_ratio =
-- true_positives / labelled) and for each labelled scenario (recall only: a
-- false positive belongs to no scenario). Transactions are keyed by
-- (account_id, transaction_id), unique on one node and on Citus, where the
-- rule code runs per account (score_transactions) and no table is read
-- here but through functions Citus can plan. Ratios have 4 decimal places; NULL
-- when the denominator is 0. Source: the usual definitions (precision =
-- TP / (TP + FP), recall = TP / (TP + FN)) counted per transaction.
-- Errors: PF001 (invalid_input) from validate_rules (through
-- resolve_backtest_rules) for p_rules that are not valid (unknown rule or
-- parameter, wrong type, out of range).
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
        SELECT resolve_backtest_rules(p_rules) AS rules
    ),
    labels AS (
        -- Known fraud: a stored label unless a review says false_positive,
        -- and every transaction reviewed as confirmed_fraud (scenario
        -- 'reviewed' when it has no label).
        SELECT k.account_id, k.transaction_id, k.scenario
        FROM _known_fraud(p_from, p_to) AS k
    ),
    flags AS (
        -- One row per (flagged transaction, rule), plus 'any' per flagged transaction.
        SELECT DISTINCT e.account_id, e.transaction_id, r.rule_id
        FROM parameters AS p
        CROSS JOIN LATERAL score_transactions(p_from, p_to, p.rules) AS e
        CROSS JOIN LATERAL (VALUES (e.rule_id), ('any')) AS r(rule_id)
    ),
    caught AS (
        -- Each flag with its label's scenario (NULL: not fraud), counted once
        -- under the scenario and once under 'all'.
        SELECT f.rule_id, s.scenario, count(*) AS flags, count(l.scenario) AS true_positives
        FROM flags AS f
        LEFT JOIN labels AS l
          ON l.account_id = f.account_id AND l.transaction_id = f.transaction_id
        CROSS JOIN LATERAL (VALUES ('all'), (l.scenario)) AS s(scenario)
        WHERE s.scenario IS NOT NULL
        GROUP BY f.rule_id, s.scenario
    ),
    labelled AS (
        SELECT s.scenario, count(*) AS labelled
        FROM labels AS l
        CROSS JOIN LATERAL (VALUES ('all'), (l.scenario)) AS s(scenario)
        GROUP BY s.scenario
    ),
    grid AS (
        SELECT r.rule_id, s.scenario
        FROM (SELECT jsonb_object_keys(p.rules) AS rule_id FROM parameters AS p
              UNION SELECT 'any') AS r
        CROSS JOIN (SELECT 'all' AS scenario UNION SELECT l.scenario FROM labelled AS l) AS s
    )
    SELECT
        g.rule_id,
        g.scenario,
        coalesce(n.labelled, 0),
        CASE WHEN g.scenario = 'all' THEN coalesce(c.flags, 0) END,
        coalesce(c.true_positives, 0),
        CASE WHEN g.scenario = 'all'
             THEN round(c.true_positives::numeric / nullif(c.flags, 0), 4) END,
        round(coalesce(c.true_positives, 0)::numeric / nullif(n.labelled, 0), 4)
    FROM grid AS g
    LEFT JOIN caught AS c ON c.rule_id = g.rule_id AND c.scenario = g.scenario
    LEFT JOIN labelled AS n ON n.scenario = g.scenario
    ORDER BY g.rule_id = 'any', g.rule_id, g.scenario <> 'all', g.scenario;
$$;

COMMENT ON FUNCTION evaluate_rules(jsonb, timestamptz, timestamptz) IS
    'Precision and recall of each rule (and any rule) against fraud_labels, overall and per scenario, for given or live parameters over [p_from, p_to).';

REVOKE ALL ON FUNCTION evaluate_rules(jsonb, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION evaluate_rules(jsonb, timestamptz, timestamptz) TO pgfraud_readonly;
