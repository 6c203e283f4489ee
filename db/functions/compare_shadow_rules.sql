-- compare_shadow_rules(p_rule_id text) -> TABLE (rule_id text, live_enabled boolean,
--     live_version integer, live_parameters jsonb, shadow_parameters jsonb,
--     started_at timestamptz, started_by text, transactions bigint, labelled bigint,
--     live_alerts bigint, shadow_alerts bigint, live_per_1000 numeric,
--     shadow_per_1000 numeric, live_true_positives bigint, shadow_true_positives bigint,
--     live_precision numeric, live_recall numeric, shadow_precision numeric,
--     shadow_recall numeric)
--
-- Shadow against live (issue 18), one row per shadow rule (p_rule_id NULL:
-- every one; else that rule's, none when it has no shadow), over the same
-- transactions: those stored since the shadow started (decided at or after
-- started_at, see shadow_rule) and still stored. For each side, the
-- transactions it flags now (live: the rule's alerts, which follow the
-- live rule as it is now, version live_version; shadow: shadow_alerts),
-- alerts per 1,000 transactions (2 places), and precision and recall on
-- the labels known so far: known fraud is a transaction whose latest review
-- is confirmed_fraud, or that has no review and a label (fraud_labels) with
-- known_at at or before now; labelled counts them. precision = true
-- positives / flagged, recall = true positives / labelled (4 places; NULL
-- when the denominator is 0), per transaction, as evaluate_rules counts.
-- Cost: the transactions decided since the shadow started (a BRIN range of
-- decisions) with one index probe each into alerts, shadow_alerts, reviews
-- and fraud_labels. Reads only. Raises nothing.
-- SECURITY DEFINER: labels and decisions are read for the service and the
-- read-only role, which may not read every table it joins.
CREATE OR REPLACE FUNCTION compare_shadow_rules(p_rule_id text DEFAULT NULL)
RETURNS TABLE (
    rule_id text,
    live_enabled boolean,
    live_version integer,
    live_parameters jsonb,
    shadow_parameters jsonb,
    started_at timestamptz,
    started_by text,
    transactions bigint,
    labelled bigint,
    live_alerts bigint,
    shadow_alerts bigint,
    live_per_1000 numeric,
    shadow_per_1000 numeric,
    live_true_positives bigint,
    shadow_true_positives bigint,
    live_precision numeric,
    live_recall numeric,
    shadow_precision numeric,
    shadow_recall numeric
)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
    WITH shadows AS (
        SELECT s.rule_id, s.parameters, s.started_at, s.started_by
        FROM shadow_rules AS s
        WHERE p_rule_id IS NULL OR s.rule_id = p_rule_id
    ),
    judged AS (
        -- Each shadow's transactions (stored since it started) and, for each,
        -- whether live and shadow flag it and whether it is known fraud.
        SELECT sh.rule_id,
               EXISTS (SELECT FROM alerts AS al
                       WHERE al.account_id = t.account_id AND al.ts = t.ts
                         AND al.transaction_id = t.transaction_id
                         AND al.rule_id = sh.rule_id) AS live_flag,
               EXISTS (SELECT FROM shadow_alerts AS sa
                       WHERE sa.account_id = t.account_id AND sa.ts = t.ts
                         AND sa.transaction_id = t.transaction_id
                         AND sa.rule_id = sh.rule_id) AS shadow_flag,
               coalesce((SELECT rv.status = 'confirmed_fraud'
                         FROM reviews AS rv
                         WHERE rv.account_id = t.account_id AND rv.transaction_id = t.transaction_id
                         ORDER BY rv.review_id DESC
                         LIMIT 1),
                        EXISTS (SELECT FROM fraud_labels AS l
                                WHERE l.transaction_id = t.transaction_id
                                  AND l.known_at <= now())) AS fraud
        FROM shadows AS sh
        JOIN decisions AS d ON d.decided_at >= sh.started_at
        JOIN transactions AS t
          ON t.account_id = d.account_id AND t.transaction_id = d.transaction_id AND t.ts = d.ts
    ),
    counted AS (
        SELECT j.rule_id,
               count(*) AS transactions,
               count(*) FILTER (WHERE j.fraud) AS labelled,
               count(*) FILTER (WHERE j.live_flag) AS live_alerts,
               count(*) FILTER (WHERE j.shadow_flag) AS shadow_alerts,
               count(*) FILTER (WHERE j.live_flag AND j.fraud) AS live_tp,
               count(*) FILTER (WHERE j.shadow_flag AND j.fraud) AS shadow_tp
        FROM judged AS j
        GROUP BY j.rule_id
    )
    SELECT sh.rule_id, r.enabled,
           (SELECT max(v.version) FROM rule_versions AS v WHERE v.rule_id = sh.rule_id)::integer,
           r.parameters, sh.parameters, sh.started_at, sh.started_by,
           coalesce(c.transactions, 0), coalesce(c.labelled, 0),
           coalesce(c.live_alerts, 0), coalesce(c.shadow_alerts, 0),
           round(1000.0 * c.live_alerts / nullif(c.transactions, 0), 2),
           round(1000.0 * c.shadow_alerts / nullif(c.transactions, 0), 2),
           coalesce(c.live_tp, 0), coalesce(c.shadow_tp, 0),
           round(c.live_tp::numeric / nullif(c.live_alerts, 0), 4),
           round(c.live_tp::numeric / nullif(c.labelled, 0), 4),
           round(c.shadow_tp::numeric / nullif(c.shadow_alerts, 0), 4),
           round(c.shadow_tp::numeric / nullif(c.labelled, 0), 4)
    FROM shadows AS sh
    JOIN rules AS r ON r.rule_id = sh.rule_id
    LEFT JOIN counted AS c ON c.rule_id = sh.rule_id
    ORDER BY sh.rule_id;
$$;

COMMENT ON FUNCTION compare_shadow_rules(text) IS
    'Shadow against live per shadow rule over the transactions stored since it started: alerts per 1,000, precision and recall on the labels known so far.';

REVOKE ALL ON FUNCTION compare_shadow_rules(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION compare_shadow_rules(text) TO pgfraud_app, pgfraud_readonly;
