-- get_account_history(p_account_id bigint, p_limit integer,
--                     p_before_ts timestamptz, p_before_transaction_id bigint)
--     -> TABLE (transaction_id bigint, account_id bigint, ts timestamptz,
--               amount numeric, alerts jsonb, review_status text,
--               decision jsonb)
--
-- One account's transactions, newest first, each with the alerts it raised
-- (alerts: a JSON array of {alert_id, rule_id, observed, threshold, reason},
-- decimals as strings, [] when none fired) and its latest review
-- ('unreviewed', 'confirmed_fraud' or 'false_positive') and its decision
-- (issue 17) as answered: {outcome, score, score_outcome, overruled,
-- lists: [{list_name, kind}]} (the list entries that applied), NULL for a
-- transaction stored before decisions existed. At most p_limit
-- (1..10000) rows strictly before the position (p_before_ts,
-- p_before_transaction_id) in (ts, transaction_id) order (both NULL: from
-- the newest), so the analyst's page pages through the history.
-- Errors: PF002 (account_not_found) when the account has no transactions;
-- PF001 (invalid_input) for a limit out of range or half a position.
CREATE OR REPLACE FUNCTION get_account_history(
    p_account_id bigint,
    p_limit integer DEFAULT 100,
    p_before_ts timestamptz DEFAULT NULL,
    p_before_transaction_id bigint DEFAULT NULL
)
RETURNS TABLE (
    transaction_id bigint,
    account_id bigint,
    ts timestamptz,
    amount numeric,
    alerts jsonb,
    review_status text,
    decision jsonb
)
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
        RAISE EXCEPTION 'limit must be between 1 and 10000' USING ERRCODE = 'PF001', COLUMN = 'limit';
    END IF;
    IF (p_before_ts IS NULL) <> (p_before_transaction_id IS NULL) THEN
        RAISE EXCEPTION 'before needs both a time and a transaction id'
            USING ERRCODE = 'PF001', COLUMN = 'before';
    END IF;
    IF NOT EXISTS (SELECT FROM transactions AS t WHERE t.account_id = p_account_id) THEN
        RAISE EXCEPTION 'account % has no transactions', p_account_id
            USING ERRCODE = 'PF002', COLUMN = 'account_id';
    END IF;
    -- Every table is read with account_id = p_account_id itself, so Citus
    -- routes the whole query to the account's shards (docs/scaling.md).
    RETURN QUERY
        WITH page AS (
            SELECT t.transaction_id, t.account_id, t.ts, t.amount
            FROM transactions AS t
            WHERE t.account_id = p_account_id
              AND (p_before_ts IS NULL OR (t.ts, t.transaction_id) < (p_before_ts, p_before_transaction_id))
            ORDER BY t.ts DESC, t.transaction_id DESC
            LIMIT p_limit
        )
        SELECT p.transaction_id, p.account_id, p.ts, p.amount,
               coalesce(a.alerts, '[]'::jsonb),
               coalesce(r.status, 'unreviewed'),
               CASE WHEN d.outcome IS NOT NULL THEN jsonb_build_object(
                   'outcome', d.outcome, 'score', d.score, 'score_outcome', d.score_outcome,
                   'overruled', d.outcome <> d.score_outcome,
                   'lists', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                     'list_name', e.value ->> 'list_name',
                                     'kind', e.value ->> 'kind')), '[]'::jsonb)
                             FROM jsonb_array_elements(d.lists) AS e))
               END
        FROM page AS p
        LEFT JOIN LATERAL (
            SELECT jsonb_agg(jsonb_build_object(
                       'alert_id', al.alert_id, 'rule_id', al.rule_id,
                       'observed', al.observed::text, 'threshold', al.threshold::text,
                       'reason', al.reason) ORDER BY al.rule_id) AS alerts
            FROM alerts AS al
            WHERE al.account_id = p_account_id AND al.ts = p.ts
              AND al.transaction_id = p.transaction_id
        ) AS a ON true
        LEFT JOIN LATERAL (
            SELECT rv.status
            FROM reviews AS rv
            WHERE rv.account_id = p_account_id AND rv.transaction_id = p.transaction_id
            ORDER BY rv.review_id DESC
            LIMIT 1
        ) AS r ON true
        LEFT JOIN decisions AS d
          ON d.account_id = p_account_id AND d.transaction_id = p.transaction_id
        ORDER BY p.ts DESC, p.transaction_id DESC;
END;
$$;

COMMENT ON FUNCTION get_account_history(bigint, integer, timestamptz, bigint) IS
    'One account''s transactions newest first with their alerts, latest review and decision, paged by (ts, transaction_id); PF002 if it has none, PF001 for a bad limit or position.';

REVOKE ALL ON FUNCTION get_account_history(bigint, integer, timestamptz, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION get_account_history(bigint, integer, timestamptz, bigint)
    TO pgfraud_app, pgfraud_readonly;
