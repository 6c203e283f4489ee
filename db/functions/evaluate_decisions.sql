-- evaluate_decisions(p_rules jsonb, p_policy jsonb, p_from timestamptz, p_to timestamptz)
--     -> TABLE (outcome text, transactions bigint, per_1000 numeric, overruled bigint,
--               labelled bigint, fraud bigint, precision_ratio numeric, recall_ratio numeric)
--
-- The outcome mix a rule set and a decision policy produce over the
-- transactions with time in [p_from, p_to) (NULL: unbounded), and how the
-- outcomes meet the known fraud: a backtest of decisions (issue 17).
--   p_rules: the rules that run, as evaluate_rules takes them
--       ({rule_id: parameters} merged over the live ones by
--       resolve_backtest_rules; NULL: the enabled rules);
--   p_policy: a candidate policy ({review_threshold, decline_threshold,
--       default_score, rule_scores: {rule_id: score}}, each optional) merged
--       over the policy in force now and checked as a live change is
--       (resolve_backtest_policy); NULL: the policy in force now.
-- Each transaction is decided as _record_decisions decides on arrival: its
-- score is the sum of the scores of the rules that fire on it (a rule the
-- policy does not name scores default_score); decline from
-- decline_threshold, review from review_threshold, approve below; then an
-- allow-list entry for its account or merchant forces approve, else a block
-- entry forces decline. What it reads is what was known at the
-- transaction's own time: the rules see only its past and the labels and
-- reviews known then (known_at, as score_transactions always does), and the
-- list entries are those in force at its time (added_at <= ts, not removed
-- or expired by then; as account_in_list in users' rules), where a live
-- decision takes those in force when it is made.
-- The fraud the outcomes are measured against is what is known now: the
-- labels of evaluate_rules (fraud_labels, overruled by the latest review;
-- a transaction reviewed confirmed_fraud counts too).
-- Rows, in this order: approve, review, decline, review_or_decline (review
-- and decline together), each with
--   transactions: how many got that outcome; per_1000: per 1,000
--   transactions in range (2 places; NULL for an empty range);
--   overruled: of them, how many a list entry moved from the score's outcome;
--   labelled: the known fraud in range (the same on every row);
--   fraud: the known fraud among them (for approve: the fraud let through);
--   precision_ratio = fraud / transactions, recall_ratio = fraud / labelled
--       (4 places; NULL when the denominator is 0, and on the approve row).
-- Runs as the owner, for the service's role, which may not read
-- fraud_labels: it returns counts only, never a label. Reads only.
-- Errors: PF001 (invalid_input) naming rule and parameter (validate_rules)
-- or the policy field (_merge_policy); PF004 (rule_not_found) for a score of
-- an unknown rule.
CREATE OR REPLACE FUNCTION evaluate_decisions(
    p_rules jsonb DEFAULT NULL,
    p_policy jsonb DEFAULT NULL,
    p_from timestamptz DEFAULT NULL,
    p_to timestamptz DEFAULT NULL
)
RETURNS TABLE (
    outcome text,
    transactions bigint,
    per_1000 numeric,
    overruled bigint,
    labelled bigint,
    fraud bigint,
    precision_ratio numeric,
    recall_ratio numeric
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    -- (PL/pgSQL: Citus plans no LANGUAGE sql function over its tables.)
    RETURN QUERY
    WITH policy AS MATERIALIZED (
        SELECT pj.p,
               (pj.p ->> 'review_threshold')::integer AS review_threshold,
               (pj.p ->> 'decline_threshold')::integer AS decline_threshold,
               (pj.p ->> 'default_score')::integer AS default_score
        FROM (SELECT resolve_backtest_policy(p_policy) AS p) AS pj
    ),
    parameters AS MATERIALIZED (
        SELECT resolve_backtest_rules(p_rules) AS rules
    ),
    scope AS MATERIALIZED (
        SELECT t.account_id, t.transaction_id, t.ts, t.merchant_id
        FROM transactions AS t
        WHERE (p_from IS NULL OR t.ts >= p_from)
          AND (p_to IS NULL OR t.ts < p_to)
    ),
    fired AS (
        -- Each transaction's score: its fired rules' scores summed.
        SELECT f.account_id, f.transaction_id,
               sum(coalesce((po.p -> 'rule_scores' ->> f.rule_id)::integer, po.default_score))
                   AS score
        FROM (SELECT DISTINCT e.account_id, e.transaction_id, e.rule_id
              FROM parameters AS pr
              CROSS JOIN LATERAL score_transactions(p_from, p_to, pr.rules) AS e) AS f
        CROSS JOIN policy AS po
        GROUP BY f.account_id, f.transaction_id
    ),
    listed AS (
        -- The list entries in force at each transaction's time, for its
        -- account or its merchant.
        SELECT s.account_id, s.transaction_id,
               bool_or(l.kind = 'allow') AS allowed,
               bool_or(l.kind = 'block') AS blocked
        FROM scope AS s
        CROSS JOIN LATERAL (VALUES ('account', s.account_id), ('merchant', s.merchant_id))
            AS k(subject, value)
        JOIN list_entries AS e ON e.value = k.value
        JOIN lists AS l ON l.list_name = e.list_name AND l.subject = k.subject
        WHERE e.added_at <= s.ts
          AND (e.removed_at IS NULL OR e.removed_at > s.ts)
          AND (e.expires_at IS NULL OR e.expires_at > s.ts)
        GROUP BY s.account_id, s.transaction_id
    ),
    known_fraud AS (
        -- Known fraud now, as evaluate_rules counts it (_known_fraud).
        SELECT k.account_id, k.transaction_id FROM _known_fraud(p_from, p_to) AS k
    ),
    scored AS (
        SELECT s.transaction_id,
               CASE WHEN coalesce(f.score, 0) >= po.decline_threshold THEN 'decline'
                    WHEN coalesce(f.score, 0) >= po.review_threshold THEN 'review'
                    ELSE 'approve' END AS score_outcome,
               coalesce(li.allowed, false) AS allowed,
               coalesce(li.blocked, false) AS blocked,
               k.transaction_id IS NOT NULL AS is_fraud
        FROM scope AS s
        CROSS JOIN policy AS po
        LEFT JOIN fired AS f
          ON f.account_id = s.account_id AND f.transaction_id = s.transaction_id
        LEFT JOIN listed AS li
          ON li.account_id = s.account_id AND li.transaction_id = s.transaction_id
        LEFT JOIN known_fraud AS k
          ON k.account_id = s.account_id AND k.transaction_id = s.transaction_id
    ),
    decided AS (
        SELECT d.score_outcome, d.is_fraud,
               CASE WHEN d.allowed THEN 'approve'
                    WHEN d.blocked THEN 'decline'
                    ELSE d.score_outcome END AS outcome
        FROM scored AS d
    ),
    totals AS (
        SELECT count(*) AS transactions, count(*) FILTER (WHERE d.is_fraud) AS labelled
        FROM decided AS d
    ),
    counted AS (
        SELECT o.n, o.outcome,
               count(d.outcome) AS transactions,
               count(*) FILTER (WHERE d.outcome <> d.score_outcome) AS overruled,
               count(*) FILTER (WHERE d.is_fraud) AS fraud
        FROM (VALUES (1, 'approve'), (2, 'review'), (3, 'decline'), (4, 'review_or_decline'))
            AS o(n, outcome)
        LEFT JOIN decided AS d
          ON d.outcome = o.outcome
          OR (o.outcome = 'review_or_decline' AND d.outcome <> 'approve')
        GROUP BY o.n, o.outcome
    )
    SELECT c.outcome,
           c.transactions,
           round(c.transactions * 1000.0 / nullif(t.transactions, 0), 2),
           c.overruled,
           t.labelled,
           c.fraud,
           CASE WHEN c.outcome <> 'approve'
                THEN round(c.fraud::numeric / nullif(c.transactions, 0), 4) END,
           CASE WHEN c.outcome <> 'approve'
                THEN round(c.fraud::numeric / nullif(t.labelled, 0), 4) END
    FROM counted AS c
    CROSS JOIN totals AS t
    ORDER BY c.n;
END;
$$;

COMMENT ON FUNCTION evaluate_decisions(jsonb, jsonb, timestamptz, timestamptz) IS
    'Backtest of decisions: approve/review/decline counts and per 1,000, and precision and recall of decline and of review or decline against the known fraud, for given or live rules and policy over [p_from, p_to); lists as in force at each transaction''s time.';

REVOKE ALL ON FUNCTION evaluate_decisions(jsonb, jsonb, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION evaluate_decisions(jsonb, jsonb, timestamptz, timestamptz)
    TO pgfraud_app, pgfraud_readonly;
